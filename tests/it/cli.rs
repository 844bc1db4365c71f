//! The `carbyne whisper ...` tools, run as a user runs them: exact output, exit codes, files.

use std::path::Path;
use std::process::{Command, Output};

const NOW: i64 = 1_700_000_000;

fn carbyne(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carbyne")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = carbyne(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = carbyne(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn create_info_and_dump_print_what_whisper_tools_print() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wsp");
    let p = s(&path);
    assert_eq!(
        ok(&["whisper", "create", p, "60:10", "5m:1h", "--xFilesFactor", "0.2"]),
        format!("Created: {p} (304 bytes)\n")
    );
    let info = ok(&["whisper", "info", p]);
    let expected =
        "aggregationMethod: average\nmaxRetention: 3600\nxFilesFactor: 0.20000000298023224\nfileSize: 304\n\n\
        Archive 0\noffset: 40\nsecondsPerPoint: 60\npoints: 10\nretention: 600\nsize: 120\n\n\
        Archive 1\noffset: 160\nsecondsPerPoint: 300\npoints: 12\nretention: 3600\nsize: 144\n\n";
    assert_eq!(info, expected);
    assert_eq!(ok(&["whisper", "info", p, "maxRetention"]), "3600\n");
    let json: serde_json::Value = serde_json::from_str(&ok(&["whisper", "info", p, "--json"])).unwrap();
    assert_eq!(json["archives"][1]["offset"], 160);
    assert_eq!(json["xFilesFactor"], 0.20000000298023224);
    let dump = ok(&["whisper", "dump", p]);
    assert!(dump.starts_with("Meta data:\n  aggregation method: average\n  max retention: 3600\n  xFilesFactor: 0.2\n\nArchive 0 info:\n  offset: 40\n"), "{dump}");
    assert!(dump.contains("Archive 1 data:\n0: 0,          0\n"), "{dump}");
    assert_eq!(dump.lines().filter(|l| l.ends_with(",          0")).count(), 22);
    let err = fails(&["whisper", "create", p, "60:10"]);
    assert!(err.contains("already exists"), "{err}");
    assert!(ok(&["whisper", "create", p, "60:20", "--overwrite"]).starts_with("Overwriting existing file"));
}

#[test]
fn update_then_fetch_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.wsp");
    let p = s(&path);
    ok(&["whisper", "create", p, "60:10"]);
    let now = NOW.to_string();
    let t = NOW - NOW % 60 - 120;
    ok(&["whisper", "update", p, &format!("{t}:1.5"), &format!("{}:-2", t + 60), "N:0.25", "--now", &now]);
    let from = (t - 1).to_string();
    let fetched = ok(&["whisper", "fetch", p, "--from", &from, "--until", &now, "--now", &now]);
    let aligned_now = NOW - NOW % 60;
    assert_eq!(fetched, format!("{t}\t1.500000\n{}\t-2.000000\n{aligned_now}\t0.250000\n", t + 60));
    let json = ok(&["whisper", "fetch", p, "--from", &from, "--until", &now, "--now", &now, "--json"]);
    let expected_json = format!(
        "{{\n    \"start\" : {t},\n    \"end\" : {},\n    \"step\" : 60,\n    \"values\" : [1.5, -2.0, 0.25]\n  }}\n",
        aligned_now + 60
    );
    assert_eq!(json, expected_json);
    let wide_from = (NOW - 590).to_string();
    let wide = ok(&["whisper", "fetch", p, "--from", &wide_from, "--until", &now, "--now", &now, "--drop", "nulls"]);
    assert_eq!(wide.lines().count(), 3);
    // Single point outside the retention: update's strict rule refuses it.
    let err = fails(&["whisper", "update", p, &format!("{}:1", NOW - 600), "--now", &now]);
    assert!(err.contains("not covered"), "{err}");
    let err = fails(&[
        "whisper",
        "fetch",
        p,
        "--from",
        &(NOW + 10).to_string(),
        "--until",
        &(NOW + 20).to_string(),
        "--now",
        &now,
    ]);
    assert!(err.contains("No data in selected timerange"), "{err}");
}

