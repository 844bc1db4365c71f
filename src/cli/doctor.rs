//! `carbyne doctor`: checks the host it runs on against what the configuration needs and what
//! `tuning/` recommends, and says for each check what to change and why, with the numbers.
//!
//! Owns: the checks, their verdicts and the arithmetic behind them (the memory the io_uring
//! rings pin, the descriptors the writers and connections hold, the dirty-page thresholds in
//! bytes). Leaves out: changing anything (it only reads), and the io_uring probe, which is the
//! server's own ([`carbyne::ingest::probe`]), so that the verdict is the one `serve` reaches.
//!
//! Verdicts: `fail` is something that makes `serve` refuse to start or lose writes (the exit
//! status is then 1); `warn` costs throughput or burst tolerance, or means a slower fallback;
//! `ok` meets the recommendation. Everything read about the host goes through [`Host`] (files
//! under /proc, the probe, free space), so that tests give the checks a fake /proc.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use carbyne::config::{Config, IoBackend};
use carbyne::ingest::{Unavailable, LISTEN_BACKLOG};
use clap::Args;

use super::check_config::ConfigArgs;

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    source: ConfigArgs,
}

/// Runs every check, prints one line per check and a summary; an error (exit status 1) when
/// a check failed.
pub fn run(args: &DoctorArgs, out: &mut dyn Write) -> Result<()> {
    let config = args.source.load()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let needs = Needs::from_config(&config, cores);
    let findings = examine(&RealHost { proc_root: PathBuf::from("/proc") }, &needs);
    for finding in &findings {
        writeln!(out, "{finding}")?;
    }
    let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
    let (n_ok, n_warn, n_fail) = (count(Verdict::Ok), count(Verdict::Warn), count(Verdict::Fail));
    let source =
        config.carbon_conf.as_ref().map_or_else(|| "embedded defaults".to_string(), |p| p.display().to_string());
    writeln!(out, "carbyne doctor: {n_ok} ok, {n_warn} warn, {n_fail} fail (configuration: {source})")?;
    if n_fail > 0 {
        anyhow::bail!("{n_fail} of {} checks failed", findings.len());
    }
    Ok(())
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Meets the recommendation.
    Ok,
    /// Works, at a cost the text names.
    Warn,
    /// `serve` refuses to start, or writes will fail.
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One check's verdict and its explanation (what was found, why it matters, what to change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked: a sysctl, a limit, a resource.
    pub check: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// The numbers and the advice, on one line.
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.verdict.word(), self.check, self.text)
    }
}

fn finding(check: &'static str, verdict: Verdict, text: impl Into<String>) -> Finding {
    Finding { check, verdict, text: text.into() }
}

/// What the host is asked about. The real one reads /proc and calls the server's probe.
pub trait Host {
    /// The text of a file under /proc: `sys/net/core/rmem_max`, `meminfo`, `self/limits`,
    /// `self/status`. None when it cannot be read.
    fn proc_file(&self, rel: &str) -> Option<String>;
    /// Whether the io_uring backend can run here (the server's start-up probe).
    fn io_uring(&self) -> Result<(), Unavailable>;
    /// Free space of the file system holding `dir` (or, when `dir` does not exist yet, of its
    /// nearest existing ancestor).
    fn disk(&self, dir: &Path) -> std::io::Result<Disk>;
}

/// Free and total space of one file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The directory actually measured (`dir` or its nearest existing ancestor).
    pub path: PathBuf,
    /// Bytes an unprivileged writer may still use.
    pub avail_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
    /// Inodes an unprivileged writer may still use.
    pub avail_inodes: u64,
    /// Inodes in total; 0 where the file system does not count them (btrfs).
    pub total_inodes: u64,
}

/// The host this process runs on.
#[derive(Debug)]
struct RealHost {
    proc_root: PathBuf,
}

impl Host for RealHost {
    fn proc_file(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.proc_root.join(rel)).ok()
    }

    fn io_uring(&self) -> Result<(), Unavailable> {
        carbyne::ingest::probe()
    }

    fn disk(&self, dir: &Path) -> std::io::Result<Disk> {
        let path = dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_path_buf();
        let st = rustix::fs::statvfs(&path)?;
        Ok(Disk {
            avail_bytes: st.f_bavail.saturating_mul(st.f_frsize),
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
            avail_inodes: st.f_favail,
            total_inodes: st.f_files,
            path,
        })
    }
}

/// What the configuration asks of the host, worked out as `serve` works it out.
#[derive(Debug, Clone)]
pub struct Needs {
    /// Cores this process may run on.
    pub cores: usize,
    /// Ingest threads (INGEST_THREADS, 0 resolved to one per core).
    pub n_ingest: usize,
    /// Writer threads (WRITER_THREADS, 0 resolved to one per two cores).
    pub n_writers: usize,
    /// INGEST_THREADS and WRITER_THREADS as configured (0: automatic).
    pub configured_threads: (usize, usize),
    /// IO_BACKEND.
    pub io_backend: IoBackend,
    /// UDP_RECEIVE_BUFFER, when some UDP socket is enabled (plaintext UDP or statsd).
    pub udp_buffer_bytes: Option<u64>,
    /// WRITER_OPEN_FILES.
    pub writer_open_files: u64,
    /// WRITER_MMAP.
    pub writer_mmap: bool,
    /// MAX_RECEIVER_CONNECTIONS (None: inf).
    pub max_connections: Option<u64>,
    /// HTTP_MAX_REQUESTS when the HTTP API is on, else 0.
    pub http_requests: u64,
    /// Sockets each ingest thread binds (TCP listeners and UDP sockets).
    pub sockets_per_ingest: u64,
    /// LOCAL_DATA_DIR.
    pub data_dir: PathBuf,
    /// Size of the largest whisper file the storage schemas create, and its retentions.
    pub largest_file: (u64, String),
}

