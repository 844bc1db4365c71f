//! Directories as carbon's `read_config` computes them for carbon-cache.
//!
//! - `GRAPHITE_ROOT`: the environment variable, else the parent of the directory holding
//!   carbon.conf (`/opt/graphite/conf/carbon.conf` → `/opt/graphite`). carbon takes the parent
//!   of its `bin/` directory instead; with the standard layout both are the install root, and we
//!   have no `bin/` of carbon's to look at.
//! - `CONF_DIR`: the directory holding carbon.conf, because the file is always named explicitly
//!   (carbon does the same with `--config`; `GRAPHITE_CONF_DIR` only says where to look for
//!   carbon.conf when none is named, see [`Environment::carbon_conf`]).
//! - `STORAGE_DIR`: `GRAPHITE_STORAGE_DIR`, else `GRAPHITE_ROOT/storage`.
//! - After `[cache]` is read, unset `LOCAL_DATA_DIR`, `WHITELISTS_DIR`, `PID_DIR` and `LOG_DIR`
//!   default to `STORAGE_DIR/whisper`, `STORAGE_DIR/lists`, `STORAGE_DIR` and
//!   `STORAGE_DIR/log/carbon-cache`. carbon derives them *before* reading `[cache:<instance>]`,
//!   so a `STORAGE_DIR` set only in the instance section does not move them; we keep that.
//! - With an instance, `LOG_DIR` gets `/carbon-cache-<instance>` appended and the pid file is
//!   `PID_DIR/carbon-cache-<instance>.pid` (`carbon-cache.pid` without one).
//! - Every directory is then `~`-expanded (with `HOME`; `~user` is left alone) and normalised
//!   lexically like Python's `os.path.normpath`. carbon skips this for `CONF_DIR`; we do not.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The environment variables carbon reads, captured once so that loading is testable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `GRAPHITE_ROOT`.
    pub graphite_root: Option<PathBuf>,
    /// `GRAPHITE_CONF_DIR`.
    pub graphite_conf_dir: Option<PathBuf>,
    /// `GRAPHITE_STORAGE_DIR`.
    pub graphite_storage_dir: Option<PathBuf>,
    /// `HOME`, for `~` in paths.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// Reads the variables from this process's environment (empty values count as unset).
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Environment {
            graphite_root: var("GRAPHITE_ROOT"),
            graphite_conf_dir: var("GRAPHITE_CONF_DIR"),
            graphite_storage_dir: var("GRAPHITE_STORAGE_DIR"),
            home: var("HOME"),
        }
    }

    /// Where carbon looks for carbon.conf when none is named: `GRAPHITE_CONF_DIR/carbon.conf`,
    /// else `GRAPHITE_ROOT/conf/carbon.conf`; None when neither variable is set.
    pub fn carbon_conf(&self) -> Option<PathBuf> {
        match (&self.graphite_conf_dir, &self.graphite_root) {
            (Some(conf), _) => Some(conf.join("carbon.conf")),
            (None, Some(root)) => Some(root.join("conf").join("carbon.conf")),
            (None, None) => None,
        }
    }
}

/// The directory keys while carbon.conf is being read; `None` means "not set yet".
#[derive(Debug, Clone, Default)]
pub(crate) struct DirKeys {
    pub(crate) graphite_root: PathBuf,
    pub(crate) conf_dir: PathBuf,
    pub(crate) storage_dir: PathBuf,
    pub(crate) local_data_dir: Option<PathBuf>,
    pub(crate) whitelists_dir: Option<PathBuf>,
    pub(crate) pid_dir: Option<PathBuf>,
    pub(crate) log_dir: Option<PathBuf>,
}

/// The final directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dirs {
    pub(crate) graphite_root: PathBuf,
    pub(crate) conf_dir: PathBuf,
    pub(crate) storage_dir: PathBuf,
    pub(crate) local_data_dir: PathBuf,
    pub(crate) whitelists_dir: PathBuf,
    pub(crate) pid_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    pub(crate) pid_file: PathBuf,
}

impl DirKeys {
    /// The starting point for `carbon_conf`, before any key is read.
    pub(crate) fn start(carbon_conf: &Path, env: &Environment) -> Self {
        let conf_dir = normpath(carbon_conf).parent().map(Path::to_path_buf).unwrap_or_default();
        let graphite_root = match &env.graphite_root {
            Some(root) => root.clone(),
            None => normpath(&conf_dir.join("..")),
        };
        let storage_dir = match &env.graphite_storage_dir {
            Some(dir) => dir.clone(),
            None => graphite_root.join("storage"),
        };
        DirKeys { graphite_root, conf_dir, storage_dir, ..DirKeys::default() }
    }

    /// Takes a directory key from carbon.conf; false when `key` is not one.
    pub(crate) fn apply(&mut self, key: &str, value: &str) -> bool {
        let path = PathBuf::from(value);
        match key {
            "STORAGE_DIR" => self.storage_dir = path,
            "CONF_DIR" => self.conf_dir = path,
            "LOCAL_DATA_DIR" => self.local_data_dir = Some(path),
            "WHITELISTS_DIR" => self.whitelists_dir = Some(path),
            "PID_DIR" => self.pid_dir = Some(path),
            "LOG_DIR" => self.log_dir = Some(path),
            _ => return false,
        }
        true
    }

    /// carbon's `update_STORAGE_DIR_deps`: fills the unset directories from `STORAGE_DIR`.
    pub(crate) fn fill_from_storage_dir(&mut self) {
        let storage = &self.storage_dir;
        self.local_data_dir.get_or_insert_with(|| storage.join("whisper"));
        self.whitelists_dir.get_or_insert_with(|| storage.join("lists"));
        self.pid_dir.get_or_insert_with(|| storage.clone());
        self.log_dir.get_or_insert_with(|| storage.join("log").join("carbon-cache"));
    }

