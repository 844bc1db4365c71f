//! A pickle writer (protocol 2) for the values graphite-web's cluster protocol and carbonlink
//! exchange: None, booleans, integers, floats, str (as BINUNICODE, so Python 3 reads `str`),
//! lists, tuples and dicts. Only plain types: graphite-web's restricted unpickler refuses any
//! global.

/// A value to pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in this order.
    Dict(Vec<(Value, Value)>),
}

/// `value` pickled with protocol 2.
pub fn dumps(value: &Value) -> Vec<u8> {
    let mut out = vec![0x80, 2];
    write(value, &mut out);
    out.push(b'.');
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) => {
                out.push(b'J');
                out.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) => {
                // LONG1: little-endian two's complement, 8 bytes are always enough for an i64.
                out.extend_from_slice(&[0x8a, 8]);
                out.extend_from_slice(&i.to_le_bytes());
            }
        },
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => {
            out.push(b'X');
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                items.iter().for_each(|v| write(v, out));
                out.push(b'e');
            }
        }
        Value::Tuple(items) => {
            out.push(b'(');
            items.iter().for_each(|v| write(v, out));
            out.push(b't');
        }
        Value::Dict(items) => {
            out.push(b'}');
            if !items.is_empty() {
                out.push(b'(');
                for (k, v) in items {
                    write(k, out);
                    write(v, out);
                }
                out.push(b'u');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_with_our_own_restricted_unpickler() {
        // The pickle receiver's decoder reads [(name, (ts, value)), ...]: a shape we can check.
        let v = Value::List(vec![Value::Tuple(vec![
            Value::Str("a.b".into()),
            Value::Tuple(vec![Value::Int(1_700_000_000), Value::Float(1.5)]),
        ])]);
        let bytes = dumps(&v);
        let mut decoder =
            crate::protocol::pickle::PickleDecoder::new(crate::protocol::pickle::PickleLimits::new(1 << 20));
        let mut got = Vec::new();
        decoder.decode(&bytes, |name, ts, value| got.push((name.to_vec(), ts, value))).unwrap();
        assert_eq!(got, vec![(b"a.b".to_vec(), 1_700_000_000.0, 1.5)]);
    }

    #[test]
    fn encodings_are_protocol_2() {
        assert_eq!(dumps(&Value::None), b"\x80\x02N.");
        assert_eq!(dumps(&Value::Int(1 << 40)), [&[0x80, 2, 0x8a, 8][..], &(1i64 << 40).to_le_bytes(), b"."].concat());
        assert_eq!(dumps(&Value::Dict(vec![])), b"\x80\x02}.");
        assert_eq!(dumps(&Value::List(vec![])), b"\x80\x02].");
    }
}
