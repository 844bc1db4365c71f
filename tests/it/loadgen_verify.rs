//! carbyne-loadgen against the real appliance: plaintext over TCP and UDP, pickle, and the mixed
//! mode, each read back with `--verify` through the appliance's own render API, and every point
//! found with the value sent (none missing, none wrong). The loadgen is an independent
//! implementation of the wire protocols, so this closes the loop from sender to render.
//!
//! The loadgen binary is not built here: it is found next to the carbyne binary, where
//! `cargo test --workspace` puts it (cargo builds every workspace binary before running any test,
//! and the loadgen package's own tests need its binary). A run of this binary alone
//! (`cargo test --test it`) needs `cargo build -p carbyne-loadgen` first; a missing or stale
//! loadgen fails with that advice rather than testing old code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::server::Appliance;

/// The loadgen binary of the same build, checked to be newer than its sources.
fn loadgen_binary() -> PathBuf {
    let carbyne = Path::new(env!("CARGO_BIN_EXE_carbyne"));
    let loadgen = carbyne.with_file_name(format!("carbyne-loadgen{}", std::env::consts::EXE_SUFFIX));
    let advice = "run `cargo build -p carbyne-loadgen` (with the same profile) first, or `cargo test --workspace`";
    let built = std::fs::metadata(&loadgen)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("no {}: {advice}", loadgen.display()));
    // Sources only: cargo relinks the binary whenever one changes (not for every Cargo.toml edit).
    let newest = newest_mtime(&Path::new(env!("CARGO_MANIFEST_DIR")).join("loadgen/src"));
    assert!(newest <= built, "{} is older than its sources: {advice}", loadgen.display());
    loadgen
}

fn newest_mtime(path: &Path) -> SystemTime {
    let own = std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    match std::fs::read_dir(path) {
        Ok(entries) => entries.map_while(Result::ok).map(|e| newest_mtime(&e.path())).fold(own, SystemTime::max),
        Err(_) => own,
    }
}

/// Runs the loadgen with `args` and returns its JSON report, which must say the run and the
/// verification were clean.
fn run(loadgen: &Path, args: &[&str]) -> String {
    let output = Command::new(loadgen).args(args).args(["--json", "--quiet"]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "carbyne-loadgen {args:?}\n{stdout}\n{stderr}");
    let json = stdout.trim().to_owned();
    assert!(json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1, "{json}");
    json
}

fn assert_has(json: &str, fields: &[&str]) {
    for field in fields {
        assert!(json.contains(field), "{field} missing from {json}");
    }
}

#[test]
fn loadgen_verify_finds_every_point_sent_over_plaintext_udp_and_pickle() {
    let loadgen = loadgen_binary();
    let mut app = Appliance::start("");
    let url = format!("http://{}", app.http.expect("the HTTP API is on by default"));
    // 150 metrics x 4 points 10 s apart, the last 10 to 20 s ago: the test schema's 1 s
    // archive (1s:1h) covers them, so the render answer holds the very points sent.
    let workload = ["--metrics=150", "--points=4", "--interval=10", "--verify", &url];
    let (line, udp, pickle) = (app.line.to_string(), app.udp_addr().to_string(), app.pickle_addr().to_string());
    let clean = [
        r#""points_expected":600,"points_found":600,"points_inexact":0,"points_missing":0,"points_wrong":0"#,
        r#""points_unverified":0"#,
    ];

    let json = run(
        &loadgen,
        &[&["plaintext", "--target", &line, "--prefix=lg.tcp", "--connections=3"][..], &workload, &["--visibility=30"]]
            .concat(),
    );
    assert_has(&json, &clean);
    assert_has(&json, &[r#""accepted":true"#, r#""samples":30,"sent":30,"visible":30,"not_visible":0"#]);

    // UDP has no back-pressure: paced well below what the socket buffer absorbs.
    let json = run(
        &loadgen,
        &[
            &["plaintext-udp", "--target", &udp, "--prefix=lg.udp", "--senders=2"][..],
            &["--lines-per-datagram=25", "--rate=20000"],
            &workload,
        ]
        .concat(),
    );
    assert_has(&json, &clean);
    assert_has(&json, &[r#""transport":"udp""#, r#""send_errors":0"#]);

    let json = run(
        &loadgen,
        &[&["pickle", "--target", &pickle, "--prefix=lg.pickle", "--batch-points=64"][..], &workload].concat(),
    );
    assert_has(&json, &clean);
    assert_has(&json, &[r#""protocol":"pickle""#, r#""accepted":true"#]);

    // All three at once: the carbon part (plaintext and pickle) read back, statsd sent beside it.
    let statsd = app.statsd_udp_addr().expect("statsd is on by default").to_string();
    let json = run(
        &loadgen,
        &[
            &["mixed", "--plaintext-target", &line, "--pickle-target", &pickle, "--statsd-target", &statsd][..],
            &["--share=plaintext=2,pickle=1,statsd=1", "--prefix=lg.mixed", "--rate=20000"],
            &workload,
        ]
        .concat(),
    );
    assert_has(&json, &clean);
    assert_has(&json, &[r#""protocol":"mixed""#, r#""lines_sent":200"#]);
    app.stop();
}