#[test]
fn set_aggregation_set_xff_and_resize() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.wsp");
    let p = s(&path);
    ok(&["whisper", "create", p, "10:60"]);
    assert_eq!(
        ok(&["whisper", "set-aggregation", p, "max", "0.1"]),
        format!("Updated aggregation method: {p} (average -> max)\n")
    );
    assert_eq!(
        ok(&["whisper", "set-xff", p, "0.3"]),
        format!("Updated xFilesFactor: {p} (0.10000000149011612 -> 0.3)\n")
    );
    assert!(fails(&["whisper", "set-aggregation", p, "median"]).contains("unrecognized aggregation method: median"));
    assert!(fails(&["whisper", "set-xff", p, "2"]).contains("between 0 and 1"));
    let now = NOW.to_string();
    let t = NOW - NOW % 60 - 60;
    ok(&["whisper", "update", p, &format!("{t}:1"), &format!("{}:5", t + 10), "--now", &now]);
    let out = ok(&["whisper", "resize", p, "1m:1h", "--now", &now, "--aggregate", "--xFilesFactor", "0"]);
    assert!(out.contains("with aggregation"), "{out}");
    assert!(dir.path().join("r.wsp.bak").exists());
    let fetched =
        ok(&["whisper", "fetch", p, "--from", &(t - 1).to_string(), "--until", &(t + 1).to_string(), "--now", &now]);
    assert_eq!(fetched, format!("{t}\t5.000000\n"), "max of the minute, as the file's method says");
    assert_eq!(ok(&["whisper", "info", p, "xFilesFactor"]), "0.0\n");
}

#[test]
fn estimate_and_usage_errors() {
    let out = ok(&["whisper", "create", "--estimate", "10s:6h,1m:7d"]);
    assert!(
        out.starts_with("Archive 0: 2160 points of 10s precision\nArchive 1: 10080 points of 60s precision\n"),
        "{out}"
    );
    assert!(out.contains("Estimated Whisper DB Size: 143.477KB (147456 bytes on disk with 4k blocks)"), "{out}");
    assert!(
        fails(&["whisper", "create", "/nonexistent-dir/x.wsp", "60:bogus"]).contains("invalid retention definition")
    );
    assert!(fails(&["whisper", "info", "/nonexistent-dir/x.wsp"]).contains("No such file"));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wsp");
    std::fs::write(&junk, b"\x00\x00\x00\x09garbage-garbage-garbage").unwrap();
    assert!(fails(&["whisper", "dump", s(&junk)]).contains("corrupt whisper file"));
}

fn write_conf_dir(dir: &Path, schemas: &str) -> String {
    let carbon = "[cache]\nLOCAL_DATA_DIR = %(STORAGE)s/whisper\nSTORAGE = /srv/graphite\nMAX_CACHE_SIZE = inf\n\
                  LINE_RECEIVER_PORT = 2003\nENABLE_AMQP = False\n\n[cache:b]\nLINE_RECEIVER_PORT = 2103\n";
    std::fs::write(dir.join("carbon.conf"), carbon).unwrap();
    std::fs::write(dir.join("storage-schemas.conf"), schemas).unwrap();
    std::fs::write(
        dir.join("storage-aggregation.conf"),
        "[counts]\npattern = \\.count$\nxFilesFactor = 0\naggregationMethod = sum\n",
    )
    .unwrap();
    dir.join("carbon.conf").to_str().unwrap().to_string()
}

