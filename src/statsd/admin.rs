//! The admin interface on STATSD_ADMIN_PORT: etsy statsd 0.9's management console (TCP 8126),
//! answering `help`, `stats`, `counters`, `timers`, `gauges`, `sets`, `del<kind> NAME...`,
//! `health [up|down]`, `config` and `quit` as etsy does, byte for byte where etsy defines it.
//!
//! Owns: the command table ([`execute`], pure: the flush thread calls it with its [`State`])
//! and the TCP server ([`serve`]), which splits connections into lines, sends each to the
//! flush thread as an [`AdminRequest`] and writes the [`Reply`] back.
//!
//! Leaves out: the state itself and when it is merged (the flush thread answers between
//! flushes, after collecting the ingest threads' partials), the listening socket (the caller
//! binds it).
//!
//! **Architecture Invariant:** the server's threads never touch the [`State`]: a command reaches
//! it only through the flush thread, so answers need no lock and see merged data.
//!
//! Where Carbyne differs from etsy, on purpose:
//! - each line is a command (etsy takes each TCP read as one command, so two commands in one
//!   packet are one bad command there);
//! - bytes are read as UTF-8, invalid sequences replaced (etsy reads 7-bit ASCII);
//! - `sets` and `delsets` exist (etsy has no admin command for sets);
//! - `config` lists Carbyne's statsd options under etsy's names, not the file as written;
//! - hostile clients are bounded (see [`Limits`]): etsy has no limit on connections, line
//!   length or idle time.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::inspect::{inspect_object, Value};
use super::number::{js_to_string, js_trim};
use super::partial::Map;
use super::state::{Kind, State};
use crate::config::StatsdOptions;

/// etsy's `help` text, with the set commands added.
const HELP: &str =
    "Commands: stats, counters, timers, gauges, sets, delcounters, deltimers, delgauges, delsets, health, config, quit\n\n";
/// The answer to an unknown (or empty) command.
const ERROR: &str = "ERROR\n";
/// How often blocked threads look at `stop` (and at their deadlines).
const TICK: Duration = Duration::from_millis(50);

/// What a command gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Written to the client as is.
    pub text: String,
    /// Close the connection after writing `text` (`quit`).
    pub close: bool,
}

/// One command line, sent by a connection thread to the flush thread, which answers on `reply`.
#[derive(Debug)]
pub struct AdminRequest {
    /// The line without its `\n`, invalid UTF-8 replaced.
    pub line: String,
    /// Where the flush thread sends [`execute`]'s reply.
    pub reply: flume::Sender<Reply>,
}

/// The server's bounds on what clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are closed as soon as they are accepted.
    pub connections_max: usize,
    /// Bytes in one command line (without `\n`); a longer line is answered `ERROR` and skipped.
    pub line_bytes_max: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A command the flush thread has not answered within this time closes its connection.
    pub reply_timeout: Duration,
    /// A client that takes no byte of a reply for this long is closed.
    pub write_stall_timeout: Duration,
}

impl Limits {
    /// The limits `serve` applies.
    pub const DEFAULT: Limits = Limits {
        connections_max: 64,
        line_bytes_max: 4096,
        idle_timeout: Duration::from_secs(300),
        reply_timeout: Duration::from_secs(5),
        write_stall_timeout: Duration::from_secs(10),
    };
}

/// Runs one command line against the state, at `now_s` (Unix seconds), as etsy's console:
/// the line is trimmed (JavaScript's `trim`) and split on single spaces, the first word being
/// the command.
pub fn execute(line: &str, state: &mut State, now_s: i64) -> Reply {
    let mut words = js_trim(line).split(' ');
    let command = words.next().unwrap_or("");
    let params: Vec<&str> = words.collect();
    let text = match command {
        "help" => HELP.to_string(),
        "config" => config(state.options()),
        "health" => health(state, params.first().copied()),
        "stats" => stats(state, now_s),
        "counters" => dump_numbers(&state.counters),
        "timers" => dump(state.timers.iter().map(|(k, v)| (&**k, Value::Numbers(v)))),
        "gauges" => dump_numbers(&state.gauges),
        "sets" => {
            let members: Vec<Vec<&str>> = state.sets.values().map(|m| m.iter().map(|s| &**s).collect()).collect();
            dump(state.sets.keys().zip(&members).map(|(k, m)| (&**k, Value::Strings(m))))
        }
        "delcounters" => state.delete(Kind::Counters, &params),
        "deltimers" => state.delete(Kind::Timers, &params),
        "delgauges" => state.delete(Kind::Gauges, &params),
        "delsets" => state.delete(Kind::Sets, &params),
        "quit" => return Reply { text: String::new(), close: true },
        _ => ERROR.to_string(),
    };
    Reply { text, close: false }
}

