//! Per-connection protocol state: bytes in, points out through [`offer`].
//!
//! A TCP plaintext connection carries an incomplete line over to its next read; a pickle
//! connection carries an incomplete frame; a UDP datagram stands alone. Every line or frame that
//! is refused is counted by reason and costs only itself. Statsd lines over TCP go to the
//! thread's statsd partial instead of the cache.

use std::sync::atomic::AtomicBool;

use super::filter::Verdict;
use super::points::{normalize_timestamp, offer, pickle_reason, OnRefused, PointCounters};
use super::sink::PointSink;
use crate::protocol::lines::LineSplitter;
use crate::protocol::name;
use crate::protocol::pickle::{FrameSplitter, PickleDecoder, PickleLimits};
use crate::protocol::plaintext::{self, Reject};

/// Limits of the decoders, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest plaintext line accepted (longer ones are counted and skipped).
    pub max_line_bytes: usize,
    /// PICKLE_RECEIVER_MAX_LENGTH.
    pub max_pickle_frame_bytes: usize,
    /// MIN_TIMESTAMP_RESOLUTION.
    pub timestamp_resolution: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // 16 KiB lines as Twisted's LineOnlyReceiver (carbon's line receiver) allows.
        Limits { max_line_bytes: 16 * 1024, max_pickle_frame_bytes: 1 << 20, timestamp_resolution: 0 }
    }
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderKind {
    /// Carbon plaintext over TCP.
    Lines,
    /// Carbon pickle over TCP.
    Pickle,
    /// Carbon plaintext in UDP datagrams.
    Datagram,
    /// Statsd lines over TCP (into the thread's statsd partial).
    StatsdLines,
}

/// The decoding state of one connection (or of the UDP socket).
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// MIN_TIMESTAMP_RESOLUTION.
    resolution: u64,
}

#[derive(Debug)]
enum State {
    /// Plaintext, with the carry-over of an incomplete line.
    Lines(LineSplitter),
    /// Pickle, with the carry-over of an incomplete frame.
    Pickle(FrameSplitter, Box<PickleDecoder>),
    /// Statsd lines, with the carry-over of an incomplete line.
    StatsdLines(LineSplitter),
}

/// Where decoded points go, and what to do when the cache refuses one.
pub struct Output<'a> {
    /// The cache (or a test sink).
    pub sink: &'a mut dyn PointSink,
    /// This thread's counters.
    pub counters: &'a PointCounters,
    /// Wait (TCP) or drop (UDP) when refused.
    pub on_refused: OnRefused,
    /// Ends waiting on a full cache.
    pub hard_stop: &'a AtomicBool,
    /// The time `-1` timestamps stand for.
    pub now: i64,
    /// USE_WHITELIST's lists; None when off.
    pub filter: Option<&'a super::filter::MetricFilter>,
    /// This thread's statsd partial, for statsd connections; None where statsd is off.
    pub statsd: Option<&'a mut crate::statsd::Partial>,
}

impl std::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("on_refused", &self.on_refused).field("now", &self.now).finish_non_exhaustive()
    }
}

impl Decoder {
    /// A fresh decoder for `kind`.
    pub fn new(kind: DecoderKind, limits: &Limits) -> Decoder {
        let state = match kind {
            DecoderKind::Lines | DecoderKind::Datagram => State::Lines(LineSplitter::new(limits.max_line_bytes)),
            DecoderKind::StatsdLines => State::StatsdLines(LineSplitter::new(limits.max_line_bytes)),
            DecoderKind::Pickle => State::Pickle(
                FrameSplitter::new(limits.max_pickle_frame_bytes),
                Box::new(PickleDecoder::new(PickleLimits::new(limits.max_pickle_frame_bytes))),
            ),
        };
        Decoder { state, resolution: limits.timestamp_resolution }
    }