#[test]
fn check_config_reads_carbon_files_and_explains_a_metric() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf_dir(
        dir.path(),
        "[carbon]\npattern = ^carbon\\.\nretentions = 60:90d\n\n[web]\npattern = ^web\\.\nretentions = 10s:1d,1m:30d\n",
    );
    let out = ok(&[
        "check-config",
        "--config",
        &conf,
        "--instance",
        "b",
        "--metric",
        "web.hits.count",
        "--metric",
        "db.load",
    ]);
    assert!(out.contains("LOCAL_DATA_DIR = /srv/graphite/whisper"), "{out}");
    assert!(out.contains("LINE_RECEIVER_PORT = 2103"), "instance section wins: {out}");
    assert!(out.contains("ENABLE_AMQP"), "ignored keys are reported: {out}");
    let web = out.split("metric web.hits.count:").nth(1).unwrap();
    assert!(web.contains("schema [web]") && web.contains("10:8640,60:43200"), "{web}");
    assert!(web.contains("sum xFilesFactor 0"), "{web}");
    let db = out.split("metric db.load:").nth(1).unwrap();
    assert!(db.contains("60:10080") && db.contains("average xFilesFactor 0.5"), "carbon's fallbacks: {db}");
}

#[test]
fn check_config_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf_dir(
        dir.path(),
        "[ok]\npattern = ^a\nretentions = 60:10\n\n[bad]\npattern = ^b\nretentions = 60:10,90:10\n",
    );
    let err = fails(&["check-config", "--config", &conf]);
    assert!(err.contains("storage-schemas.conf") && err.contains(":7"), "{err}");
    assert!(err.contains("evenly divide"), "whisper's reason: {err}");
    let err = fails(&["check-config", "--config", dir.path().join("missing.conf").to_str().unwrap()]);
    assert!(err.contains("missing.conf"), "{err}");
}

#[test]
fn check_config_without_a_file_shows_the_embedded_defaults() {
    let out = carbyne_in_clean_env(&["check-config", "--metric", "carbon.agents.h-a.cpuUsage"]);
    assert!(out.contains("embedded defaults"), "{out}");
    assert!(out.contains("LINE_RECEIVER_PORT = 2003") && out.contains("PICKLE_RECEIVER_PORT = 2004"), "{out}");
    assert!(out.split("metric carbon.agents.h-a.cpuUsage:").nth(1).unwrap().contains("60:129600"), "{out}");
}

