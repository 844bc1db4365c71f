//! carbonapi's protobuf protocols, as a go-carbon backend speaks them: the message types
//! (generated at build time by prost from `proto/carbonapi_v2_pb.proto` and
//! `proto/carbonapi_v3_pb.proto`, whose field names, numbers and types are go-graphite/protocol's)
//! and the conversion of render's series into them.
//!
//! - `carbonapi_v2_pb` (`format=protobuf`): a gap is `isAbsent[i] = true` with value 0, times
//!   are 32-bit;
//! - `carbonapi_v3_pb`: a gap is NaN; each series carries the path expression it was asked
//!   under, its consolidation function and xFilesFactor, and the window asked.
//!
//! Values are the series' as the other formats write them (after any valuesPerPoint
//! consolidation, with the step that goes with it); a NaN produced by arithmetic is a gap in
//! both protocols, as go-carbon makes it. Leaves out: HTTP and request decoding (the `http`
//! module's `cluster.rs`), and the messages Carbyne never sends (info, list, details).

use crate::render::consolidate::consolidated;
use crate::render::series::Series;

/// `carbonapi_v2_pb`: the messages of carbonapi's v2 protocol.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v2 {
    include!(concat!(env!("OUT_DIR"), "/carbonapi_v2_pb.rs"));
}

/// `carbonapi_v3_pb`: the messages of carbonapi's v3 protocol.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3 {
    include!(concat!(env!("OUT_DIR"), "/carbonapi_v3_pb.rs"));
}

/// The protocols named in a v3 capability answer, the preferred one first (carbonapi's `auto`
/// protocol takes the first).
pub const SUPPORTED_PROTOCOLS: [&str; 4] = ["carbonapi_v3_pb", "carbonapi_v2_pb", "graphite-web-pickle-1.1", "msgpack"];

/// A Unix time as v2's 32-bit field holds it (saturated past 2038 rather than wrapped).
fn time32(t: i64) -> i32 {
    t.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The values as sent, the step that goes with them and the end of the last one.
fn grid(s: &Series) -> (Vec<Option<f64>>, i64, i64) {
    let values = consolidated(s);
    let step = s.step.saturating_mul(s.values_per_point.max(1) as i64);
    let stop = s.start.saturating_add(step.saturating_mul(values.len() as i64));
    (values, step, stop)
}

/// One series as a v2 `FetchResponse`.
pub fn v2_series(s: &Series) -> v2::FetchResponse {
    let (values, step, stop) = grid(s);
    let present = |v: &Option<f64>| v.filter(|x| !x.is_nan());
    v2::FetchResponse {
        name: s.name.clone(),
        start_time: time32(s.start),
        stop_time: time32(stop),
        step_time: time32(step),
        values: values.iter().map(|v| present(v).unwrap_or(0.0)).collect(),
        is_absent: values.iter().map(|v| present(v).is_none()).collect(),
    }
}

/// One series as a v3 `FetchResponse`, asked as `path_expression` over (`request_start`,
/// `request_stop`]; the consolidation function and xFilesFactor are the series' (the caller
/// may put the file's instead, as go-carbon does).
pub fn v3_series(s: &Series, path_expression: &str, request_start: i64, request_stop: i64) -> v3::FetchResponse {
    let (values, step, stop) = grid(s);
    v3::FetchResponse {
        name: s.name.clone(),
        path_expression: path_expression.to_string(),
        consolidation_func: s.consolidation.name().to_string(),
        start_time: s.start,
        stop_time: stop,
        step_time: step,
        x_files_factor: s.x_files_factor as f32,
        high_precision_timestamps: false,
        values: values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
        applied_functions: Vec::new(),
        request_start_time: request_start,
        request_stop_time: request_stop,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn sample() -> Series {
        let mut s = Series::new("a.b", 1_700_000_000, 60, vec![Some(1.5), None, Some(f64::NAN), Some(-2.0)]);
        s.path_expression = "a.*".into();
        s
    }

    #[test]
    fn v2_marks_gaps_absent_and_reads_back() {
        let r = v2::MultiFetchResponse { metrics: vec![v2_series(&sample())] };
        let decoded = v2::MultiFetchResponse::decode(&r.encode_to_vec()[..]).unwrap();
        let m = &decoded.metrics[0];
        assert_eq!(
            (m.name.as_str(), m.start_time, m.stop_time, m.step_time),
            ("a.b", 1_700_000_000, 1_700_000_240, 60)
        );
        assert_eq!(m.values, [1.5, 0.0, 0.0, -2.0]);
        assert_eq!(m.is_absent, [false, true, true, false]);
    }

    #[test]
    fn v3_carries_the_request_and_nan_gaps() {
        let m = v3_series(&sample(), "a.*", 1_699_999_990, 1_700_000_300);
        let decoded = v3::FetchResponse::decode(&m.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded.path_expression, "a.*");
        assert_eq!(decoded.consolidation_func, "average");
        assert_eq!((decoded.start_time, decoded.stop_time, decoded.step_time), (1_700_000_000, 1_700_000_240, 60));
        assert_eq!((decoded.request_start_time, decoded.request_stop_time), (1_699_999_990, 1_700_000_300));
        assert_eq!(decoded.values[0], 1.5);
        assert!(decoded.values[1].is_nan() && decoded.values[2].is_nan());
    }

    #[test]
    fn field_numbers_are_upstreams() {
        // Hand-encoded bytes with go-graphite/protocol's numbers: v3 FetchResponse name = 1,
        // pathExpression = 2, stepTime = 6 (varint), values = 9 (packed doubles).
        let mut bytes = vec![0x0a, 1, b'x', 0x12, 1, b'y', 0x30, 60, 0x4a, 8];
        bytes.extend_from_slice(&2.5f64.to_le_bytes());
        let m = v3::FetchResponse::decode(&bytes[..]).unwrap();
        assert_eq!(
            (m.name.as_str(), m.path_expression.as_str(), m.step_time, m.values.clone()),
            ("x", "y", 60, vec![2.5])
        );
        // v2 GlobResponse name = 1, matches = 2 {path = 1, isLeaf = 2}.
        let g = v2::GlobResponse::decode(&[0x0a, 1, b'q', 0x12, 5, 0x0a, 1, b'p', 0x10, 1][..]).unwrap();
        assert_eq!((g.name.as_str(), g.matches[0].path.as_str(), g.matches[0].is_leaf), ("q", "p", true));
        // v3 MultiGlobRequest metrics = 1, startTime = 2, stopTime = 3.
        let q = v3::MultiGlobRequest::decode(&[0x0a, 1, b'*', 0x10, 5, 0x18, 7][..]).unwrap();
        assert_eq!((q.metrics.clone(), q.start_time, q.stop_time), (vec!["*".to_string()], 5, 7));
        // v3 CapabilityResponse supportedProtocols = 1, name = 2, likeSplittedRequests = 5.
        let c = v3::CapabilityResponse {
            supported_protocols: vec!["p".into()],
            name: "h".into(),
            like_splitted_requests: true,
            ..Default::default()
        };
        assert_eq!(c.encode_to_vec(), [0x0a, 1, b'p', 0x12, 1, b'h', 0x28, 1]);
    }
}
