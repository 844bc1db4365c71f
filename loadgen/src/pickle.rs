//! The carbon pickle protocol, written from carbon's description of it (`docs/feeding-carbon.rst`,
//! the `Int32StringReceiver` framing) and Python's pickle opcode table (`Lib/pickletools.py`),
//! not from the `carbyne` crate, so that a misreading in our server's unpickler is caught here
//! instead of shared.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of one pickle of a list of
//! `(name, (timestamp, value))` tuples. Carbon listens for it on TCP 2004 and refuses frames
//! longer than `PICKLE_RECEIVER_MAX_LENGTH` (1 MiB by default), so frames here carry at most
//! `batch_points` points and `frame_bytes_max` bytes (the length's value). The pickle is
//! protocol 2, as Python 3's `pickle.dumps(points, protocol=2)` would write it but without memo
//! opcodes (`BINPUT`), which no unpickler needs:
//!
//! ```text
//! PROTO 2, EMPTY_LIST,
//!   MARK, (BINUNICODE name, <int> ts, BINFLOAT value, TUPLE2, TUPLE2) x up to 1000, APPENDS,
//!   ... one MARK ... APPENDS group per 1000 points (CPython's batch size),
//! STOP
//! ```
//!
//! Timestamps are Python ints in the smallest encoding CPython uses (`BININT1`, `BININT2`,
//! `BININT`, else `LONG1`); values are `BINFLOAT`, the double's 8 bytes, so they arrive bit for
//! bit. Names are `BINUNICODE` (a Python 3 `str`).
//!
//! [`PickleSource`] is the TCP sender's [`BatchSource`]: like the plaintext source it sends its
//! metrics point-major, whole frames per batch.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use crate::json::JsonObject;
use crate::report::{Report, RunInfo};
use crate::run::{connect_all, run_tcp, RunConfig};
use crate::sampler::{SampleBuf, Sampler};
use crate::sender::BatchSource;
use crate::sent::{Sent, SentPart};
use crate::workload::{partition_range, PointCursor, Workload};

/// Default `--batch-points`: carbon's own relay sends at most 500 points per pickle
/// (`MAX_DATAPOINTS_PER_MESSAGE`).
pub const BATCH_POINTS_DEFAULT: usize = 500;

/// Default `--max-frame`: carbon's `PICKLE_RECEIVER_MAX_LENGTH`, 2^20.
pub const FRAME_BYTES_DEFAULT: usize = 1 << 20;

/// Largest `--max-frame`: the length prefix is a signed 32-bit number in carbon (Twisted's
/// `Int32StringReceiver`).
pub const FRAME_BYTES_MAX: usize = i32::MAX as usize;

/// Points per `MARK ... APPENDS` group, as CPython's pickler batches list items.
const APPENDS_BATCH: usize = 1000;

/// Bytes of the length prefix.
const PREFIX_BYTES: usize = 4;

/// Payload bytes of an empty frame: `PROTO 2`, `EMPTY_LIST`, `STOP`.
const FRAME_OVERHEAD_BYTES: usize = 2 + 1 + 1;

/// Payload bytes one point adds besides its name: `BINUNICODE` and its length (5), the longest
/// int (`LONG1`, its length byte and 9 bytes: 11), `BINFLOAT` (9), two `TUPLE2` (2), and the
/// `MARK` and `APPENDS` of a group it may open (2).
const POINT_BYTES_BESIDES_NAME: usize = 5 + 11 + 9 + 2 + 2;

// Pickle opcodes (pickletools' names).
const PROTO: u8 = 0x80;
const EMPTY_LIST: u8 = b']';
const MARK: u8 = b'(';
const APPENDS: u8 = b'e';
const STOP: u8 = b'.';
const BINUNICODE: u8 = b'X';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const BININT: u8 = b'J';
const LONG1: u8 = 0x8a;
const BINFLOAT: u8 = b'G';
const TUPLE2: u8 = 0x86;

/// How points are cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Most points per frame, at least 1.
    pub batch_points: usize,
    /// Most payload bytes per frame (the length prefix's value).
    pub frame_bytes_max: usize,
}

impl Default for Framing {
    fn default() -> Framing {
        Framing { batch_points: BATCH_POINTS_DEFAULT, frame_bytes_max: FRAME_BYTES_DEFAULT }
    }
}

impl Framing {
    /// The framing as a JSON object (`batch_points`, `frame_bytes_max`).
    pub fn to_json_object(&self) -> JsonObject {
        JsonObject::default()
            .u64("batch_points", self.batch_points as u64)
            .u64("frame_bytes_max", self.frame_bytes_max as u64)
    }

