//! Finding lines in bytes: the per-connection [`LineSplitter`] for TCP streams, and
//! [`split_datagram`] for UDP datagrams.
//!
//! Owns: line boundaries, the carry-over of a line split across reads, and the line-length
//! limit. Leaves out: what a line means ([`super::plaintext`]) and where the bytes come from.
//!
//! TCP follows Twisted's `LineOnlyReceiver` as carbon-cache configures it (`delimiter = b'\n'`):
//! a line ends at `\n` only; a `\r` before it is whitespace to the parser, and is stripped here
//! so that callers see the same line with LF or CRLF. The limit counts the bytes before the `\n`
//! (a `\r` included), as Twisted's `MAX_LENGTH` (16384 by default) does. Two deliberate
//! differences: an over-long line is one counted rejection and the connection goes on (Twisted
//! closes it), and its bytes are skipped, never buffered. At end of stream, bytes after the last
//! `\n` are discarded, as Twisted discards them (`connectionLost` never sees its buffer); the
//! caller counts them as one incomplete line.
//!
//! UDP follows carbon's `MetricDatagramReceiver`: `data.splitlines()`, so a datagram's last line
//! needs no terminator, and `\r`, `\v`, `\f`, `\x1c`-`\x1e`, U+0085, U+2028 and U+2029 end lines
//! as well as `\n` and `\r\n`.

use std::fmt;

/// A line was longer than the limit. It has been skipped (through its `\n`, even when that
/// arrives in a later read) and is reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineTooLong;

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("line too long")
    }
}

impl std::error::Error for LineTooLong {}

/// The stream ended in the middle of a line: its bytes were discarded, as carbon discards them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IncompleteLine {
    /// How many bytes the unterminated line held.
    pub bytes: usize,
}

