//! A MessagePack writer for the values graphite-web's cluster protocol exchanges when a
//! CLUSTER_SERVERS entry says `format=msgpack`: the same Python-shaped [`Value`]s `pickle.rs`
//! writes, encoded as msgpack-python's `dumps(..., use_bin_type=True)` encodes them: None as
//! nil, booleans, integers in their smallest encoding, floats as float64, str as the str
//! family (never bin), lists and tuples as arrays, dicts as maps in their order.
//!
//! The encoding of each item is the `rmp` crate's (the low-level half of the msgpack-rust
//! project, the usual Rust implementation): it picks the smallest integer and length forms
//! exactly as the specification says, which a hand-written writer would have to re-derive and
//! test. Leaves out: decoding (no request in these protocols carries msgpack).

use rmp::encode;

pub use super::pickle::Value;

/// Why a value could not be written: a list, map or string longer than msgpack allows
/// (2^32 - 1 items or bytes). Writing into a `Vec` cannot fail otherwise.
#[derive(Debug)]
struct TooLong;

impl From<encode::ValueWriteError<std::io::Error>> for TooLong {
    fn from(_: encode::ValueWriteError<std::io::Error>) -> Self {
        TooLong
    }
}

impl From<std::io::Error> for TooLong {
    fn from(_: std::io::Error) -> Self {
        TooLong
    }
}

/// `value` as msgpack; None when a list, map or string is too long for msgpack (more than
/// 2^32 - 1 items or bytes: no render or find within Carbyne's limits comes near).
pub fn dumps(value: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    write(value, &mut out).ok()?;
    Some(out)
}

fn len32(n: usize) -> Result<u32, TooLong> {
    u32::try_from(n).map_err(|_| TooLong)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), TooLong> {
    match value {
        Value::None => encode::write_nil(out)?,
        Value::Bool(b) => encode::write_bool(out, *b)?,
        Value::Int(i) => {
            encode::write_sint(out, *i)?;
        }
        Value::Float(f) => encode::write_f64(out, *f)?,
        Value::Str(s) => {
            len32(s.len())?;
            encode::write_str(out, s)?;
        }
        Value::List(items) | Value::Tuple(items) => {
            encode::write_array_len(out, len32(items.len())?)?;
            for item in items {
                write(item, out)?;
            }
        }
        Value::Dict(items) => {
            encode::write_map_len(out, len32(items.len())?)?;
            for (k, v) in items {
                write(k, out)?;
                write(v, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: Value, expected: &[u8]) {
        assert_eq!(dumps(&value).unwrap(), expected, "{value:?}");
    }

    #[test]
    fn encodings_are_msgpack_pythons() {
        // Bytes as msgpack-python 1.0 writes them with use_bin_type=True.
        check(Value::None, b"\xc0");
        check(Value::Bool(true), b"\xc3");
        check(Value::Bool(false), b"\xc2");
        check(Value::Int(5), b"\x05");
        check(Value::Int(-1), b"\xff");
        check(Value::Int(60), b"\x3c");
        check(Value::Int(1_700_000_000), b"\xce\x65\x53\xf1\x00");
        check(Value::Int(-200), b"\xd1\xff\x38");
        check(Value::Float(1.5), b"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
        check(Value::Str("a.b".into()), b"\xa3a.b");
        check(Value::Str("x".repeat(40)), &[&b"\xd9\x28"[..], "x".repeat(40).as_bytes()].concat());
        check(
            Value::Tuple(vec![Value::Float(0.0), Value::Float(1.0)]),
            &[&b"\x92\xcb"[..], &[0; 8], b"\xcb\x3f\xf0", &[0; 6]].concat(),
        );
        check(Value::Dict(vec![(Value::Str("is_leaf".into()), Value::Bool(false))]), b"\x81\xa7is_leaf\xc2");
        check(Value::List(vec![]), b"\x90");
    }

    #[test]
    fn reads_back_with_an_independent_decoder() {
        let v = Value::List(vec![Value::Dict(vec![
            (Value::Str("name".into()), Value::Str("a.b".into())),
            (
                Value::Str("values".into()),
                Value::List(vec![Value::Float(1.0), Value::None, Value::Float(f64::INFINITY)]),
            ),
            (Value::Str("start".into()), Value::Int(1_700_000_000_000)),
        ])]);
        let bytes = dumps(&v).unwrap();
        let decoded = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let entry = &decoded.as_array().unwrap()[0];
        let map: Vec<(String, rmpv::Value)> =
            entry.as_map().unwrap().iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone())).collect();
        assert_eq!(map[0], ("name".into(), rmpv::Value::from("a.b")));
        assert_eq!(
            map[1].1,
            rmpv::Value::Array(vec![rmpv::Value::F64(1.0), rmpv::Value::Nil, rmpv::Value::F64(f64::INFINITY)])
        );
        assert_eq!(map[2].1.as_i64(), Some(1_700_000_000_000));
    }
}