    /// Checks that every point of `workload` fits in a frame on its own.
    pub fn check(&self, workload: &Workload) -> Result<(), FramingError> {
        if self.batch_points == 0 {
            return Err(FramingError::NoPoints);
        }
        // Names grow with the metric index, so the last metric has the longest.
        let name_bytes = workload.names().render(workload.spec().n_metrics - 1).len();
        let point_bytes = FRAME_OVERHEAD_BYTES + POINT_BYTES_BESIDES_NAME + name_bytes;
        if point_bytes > self.frame_bytes_max {
            return Err(FramingError::FrameTooSmall { point_bytes, frame_bytes: self.frame_bytes_max });
        }
        Ok(())
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pickle protocol 2, at most {} points and {} bytes per frame",
            self.batch_points, self.frame_bytes_max
        )
    }
}

/// A framing that cannot carry the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// `batch_points` is 0.
    NoPoints,
    /// A frame of one point of the longest name can be longer than `frame_bytes`.
    FrameTooSmall { point_bytes: usize, frame_bytes: usize },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::NoPoints => write!(f, "a frame needs at least one point"),
            FramingError::FrameTooSmall { point_bytes, frame_bytes } => write!(
                f,
                "a frame of one point can take {point_bytes} bytes, more than the {frame_bytes} allowed: \
                 shorten the names or raise the frame size"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

/// One frame being written at the end of a buffer.
#[derive(Debug)]
pub struct FrameWriter {
    /// Offset of the length prefix in the buffer.
    start: usize,
    /// Points in the frame.
    n_points: usize,
    /// Points in the open `MARK` group; 0 when no group is open.
    n_group: usize,
}

/// Where a frame was before a point, to take the point back.
#[derive(Debug, Clone, Copy)]
pub struct FrameMark {
    len: usize,
    n_points: usize,
    n_group: usize,
}

impl FrameWriter {
    /// Starts a frame at the end of `buf`.
    pub fn begin(buf: &mut Vec<u8>) -> FrameWriter {
        let start = buf.len();
        buf.extend_from_slice(&[0; PREFIX_BYTES]);
        buf.extend_from_slice(&[PROTO, 2, EMPTY_LIST]);
        FrameWriter { start, n_points: 0, n_group: 0 }
    }

    /// Appends the point `(name, (ts, value))`.
    pub fn push(&mut self, buf: &mut Vec<u8>, name: &[u8], ts: u64, value: f64) {
        if self.n_group == 0 {
            buf.push(MARK);
        }
        buf.push(BINUNICODE);
        // Names come from a template of bounded length; a u32 holds any of them.
        buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
        buf.extend_from_slice(name);
        push_int(buf, ts);
        buf.push(BINFLOAT);
        buf.extend_from_slice(&value.to_be_bytes());
        buf.extend_from_slice(&[TUPLE2, TUPLE2]);
        self.n_points += 1;
        self.n_group += 1;
        if self.n_group == APPENDS_BATCH {
            buf.push(APPENDS);
            self.n_group = 0;
        }
    }

    /// Points in the frame.
    pub fn n_points(&self) -> usize {
        self.n_points
    }

    /// The payload bytes the frame would have if finished now.
    pub fn payload_bytes(&self, buf: &[u8]) -> usize {
        let closing = usize::from(self.n_group > 0) + 1;
        buf.len() - self.start - PREFIX_BYTES + closing
    }

    /// Where the frame is, to go back to with [`FrameWriter::rewind`].
    pub fn mark(&self, buf: &[u8]) -> FrameMark {
        FrameMark { len: buf.len(), n_points: self.n_points, n_group: self.n_group }
    }

    /// Takes back everything pushed since `mark`.
    pub fn rewind(&mut self, buf: &mut Vec<u8>, mark: FrameMark) {
        buf.truncate(mark.len);
        self.n_points = mark.n_points;
        self.n_group = mark.n_group;
    }

    /// Closes the frame and writes its length.
    pub fn finish(self, buf: &mut Vec<u8>) {
        if self.n_group > 0 {
            buf.push(APPENDS);
        }
        buf.push(STOP);
        let payload = buf.len() - self.start - PREFIX_BYTES;
        // Frames are kept within FRAME_BYTES_MAX, which fits an i32.
        buf[self.start..self.start + PREFIX_BYTES].copy_from_slice(&(payload as u32).to_be_bytes());
    }
}

/// Appends `n` as CPython's protocol-2 pickler writes a non-negative int: `BININT1` below 256,
/// `BININT2` below 65536, `BININT` below 2^31, else `LONG1` with the fewest little-endian
/// two's-complement bytes (a zero byte after a high bit set, so the number stays positive).
pub fn push_int(buf: &mut Vec<u8>, n: u64) {
    if n <= 0xff {
        buf.extend_from_slice(&[BININT1, n as u8]);
    } else if n <= 0xffff {
        buf.push(BININT2);
        buf.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= i32::MAX as u64 {
        buf.push(BININT);
        buf.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        let bytes = n.to_le_bytes();
        let mut len = 8 - (n.leading_zeros() / 8) as usize;
        let sign_byte = bytes[len - 1] & 0x80 != 0;
        buf.push(LONG1);
        buf.push((len + usize::from(sign_byte)) as u8);
        buf.extend_from_slice(&bytes[..len]);
        if sign_byte {
            buf.push(0);
            len += 1;
        }
        debug_assert!(len <= 9);
    }
}

/// The frames of one connection: all points of a range of metrics, point-major, in frames of
/// the [`Framing`]'s size.
#[derive(Debug, Clone)]
pub struct PickleSource<'w> {
    workload: &'w Workload,
    framing: Framing,
    cursor: PointCursor,
    samples: SampleBuf,
    /// The frames of the last batch: (end offset in the buffer, points), in order.
    frames: Vec<(usize, u64)>,
    /// Scratch for one name.
    name: Vec<u8>,
}

impl<'w> PickleSource<'w> {
    /// The frames for `metrics`, a range of the workload's metric indexes, telling `sampler`
    /// when its points leave. `framing` must have passed [`Framing::check`] for `workload`.
    pub fn new(
        workload: &'w Workload,
        metrics: Range<u64>,
        framing: Framing,
        sampler: Option<Sampler>,
    ) -> PickleSource<'w> {
        PickleSource {
            workload,
            framing,
            cursor: PointCursor::new(workload, metrics),
            samples: SampleBuf::new(sampler),
            frames: Vec::new(),
            name: Vec::new(),
        }
    }

    /// Appends one frame of up to `max_points` points; returns its points (at least 1 unless
    /// `max_points` is 0 or the source is exhausted, when it appends nothing).
    fn fill_frame(&mut self, buf: &mut Vec<u8>, max_points: u64) -> u64 {
        if max_points == 0 || self.cursor.peek().is_none() {
            return 0;
        }
        let limit = max_points.min(self.framing.batch_points as u64);
        let mut frame = FrameWriter::begin(buf);
        while (frame.n_points() as u64) < limit {
            let Some((metric_idx, point_idx)) = self.cursor.peek() else { break };
            self.name.clear();
            self.workload.names().write(&mut self.name, metric_idx);
            let mark = frame.mark(buf);
            let value = self.workload.value(metric_idx, point_idx);
            frame.push(buf, &self.name, self.workload.timestamp(point_idx), value);
            // The first point always fits (`Framing::check`); a later one that does not starts
            // the next frame.
            if frame.n_points() > 1 && frame.payload_bytes(buf) > self.framing.frame_bytes_max {
                frame.rewind(buf, mark);
                break;
            }
            self.samples.note(metric_idx, point_idx);
            self.cursor.advance();
        }
        let n = frame.n_points() as u64;
        frame.finish(buf);
        n
    }
}