impl Needs {
    /// The needs of `config` on a host with `cores` cores.
    pub fn from_config(config: &Config, cores: usize) -> Needs {
        let c = &config.cache;
        let (n_ingest, n_writers, _) = c.tuning.resolve_threads(cores);
        let udp = c.enable_udp_listener && c.udp_receiver_port != 0;
        let statsd = c.enable_statsd && c.statsd_port != 0;
        let sockets_per_ingest =
            [c.line_receiver_port != 0, c.pickle_receiver_port != 0, udp, statsd, statsd && c.enable_statsd_tcp]
                .iter()
                .filter(|on| **on)
                .count() as u64;
        let schemas = config.schemas.rules().iter().chain(std::iter::once(config.schemas.fallback()));
        let largest_file = schemas
            .map(|s| {
                let points: u64 = s.archives.iter().map(|a| u64::from(a.points)).sum();
                (carbyne::whisper::file_size(s.archives.len() as u64, points), s.retentions.clone())
            })
            .max_by_key(|(bytes, _)| *bytes)
            .unwrap_or((0, String::new()));
        Needs {
            cores,
            n_ingest,
            n_writers,
            configured_threads: (c.tuning.ingest_threads, c.tuning.writer_threads),
            io_backend: c.tuning.io_backend,
            udp_buffer_bytes: (udp || statsd).then_some(c.tuning.udp_receive_buffer as u64),
            writer_open_files: c.tuning.writer_open_files as u64,
            writer_mmap: c.tuning.writer_mmap,
            max_connections: c.max_receiver_connections,
            http_requests: if c.http_port != 0 { c.http_max_requests as u64 } else { 0 },
            sockets_per_ingest,
            data_dir: c.local_data_dir.clone(),
            largest_file,
        }
    }
}

/// Every check, in the order printed.
pub fn examine(host: &dyn Host, needs: &Needs) -> Vec<Finding> {
    let probed = host.io_uring();
    vec![
        check_io_uring(host, needs, &probed),
        check_memlock(host, needs),
        check_udp_buffer(host, needs),
        check_somaxconn(host, needs),
        check_syn_backlog(host),
        check_open_files(host, needs),
        check_map_count(host, needs),
        check_dirty(host),
        check_disk(host, needs),
        check_cores(needs),
    ]
}

// ---------------------------------------------------------------------------------------------
// Reading /proc.

/// A sysctl by its dotted name, read from /proc/sys.
fn sysctl(host: &dyn Host, name: &str) -> Option<u64> {
    host.proc_file(&format!("sys/{}", name.replace('.', "/")))?.trim().parse().ok()
}

/// A limit of /proc/self/limits: `None` is unlimited.
type Limit = Option<u64>;

/// The (soft, hard) values of the row of /proc/self/limits that starts with `row`.
fn rlimit(host: &dyn Host, row: &str) -> Option<(Limit, Limit)> {
    let text = host.proc_file("self/limits")?;
    let line = text.lines().find(|l| l.starts_with(row))?;
    let mut fields = line[row.len()..].split_whitespace();
    let mut value = || -> Option<Limit> {
        match fields.next()? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some((value()?, value()?))
}

/// A `Key: value` field of /proc/self/status.
fn status_field(host: &dyn Host, key: &str) -> Option<String> {
    let text = host.proc_file("self/status")?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// MemTotal from /proc/meminfo, in bytes.
fn mem_total(host: &dyn Host) -> Option<u64> {
    let text = host.proc_file("meminfo")?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

fn kernel_release(host: &dyn Host) -> String {
    host.proc_file("sys/kernel/osrelease").map_or_else(|| "unknown".to_string(), |s| s.trim().to_string())
}

/// `1.5 GiB`, `328 KiB`, `512 B`.
fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            let tenths = (bytes as u128 * 10 + size as u128 / 2) / size as u128;
            return match tenths % 10 {
                0 => format!("{} {unit}", tenths / 10),
                d => format!("{}.{d} {unit}", tenths / 10),
            };
        }
    }
    format!("{bytes} B")
}

/// `1 writer`, `2 writers`.
fn counted(n: u64, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        _ => format!("{n} {word}s"),
    }
}

fn human_limit(limit: Limit) -> String {
    limit.map_or_else(|| "unlimited".to_string(), human)
}

// ---------------------------------------------------------------------------------------------
// io_uring.

fn check_io_uring(host: &dyn Host, needs: &Needs, probed: &Result<(), Unavailable>) -> Finding {
    const CHECK: &str = "io_uring";
    match (probed, needs.io_backend) {
        (Ok(()), IoBackend::Epoll) => finding(
            CHECK,
            Verdict::Ok,
            "available (ring, provided-buffer rings and multishot accept/recv/recvmsg probed), but IO_BACKEND = epoll \
             keeps the receivers on epoll; IO_BACKEND = auto would use it",
        ),
        (Ok(()), _) => finding(
            CHECK,
            Verdict::Ok,
            "available (ring, provided-buffer rings and multishot accept/recv/recvmsg probed): the receivers will run \
             on io_uring",
        ),
        (Err(e), IoBackend::Epoll) => {
            finding(CHECK, Verdict::Ok, format!("unavailable ({e}), and not needed: IO_BACKEND = epoll"))
        }
        (Err(e), IoBackend::IoUring) => finding(
            CHECK,
            Verdict::Fail,
            format!(
                "{e}: with IO_BACKEND = io_uring serve refuses to start; {}, or set IO_BACKEND = auto to fall back \
                 to epoll",
                uring_advice(host, e)
            ),
        ),
        (Err(e), IoBackend::Auto) => finding(
            CHECK,
            Verdict::Warn,
            format!(
                "{e}: serve will say so once and run the epoll backend (same behaviour; a system call per read \
                 instead of completions reaped in batches); to get io_uring: {}",
                uring_advice(host, e)
            ),
        ),
    }
}