fn carbyne_in_clean_env(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_carbyne"))
        .args(args)
        .env_remove("GRAPHITE_ROOT")
        .env_remove("GRAPHITE_CONF_DIR")
        .env_remove("GRAPHITE_STORAGE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn repo_file(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).to_str().unwrap().to_string()
}

#[test]
fn profile_c3_xlarge_loads() {
    let conf = repo_file("tuning/profiles/c3.xlarge/carbon.conf");
    let out = ok(&[
        "check-config",
        "--config",
        &conf,
        "--metric",
        "stats.timers.api.upper_90",
        "--metric",
        "carbon.agents.h-a.cpuUsage",
    ]);
    for setting in [
        "LOCAL_DATA_DIR = /var/lib/carbyne/whisper",
        "MAX_CACHE_SIZE = 10000000",
        "INGEST_THREADS = 4",
        "WRITER_THREADS = 2",
        "WRITER_OPEN_FILES = 65536",
        "MAX_UPDATES_PER_SECOND = 10000",
        "MAX_CREATES_PER_MINUTE = 12000",
    ] {
        assert!(out.contains(setting), "{setting} missing: {out}");
    }
    assert!(out.contains("ignored keys (carbon keys Carbyne does not act on): none"), "{out}");
    assert!(out.contains("unknown keys (no carbon key of that name): none"), "{out}");
    assert!(out.contains("warnings: none"), "{out}");
    let timer = out.split("metric stats.timers.api.upper_90:").nth(1).unwrap();
    assert!(timer.contains("10:2160,60:10080,600:52560") && timer.contains("max xFilesFactor 0.1"), "{timer}");
    let own = out.split("metric carbon.agents.h-a.cpuUsage:").nth(1).unwrap();
    assert!(own.contains("60:129600"), "{own}");
}

#[test]
fn docker_image_configuration_loads() {
    let conf = repo_file("tuning/docker/conf/carbon.conf");
    let out = ok(&["check-config", "--config", &conf]);
    assert!(out.contains("LOCAL_DATA_DIR = /opt/graphite/storage/whisper"), "{out}");
    assert!(out.contains("ENABLE_UDP_LISTENER = True") && out.contains("CACHE_QUERY_PORT = 7002"), "{out}");
    assert!(out.contains("unknown keys (no carbon key of that name): none"), "{out}");
    assert!(out.contains("warnings: none"), "{out}");
}

/// The checks `carbyne doctor` runs, in the order it prints them.
const DOCTOR_CHECKS: [&str; 10] = [
    "io_uring",
    "RLIMIT_MEMLOCK",
    "net.core.rmem_max",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "RLIMIT_NOFILE",
    "vm.max_map_count",
    "vm.dirty_*",
    "LOCAL_DATA_DIR",
    "cores",
];

/// Runs `carbyne doctor ARGS` and checks the shape of what it prints: one verdict line per
/// check, in order, a summary agreeing with them, and exit status 1 exactly when one failed.
fn doctor(args: &[&str]) -> (Vec<(String, String)>, Output) {
    let out = Command::new(env!("CARGO_BIN_EXE_carbyne"))
        .arg("doctor")
        .args(args)
        .env_remove("GRAPHITE_ROOT")
        .env_remove("GRAPHITE_CONF_DIR")
        .env_remove("GRAPHITE_STORAGE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let verdicts: Vec<(String, String)> = stdout
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let (verdict, rest) = l[1..].split_once("] ").unwrap_or_else(|| panic!("no verdict: {l}"));
            let (check, text) = rest.split_once(": ").unwrap_or_else(|| panic!("no check name: {l}"));
            assert!(!text.is_empty(), "a verdict says why: {l}");
            (verdict.to_string(), check.to_string())
        })
        .collect();
    let checks: Vec<&str> = verdicts.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(checks, DOCTOR_CHECKS, "one line per check: {stdout}");
    assert!(verdicts.iter().all(|(v, _)| ["ok", "warn", "fail"].contains(&v.as_str())), "{stdout}");
    let count = |w: &str| verdicts.iter().filter(|(v, _)| v == w).count();
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!(
            "carbyne doctor: {} ok, {} warn, {} fail",
            count("ok"),
            count("warn"),
            count("fail")
        )),
        "{stdout}"
    );
    let failed = count("fail") > 0;
    assert_eq!(out.status.code(), Some(i32::from(failed)), "exit 1 exactly when a check fails: {stdout}");
    if failed {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("checks failed"), "{stderr}");
    }
    (verdicts, out)
}

#[test]
fn doctor_checks_this_machine_one_line_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = doctor(&["--data-dir", s(dir.path())]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("(configuration: embedded defaults)"), "{stdout}");
    let (_, out) = doctor(&["--config", &repo_file("tuning/profiles/c3.xlarge/carbon.conf")]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("4 ingest threads (INGEST_THREADS = 4)"), "{stdout}");
    assert!(stdout.contains("2 writers x WRITER_OPEN_FILES 65536"), "{stdout}");
    let map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap();
    if map_count.trim().parse::<u64>().unwrap() < 4 * 131_072 {
        assert!(stdout.contains("of their 131072 open whisper files"), "{stdout}");
    }
}

#[test]
fn doctor_fails_when_the_writers_need_more_files_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // No file-descriptor limit reaches two billion (fs.nr_open caps it near 2^30).
    let carbon = format!(
        "[cache]\nLOCAL_DATA_DIR = {}\nWRITER_THREADS = 1\nWRITER_OPEN_FILES = 2000000000\n",
        s(&dir.path().join("whisper"))
    );
    std::fs::write(dir.path().join("carbon.conf"), carbon).unwrap();
    std::fs::write(dir.path().join("storage-schemas.conf"), "[all]\npattern = .*\nretentions = 60:10\n").unwrap();
    let (verdicts, out) = doctor(&["--config", s(&dir.path().join("carbon.conf"))]);
    let nofile = verdicts.iter().find(|(_, c)| c == "RLIMIT_NOFILE").unwrap();
    assert_eq!(nofile.0, "fail");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("2000000000 whisper files (1 writer x WRITER_OPEN_FILES 2000000000)"), "{stdout}");
    assert!(stdout.contains("EMFILE"), "{stdout}");
}