impl BatchSource for PickleSource<'_> {
    fn n_points(&self) -> u64 {
        self.cursor.n_total()
    }

    fn fill(&mut self, buf: &mut Vec<u8>, max_points: u64, max_bytes: usize) -> u64 {
        self.samples.start_batch();
        self.frames.clear();
        let mut n = 0;
        while buf.len() < max_bytes {
            let in_frame = self.fill_frame(buf, max_points - n);
            if in_frame == 0 {
                break;
            }
            n += in_frame;
            self.frames.push((buf.len(), in_frame));
        }
        n
    }

    fn complete_points(&self, bytes: &[u8]) -> u64 {
        self.frames.iter().take_while(|(end, _)| *end <= bytes.len()).map(|(_, n)| n).sum()
    }

    fn batch_written(&mut self) {
        self.samples.written();
    }
}

/// Sends the points of `metrics` (a range of `workload`'s metrics) to `target` as pickle frames
/// over TCP, split among `cfg.n_connections` connections, telling `sampler` when its points
/// leave. `framing` must have passed [`Framing::check`]. Returns the report and what each
/// connection sent, for `--verify`. Fails only if a connection cannot be opened.
pub fn run_range(
    target: SocketAddr,
    workload: &Workload,
    metrics: Range<u64>,
    framing: Framing,
    cfg: &RunConfig,
    sampler: Option<Sampler>,
) -> io::Result<(Report, Sent)> {
    let streams = connect_all(target, cfg.n_connections)?;
    let ranges = partition_range(metrics.clone(), cfg.n_connections);
    let sources =
        ranges.iter().map(|range| PickleSource::new(workload, range.clone(), framing, sampler.clone())).collect();
    drop(sampler);
    let conns = run_tcp(streams, sources, cfg);
    let sent = Sent {
        parts: ranges.into_iter().zip(&conns).map(|(range, conn)| SentPart::prefix(range, conn.points_sent)).collect(),
    };
    let info = RunInfo::new("pickle", target, workload, cfg).with_metrics(metrics).with_framing(framing);
    Ok((Report::new(info, conns), sent))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::name::NamePattern;
    use crate::workload::{ValuePattern, WorkloadSpec};
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn workload(pattern: &str, n_metrics: u64, n_points: u64, start_ts: u64) -> Workload {
        let names = NamePattern::parse(pattern, "pk").unwrap();
        let spec =
            WorkloadSpec { n_metrics, n_points, start_ts, interval_s: 10, seed: 5, values: ValuePattern::Random };
        Workload::new(names, spec).unwrap()
    }

    /// Every frame's points, decoded by CPython's own `pickle.loads` (an independent reader), as
    /// `name ts value_bits` lines, one frame after another, frames separated by `--`.
    fn python_decode(frames: &[u8]) -> String {
        let script = r#"
import pickle, struct, sys
data = sys.stdin.buffer.read()
i = 0
while i < len(data):
    (n,) = struct.unpack('>I', data[i:i + 4])
    points = pickle.loads(data[i + 4:i + 4 + n])
    assert type(points) is list, type(points)
    for name, (ts, value) in points:
        assert type(name) is str and type(ts) is int and type(value) is float
        print(name, ts, struct.unpack('>Q', struct.pack('>d', value))[0])
    print('--')
    i += 4 + n
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (CPython is on every machine these tests run on)");
        child.stdin.take().unwrap().write_all(frames).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// What `python_decode` should print for `points` split into frames of `sizes` points.
    fn expected(points: &[(String, u64, f64)], sizes: &[usize]) -> String {
        let mut out = String::new();
        let mut rest = points;
        for &size in sizes {
            let (frame, later) = rest.split_at(size);
            for (name, ts, value) in frame {
                out.push_str(&format!("{name} {ts} {}\n", value.to_bits()));
            }
            out.push_str("--\n");
            rest = later;
        }
        assert!(rest.is_empty());
        out
    }

    #[test]
    fn cpython_reads_every_int_size_and_group_boundary() {
        // Timestamps around every encoding boundary; values of every kind a double can be.
        let stamps = [0, 1, 255, 256, 65_535, 65_536, 2_147_483_647, 2_147_483_648, 1 << 40, u64::MAX >> 1, u64::MAX];
        let values = [0.0, -0.0, 1.5, -2.25, 1e300, f64::MIN_POSITIVE, 350.079_542_021_408_14, f64::INFINITY];
        let mut points = Vec::new();
        for (k, &ts) in stamps.iter().enumerate() {
            let name = if k % 2 == 0 { format!("a.b{k}") } else { format!("tagged.x{k};dc=é;k=v") };
            points.push((name, ts, values[k % values.len()]));
        }
        // 2 500 more points: three MARK/APPENDS groups in one frame (1000, 1000, 500).
        for k in 0..2_500u64 {
            points.push((format!("m.{k}"), 1_700_000_000 + k, k as f64 / 3.0));
        }
        let mut buf = Vec::new();
        let mut frame = FrameWriter::begin(&mut buf);
        for (name, ts, value) in &points[..stamps.len()] {
            frame.push(&mut buf, name.as_bytes(), *ts, *value);
        }
        frame.finish(&mut buf);
        let mut frame = FrameWriter::begin(&mut buf);
        for (name, ts, value) in &points[stamps.len()..] {
            frame.push(&mut buf, name.as_bytes(), *ts, *value);
        }
        assert_eq!(frame.n_points(), 2_500);
        frame.finish(&mut buf);
        // An exact multiple of the group size closes its last group once.
        let mut frame = FrameWriter::begin(&mut buf);
        for (name, ts, value) in &points[stamps.len()..stamps.len() + 1000] {
            frame.push(&mut buf, name.as_bytes(), *ts, *value);
        }
        frame.finish(&mut buf);
        let mut all = points.clone();
        all.extend_from_slice(&points[stamps.len()..stamps.len() + 1000]);
        assert_eq!(python_decode(&buf), expected(&all, &[stamps.len(), 2_500, 1000]));
    }

    #[test]
    fn int_encodings_are_cpythons() {
        let enc = |n: u64| {
            let mut buf = Vec::new();
            push_int(&mut buf, n);
            buf
        };
        // As `pickle.dumps(n, protocol=2)` writes them, between PROTO and STOP.
        assert_eq!(enc(7), [b'K', 7]);
        assert_eq!(enc(300), [b'M', 0x2c, 0x01]);
        assert_eq!(enc(1_700_000_000), [b'J', 0x00, 0xf1, 0x53, 0x65]);
        assert_eq!(enc(2_147_483_648), [0x8a, 5, 0, 0, 0, 0x80, 0]);
        assert_eq!(enc(4_294_967_296), [0x8a, 5, 0, 0, 0, 0, 1]);
        assert_eq!(enc(u64::MAX), [0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    }

    #[test]
    fn a_source_cuts_frames_by_points_and_bytes() {
        let w = workload("{prefix}.host{h}.cpu{m}", 7, 3, 1_700_000_000);
        let all: Vec<(String, u64, f64)> = (0..3)
            .flat_map(|p| (2..6).map(move |m| (m, p)))
            .map(|(m, p)| (w.names().render(m), w.timestamp(p), w.value(m, p)))
            .collect();
        // 12 points of metrics 2..6: 5 per frame; the sender's batch bounds cut between frames.
        let framing = Framing { batch_points: 5, frame_bytes_max: FRAME_BYTES_DEFAULT };
        let mut source = PickleSource::new(&w, 2..6, framing, None);
        assert_eq!(source.n_points(), 12);
        let mut buf = Vec::new();
        assert_eq!(source.fill(&mut buf, 7, usize::MAX), 7, "a batch's point allowance cuts a frame short");
        assert_eq!(source.complete_points(&buf), 7);
        let first_frame_end = source.frames[0].0;
        assert_eq!(source.complete_points(&buf[..first_frame_end]), 5);
        assert_eq!(source.complete_points(&buf[..first_frame_end - 1]), 0);
        let mut rest = Vec::new();
        assert_eq!(source.fill(&mut rest, u64::MAX, 1), 5, "at least one frame per batch");
        let mut tail = Vec::new();
        assert_eq!(source.fill(&mut tail, u64::MAX, usize::MAX), 0, "every point sent");
        assert!(tail.is_empty());
        buf.extend_from_slice(&rest);
        assert_eq!(python_decode(&buf), expected(&all[..12], &[5, 2, 5]));
        // A frame size that holds two points of these names.
        let one = {
            let mut b = Vec::new();
            let mut f = FrameWriter::begin(&mut b);
            f.push(&mut b, all[0].0.as_bytes(), all[0].1, all[0].2);
            f.payload_bytes(&b)
        };
        let framing = Framing { batch_points: 500, frame_bytes_max: 2 * one - 4 };
        framing.check(&w).unwrap();
        let mut source = PickleSource::new(&w, 2..6, framing, None);
        let mut buf = Vec::new();
        assert_eq!(source.fill(&mut buf, u64::MAX, usize::MAX), 12);
        assert_eq!(source.frames.len(), 6);
        assert_eq!(python_decode(&buf), expected(&all, &[2; 6]));
        let mut offset = 0;
        while offset < buf.len() {
            let n = u32::from_be_bytes(buf[offset..offset + 4].try_into().unwrap()) as usize;
            assert!(n <= framing.frame_bytes_max);
            offset += 4 + n;
        }
    }

    #[test]
    fn framings_that_cannot_carry_a_point_are_refused() {
        let w = workload("{prefix}.{i}", 100, 1, 0);
        assert_eq!(Framing { batch_points: 0, frame_bytes_max: 100 }.check(&w), Err(FramingError::NoPoints));
        // "pk.99": 5 bytes, + 4 overhead + 29 per point.
        assert!(Framing { batch_points: 1, frame_bytes_max: 38 }.check(&w).is_ok());
        assert_eq!(
            Framing { batch_points: 1, frame_bytes_max: 37 }.check(&w),
            Err(FramingError::FrameTooSmall { point_bytes: 38, frame_bytes: 37 })
        );
    }
}