/// `health [up|down]`: sets the status when told to (any case), then says it.
fn health(state: &mut State, param: Option<&str>) -> String {
    match param.map(str::to_lowercase).as_deref() {
        Some("up") => state.health_up = true,
        Some("down") => state.health_up = false,
        _ => {}
    }
    format!("health: {}\n", if state.health_up { "up" } else { "down" })
}

/// `stats`: uptime, then etsy's `messages` group and the graphite backend's status, each
/// `last_*` stat as seconds ago.
fn stats(state: &State, now_s: i64) -> String {
    let b = &state.backend;
    format!(
        "uptime: {}\nmessages.last_msg_seen: {}\nmessages.bad_lines_seen: {}\ngraphite.last_flush: {}\n\
         graphite.last_exception: {}\ngraphite.flush_time: {}\ngraphite.flush_length: {}\nEND\n\n",
        now_s - state.startup_time,
        now_s - state.last_msg_seen,
        state.bad_lines_seen,
        now_s - b.last_flush,
        now_s - b.last_exception,
        b.flush_time,
        b.flush_length,
    )
}

/// `util.inspect(obj) + "\n"`, then `END`.
fn dump<'a>(entries: impl Iterator<Item = (&'a str, Value<'a>)>) -> String {
    let entries: Vec<(&str, Value<'_>)> = entries.collect();
    format!("{}\nEND\n\n", inspect_object(&entries))
}

fn dump_numbers(map: &Map<f64>) -> String {
    dump(map.iter().map(|(k, v)| (&**k, Value::Number(*v))))
}

/// `config`: etsy's `writeConfig` (a blank line, then `name: value`, and `name > i: item` for
/// lists and the graphite group) over Carbyne's options. Options not set are left out, as
/// etsy leaves out keys absent from its file; histogram entries are written as JSON where
/// etsy would write `[object Object]`.
fn config(o: &StatsdOptions) -> String {
    let flag = |b: bool| if b { "true" } else { "false" }.to_string();
    let mut lines: Vec<(String, String)> = vec![("flushInterval".into(), o.flush_interval_ms.to_string())];
    let list = |name: &str, items: Vec<String>| -> Vec<(String, String)> {
        items.into_iter().enumerate().map(|(i, item)| (format!("{name} > {i}"), item)).collect()
    };
    lines.extend(list("percentThreshold", o.percent_thresholds.iter().map(|p| js_to_string(*p)).collect()));
    lines.extend([
        ("deleteCounters".into(), flag(o.delete_counters)),
        ("deleteTimers".into(), flag(o.delete_timers)),
        ("deleteGauges".into(), flag(o.delete_gauges)),
        ("deleteSets".into(), flag(o.delete_sets)),
        ("gaugesMaxTTL".into(), o.gauges_max_ttl.to_string()),
        ("prefixStats".into(), o.prefix_stats.clone()),
        ("keyNameSanitize".into(), flag(o.key_name_sanitize)),
    ]);
    if let Some(metrics) = &o.calculated_timer_metrics {
        lines.extend(list("calculatedTimerMetrics", metrics.clone()));
    }
    let rules = o.histogram.iter().map(|r| {
        let bins: Vec<String> =
            r.bins.iter().map(|b| if b.is_infinite() { "\"inf\"".into() } else { js_to_string(*b) }).collect();
        format!("{{\"metric\":{},\"bins\":[{}]}}", serde_json::Value::from(r.metric.as_str()), bins.join(","))
    });
    lines.extend(list("histogram", rules.collect()));
    lines.extend([
        ("healthStatus".into(), if o.health_up { "up" } else { "down" }.to_string()),
        ("flush_counts".into(), flag(o.flush_counts)),
        ("graphite > legacyNamespace".into(), flag(o.legacy_namespace)),
        ("graphite > globalPrefix".into(), o.global_prefix.clone()),
        ("graphite > prefixCounter".into(), o.prefix_counter.clone()),
        ("graphite > prefixTimer".into(), o.prefix_timer.clone()),
        ("graphite > prefixGauge".into(), o.prefix_gauge.clone()),
        ("graphite > prefixSet".into(), o.prefix_set.clone()),
    ]);
    if let Some(suffix) = &o.global_suffix {
        lines.push(("graphite > globalSuffix".into(), suffix.clone()));
    }
    lines.push(("maxPendingSamples".into(), o.max_pending_samples.to_string()));
    let mut out = String::from("\n");
    for (name, value) in lines {
        out.push_str(&format!("{name}: {value}\n"));
    }
    out
}

