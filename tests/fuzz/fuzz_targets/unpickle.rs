//! Any bytes as a pickled request (carbonlink's frames), read by the general restricted
//! unpickler under small limits. Nothing panics; what it reads stays within the limits; and
//! what it reads, pickled again by our protocol 2 writer, reads back to the same value (bit for
//! bit: floats by their bits, dict entries in order, duplicates kept).
#![no_main]

use carbyne::protocol::unpickle::{loads, UnpickleLimits, Value};
use carbyne::render::format::pickle::{dumps, Value as Out};
use libfuzzer_sys::fuzz_target;

const LIMITS: UnpickleLimits =
    UnpickleLimits { bytes_max: 4096, objects_max: 4096, values_max: 2048, text_bytes_max: 16384, depth_max: 16 };

/// The value for the writer; None when it holds bytes, which the writer has no form for.
fn to_out(v: &Value) -> Option<Out> {
    Some(match v {
        Value::None => Out::None,
        Value::Bool(b) => Out::Bool(*b),
        Value::Int(i) => Out::Int(*i),
        Value::Float(f) => Out::Float(*f),
        Value::Str(s) => Out::Str(s.clone()),
        Value::Bytes(_) => return None,
        Value::List(items) => Out::List(items.iter().map(to_out).collect::<Option<_>>()?),
        Value::Tuple(items) => Out::Tuple(items.iter().map(to_out).collect::<Option<_>>()?),
        Value::Dict(entries) => {
            Out::Dict(entries.iter().map(|(k, v)| Some((to_out(k)?, to_out(v)?))).collect::<Option<_>>()?)
        }
    })
}

/// Values counted and the deepest container level, checked against the limits.
fn measure(v: &Value, depth: usize, values: &mut usize, text: &mut usize) {
    assert!(depth <= LIMITS.depth_max);
    *values += 1;
    match v {
        Value::Str(s) => *text += s.len(),
        Value::Bytes(b) => *text += b.len(),
        Value::List(items) | Value::Tuple(items) => items.iter().for_each(|i| measure(i, depth + 1, values, text)),
        Value::Dict(entries) => entries.iter().for_each(|(k, i)| {
            measure(k, depth + 1, values, text);
            measure(i, depth + 1, values, text);
        }),
        _ => {}
    }
}

/// Equality with floats compared by their bits (NaN equals itself, -0.0 differs from 0.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = loads(data, &LIMITS) else { return };
    let (mut values, mut text) = (0, 0);
    measure(&value, 0, &mut values, &mut text);
    assert!(values <= LIMITS.values_max && text <= LIMITS.text_bytes_max);
    if let Some(out) = to_out(&value) {
        let again = dumps(&out);
        // The writer opens a MARK even for an empty tuple, so its pickle nests one MARK deeper
        // than the value does.
        let roomy = UnpickleLimits {
            bytes_max: usize::MAX,
            objects_max: usize::MAX,
            depth_max: LIMITS.depth_max + 1,
            ..LIMITS
        };
        let back = loads(&again, &roomy).expect("our own pickle reads back");
        assert!(same(&back, &value), "{value:?} came back as {back:?}");
    }
});