    /// The final directories for `instance` ("" for none), expanded and normalised.
    pub(crate) fn finish(mut self, instance: &str, env: &Environment) -> Dirs {
        self.fill_from_storage_dir();
        let clean = |p: &Path| normpath(&expand_user(p, env.home.as_deref()));
        let pid_dir = self.pid_dir.unwrap_or_default();
        let log_dir = self.log_dir.unwrap_or_default();
        let (log_dir, pid_name) = if instance.is_empty() {
            (log_dir, "carbon-cache.pid".to_string())
        } else {
            (log_dir.join(format!("carbon-cache-{instance}")), format!("carbon-cache-{instance}.pid"))
        };
        Dirs {
            graphite_root: clean(&self.graphite_root),
            conf_dir: clean(&self.conf_dir),
            storage_dir: clean(&self.storage_dir),
            local_data_dir: clean(&self.local_data_dir.unwrap_or_default()),
            whitelists_dir: clean(&self.whitelists_dir.unwrap_or_default()),
            pid_file: clean(&pid_dir.join(pid_name)),
            pid_dir: clean(&pid_dir),
            log_dir: clean(&log_dir),
        }
    }
}

/// `~` and `~/rest` → `home/rest`, as Python's `os.path.expanduser` with `HOME` set.
fn expand_user(p: &Path, home: Option<&Path>) -> PathBuf {
    let (Some(home), Ok(rest)) = (home, p.strip_prefix("~")) else {
        return p.to_path_buf();
    };
    if rest.as_os_str().is_empty() {
        home.to_path_buf()
    } else {
        home.join(rest)
    }
}

/// Lexical normalisation as Python's `os.path.normpath`: drops `.` and empty components, folds
/// `name/..`, keeps leading `..` of relative paths; "" becomes ".".
pub(crate) fn normpath(p: &Path) -> PathBuf {
    let absolute = p.has_root();
    let mut parts: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if parts.last().is_some_and(|last| last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..".into());
                }
            }
            Component::Normal(name) => parts.push(name.to_os_string()),
        }
    }
    let mut out = if absolute { PathBuf::from("/") } else { PathBuf::new() };
    out.extend(parts);
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(normpath(Path::new(input)), PathBuf::from(expected), "{input:?}");
    }

    #[test]
    fn normpath_as_python() {
        check("", ".");
        check(".", ".");
        check("/", "/");
        check("/opt/graphite/conf/..", "/opt/graphite");
        check("/opt//graphite/./storage/", "/opt/graphite/storage");
        check("/..", "/");
        check("conf/..", ".");
        check("../x/../..", "../..");
        check("a/b/../../../c", "../c");
    }

    #[test]
    fn expand_user_with_home() {
        let home = Some(Path::new("/home/g"));
        assert_eq!(expand_user(Path::new("~"), home), PathBuf::from("/home/g"));
        assert_eq!(expand_user(Path::new("~/data"), home), PathBuf::from("/home/g/data"));
        assert_eq!(expand_user(Path::new("~bob/data"), home), PathBuf::from("~bob/data"));
        assert_eq!(expand_user(Path::new("~/data"), None), PathBuf::from("~/data"));
        assert_eq!(expand_user(Path::new("/x/~"), home), PathBuf::from("/x/~"));
    }

    #[test]
    fn defaults_follow_root_and_env() {
        let env = Environment::default();
        let dirs = DirKeys::start(Path::new("/opt/graphite/conf/carbon.conf"), &env).finish("a", &env);
        assert_eq!(dirs.graphite_root, PathBuf::from("/opt/graphite"));
        assert_eq!(dirs.conf_dir, PathBuf::from("/opt/graphite/conf"));
        assert_eq!(dirs.storage_dir, PathBuf::from("/opt/graphite/storage"));
        assert_eq!(dirs.local_data_dir, PathBuf::from("/opt/graphite/storage/whisper"));
        assert_eq!(dirs.whitelists_dir, PathBuf::from("/opt/graphite/storage/lists"));
        assert_eq!(dirs.pid_dir, PathBuf::from("/opt/graphite/storage"));
        assert_eq!(dirs.log_dir, PathBuf::from("/opt/graphite/storage/log/carbon-cache/carbon-cache-a"));
        assert_eq!(dirs.pid_file, PathBuf::from("/opt/graphite/storage/carbon-cache-a.pid"));

        let env = Environment {
            graphite_root: Some("/srv/g".into()),
            graphite_storage_dir: Some("/data".into()),
            graphite_conf_dir: Some("/ignored".into()),
            home: None,
        };
        let dirs = DirKeys::start(Path::new("carbon.conf"), &env).finish("", &env);
        assert_eq!(dirs.graphite_root, PathBuf::from("/srv/g"));
        assert_eq!(dirs.conf_dir, PathBuf::from("."));
        assert_eq!(dirs.local_data_dir, PathBuf::from("/data/whisper"));
        assert_eq!(dirs.log_dir, PathBuf::from("/data/log/carbon-cache"));
        assert_eq!(dirs.pid_file, PathBuf::from("/data/carbon-cache.pid"));
        assert_eq!(env.carbon_conf(), Some(PathBuf::from("/ignored/carbon.conf")));
        let env = Environment { graphite_root: Some("/srv/g".into()), ..Environment::default() };
        assert_eq!(env.carbon_conf(), Some(PathBuf::from("/srv/g/conf/carbon.conf")));
        assert_eq!(Environment::default().carbon_conf(), None);
    }
}