/// Serves the admin interface on `listener` until `stop` is set, with [`Limits::DEFAULT`]:
/// a thread per connection (at most 64), each line sent to the flush thread through
/// `requests`. Blocking: the caller runs it on a thread of its own. Returns within about
/// 100 ms of `stop`, its connection threads ended; errors only when setting up the poller.
pub fn serve(listener: TcpListener, requests: flume::Sender<AdminRequest>, stop: Arc<AtomicBool>) -> io::Result<()> {
    serve_with(listener, requests, stop, Limits::DEFAULT)
}

/// [`serve`] with other limits.
pub fn serve_with(
    listener: TcpListener,
    requests: flume::Sender<AdminRequest>,
    stop: Arc<AtomicBool>,
    limits: Limits,
) -> io::Result<()> {
    const LISTENER: mio::Token = mio::Token(0);
    listener.set_nonblocking(true)?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    let mut poll = mio::Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, mio::Interest::READABLE)?;
    let mut events = mio::Events::with_capacity(4);
    // Live connection threads. `connections.len() <= limits.connections_max`.
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, Some(TICK)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Accept on every wake-up, not only on events: an accept that failed (EMFILE) leaves
        // its connection queued, and mio would not report it again.
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => TcpStream::from(stream),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            connections.retain(|c| !c.is_finished());
            if connections.len() >= limits.connections_max {
                drop(stream);
                continue;
            }
            let (requests, stop) = (requests.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name("statsd-admin".into())
                .spawn(move || connection(&stream, &requests, &stop, &limits));
            if let Ok(handle) = spawned {
                connections.push(handle);
            }
            debug_assert!(connections.len() <= limits.connections_max);
        }
    }
    for c in connections {
        // A connection thread that panicked has nothing left to clean up.
        let _ = c.join();
    }
    Ok(())
}

