//! `carbyne whisper ...` against whisper's own scripts (python3-whisper's whisper-info,
//! whisper-dump, whisper-fetch, whisper-create, whisper-update, whisper-set-*): same files, same
//! output. Needs the Debian package; run with `cargo test --test it reference_ -- --ignored`.
//!
//! whisper's scripts read the wall clock, so the points are placed well inside the first
//! archive's retention relative to the real time, and ours gets `--now` of that same clock.

use std::path::Path;
use std::process::Command;

const NEEDS: &str = "reference: needs python3-whisper (apt-get install python3-whisper)";

fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e} ({NEEDS})"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ours(args: &[&str]) -> String {
    let (ok, out, err) = run(env!("CARGO_BIN_EXE_carbyne"), args);
    assert!(ok, "carbyne {args:?}: {err}");
    out
}

fn theirs(script: &str, args: &[&str]) -> String {
    let (ok, out, err) = run(&format!("/usr/bin/{script}"), args);
    assert!(ok, "{script} {args:?}: {err}");
    out
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts the two files hold the same data as whisper's readers see it: identical header and
/// first archive, and the same (timestamp, value) points in every lower archive. whisper.py
/// propagates one batch's intervals in Python set order, which can rotate a lower archive's ring;
/// Carbyne propagates in time order (see ARCHITECTURE.md).
fn assert_same_points(a: &str, b: &str) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let header = carbyne::whisper::Header::parse(&x, x.len() as u64).unwrap();
    let first_end = header.archives[0].end() as usize;
    assert!(x.len() == y.len() && x[..first_end] == y[..first_end], "header or first archive differ");
    for (i, archive) in header.archives.iter().enumerate() {
        let points = |bytes: &[u8]| {
            let mut set: Vec<(u32, u64)> = bytes[archive.offset as usize..archive.end() as usize]
                .chunks_exact(carbyne::whisper::POINT_SIZE)
                .map(carbyne::whisper::decode_point)
                .filter(|p| p.0 != 0)
                .map(|(t, v)| (t, v.to_bits()))
                .collect();
            set.sort_unstable();
            set
        };
        assert_eq!(points(&x), points(&y), "archive {i} points differ");
    }
}

/// Makes the same file twice, once with each implementation; returns (ours, theirs).
fn twin_files(dir: &Path, retentions: &[&str], extra: &[&str]) -> (String, String) {
    let (a, b) = (dir.join("a.wsp"), dir.join("b.wsp"));
    let mut args = vec!["whisper", "create", s(&a)];
    args.extend_from_slice(retentions);
    args.extend_from_slice(extra);
    let created = ours(&args);
    let mut py_args = vec![s(&b)];
    py_args.extend_from_slice(retentions);
    py_args.extend_from_slice(extra);
    let py_created = theirs("whisper-create", &py_args);
    assert_eq!(created.replace(s(&a), "F"), py_created.replace(s(&b), "F"));
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "created files differ");
    (s(&a).to_string(), s(&b).to_string())
}

#[test]
#[ignore = "reference: needs python3-whisper (apt-get install python3-whisper)"]
fn reference_cli_create_update_info_dump_fetch_match_whispers_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = twin_files(dir.path(), &["60:30", "5m:1d"], &["--xFilesFactor", "0.3", "--aggregationMethod", "max"]);
    let t = now() - 900;
    let points: Vec<String> = (0..8).map(|i| format!("{}:{}", t + 60 * i, 0.1 * f64::from(i as i32) - 0.35)).collect();
    let mut args = vec!["whisper", "update", a.as_str()];
    args.extend(points.iter().map(String::as_str));
    let now_s = now().to_string();
    args.extend(["--now", &now_s]);
    ours(&args);
    let mut py_args = vec![b.as_str()];
    py_args.extend(points.iter().map(String::as_str));
    theirs("whisper-update", &py_args);
    assert_same_points(&a, &b);

    // The printing tools are compared on one file (whisper's), so that only formatting differs.
    for extra in [&[][..], &["--json"], &["xFilesFactor"], &["archives"]] {
        let mut args = vec!["whisper", "info", b.as_str()];
        args.extend_from_slice(extra);
        let mut py = vec![b.as_str()];
        py.extend_from_slice(extra);
        assert_eq!(ours(&args), theirs("whisper-info", &py), "info {extra:?}");
    }
    assert_eq!(ours(&["whisper", "dump", &b]), theirs("whisper-dump", &[&b]));
    let (from, until) = ((t - 30).to_string(), (t + 400).to_string());
    for extra in [&[][..], &["--json"], &["--drop", "nulls"], &["--drop", "zeroes"], &["--drop", "empty"]] {
        let now_s = now().to_string();
        let mut args = vec!["whisper", "fetch", b.as_str(), "--from", &from, "--until", &until, "--now", &now_s];
        args.extend_from_slice(extra);
        let mut py = vec![b.as_str(), "--from", &from, "--until", &until];
        py.extend_from_slice(extra);
        assert_eq!(ours(&args), theirs("whisper-fetch", &py), "fetch {extra:?}");
    }
}

#[test]
#[ignore = "reference: needs python3-whisper (apt-get install python3-whisper)"]
fn reference_cli_setters_and_estimate_match_whispers_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = twin_files(dir.path(), &["10s:6h", "1m:7d"], &["--sparse"]);
    let out = ours(&["whisper", "set-aggregation", &a, "absmin", "0.7"]);
    let py = theirs("whisper-set-aggregation-method", &[&b, "absmin", "0.7"]);
    assert_eq!(out.replace(&a, "F"), py.replace(&b, "F"));
    let out = ours(&["whisper", "set-xff", &a, "0.123"]);
    let py = theirs("whisper-set-xfilesfactor", &[&b, "0.123"]);
    assert_eq!(out.replace(&a, "F"), py.replace(&b, "F"));
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "files differ after the setters");
    for defs in [&["10s:6h,1m:7d,10m:5y"][..], &["60:1440", "1h:1y"]] {
        let mut args = vec!["whisper", "create", "--estimate"];
        args.extend_from_slice(defs);
        let mut py = vec!["--estimate"];
        py.extend_from_slice(defs);
        assert_eq!(ours(&args), theirs("whisper-create", &py), "estimate {defs:?}");
    }
}