/// What to do about a probe refusal, from what /proc says about the cause.
fn uring_advice(host: &dyn Host, e: &Unavailable) -> String {
    let kernel = kernel_release(host);
    match e {
        Unavailable::Refused => match sysctl(host, "kernel.io_uring_disabled") {
            Some(2) => "kernel.io_uring_disabled = 2 turns io_uring off for every process: set it to 0".into(),
            Some(1) => "kernel.io_uring_disabled = 1 allows io_uring only to processes in the group \
                        kernel.io_uring_group names: add the service's user to it, or set the sysctl to 0"
                .into(),
            _ if status_field(host, "Seccomp").as_deref() == Some("2") => {
                "this process runs under a seccomp filter (Seccomp: 2 in /proc/self/status) that refuses \
                 io_uring_setup, as Docker's default profile does: allow io_uring_setup, io_uring_enter and \
                 io_uring_register (tuning/docker/README.md says how, and what it costs)"
                    .into()
            }
            _ => "io_uring_setup is refused by something other than a sysctl or a seccomp filter (an LSM \
                  policy?): ask whoever manages the host"
                .into(),
        },
        Unavailable::Setup(detail) if detail.starts_with("ENOMEM") => {
            "raise RLIMIT_MEMLOCK (see the RLIMIT_MEMLOCK line)".into()
        }
        Unavailable::NoKernelSupport
        | Unavailable::Feature(_)
        | Unavailable::Opcode(_)
        | Unavailable::BufferRing(_)
        | Unavailable::Op { .. } => format!(
            "the io_uring backend needs Linux 6.0 or newer (provided-buffer rings, multishot receive); this kernel \
             is {kernel}"
        ),
        Unavailable::Setup(_) | Unavailable::Sockets(_) => format!("see the error above (kernel {kernel})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Locked memory.

/// The ring of one ingest thread as `src/ingest/uring.rs` sets it up: 1024 submission
/// entries, 8192 completion entries, two provided-buffer groups (TCP, 64 buffers; UDP, 32)
/// whose entry arrays take a page each.
const URING_SQ_ENTRIES: u64 = carbyne::ingest::RING_SQ_ENTRIES as u64;
const URING_CQ_ENTRIES: u64 = carbyne::ingest::RING_CQ_ENTRIES as u64;
const URING_BUF_GROUPS: u64 = carbyne::ingest::RING_BUF_GROUPS as u64;
const PAGE_BYTES: u64 = 4096;

/// Pages in power-of-two blocks (how kernels before 5.12 rounded ring memory when charging it).
const fn pages_pow2(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_BYTES).next_power_of_two()
}

/// Locked memory one ring may be charged, at the most any kernel charges: the completion ring
/// (16-byte entries) and submission index array behind a header of less than a page, the
/// 64-byte submission entries, each rounded up to a power of two of pages as kernels before
/// 5.12 charged them to RLIMIT_MEMLOCK, plus the buffer-ring pages the kernel pins. 328 KiB.
/// (Kernels 5.12 to 6.x charged rings to the memory cgroup instead; those that keep rings in
/// io_uring memory regions charge the exact pages to RLIMIT_MEMLOCK again, less than this.)
pub const RING_LOCKED_BYTES: u64 = (pages_pow2(URING_CQ_ENTRIES * 16 + URING_SQ_ENTRIES * 4 + PAGE_BYTES)
    + pages_pow2(URING_SQ_ENTRIES * 64)
    + URING_BUF_GROUPS)
    * PAGE_BYTES;

fn check_memlock(host: &dyn Host, needs: &Needs) -> Finding {
    const CHECK: &str = "RLIMIT_MEMLOCK";
    if needs.io_backend == IoBackend::Epoll {
        return finding(CHECK, Verdict::Ok, "not needed: IO_BACKEND = epoll locks no memory");
    }
    // The probe's ring is freed asynchronously, so count it with the threads' rings.
    let n_rings = needs.n_ingest as u64 + 1;
    let need = n_rings.saturating_mul(RING_LOCKED_BYTES);
    let Some((soft, hard)) = rlimit(host, "Max locked memory") else {
        return finding(CHECK, Verdict::Warn, "cannot read /proc/self/limits: check `ulimit -l` by hand");
    };
    let rings = format!(
        "{} and the start-up probe's at {} each ({URING_SQ_ENTRIES} submission and \
         {URING_CQ_ENTRIES} completion entries, {URING_BUF_GROUPS} buffer-ring pages)",
        counted(needs.n_ingest as u64, "ingest ring"),
        human(RING_LOCKED_BYTES)
    );
    if soft.is_none_or(|s| s >= need) {
        return finding(CHECK, Verdict::Ok, format!("{} >= {} for {rings}", human_limit(soft), human(need)));
    }
    let hard_note = match hard {
        Some(h) if h < need => format!(" (the hard limit, {}, needs raising too: limits.conf or the unit)", human(h)),
        _ => String::new(),
    };
    finding(
        CHECK,
        Verdict::Warn,
        format!(
            "{} < {} for {rings}: kernels before 5.12, and recent ones that keep rings and buffer rings in io_uring \
             memory regions, charge them to this limit, and past it io_uring is refused (ENOMEM: serve then \
             runs on epoll); set LimitMEMLOCK=32M in the unit \
             (tuning/systemd/carbyne.service) or `ulimit -l {}`{hard_note}",
            human_limit(soft),
            human(need),
            need.div_ceil(1024)
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Network sysctls.

fn check_udp_buffer(host: &dyn Host, needs: &Needs) -> Finding {
    const CHECK: &str = "net.core.rmem_max";
    let Some(asked) = needs.udp_buffer_bytes else {
        return finding(CHECK, Verdict::Ok, "not used: no UDP socket is enabled (ENABLE_UDP_LISTENER, ENABLE_STATSD)");
    };
    let Some(max) = sysctl(host, "net.core.rmem_max") else {
        return finding(
            CHECK,
            Verdict::Warn,
            "cannot read /proc/sys/net/core/rmem_max (not visible in this network namespace?): check it on the host",
        );
    };
    if max >= asked {
        return finding(
            CHECK,
            Verdict::Ok,
            format!(
                "{max} ({}) >= UDP_RECEIVE_BUFFER {asked}: every UDP socket gets the buffer it asks for",
                human(max)
            ),
        );
    }
    finding(
        CHECK,
        Verdict::Warn,
        format!(
            "{max} ({}) < UDP_RECEIVE_BUFFER {asked} ({}): each UDP socket (statsd, plaintext UDP; one per ingest \
             thread) gets {} unless the process has CAP_NET_ADMIN, and UDP has no back-pressure: a burst longer \
             than that buffer is dropped by the kernel (counted as udpKernelDrops and statsd.udpKernelDrops); set \
             net.core.rmem_max = {asked} (tuning/sysctl/60-carbyne.conf)",
            human(max),
            human(asked),
            human(max)
        ),
    )
}

fn check_somaxconn(host: &dyn Host, needs: &Needs) -> Finding {
    const CHECK: &str = "net.core.somaxconn";
    let backlog = LISTEN_BACKLOG as u64;
    let Some(v) = sysctl(host, "net.core.somaxconn") else {
        return finding(CHECK, Verdict::Warn, "cannot read /proc/sys/net/core/somaxconn: check it on the host");
    };
    if v >= backlog {
        return finding(
            CHECK,
            Verdict::Ok,
            format!("{v} >= {backlog}: every listener gets the accept queue Carbyne asks for"),
        );
    }
    finding(
        CHECK,
        Verdict::Warn,
        format!(
            "{v} < {backlog}: each listener's accept queue is cut to {v} (Carbyne asks for {backlog}); when every \
             sender reconnects at once (after a restart), handshakes beyond {v} per listener ({} listeners per port, \
             one per ingest thread) are dropped and the senders retry after 1 s, 3 s, 7 s...; set \
             net.core.somaxconn = {backlog}",
            needs.n_ingest
        ),
    )
}

fn check_syn_backlog(host: &dyn Host) -> Finding {
    const CHECK: &str = "net.ipv4.tcp_max_syn_backlog";
    let backlog = LISTEN_BACKLOG as u64;
    let Some(v) = sysctl(host, "net.ipv4.tcp_max_syn_backlog") else {
        return finding(
            CHECK,
            Verdict::Warn,
            "cannot read /proc/sys/net/ipv4/tcp_max_syn_backlog: check it on the host",
        );
    };
    if v >= backlog {
        return finding(
            CHECK,
            Verdict::Ok,
            format!("{v} >= {backlog}: a reconnect storm's handshakes are all remembered"),
        );
    }
    let overflow = match sysctl(host, "net.ipv4.tcp_syncookies") {
        Some(0) => "dropped (net.ipv4.tcp_syncookies = 0), and the senders retry after 1 s, 3 s, 7 s...",
        Some(_) => {
            "answered with SYN cookies (net.ipv4.tcp_syncookies is on): they still connect, but the kernel \
                    logs a possible SYN flood"
        }
        None => "answered with SYN cookies or dropped, as net.ipv4.tcp_syncookies says",
    };
    finding(
        CHECK,
        Verdict::Warn,
        format!(
            "{v} < {backlog}: half-open handshakes beyond about {v} per listener are {overflow}; set \
             net.ipv4.tcp_max_syn_backlog = {backlog}"
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Descriptors.

/// Descriptors besides whisper files and connections, per ingest thread: its ring or epoll
/// instance and the waker, on top of its sockets.
const FDS_PER_INGEST_EXTRA: u64 = 2;
/// Descriptors of the process as a whole: the HTTP, statsd admin and carbonlink listeners, the
/// standard streams, tokio's poller, the index walk, configuration and /proc reads.
const FDS_FIXED: u64 = 64;

fn check_open_files(host: &dyn Host, needs: &Needs) -> Finding {
    const CHECK: &str = "RLIMIT_NOFILE";
    let files = (needs.n_writers as u64).saturating_mul(needs.writer_open_files);
    let internal = (needs.n_ingest as u64).saturating_mul(needs.sockets_per_ingest + FDS_PER_INGEST_EXTRA) + FDS_FIXED;
    let (senders, senders_why) = match needs.max_connections {
        Some(n) => (n, format!("MAX_RECEIVER_CONNECTIONS {n}")),
        None => (
            LISTEN_BACKLOG as u64,
            format!("MAX_RECEIVER_CONNECTIONS = inf, counted as {LISTEN_BACKLOG}, one accept queue's worth; set it to make this a limit"),
        ),
    };
    let minimum = files.saturating_add(internal);
    let need = minimum.saturating_add(senders).saturating_add(needs.http_requests);
    let Some((soft, hard)) = rlimit(host, "Max open files") else {
        return finding(CHECK, Verdict::Warn, "cannot read /proc/self/limits: check `ulimit -n` by hand");
    };
    let soft_n = soft.unwrap_or(u64::MAX);
    let breakdown = format!(
        "{files} whisper files ({} x WRITER_OPEN_FILES {}) + {senders} connections ({senders_why}) + {} \
         HTTP requests + about {internal} sockets and internal descriptors",
        counted(needs.n_writers as u64, "writer"),
        needs.writer_open_files,
        needs.http_requests
    );
    let fix = format!(
        "set LimitNOFILE={} in the unit (tuning/systemd/carbyne.service) or `ulimit -n {}`{}",
        need.checked_next_power_of_two().unwrap_or(u64::MAX).max(262_144),
        need,
        match hard {
            Some(h) if h < need => format!(" (the hard limit, {h}, too)"),
            _ => String::new(),
        }
    );
    let soft_s = soft.map_or_else(|| "unlimited".to_string(), |s| s.to_string());
    if soft_n < minimum {
        return finding(
            CHECK,
            Verdict::Fail,
            format!(
                "{soft_s} < {minimum} that the writers' open files and the listeners need before any sender \
                 connects: writers will fail to open whisper files (EMFILE, counted in errors); need {need} = \
                 {breakdown}; {fix}"
            ),
        );
    }
    if soft_n < need {
        return finding(
            CHECK,
            Verdict::Warn,
            format!(
                "{soft_s} < {need} = {breakdown}: past {} connections, accepts fail with EMFILE and senders are \
                 refused; {fix}",
                soft_n - minimum
            ),
        );
    }
    finding(CHECK, Verdict::Ok, format!("{soft_s} >= {need} = {breakdown}"))
}

// ---------------------------------------------------------------------------------------------
// Dirty pages.

/// Recommended settings (tuning/sysctl/60-carbyne.conf) and the bounds the check applies.
const DIRTY_BACKGROUND_RATIO: u64 = 20;
const DIRTY_RATIO: u64 = 40;
const DIRTY_EXPIRE_S: u64 = 300;
/// Below this, hot whisper pages are written back too often.
const DIRTY_EXPIRE_MIN_S: u64 = 120;
/// Background writeback should not start below this share of RAM (percent).
const DIRTY_BACKGROUND_MIN_PCT: u64 = 10;
/// Writers should be throttled before this share of RAM is dirty (percent).
const DIRTY_MAX_PCT: u64 = 60;
/// Pages a metric keeps dirty: one per archive for the usual three archives.
const HOT_BYTES_PER_METRIC: u64 = 3 * PAGE_BYTES;

/// Writers map at most a quarter of vm.max_map_count files (`whisper::mapping_budget`); files past
/// that are written with `pwrite`, which works but costs a system call per point.
fn check_map_count(host: &dyn Host, needs: &Needs) -> Finding {
    const CHECK: &str = "vm.max_map_count";
    if !needs.writer_mmap {
        return finding(CHECK, Verdict::Ok, "WRITER_MMAP is off: writers use pread/pwrite, no mappings");
    }
    let files = (needs.n_writers as u64).saturating_mul(needs.writer_open_files);
    let Some(max) = sysctl(host, CHECK) else {
        return finding(CHECK, Verdict::Warn, "cannot read /proc/sys/vm/max_map_count: check it on the host");
    };
    let budget = max / 4;
    if budget >= files {
        return finding(
            CHECK,
            Verdict::Ok,
            format!(
                "{max}: all {files} open whisper files ({} x WRITER_OPEN_FILES {}) can be mapped",
                counted(needs.n_writers as u64, "writer"),
                needs.writer_open_files
            ),
        );
    }
    finding(
        CHECK,
        Verdict::Warn,
        format!(
            "{max}: writers map at most a quarter of it, {budget} of their {files} open whisper files; the others \
             are written with pwrite (a system call per write, about 0.7 µs); set vm.max_map_count = {}",
            files.saturating_mul(4)
        ),
    )
}

fn check_dirty(host: &dyn Host) -> Finding {
    const CHECK: &str = "vm.dirty_*";
    let (Some(mem), Some(expire_cs)) = (mem_total(host), sysctl(host, "vm.dirty_expire_centisecs")) else {
        return finding(
            CHECK,
            Verdict::Warn,
            "cannot read /proc/meminfo or /proc/sys/vm: check the vm.dirty_* sysctls by hand",
        );
    };
    let threshold = |bytes_key: &str, ratio_key: &str| -> Option<(u64, String)> {
        match sysctl(host, bytes_key) {
            Some(b) if b > 0 => Some((b, format!("{bytes_key} = {b}"))),
            _ => {
                let ratio = sysctl(host, ratio_key)?;
                Some(((mem / 100).saturating_mul(ratio), format!("{ratio_key} = {ratio}")))
            }
        }
    };
    let (Some((bg, bg_key)), Some((limit, limit_key))) = (
        threshold("vm.dirty_background_bytes", "vm.dirty_background_ratio"),
        threshold("vm.dirty_bytes", "vm.dirty_ratio"),
    ) else {
        return finding(CHECK, Verdict::Warn, "cannot read the vm.dirty_* sysctls: check them by hand");
    };
    let expire_s = expire_cs / 100;
    let mut problems = Vec::new();
    if bg >= limit {
        problems.push(format!(
            "background writeback ({}) does not start before writers are blocked ({}); the kernel then uses half the \
             limit",
            human(bg),
            human(limit)
        ));
    }
    if expire_s < DIRTY_EXPIRE_MIN_S {
        problems.push(format!(
            "dirty pages expire after {expire_s} s: a whisper page that keeps changing (4 KiB holds 57 minutes of \
             10 s points) is written back every {expire_s} s, {}x as often as with {DIRTY_EXPIRE_S} s",
            DIRTY_EXPIRE_S / expire_s.max(1)
        ));
    }
    if bg < mem / 100 * DIRTY_BACKGROUND_MIN_PCT {
        problems.push(format!(
            "background writeback starts at {}: the hot pages (about 3 x 4 KiB) of only {} metrics before they \
             are written early",
            human(bg),
            bg / HOT_BYTES_PER_METRIC
        ));
    }
    if limit > mem / 100 * DIRTY_MAX_PCT {
        problems.push(format!(
            "writers may dirty {} (over {DIRTY_MAX_PCT} % of RAM) before they are throttled: little page cache is \
             left for reading archives, and that much takes long to write",
            human(limit)
        ));
    }
    let found = format!(
        "{bg_key} ({}), {limit_key} ({}), vm.dirty_expire_centisecs = {expire_cs}, of {} RAM (thresholds apply to \
         free and page-cache memory, so they are somewhat lower)",
        human(bg),
        human(limit),
        human(mem)
    );
    if problems.is_empty() {
        return finding(
            CHECK,
            Verdict::Ok,
            format!(
                "{found}: room for the hot pages of about {} metrics before background writeback",
                bg / HOT_BYTES_PER_METRIC
            ),
        );
    }
    finding(
        CHECK,
        Verdict::Warn,
        format!(
            "{found}: {}; recommended: vm.dirty_background_ratio = {DIRTY_BACKGROUND_RATIO}, vm.dirty_ratio = \
             {DIRTY_RATIO}, vm.dirty_expire_centisecs = {} (tuning/sysctl/60-carbyne.conf)",
            problems.join("; "),
            DIRTY_EXPIRE_S * 100
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Disk and cores.

/// Below this much free space on LOCAL_DATA_DIR's file system, creates will soon fail.
const DISK_FAIL_BYTES: u64 = 1 << 30;
/// Below this many free inodes, likewise.
const INODES_FAIL: u64 = 10_000;
/// Below this share of the file system free (percent), a warning.
const DISK_WARN_PCT: u64 = 10;

fn check_disk(host: &dyn Host, needs: &Needs) -> Finding {
    const CHECK: &str = "LOCAL_DATA_DIR";
    let dir = needs.data_dir.display();
    let disk = match host.disk(&needs.data_dir) {
        Ok(d) => d,
        Err(e) => return finding(CHECK, Verdict::Warn, format!("cannot measure the file system of {dir}: {e}")),
    };
    let whose = if disk.path == needs.data_dir {
        dir.to_string()
    } else {
        format!("{dir} (does not exist yet, serve creates it; measured {})", disk.path.display())
    };
    let (file_bytes, retentions) = &needs.largest_file;
    let room = match *file_bytes {
        0 => String::new(),
        b => format!(
            ", room for about {} more whisper files of {} (the largest schema, {retentions})",
            disk.avail_bytes / b,
            human(b)
        ),
    };
    let pct = disk.avail_bytes.saturating_mul(100).checked_div(disk.total_bytes).unwrap_or(100);
    let inodes = match disk.total_inodes {
        0 => String::new(),
        _ => format!(", {} inodes free", disk.avail_inodes),
    };
    let found =
        format!("{whose}: {} free of {} ({pct} %){inodes}{room}", human(disk.avail_bytes), human(disk.total_bytes));
    if disk.avail_bytes < DISK_FAIL_BYTES || (disk.total_inodes > 0 && disk.avail_inodes < INODES_FAIL) {
        return finding(
            CHECK,
            Verdict::Fail,
            format!(
                "{found}: under {} or {INODES_FAIL} inodes, creates of new metrics fail (ENOSPC, counted in errors, \
                 their points kept in the cache until it fills); free space or move LOCAL_DATA_DIR",
                human(DISK_FAIL_BYTES)
            ),
        );
    }
    if pct < DISK_WARN_PCT {
        return finding(
            CHECK,
            Verdict::Warn,
            format!("{found}: under {DISK_WARN_PCT} % free; plan for more space before new metrics fill it"),
        );
    }
    finding(CHECK, Verdict::Ok, found)
}

fn check_cores(needs: &Needs) -> Finding {
    const CHECK: &str = "cores";
    let (ingest_cfg, writers_cfg) = needs.configured_threads;
    let describe = |n: usize, what: &str, key: &str, configured: usize, auto: &str| match configured {
        0 => format!("{} ({key} = 0: {auto})", counted(n as u64, what)),
        _ => format!("{} ({key} = {configured})", counted(n as u64, what)),
    };
    let threads = format!(
        "{} available: {}, {}",
        counted(needs.cores as u64, "core"),
        describe(needs.n_ingest, "ingest thread", "INGEST_THREADS", ingest_cfg, "one per core"),
        describe(needs.n_writers, "writer", "WRITER_THREADS", writers_cfg, "one per two cores")
    );
    let mut problems = Vec::new();
    if needs.n_ingest > needs.cores {
        problems.push(format!(
            "ingest threads are pinned to core k mod {}, so {} of them share cores: only context switches are \
             added; set INGEST_THREADS = 0 (one per core)",
            needs.cores,
            needs.n_ingest - needs.cores
        ));
    }
    if needs.n_writers > needs.cores {
        problems.push(format!(
            "more writers than cores: each writer only waits on the disk longer; set WRITER_THREADS = 0 (one per \
             two cores) or at most {}",
            needs.cores
        ));
    }
    if problems.is_empty() {
        return finding(CHECK, Verdict::Ok, threads);
    }
    finding(CHECK, Verdict::Warn, format!("{threads}: {}", problems.join("; ")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A host made of fixed answers: /proc files by path, the probe's result, one disk.
    struct FakeHost {
        files: HashMap<String, String>,
        uring: Result<(), Unavailable>,
        disk: Option<Disk>,
    }

    impl FakeHost {
        /// A host tuned as tuning/ recommends, with 7.5 GiB of RAM and a roomy disk.
        fn tuned() -> FakeHost {
            let mut host = FakeHost { files: HashMap::new(), uring: Ok(()), disk: Some(disk(200 << 30, 400 << 30)) };
            for (name, value) in [
                ("net.core.rmem_max", 134_217_728),
                ("net.core.somaxconn", 4096),
                ("net.ipv4.tcp_max_syn_backlog", 4096),
                ("net.ipv4.tcp_syncookies", 1),
                ("vm.dirty_ratio", 40),
                ("vm.dirty_background_ratio", 20),
                ("vm.dirty_bytes", 0),
                ("vm.dirty_background_bytes", 0),
                ("vm.dirty_expire_centisecs", 30000),
                ("kernel.io_uring_disabled", 0),
                ("vm.max_map_count", 65530),
            ] {
                host.set_sysctl(name, value);
            }
            host.files.insert("sys/kernel/osrelease".into(), "6.8.0-1\n".into());
            host.files.insert("meminfo".into(), "MemTotal:        7864320 kB\nMemFree:         6000000 kB\n".into());
            host.set_limits(Some(33_554_432), Some(262_144));
            host.files.insert("self/status".into(), "Name:\tcarbyne\nSeccomp:\t0\nSeccomp_filters:\t0\n".into());
            host
        }

        fn set_sysctl(&mut self, name: &str, value: u64) {
            self.files.insert(format!("sys/{}", name.replace('.', "/")), format!("{value}\n"));
        }

        fn set_limits(&mut self, memlock: Limit, nofile: Limit) {
            let v = |l: Limit| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
            let text = format!(
                "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max cpu time              unlimited            unlimited            seconds   \n\
                 Max open files            {:<20} {:<20} files     \n\
                 Max locked memory         {:<20} {:<20} bytes     \n",
                v(nofile),
                v(nofile),
                v(memlock),
                v(memlock)
            );
            self.files.insert("self/limits".into(), text);
        }
    }

    impl Host for FakeHost {
        fn proc_file(&self, rel: &str) -> Option<String> {
            self.files.get(rel).cloned()
        }
        fn io_uring(&self) -> Result<(), Unavailable> {
            self.uring.clone()
        }
        fn disk(&self, _dir: &Path) -> std::io::Result<Disk> {
            self.disk.clone().ok_or_else(|| std::io::Error::from_raw_os_error(libc::EACCES))
        }
    }

    fn disk(avail_bytes: u64, total_bytes: u64) -> Disk {
        Disk {
            path: PathBuf::from("/var/lib/carbyne/whisper"),
            avail_bytes,
            total_bytes,
            avail_inodes: 1_000_000,
            total_inodes: 2_000_000,
        }
    }

    /// The needs of the embedded defaults on a 4-core host (4 ingest threads, 2 writers).
    fn needs() -> Needs {
        let config = Config::embedded(PathBuf::from("/var/lib/carbyne/whisper"));
        Needs::from_config(&config, 4)
    }

    fn verdict_of(f: &Finding, expected: Verdict, words: &[&str]) {
        assert_eq!(f.verdict, expected, "{f}");
        for w in words {
            assert!(f.text.contains(w), "{w:?} missing from: {f}");
        }
    }

    #[test]
    fn a_tuned_host_passes_every_check() {
        let findings = examine(&FakeHost::tuned(), &needs());
        assert_eq!(findings.len(), 10);
        for f in &findings {
            assert_eq!(f.verdict, Verdict::Ok, "{f}");
            assert!(!f.to_string().contains('\n'), "one line per check: {f}");
            assert!(f.to_string().starts_with(&format!("[ok] {}: ", f.check)));
        }
        let names: Vec<&str> = findings.iter().map(|f| f.check).collect();
        assert_eq!(
            names,
            [
                "io_uring",
                "RLIMIT_MEMLOCK",
                "net.core.rmem_max",
                "net.core.somaxconn",
                "net.ipv4.tcp_max_syn_backlog",
                "RLIMIT_NOFILE",
                "vm.max_map_count",
                "vm.dirty_*",
                "LOCAL_DATA_DIR",
                "cores"
            ]
        );
    }

    #[test]
    fn needs_follow_the_configuration() {
        let n = needs();
        assert_eq!((n.n_ingest, n.n_writers), (4, 2));
        assert_eq!(n.udp_buffer_bytes, Some(128 << 20), "statsd is on by default");
        assert_eq!(n.writer_open_files, 1024);
        // Embedded schemas: 10s:6h,1m:7d,10m:5y = 2160 + 10080 + 262800 points in 3 archives.
        assert_eq!(n.largest_file.0, 16 + 3 * 12 + (2160 + 10080 + 262_800) * 12);
        assert_eq!(n.sockets_per_ingest, 3, "plaintext TCP, pickle, statsd UDP");
    }

    #[test]
    fn io_uring_refused_under_seccomp_falls_back_to_epoll() {
        let mut host = FakeHost::tuned();
        host.uring = Err(Unavailable::Refused);
        host.files.insert("self/status".into(), "Seccomp:\t2\nSeccomp_filters:\t1\n".into());
        let f = check_io_uring(&host, &needs(), &host.io_uring());
        verdict_of(
            &f,
            Verdict::Warn,
            &["EPERM", "epoll", "seccomp filter", "io_uring_setup", "tuning/docker/README.md"],
        );
    }

    #[test]
    fn io_uring_refused_by_the_sysctl_names_it() {
        let mut host = FakeHost::tuned();
        host.uring = Err(Unavailable::Refused);
        host.set_sysctl("kernel.io_uring_disabled", 2);
        let f = check_io_uring(&host, &needs(), &host.io_uring());
        verdict_of(&f, Verdict::Warn, &["kernel.io_uring_disabled = 2", "set it to 0"]);
    }

    #[test]
    fn io_uring_required_but_missing_fails() {
        let mut host = FakeHost::tuned();
        host.uring = Err(Unavailable::NoKernelSupport);
        let mut n = needs();
        n.io_backend = IoBackend::IoUring;
        let f = check_io_uring(&host, &n, &host.io_uring());
        verdict_of(&f, Verdict::Fail, &["ENOSYS", "refuses to start", "Linux 6.0", "6.8.0-1", "IO_BACKEND = auto"]);
        n.io_backend = IoBackend::Epoll;
        verdict_of(&check_io_uring(&host, &n, &host.io_uring()), Verdict::Ok, &["not needed"]);
    }

    #[test]
    fn ring_memory_is_worked_out_from_the_ring_sizes() {
        // Rings: 8192 x 16 + 1024 x 4 + a page = 34 pages -> 64; SQEs: 1024 x 64 = 16 pages; 2 pages.
        assert_eq!(RING_LOCKED_BYTES, (64 + 16 + 2) * 4096);
        assert_eq!(human(RING_LOCKED_BYTES), "328 KiB");
    }

    #[test]
    fn memlock_below_the_rings_needs_is_a_warning_with_numbers() {
        let mut host = FakeHost::tuned();
        host.set_limits(Some(65_536), Some(262_144));
        let f = check_memlock(&host, &needs());
        // 5 rings (4 threads + the probe) x 328 KiB.
        verdict_of(
            &f,
            Verdict::Warn,
            &["64 KiB < 1.6 MiB", "4 ingest rings", "LimitMEMLOCK=32M", "ulimit -l 1640", "hard limit"],
        );
        host.set_limits(None, Some(262_144));
        verdict_of(&check_memlock(&host, &needs()), Verdict::Ok, &["unlimited >= 1.6 MiB"]);
        let mut n = needs();
        n.io_backend = IoBackend::Epoll;
        host.set_limits(Some(0), Some(262_144));
        verdict_of(&check_memlock(&host, &n), Verdict::Ok, &["not needed"]);
    }

    #[test]
    fn short_udp_buffers_are_a_warning() {
        let mut host = FakeHost::tuned();
        host.set_sysctl("net.core.rmem_max", 212_992);
        let f = check_udp_buffer(&host, &needs());
        verdict_of(
            &f,
            Verdict::Warn,
            &[
                "212992 (208 KiB) < UDP_RECEIVE_BUFFER 134217728 (128 MiB)",
                "udpKernelDrops",
                "net.core.rmem_max = 134217728",
            ],
        );
        let mut n = needs();
        n.udp_buffer_bytes = None;
        verdict_of(&check_udp_buffer(&host, &n), Verdict::Ok, &["no UDP socket"]);
        host.files.remove("sys/net/core/rmem_max");
        verdict_of(&check_udp_buffer(&host, &needs()), Verdict::Warn, &["cannot read"]);
    }

    #[test]
    fn short_accept_queues_are_warnings() {
        let mut host = FakeHost::tuned();
        host.set_sysctl("net.core.somaxconn", 128);
        verdict_of(&check_somaxconn(&host, &needs()), Verdict::Warn, &["128 < 4096", "net.core.somaxconn = 4096"]);
        host.set_sysctl("net.ipv4.tcp_max_syn_backlog", 512);
        verdict_of(&check_syn_backlog(&host), Verdict::Warn, &["512 < 4096", "SYN cookies"]);
        host.set_sysctl("net.ipv4.tcp_syncookies", 0);
        verdict_of(&check_syn_backlog(&host), Verdict::Warn, &["dropped (net.ipv4.tcp_syncookies = 0)"]);
    }

    #[test]
    fn open_files_fail_below_the_writers_files_and_warn_below_the_connections() {
        let mut host = FakeHost::tuned();
        let n = needs();
        // 2 writers x 1024 files + 4 threads x (3 sockets + 2) + 64 = 2132; + 4096 senders + 64 HTTP.
        host.set_limits(Some(33_554_432), Some(1024));
        let f = check_open_files(&host, &n);
        verdict_of(
            &f,
            Verdict::Fail,
            &["1024 < 2132", "EMFILE", "need 6292", "LimitNOFILE=262144", "the hard limit, 1024"],
        );
        host.set_limits(Some(33_554_432), Some(4096));
        let f = check_open_files(&host, &n);
        verdict_of(&f, Verdict::Warn, &["4096 < 6292", "past 1964 connections", "MAX_RECEIVER_CONNECTIONS = inf"]);
        let mut bounded = needs();
        bounded.max_connections = Some(1000);
        verdict_of(&check_open_files(&host, &bounded), Verdict::Ok, &["4096 >= 3196", "MAX_RECEIVER_CONNECTIONS 1000"]);
    }

    #[test]
    fn mapped_files_beyond_a_quarter_of_max_map_count_are_a_warning() {
        let mut host = FakeHost::tuned();
        let mut many = needs();
        many.writer_open_files = 65536;
        many.writer_mmap = true;
        verdict_of(
            &check_map_count(&host, &many),
            Verdict::Warn,
            &["16382 of their 131072", "vm.max_map_count = 524288"],
        );
        host.set_sysctl("vm.max_map_count", 1_048_576);
        verdict_of(&check_map_count(&host, &many), Verdict::Ok, &["all 131072"]);
        many.writer_mmap = false;
        host.set_sysctl("vm.max_map_count", 100);
        verdict_of(&check_map_count(&host, &many), Verdict::Ok, &["WRITER_MMAP is off"]);
    }

    #[test]
    fn kernel_default_writeback_is_a_warning() {
        let mut host = FakeHost::tuned();
        host.set_sysctl("vm.dirty_ratio", 20);
        host.set_sysctl("vm.dirty_background_ratio", 10);
        host.set_sysctl("vm.dirty_expire_centisecs", 3000);
        let f = check_dirty(&host);
        verdict_of(&f, Verdict::Warn, &["expire after 30 s", "10x as often", "vm.dirty_expire_centisecs = 30000"]);
        host.set_sysctl("vm.dirty_expire_centisecs", 30000);
        host.set_sysctl("vm.dirty_background_ratio", 40);
        verdict_of(&check_dirty(&host), Verdict::Warn, &["does not start before writers are blocked"]);
        host.set_sysctl("vm.dirty_background_ratio", 2);
        verdict_of(&check_dirty(&host), Verdict::Warn, &["background writeback starts at 153.6 MiB"]);
        host.set_sysctl("vm.dirty_background_ratio", 20);
        host.set_sysctl("vm.dirty_ratio", 80);
        verdict_of(&check_dirty(&host), Verdict::Warn, &["over 60 % of RAM"]);
    }

    #[test]
    fn dirty_bytes_override_the_ratios() {
        let mut host = FakeHost::tuned();
        host.set_sysctl("vm.dirty_background_bytes", 2 << 30);
        host.set_sysctl("vm.dirty_bytes", 3 << 30);
        let f = check_dirty(&host);
        verdict_of(
            &f,
            Verdict::Ok,
            &[
                "vm.dirty_background_bytes = 2147483648 (2 GiB)",
                "vm.dirty_bytes = 3221225472 (3 GiB)",
                "174762 metrics",
            ],
        );
    }

    #[test]
    fn a_nearly_full_disk_fails_and_a_tight_one_warns() {
        let mut host = FakeHost::tuned();
        host.disk = Some(disk(512 << 20, 100 << 30));
        verdict_of(&check_disk(&host, &needs()), Verdict::Fail, &["512 MiB free of 100 GiB (0 %)", "ENOSPC"]);
        host.disk = Some(disk(5 << 30, 100 << 30));
        verdict_of(
            &check_disk(&host, &needs()),
            Verdict::Warn,
            &["(5 %)", "room for about 1626 more whisper files of 3.1 MiB"],
        );
        let mut few_inodes = disk(50 << 30, 100 << 30);
        few_inodes.avail_inodes = 500;
        host.disk = Some(few_inodes);
        verdict_of(&check_disk(&host, &needs()), Verdict::Fail, &["500 inodes free"]);
        host.disk = None;
        verdict_of(&check_disk(&host, &needs()), Verdict::Warn, &["cannot measure"]);
    }

    #[test]
    fn more_threads_than_cores_is_a_warning() {
        let mut n = needs();
        verdict_of(
            &check_cores(&n),
            Verdict::Ok,
            &["4 cores available: 4 ingest threads (INGEST_THREADS = 0: one per core), 2 writers"],
        );
        n.n_ingest = 8;
        n.configured_threads = (8, 0);
        verdict_of(&check_cores(&n), Verdict::Warn, &["INGEST_THREADS = 8", "4 of them share cores"]);
    }

    #[test]
    fn proc_parsing_reads_real_formats() {
        let host = FakeHost::tuned();
        assert_eq!(rlimit(&host, "Max open files"), Some((Some(262_144), Some(262_144))));
        assert_eq!(mem_total(&host), Some(7_864_320 * 1024));
        assert_eq!(status_field(&host, "Seccomp").as_deref(), Some("0"));
        assert_eq!(sysctl(&host, "net.core.somaxconn"), Some(4096));
        assert_eq!(sysctl(&host, "net.core.nothing"), None);
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(7_864_320 * 1024), "7.5 GiB");
        assert_eq!(human(100), "100 B");
    }

    #[test]
    fn any_failure_is_seen_in_the_findings() {
        let mut host = FakeHost::tuned();
        host.set_limits(Some(33_554_432), Some(256));
        let findings = examine(&host, &needs());
        assert_eq!(findings.iter().filter(|f| f.verdict == Verdict::Fail).count(), 1);
        assert_eq!(findings.iter().map(|f| f.verdict).max(), Some(Verdict::Fail));
    }
}