/// One connection: lines in, replies out, until the client quits or goes away, a limit is
/// hit, or `stop`.
fn connection(stream: &TcpStream, requests: &flume::Sender<AdminRequest>, stop: &AtomicBool, limits: &Limits) {
    // Timeouts of one tick, so that the thread sees `stop` and its deadlines while blocked.
    let setup = stream
        .set_nonblocking(false)
        .and(stream.set_read_timeout(Some(TICK)))
        .and(stream.set_write_timeout(Some(TICK)));
    if setup.is_err() {
        return;
    }
    let mut lines = LineSplitter::new(limits.line_bytes_max);
    let mut buf = [0u8; 4096];
    let mut last_read = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let n = match (&*stream).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                if last_read.elapsed() >= limits.idle_timeout {
                    return;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        last_read = Instant::now();
        let flow = lines.feed(&buf[..n], |line| {
            let reply = match line {
                Line::Complete(bytes) => ask(String::from_utf8_lossy(bytes).into_owned(), requests, stop, limits)?,
                Line::Overlong => Reply { text: ERROR.into(), close: false },
            };
            write_reply(stream, reply.text.as_bytes(), stop, limits.write_stall_timeout)?;
            if reply.close {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if flow.is_break() {
            return;
        }
    }
}

/// Sends `line` to the flush thread and waits for its reply; `Break` when none comes within
/// `reply_timeout` (or the flush thread is gone, or `stop`).
fn ask(
    line: String,
    requests: &flume::Sender<AdminRequest>,
    stop: &AtomicBool,
    limits: &Limits,
) -> ControlFlow<(), Reply> {
    let deadline = Instant::now() + limits.reply_timeout;
    let given_up = || stop.load(Ordering::Acquire) || Instant::now() >= deadline;
    // A channel per request: a reply that comes too late can never answer a later line.
    let (reply_tx, reply_rx) = flume::bounded(1);
    let mut request = AdminRequest { line, reply: reply_tx };
    loop {
        match requests.send_timeout(request, TICK) {
            Ok(()) => break,
            Err(flume::SendTimeoutError::Timeout(r)) if !given_up() => request = r,
            Err(_) => return ControlFlow::Break(()),
        }
    }
    loop {
        match reply_rx.recv_timeout(TICK) {
            Ok(reply) => return ControlFlow::Continue(reply),
            Err(flume::RecvTimeoutError::Timeout) if !given_up() => {}
            Err(_) => return ControlFlow::Break(()),
        }
    }
}

/// Writes all of `bytes`; `Break` when the client takes nothing for `stall_timeout`, goes
/// away, or `stop`.
fn write_reply(
    mut stream: &TcpStream,
    mut bytes: &[u8],
    stop: &AtomicBool,
    stall_timeout: Duration,
) -> ControlFlow<()> {
    let mut progress_at = Instant::now();
    while !bytes.is_empty() {
        #[allow(clippy::disallowed_methods, reason = "a write cut by the timeout resumes where it stopped")]
        let written = stream.write(bytes);
        match written {
            Ok(0) => return ControlFlow::Break(()),
            Ok(n) => {
                bytes = &bytes[n..];
                progress_at = Instant::now();
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                if stop.load(Ordering::Acquire) || progress_at.elapsed() >= stall_timeout {
                    return ControlFlow::Break(());
                }
            }
            Err(_) => return ControlFlow::Break(()),
        }
    }
    ControlFlow::Continue(())
}

/// A socket timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO` report EAGAIN on Linux).
fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// A whole line, without its `\n`.
    Complete(&'a [u8]),
    /// A line grew past the limit: it is skipped up to its `\n`.
    Overlong,
}

/// Cuts a byte stream into lines of at most `max` bytes, holding at most `max` bytes.
#[derive(Debug)]
struct LineSplitter {
    /// The start of the current line. `line.len() <= max`; empty while `overlong`.
    line: Vec<u8>,
    max: usize,
    /// The current line passed `max`: its bytes are dropped until its `\n`.
    overlong: bool,
}

impl LineSplitter {
    fn new(max: usize) -> LineSplitter {
        LineSplitter { line: Vec::with_capacity(max.min(4096)), max, overlong: false }
    }

    /// Takes the next bytes of the stream, calling `each` for every line completed (and once
    /// for each line found too long), in order, until `each` breaks.
    fn feed(&mut self, mut bytes: &[u8], mut each: impl FnMut(Line<'_>) -> ControlFlow<()>) -> ControlFlow<()> {
        while !bytes.is_empty() {
            let end = bytes.iter().position(|b| *b == b'\n');
            let (part, rest) = match end {
                Some(i) => (&bytes[..i], &bytes[i + 1..]),
                None => (bytes, &[][..]),
            };
            bytes = rest;
            if !self.overlong && self.line.len() + part.len() > self.max {
                self.overlong = true;
                self.line.clear();
                each(Line::Overlong)?;
            } else if !self.overlong {
                self.line.extend_from_slice(part);
            }
            debug_assert!(self.line.len() <= self.max);
            if end.is_some() {
                if !self.overlong {
                    each(Line::Complete(&self.line))?;
                }
                self.line.clear();
                self.overlong = false;
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::HistogramRule;
    use crate::statsd::Partial;

    const START: i64 = 1_000_000;
    const NOW: i64 = START + 100;
    const CLOSED: Reply = Reply { text: String::new(), close: true };

    /// A state that has seen one datagram, ten seconds after start-up.
    fn fixture(opts: StatsdOptions) -> State {
        let mut state = State::new(Arc::new(opts), START);
        let mut p = Partial::new(1000, true);
        p.datagram(b"a:1|c\nb.c:2.5|c\nt:2|ms\nt:3|ms\ng:-0|g\ns:x|s\ns:y|s\nbad:x|c", START + 10);
        state.merge(&mut [&mut p]);
        state
    }

    fn text(s: &str) -> Reply {
        Reply { text: s.into(), close: false }
    }

    /// Runs the lines in order on one fixture state, each against its expected reply.
    fn check(opts: StatsdOptions, script: &[(&str, Reply)]) {
        let mut state = fixture(opts);
        for (line, want) in script {
            assert_eq!(execute(line, &mut state, NOW), *want, "{line:?}");
        }
    }

    const COUNTERS: &str = "{\n  'statsd.bad_lines_seen': 1,\n  'statsd.packets_received': 1,\n  \
                            'statsd.metrics_received': 8,\n  a: 1,\n  'b.c': 2.5\n}\nEND\n\n";

    #[test]
    fn commands_answer_as_etsy() {
        check(
            StatsdOptions::default(),
            &[
                ("help", text(HELP)),
                (" help \r", text(HELP)),
                ("HELP", text(ERROR)),
                ("", text(ERROR)),
                ("   ", text(ERROR)),
                ("counters", text(COUNTERS)),
                ("counters extra words", text(COUNTERS)),
                ("timers", text("{ t: [ 2, 3 ] }\nEND\n\n")),
                ("gauges", text("{ g: -0 }\nEND\n\n")),
                ("sets", text("{ s: [ 'x', 'y' ] }\nEND\n\n")),
                (
                    "stats",
                    text(
                        "uptime: 100\nmessages.last_msg_seen: 90\nmessages.bad_lines_seen: 1\ngraphite.last_flush: 100\n\
                         graphite.last_exception: 1000100\ngraphite.flush_time: 0\ngraphite.flush_length: 0\nEND\n\n",
                    ),
                ),
                ("quit", CLOSED),
                ("quit now", CLOSED),
            ],
        );
    }

    #[test]
    fn health_is_set_by_its_parameter_in_any_case() {
        check(
            StatsdOptions::default(),
            &[
                ("health", text("health: up\n")),
                ("health DOWN", text("health: down\n")),
                ("health", text("health: down\n")),
                // etsy splits on single spaces: the parameter here is "".
                ("health  up", text("health: down\n")),
                ("health sideways", text("health: down\n")),
                ("health Up extra", text("health: up\n")),
            ],
        );
        let down = StatsdOptions { health_up: false, ..StatsdOptions::default() };
        check(down, &[("health", text("health: down\n"))]);
    }

    #[test]
    fn deletes_by_name_and_by_folder() {
        check(
            StatsdOptions::default(),
            &[
                ("delcounters a b.* nope", text("deleted: a\ndeleted: b.c\nmetric nope not found\nEND\n\n")),
                (
                    "counters",
                    text("{\n  'statsd.bad_lines_seen': 1,\n  'statsd.packets_received': 1,\n  'statsd.metrics_received': 8\n}\nEND\n\n"),
                ),
                ("deltimers t", text("deleted: t\nEND\n\n")),
                ("timers", text("{}\nEND\n\n")),
                ("delgauges g", text("deleted: g\nEND\n\n")),
                ("gauges", text("{}\nEND\n\n")),
                ("delsets s", text("deleted: s\nEND\n\n")),
                ("sets", text("{}\nEND\n\n")),
                ("delsets", text("END\n\n")),
            ],
        );
    }

    #[test]
    fn config_lists_the_options_under_etsys_names() {
        let defaults = "\nflushInterval: 10000\npercentThreshold > 0: 90\ndeleteCounters: false\ndeleteTimers: false\n\
                        deleteGauges: false\ndeleteSets: false\ngaugesMaxTTL: 1\nprefixStats: statsd\nkeyNameSanitize: true\n\
                        healthStatus: up\nflush_counts: true\ngraphite > legacyNamespace: true\n\
                        graphite > globalPrefix: stats\ngraphite > prefixCounter: counters\ngraphite > prefixTimer: timers\n\
                        graphite > prefixGauge: gauges\ngraphite > prefixSet: sets\nmaxPendingSamples: 4194304\n";
        check(StatsdOptions::default(), &[("config", text(defaults))]);
        let opts = StatsdOptions {
            percent_thresholds: vec![90.0, 99.9, -10.0],
            calculated_timer_metrics: Some(vec!["count".into(), "upper_percent".into()]),
            histogram: vec![HistogramRule { metric: "fo\"o".into(), bins: vec![10.0, 0.5, f64::INFINITY] }],
            global_suffix: Some("sfx".into()),
            health_up: false,
            ..StatsdOptions::default()
        };
        let mut state = fixture(opts);
        let config = execute("config", &mut state, NOW).text;
        for line in [
            "\npercentThreshold > 0: 90\npercentThreshold > 1: 99.9\npercentThreshold > 2: -10\n",
            "\ncalculatedTimerMetrics > 0: count\ncalculatedTimerMetrics > 1: upper_percent\n",
            "\nhistogram > 0: {\"metric\":\"fo\\\"o\",\"bins\":[10,0.5,\"inf\"]}\n",
            "\nhealthStatus: down\n",
            "\ngraphite > globalSuffix: sfx\n",
        ] {
            assert!(config.contains(line), "{line:?} in {config}");
        }
    }

    /// The splitter's events for `input` fed in the given pieces (`None`: an over-long line).
    fn split(max: usize, pieces: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut splitter = LineSplitter::new(max);
        let mut events = Vec::new();
        for piece in pieces {
            let flow = splitter.feed(piece, |line| {
                events.push(match line {
                    Line::Complete(bytes) => Some(bytes.to_vec()),
                    Line::Overlong => None,
                });
                ControlFlow::Continue(())
            });
            assert!(flow.is_continue());
        }
        events
    }

    #[test]
    fn lines_are_cut_and_capped_wherever_reads_end() {
        let l = |s: &str| Some(s.as_bytes().to_vec());
        let cases: &[(&str, Vec<Option<Vec<u8>>>)] = &[
            ("", vec![]),
            ("abc", vec![]),
            ("a\n", vec![l("a")]),
            ("a\nbc\n\n", vec![l("a"), l("bc"), l("")]),
            ("\r\n", vec![l("\r")]),
            ("12345678\n", vec![l("12345678")]),
            ("123456789\nok\n", vec![None, l("ok")]),
            ("123456789abcdefghijk\nok\n12345678", vec![None, l("ok")]),
            ("x\n123456789abcdefghijk", vec![l("x"), None]),
        ];
        for (input, want) in cases {
            let bytes = input.as_bytes();
            assert_eq!(split(8, &[bytes]), *want, "{input:?}");
            for at in 0..=bytes.len() {
                assert_eq!(split(8, &[&bytes[..at], &bytes[at..]]), *want, "{input:?} split at {at}");
            }
        }
        let mut splitter = LineSplitter::new(8);
        let mut seen = 0;
        let flow = splitter.feed(b"quit\nhelp\n", |_| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert!(flow.is_break() && seen == 1, "a break stops the splitting");
    }

    proptest::proptest! {
        #[test]
        fn any_line_gets_an_answer(
            command in proptest::sample::select(vec!["", "help", "stats", "counters", "timers", "gauges", "sets",
                "delcounters", "deltimers", "delgauges", "delsets", "health", "config", "quit"]),
            rest in "[ a-z.*\u{0}-\u{7f}\u{fffd}é]{0,40}",
        ) {
            let mut state = fixture(StatsdOptions::default());
            let reply = execute(&format!("{command}{rest}"), &mut state, NOW);
            proptest::prop_assert!(reply.close || !reply.text.is_empty());
        }
    }

    /// A server on 127.0.0.1 with a thread standing in for the flush thread.
    struct Harness {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        server: JoinHandle<io::Result<()>>,
    }

    impl Harness {
        /// `flush` gets the requests (the flush thread's end of the channel).
        fn start(limits: Limits, flush: impl FnOnce(flume::Receiver<AdminRequest>) + Send + 'static) -> Harness {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, rx) = flume::unbounded();
            std::thread::spawn(move || flush(rx));
            let stop = Arc::new(AtomicBool::new(false));
            let server = std::thread::spawn({
                let stop = stop.clone();
                move || serve_with(listener, tx, stop, limits)
            });
            Harness { addr, stop, server }
        }

        /// With a flush thread that answers with a fixture state.
        fn answering(limits: Limits) -> Harness {
            Harness::start(limits, |rx| {
                let mut state = fixture(StatsdOptions::default());
                for request in rx.iter() {
                    let _ = request.reply.send(execute(&request.line, &mut state, NOW));
                }
            })
        }

        fn connect(&self) -> TcpStream {
            let stream = TcpStream::connect(self.addr).unwrap();
            // Only so that a broken server fails the test instead of hanging it.
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            stream
        }

        fn stop(self) {
            self.stop.store(true, Ordering::Release);
            finished(&self.server);
            self.server.join().unwrap().unwrap();
        }
    }

    /// Waits for `thread` to end (panics after 20 s: the test is broken, not slow).
    fn finished<T>(thread: &JoinHandle<T>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "thread still running");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn read_text(stream: &mut TcpStream, len: usize) -> String {
        let mut buf = vec![0; len];
        stream.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// Reads until the server closes; what came before.
    fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        match stream.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
        got
    }

    #[test]
    fn serves_several_commands_on_one_connection() {
        let h = Harness::answering(Limits::DEFAULT);
        let mut c = h.connect();
        c.write_all(b"help\nhealth\r\nbogus\n\nhea").unwrap();
        c.write_all(b"lth down\nhealth\n\xff\xfe\nhealth \xff\n").unwrap();
        let want = format!("{HELP}health: up\n{ERROR}{ERROR}health: down\nhealth: down\n{ERROR}health: down\n");
        assert_eq!(read_text(&mut c, want.len()), want);
        c.write_all(b"quit\nhelp\n").unwrap();
        assert_eq!(read_until_closed(&mut c), b"", "quit closes, later lines unanswered");
        h.stop();
    }

    #[test]
    fn an_overlong_line_is_answered_error_and_skipped() {
        let h = Harness::answering(Limits::DEFAULT);
        let mut c = h.connect();
        let longest = format!("health{}\n", " ".repeat(4096 - 6));
        let too_long = format!("health{}\n", " ".repeat(4097 - 6));
        c.write_all(format!("{}\nhealth\n{longest}{too_long}help\n", "x".repeat(100_000)).as_bytes()).unwrap();
        let want = format!("{ERROR}health: up\nhealth: up\n{ERROR}{HELP}");
        assert_eq!(read_text(&mut c, want.len()), want);
        h.stop();
    }

    #[test]
    fn connections_past_the_limit_are_closed() {
        let h = Harness::answering(Limits::DEFAULT);
        let mut open: Vec<TcpStream> = (0..64).map(|_| h.connect()).collect();
        for c in &mut open {
            c.write_all(b"health\n").unwrap();
            assert_eq!(read_text(c, 11), "health: up\n");
        }
        let mut refused = h.connect();
        assert_eq!(read_until_closed(&mut refused), b"");
        open[0].write_all(b"health\n").unwrap();
        assert_eq!(read_text(&mut open[0], 11), "health: up\n", "the others are still served");
        h.stop();
        for mut c in open {
            assert_eq!(read_until_closed(&mut c), b"", "stop closes every connection");
        }
    }

    #[test]
    fn a_missing_reply_closes_the_connection() {
        let limits = Limits { reply_timeout: Duration::from_millis(100), ..Limits::DEFAULT };
        // A flush thread that takes requests and never answers.
        let (held_tx, held_rx) = flume::unbounded();
        let h = Harness::start(limits, move |rx| {
            for request in rx.iter() {
                held_tx.send(request).unwrap();
            }
        });
        let mut c = h.connect();
        c.write_all(b"help\n").unwrap();
        assert_eq!(read_until_closed(&mut c), b"");
        assert_eq!(held_rx.recv().unwrap().line, "help");
        h.stop();
        // A flush thread that is gone (before the request is sent: a request already queued
        // would wait for `reply_timeout`, as in the case above).
        let (gone_tx, gone_rx) = flume::bounded(1);
        let h = Harness::start(Limits::DEFAULT, move |rx| {
            drop(rx);
            gone_tx.send(()).unwrap();
        });
        gone_rx.recv().unwrap();
        let mut c = h.connect();
        c.write_all(b"help\n").unwrap();
        assert_eq!(read_until_closed(&mut c), b"");
        h.stop();
    }

    #[test]
    fn an_idle_connection_is_closed() {
        let limits = Limits { idle_timeout: Duration::from_millis(100), ..Limits::DEFAULT };
        let h = Harness::answering(limits);
        let mut c = h.connect();
        assert_eq!(read_until_closed(&mut c), b"");
        h.stop();
    }

    #[test]
    fn a_client_that_reads_nothing_is_closed() {
        let limits = Limits { write_stall_timeout: Duration::from_millis(100), ..Limits::DEFAULT };
        let h = Harness::answering(limits);
        let c = h.connect();
        // Far more replies than socket buffers hold, never read.
        let flood = "counters\n".repeat(1_000);
        let mut writer = c.try_clone().unwrap();
        let sent = std::thread::spawn(move || while writer.write_all(flood.as_bytes()).is_ok() {});
        finished(&sent);
        h.stop();
    }
}