/// Splits one connection's byte stream into lines, carrying an incomplete line over to the next
/// read in a buffer allocated once, at construction, to the line limit.
///
/// Lines that arrive whole in one read are handed out borrowed from that read, without a copy;
/// only a line split across reads is copied, into the carry-over buffer.
#[derive(Debug)]
pub struct LineSplitter {
    /// The carry-over buffer. Its length is the line limit and never changes.
    carry: Box<[u8]>,
    /// Bytes of the pending incomplete line, in `carry[..carry_len]`.
    /// Invariant: `carry_len <= carry.len()`; `carry[..carry_len]` holds no `\n`;
    /// `carry_len == 0` while `skipping`.
    carry_len: usize,
    /// True from the moment a line is known to be over the limit (and has been reported) until
    /// its `\n` is seen. Invariant: implies `carry_len == 0`.
    skipping: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max_line_bytes` bytes before the `\n`.
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter { carry: vec![0; max_line_bytes].into_boxed_slice(), carry_len: 0, skipping: false }
    }

    /// The line limit, in bytes before the `\n`.
    pub fn max_line_bytes(&self) -> usize {
        self.carry.len()
    }

    /// Bytes of an incomplete line waiting for the rest of it.
    pub fn pending_bytes(&self) -> usize {
        self.carry_len
    }

    /// Calls `on_line` with every line completed by `chunk`, in order: `Ok(line)` without its
    /// `\n` and without one trailing `\r`, or `Err(LineTooLong)` once per over-long line. An
    /// incomplete last line is kept for the next call.
    pub fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(Result<&[u8], LineTooLong>)) {
        self.check_invariants();
        let mut rest = chunk;
        if self.skipping {
            let Some(newline) = find_newline(rest) else { return };
            self.skipping = false;
            rest = &rest[newline + 1..];
        }
        if self.carry_len > 0 {
            rest = match self.complete_carry(rest, &mut on_line) {
                Some(rest) => rest,
                None => return,
            };
        }
        while let Some(newline) = find_newline(rest) {
            on_line(self.limit(&rest[..newline]));
            rest = &rest[newline + 1..];
        }
        self.keep_tail(rest, &mut on_line);
        self.check_invariants();
    }

    /// End of stream: forgets any incomplete line (returning its size, for counting) and makes
    /// the splitter ready for a new connection.
    pub fn finish(&mut self) -> Option<IncompleteLine> {
        self.check_invariants();
        let bytes = self.carry_len;
        self.carry_len = 0;
        self.skipping = false;
        (bytes > 0).then_some(IncompleteLine { bytes })
    }

    /// Appends `chunk` to the carried line up to its `\n`, and hands the completed line out.
    /// Returns what follows the `\n`, or `None` when `chunk` holds no `\n` (it was all carried,
    /// or the line went over the limit and is now being skipped).
    fn complete_carry<'c>(
        &mut self,
        chunk: &'c [u8],
        on_line: &mut impl FnMut(Result<&[u8], LineTooLong>),
    ) -> Option<&'c [u8]> {
        debug_assert!(self.carry_len > 0 && !self.skipping);
        let newline = find_newline(chunk);
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let total = self.carry_len + part.len();
        if total > self.carry.len() {
            self.carry_len = 0;
            on_line(Err(LineTooLong));
            self.skipping = newline.is_none();
        } else {
            self.carry[self.carry_len..total].copy_from_slice(part);
            self.carry_len = total;
            if newline.is_some() {
                self.carry_len = 0;
                on_line(Ok(strip_cr(&self.carry[..total])));
            }
        }
        newline.map(|at| &chunk[at + 1..])
    }

    /// Keeps the unterminated tail of a read for the next one, or reports it at once when it is
    /// already over the limit and skips the rest of that line.
    fn keep_tail(&mut self, tail: &[u8], on_line: &mut impl FnMut(Result<&[u8], LineTooLong>)) {
        debug_assert!(self.carry_len == 0 && !self.skipping && find_newline(tail).is_none());
        if tail.len() > self.carry.len() {
            on_line(Err(LineTooLong));
            self.skipping = true;
        } else {
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carry_len = tail.len();
        }
    }

    fn limit<'l>(&self, line: &'l [u8]) -> Result<&'l [u8], LineTooLong> {
        if line.len() > self.carry.len() {
            Err(LineTooLong)
        } else {
            Ok(strip_cr(line))
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.carry_len <= self.carry.len());
        debug_assert!(!self.skipping || self.carry_len == 0);
        debug_assert!(find_newline(&self.carry[..self.carry_len]).is_none());
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The index of the first `\n` in `haystack`. Eight bytes at a time: a metric line is a few
/// dozen bytes, so the word loop finds most newlines in a handful of steps.
pub fn find_newline(haystack: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = LO * b'\n' as u64;
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes) ^ NEWLINES;
        // A zero byte in x is a '\n' in the word. This expression is exact for the lowest zero
        // byte (borrows only run upward), and the lowest is the one we want.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words.remainder().iter().position(|&b| b == b'\n').map(|at| offset + at)
}

/// Calls `on_line` with every line of one UDP datagram as carbon's `data.splitlines()` finds
/// them: the last line needs no terminator, an empty datagram has no lines, and a terminator at
/// the very end does not start another (empty) line. Lines longer than `max_line_bytes` come
/// out as `Err(LineTooLong)`.
pub fn split_datagram(datagram: &[u8], max_line_bytes: usize, mut on_line: impl FnMut(Result<&[u8], LineTooLong>)) {
    let mut rest = datagram;
    while !rest.is_empty() {
        let (end, next) = line_break(rest).unwrap_or((rest.len(), rest.len()));
        let line = &rest[..end];
        on_line(if line.len() > max_line_bytes { Err(LineTooLong) } else { Ok(line) });
        rest = &rest[next..];
    }
}

/// The first line boundary of Python's `str.splitlines()` in UTF-8 bytes: where the line ends
/// and where the next one starts.
fn line_break(s: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\r' if s.get(i + 1) == Some(&b'\n') => return Some((i, i + 2)),
            b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e => return Some((i, i + 1)),
            // U+0085 (NEL) is C2 85; U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            0xc2 if s.get(i + 1) == Some(&0x85) => return Some((i, i + 2)),
            0xe2 if s.get(i + 1) == Some(&0x80) && matches!(s.get(i + 2), Some(0xa8 | 0xa9)) => {
                return Some((i, i + 3));
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a splitter delivers, as owned values: for comparing runs.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Out {
        Line(Vec<u8>),
        TooLong,
    }

    fn run(max: usize, parts: &[&[u8]]) -> (Vec<Out>, Option<IncompleteLine>) {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for part in parts {
            splitter.feed(part, |line| {
                out.push(match line {
                    Ok(line) => Out::Line(line.to_vec()),
                    Err(LineTooLong) => Out::TooLong,
                })
            });
        }
        let incomplete = splitter.finish();
        assert_eq!(splitter.pending_bytes(), 0);
        (out, incomplete)
    }

    /// The specification, written as plainly as possible: split on `\n`; a complete line over
    /// the limit is `TooLong`, else it loses one trailing `\r`; the unterminated tail is
    /// `TooLong` when over the limit, else incomplete (if not empty).
    fn model(max: usize, input: &[u8]) -> (Vec<Out>, Option<IncompleteLine>) {
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let tail = pieces.pop().unwrap_or_default();
        let mut out: Vec<Out> = pieces
            .into_iter()
            .map(|l| if l.len() > max { Out::TooLong } else { Out::Line(l.strip_suffix(b"\r").unwrap_or(l).to_vec()) })
            .collect();
        if tail.len() > max {
            out.push(Out::TooLong);
        }
        let incomplete = (!tail.is_empty() && tail.len() <= max).then_some(IncompleteLine { bytes: tail.len() });
        (out, incomplete)
    }

    /// Runs `input` whole, split at every offset, and (when short) split at every pair of
    /// offsets, and checks every run against `expected` and against the model.
    fn check(max: usize, input: &[u8], expected: &[Out], incomplete: Option<usize>) {
        let expected = (expected.to_vec(), incomplete.map(|bytes| IncompleteLine { bytes }));
        assert_eq!(model(max, input), expected, "model disagrees with the table");
        assert_eq!(run(max, &[input]), expected, "whole");
        for a in 0..=input.len() {
            assert_eq!(run(max, &[&input[..a], &input[a..]]), expected, "split at {a}");
            if input.len() <= 48 {
                for b in a..=input.len() {
                    let parts = [&input[..a], &input[a..b], &input[b..]];
                    assert_eq!(run(max, &parts), expected, "split at {a} and {b}");
                }
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(max, &bytes), expected, "byte by byte");
    }

    fn line(s: &str) -> Out {
        Out::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_and_carry_over() {
        check(16, b"", &[], None);
        check(16, b"a 1 2\n", &[line("a 1 2")], None);
        check(16, b"a 1 2\r\nb 3 4\n", &[line("a 1 2"), line("b 3 4")], None);
        check(16, b"a 1 2\r\r\n", &[line("a 1 2\r")], None);
        check(16, b"\n\n\r\n", &[line(""), line(""), line("")], None);
        check(16, b"a 1 2\nb 3", &[line("a 1 2")], Some(3));
        check(16, b"a\rb\n", &[line("a\rb")], None);
        check(16, b"\r", &[], Some(1));
    }

    #[test]
    fn the_limit_counts_bytes_before_the_newline() {
        check(5, b"12345\n", &[line("12345")], None);
        check(5, b"123456\n", &[Out::TooLong], None);
        // The '\r' counts, as in Twisted's MAX_LENGTH.
        check(5, b"12345\r\n", &[Out::TooLong], None);
        check(5, b"1234\r\n", &[line("1234")], None);
        check(5, b"12345", &[], Some(5));
        check(5, b"123456", &[Out::TooLong], None);
        check(0, b"\n\r\nx\n", &[line(""), Out::TooLong, Out::TooLong], None);
    }

    #[test]
    fn an_over_long_line_costs_only_itself() {
        check(8, b"ok 1 2\nthis line is far too long\nok 3 4\n", &[line("ok 1 2"), Out::TooLong, line("ok 3 4")], None);
        check(4, b"abcdefghij\nabcdefghij\nab", &[Out::TooLong, Out::TooLong], Some(2));
        check(4, b"abcdefghijklmnop", &[Out::TooLong], None);
        check(4, b"abcdefghij\n\n", &[Out::TooLong, line("")], None);
    }

    #[test]
    fn finish_resets_for_the_next_connection() {
        let mut splitter = LineSplitter::new(8);
        splitter.feed(b"abc", |_| panic!("no line yet"));
        assert_eq!(splitter.finish(), Some(IncompleteLine { bytes: 3 }));
        splitter.feed(b"0123456789", |l| assert_eq!(l, Err(LineTooLong)));
        assert_eq!(splitter.finish(), None, "the over-long line was already reported");
        let mut lines = Vec::new();
        splitter.feed(b"x\n", |l| lines.push(l.map(<[u8]>::to_vec)));
        assert_eq!(lines, [Ok(b"x".to_vec())]);
        assert_eq!(splitter.max_line_bytes(), 8);
    }

    #[test]
    fn find_newline_at_every_position() {
        for len in 0..40 {
            for at in 0..=len {
                let mut hay = vec![b'a'; len];
                // Bytes that trip naive SWAR tricks: 0x0b is '\n' + 1, 0x8a has the high bit.
                for (i, b) in hay.iter_mut().enumerate() {
                    *b = [b'a', 0x0b, 0x8a, 0x09, 0xff, 0x00][i % 6];
                }
                if at < len {
                    hay[at] = b'\n';
                    hay[len - 1] = b'\n';
                }
                assert_eq!(find_newline(&hay), hay.iter().position(|&b| b == b'\n'), "len {len} at {at}");
            }
        }
    }

    fn datagram(max: usize, input: &[u8]) -> Vec<Result<Vec<u8>, LineTooLong>> {
        let mut out = Vec::new();
        split_datagram(input, max, |l| out.push(l.map(<[u8]>::to_vec)));
        out
    }

    #[test]
    fn datagrams_split_as_python_splitlines() {
        let ok = |s: &str| -> Result<Vec<u8>, LineTooLong> { Ok(s.as_bytes().to_vec()) };
        assert_eq!(datagram(64, b""), []);
        assert_eq!(datagram(64, b"a 1 2"), [ok("a 1 2")]);
        assert_eq!(datagram(64, b"a 1 2\n"), [ok("a 1 2")]);
        assert_eq!(
            datagram(64, b"a\r\nb\rc\nd\x0be\x0cf\x1cg\x1dh\x1ei"),
            ["a", "b", "c", "d", "e", "f", "g", "h", "i"].map(ok)
        );
        assert_eq!(datagram(64, "a\u{85}b\u{2028}c\u{2029}d\u{2027}".as_bytes()), ["a", "b", "c", "d\u{2027}"].map(ok));
        assert_eq!(datagram(64, b"\n\na"), [ok(""), ok(""), ok("a")]);
        assert_eq!(datagram(64, b"a\x1fb"), [ok("a\x1fb")]);
        assert_eq!(datagram(3, b"abcd\nabc\n"), [Err(LineTooLong), ok("abc")]);
        assert_eq!(datagram(64, b"\xc2\n\xe2\x80"), [Ok(vec![0xc2]), Ok(vec![0xe2, 0x80])]);
    }

    /// Python 3.11: `[c for c in map(chr, range(0x110000)) if len(('a' + c + 'b').splitlines()) == 2]`.
    #[test]
    fn datagram_line_breaks_are_pythons() {
        let breaks: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| datagram(64, format!("a{c}b").as_bytes()).len() == 2)
            .map(u32::from)
            .collect();
        assert_eq!(breaks, [0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029]);
    }

    proptest::proptest! {
        #[test]
        fn splitter_equals_model(
            input in proptest::collection::vec(proptest::sample::select(b"ab\r\n".to_vec()), 0..80),
            max in 0usize..12,
            cuts in proptest::collection::vec(0usize..80, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut start = 0;
            for cut in cuts {
                parts.push(&input[start..cut]);
                start = cut;
            }
            parts.push(&input[start..]);
            proptest::prop_assert_eq!(run(max, &parts), model(max, &input));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            max in 0usize..64,
            cut in 0usize..256,
        ) {
            let cut = cut.min(input.len());
            proptest::prop_assert_eq!(run(max, &[&input[..cut], &input[cut..]]), model(max, &input));
            let lines = datagram(max, &input);
            proptest::prop_assert!(lines.len() <= input.len());
        }
    }
}
