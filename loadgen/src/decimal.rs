//! ASCII decimal formatting straight into byte buffers.
//!
//! Encoders append every integer (name indexes, timestamps) through [`push_u64`] rather than
//! `write!`, which goes through the `fmt` machinery and returns a `Result` that cannot fail for
//! a `Vec`. Floats go through `core::fmt` once, in [`push_f64`]: `Display` for `f64` prints the
//! shortest digits that parse back to the same value, and never uses exponent notation.

use std::fmt::{self, Write as _};

/// Digits in `u64::MAX`.
const U64_DIGITS_MAX: usize = 20;

/// Appends `n` in decimal.
pub fn push_u64(buf: &mut Vec<u8>, n: u64) {
    push_u64_padded(buf, n, 1);
}

/// Appends `n` in decimal, left-padded with zeros to at least `width` digits.
pub fn push_u64_padded(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; U64_DIGITS_MAX];
    let mut len = 0;
    loop {
        digits[U64_DIGITS_MAX - 1 - len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    buf.resize(buf.len() + width.saturating_sub(len), b'0');
    buf.extend_from_slice(&digits[U64_DIGITS_MAX - len..]);
}

/// Appends `v` as the shortest decimal that round-trips to the same `f64` (`Display`).
pub fn push_f64(buf: &mut Vec<u8>, v: f64) {
    // The adapter never fails, and `f64`'s `Display` only fails when its sink does, so the
    // `fmt::Result` below is always `Ok` and there is nothing to report.
    let _ = write!(VecSink(buf), "{v}");
}

/// `fmt::Write` over a byte vector.
struct VecSink<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_str(n: u64, width: usize) -> String {
        let mut buf = Vec::new();
        push_u64_padded(&mut buf, n, width);
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn integers() {
        assert_eq!(u64_str(0, 1), "0");
        assert_eq!(u64_str(7, 1), "7");
        assert_eq!(u64_str(1_700_000_000, 1), "1700000000");
        assert_eq!(u64_str(u64::MAX, 1), u64::MAX.to_string());
        assert_eq!(u64_str(7, 2), "07");
        assert_eq!(u64_str(0, 2), "00");
        assert_eq!(u64_str(123, 2), "123");
    }

    #[test]
    fn floats_round_trip_without_exponents() {
        for v in [0.0, 5.0, 0.1, 350.079_542_021_408_14, 1e-13, 999.999_999_999_999_9] {
            let mut buf = Vec::new();
            push_f64(&mut buf, v);
            let text = String::from_utf8_lossy(&buf).into_owned();
            assert!(!text.contains(['e', 'E']), "{text}");
            assert_eq!(text.parse::<f64>().ok(), Some(v), "{text}");
        }
    }
}