    /// Decodes `data` and offers every point in it.
    pub fn feed(&mut self, data: &[u8], out: &mut Output<'_>) {
        let resolution = self.resolution;
        match &mut self.state {
            State::Lines(lines) => lines.feed(data, |line| match line {
                Ok(line) => plaintext_line(line, resolution, out),
                Err(_) => out.counters.reject(Reject::TooLong.as_str()),
            }),
            State::Pickle(frames, decoder) => frames.feed(data, |frame| match frame {
                Ok(frame) => pickle_frame(decoder, frame, resolution, out),
                Err(too_large) => out.counters.reject(pickle_reason(too_large.as_str())),
            }),
            State::StatsdLines(lines) => {
                let Some(partial) = out.statsd.as_deref_mut() else { return };
                // etsy's TCP server hands over each read that completes a line as one packet.
                let mut complete = 0u32;
                lines.feed(data, |line| match line {
                    Ok(line) => {
                        complete += 1;
                        partial.line(line);
                    }
                    Err(_) => out.counters.reject(Reject::TooLong.as_str()),
                });
                if complete > 0 {
                    partial.packets += 1;
                    partial.last_msg_seen = out.now;
                }
            }
        }
    }

    /// End of a datagram: its last line needs no newline, and nothing carries over to the next
    /// datagram.
    pub fn finish_datagram(&mut self, out: &mut Output<'_>) {
        self.feed(b"\n", out);
    }

    /// End of a TCP stream: an incomplete last line or frame is discarded, as carbon's
    /// receivers discard it, and counted.
    pub fn finish(&mut self, counters: &PointCounters) {
        match &mut self.state {
            State::Lines(lines) | State::StatsdLines(lines) => {
                if lines.finish().is_some() {
                    counters.reject(Reject::Incomplete.as_str());
                }
            }
            State::Pickle(frames, _) => {
                if frames.finish().is_some() {
                    counters.reject(pickle_reason("truncated"));
                }
            }
        }
    }
}

fn plaintext_line(line: &[u8], resolution: u64, out: &mut Output<'_>) {
    if line.is_empty() {
        return;
    }
    match plaintext::parse_line(line, out.now, resolution) {
        Ok(p) => named_point(p.name, p.timestamp, p.value, out),
        Err(reject) => out.counters.reject(reject.as_str()),
    }
}

fn pickle_frame(decoder: &mut PickleDecoder, frame: &[u8], resolution: u64, out: &mut Output<'_>) {
    let now = out.now;
    let result = decoder.decode(frame, |metric, ts, value| {
        // carbon: int(float(timestamp)); a value too large for that is a bad timestamp.
        if !ts.is_finite() || ts.abs() > 1e15 {
            out.counters.reject(Reject::BadTimestamp.as_str());
            return;
        }
        let ts = normalize_timestamp(ts.trunc() as i64, now, resolution);
        named_point(metric, ts, value, out);
    });
    match result {
        Ok(stats) => {
            for _ in 0..stats.bad_entries {
                out.counters.reject(pickle_reason("bad_entry"));
            }
        }
        Err(e) => out.counters.reject(pickle_reason(e.as_str())),
    }
}

/// Offers one point under a name not yet validated: invalid names, black- and whitelisting are
/// counted as for a received line.
pub fn named_point(metric: &[u8], ts: i64, value: f64, out: &mut Output<'_>) {
    match name::validate(metric) {
        Ok(valid) => {
            let canonical = valid.canonical();
            let verdict = out.filter.map_or(Verdict::Accept, |f| f.check(&canonical));
            match verdict {
                Verdict::Accept => {
                    offer(out.sink, out.counters, canonical.as_bytes(), ts, value, out.on_refused, out.hard_stop);
                }
                Verdict::Blacklisted => out.counters.thread.incr(out.counters.blacklisted),
                Verdict::NotWhitelisted => out.counters.thread.incr(out.counters.not_whitelisted),
            }
        }
        Err(reject) => {
            out.counters.thread.incr(out.counters.bad_name);
            out.counters.reject(reject.as_str());
        }
    }
}
