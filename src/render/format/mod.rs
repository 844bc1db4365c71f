//! Response bodies of `/render`, as graphite-web 1.1.8 writes them: `json` (with jsonp,
//! noNullPoints, pretty), `csv`, `raw`, and the cluster protocols' `pickle` and `msgpack` (the
//! same list of `getInfo()` dicts); carbonapi's protobuf messages are in [`carbonapi`].
//!
//! JSON differs from graphite-web in one deliberate way: every non-finite value is `null`
//! (graphite-web writes `1e9999` for infinity, which Grafana's Go backend cannot parse).

pub mod carbonapi;
pub mod msgpack;
pub mod pickle;

use std::fmt::Write as _;

use super::consolidate::{consolidated, datapoints};
use super::series::Series;

/// How the JSON body is written.
#[derive(Debug, Clone, Default)]
pub struct JsonOptions {
    /// Drop null points, and series left with none.
    pub no_null_points: bool,
    /// Indent by 2.
    pub pretty: bool,
}

/// `[{"target", "tags", "datapoints": [[value, ts], ...]}, ...]`.
pub fn json(series: &[Series], opts: &JsonOptions) -> String {
    if opts.pretty {
        return json_pretty(series, opts);
    }
    // Written straight out (a render's hot path: a tree of `serde_json::Value`s cost an
    // allocation per point), with serde_json's own formatting of strings and numbers, so that
    // the bytes are those `json_pretty`'s tree gives without the indentation.
    let mut out = Vec::with_capacity(64 + series.iter().map(|s| s.values.len() * 24).sum::<usize>());
    out.push(b'[');
    let mut first = true;
    for s in series {
        let mut points = datapoints(s);
        if opts.no_null_points {
            points.retain(|(v, _)| v.is_some_and(|v| !v.is_nan()));
            if points.is_empty() {
                continue;
            }
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"target\":");
        write_json_str(&mut out, &s.name);
        out.extend_from_slice(b",\"tags\":{");
        for (i, (k, v)) in s.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(&mut out, k);
            out.push(b':');
            write_json_str(&mut out, v);
        }
        out.extend_from_slice(b"},\"datapoints\":[");
        for (i, (v, ts)) in points.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            match v.filter(|v| v.is_finite()) {
                Some(v) => write_json_f64(&mut out, v),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b',');
            let _ = std::io::Write::write_fmt(&mut out, format_args!("{ts}"));
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    // Only JSON text was written: valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| "[]".to_string())
}

/// A string as serde_json escapes it.
fn write_json_str(out: &mut Vec<u8>, value: &str) {
    // Writing into a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(out, value);
}

/// A finite float as serde_json writes it (shortest round-trip).
fn write_json_f64(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(out, &value);
}

/// The indented body (`pretty`), through serde_json's tree.
fn json_pretty(series: &[Series], opts: &JsonOptions) -> String {
    serde_json::to_string_pretty(&json_tree(series, opts)).unwrap_or_else(|_| "[]".to_string())
}

/// The body as serde_json's tree.
fn json_tree(series: &[Series], opts: &JsonOptions) -> serde_json::Value {
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let mut points = datapoints(s);
        if opts.no_null_points {
            points.retain(|(v, _)| v.is_some_and(|v| !v.is_nan()));
            if points.is_empty() {
                continue;
            }
        }
        let datapoints: Vec<serde_json::Value> = points
            .into_iter()
            .map(|(v, ts)| {
                let v = v.filter(|v| v.is_finite()).map_or(serde_json::Value::Null, serde_json::Value::from);
                serde_json::Value::Array(vec![v, serde_json::Value::from(ts)])
            })
            .collect();
        let tags: serde_json::Map<String, serde_json::Value> =
            s.tags.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let mut obj = serde_json::Map::new();
        obj.insert("target".into(), serde_json::Value::String(s.name.clone()));
        obj.insert("tags".into(), serde_json::Value::Object(tags));
        obj.insert("datapoints".into(), serde_json::Value::Array(datapoints));
        out.push(serde_json::Value::Object(obj));
    }
    serde_json::Value::Array(out)
}

/// `name,YYYY-MM-DD HH:MM:SS,value` rows (CRLF, as Python's csv module), timestamps in `tz`,
/// empty for null.
pub fn csv(series: &[Series], tz: chrono_tz::Tz) -> String {
    let mut out = String::new();
    for s in series {
        let name = csv_field(&s.name);
        for (i, v) in consolidated(s).into_iter().enumerate() {
            let ts = s.start + i as i64 * s.step;
            let when = chrono::DateTime::from_timestamp(ts, 0)
                .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let value = v.map(crate::pyfmt::py_repr).unwrap_or_default();
            let _ = write!(out, "{name},{when},{value}\r\n");
        }
    }
    out
}

/// Python's csv quoting (excel dialect): a field with `,`, `"` or a line break is quoted, its
/// quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `name,start,end,step|v1,v2,...` per series, values as Python's repr (`None` for null).
pub fn raw(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        let _ = write!(out, "{},{},{},{}|", s.name, s.start, s.shown_end(), s.step);
        let values: Vec<String> =
            consolidated(s).into_iter().map(|v| v.map_or("None".into(), crate::pyfmt::py_repr)).collect();
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// graphite-web's `TimeSeries.getInfo()` of each series, in its key order: `name`, `start`,
/// `end`, `step`, `values` (None for a gap), `pathExpression`, `valuesPerPoint`,
/// `consolidationFunc`, `xFilesFactor`. A frontend files each series under its
/// `pathExpression`, which for a fetched glob is the target string asked.
pub fn series_info(series: &[Series]) -> pickle::Value {
    use pickle::Value as V;
    let items = series
        .iter()
        .map(|s| {
            let values = consolidated(s).into_iter().map(|v| v.map_or(V::None, V::Float)).collect();
            let entry = |k: &str, v: V| (V::Str(k.to_string()), v);
            V::Dict(vec![
                entry("name", V::Str(s.name.clone())),
                entry("start", V::Int(s.start)),
                entry("end", V::Int(s.shown_end())),
                entry("step", V::Int(s.step)),
                entry("values", V::List(values)),
                entry("pathExpression", V::Str(s.path_expression.clone())),
                entry("valuesPerPoint", V::Int(s.values_per_point as i64)),
                entry("consolidationFunc", V::Str(s.consolidation.name().to_string())),
                entry("xFilesFactor", V::Float(s.x_files_factor)),
            ])
        })
        .collect();
    V::List(items)
}

/// The pickled list of [`series_info`] dicts (`format=pickle`, content type
/// `application/pickle`).
pub fn pickle(series: &[Series]) -> Vec<u8> {
    pickle::dumps(&series_info(series))
}

/// The same list as msgpack (`format=msgpack`, content type `application/x-msgpack`); None
/// only past msgpack's 2^32 - 1 items per list.
pub fn msgpack(series: &[Series]) -> Option<Vec<u8>> {
    msgpack::dumps(&series_info(series))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Series> {
        vec![Series::new("a.b", 60, 60, vec![Some(1.5), None, Some(f64::INFINITY)])]
    }

    #[test]
    fn the_written_json_is_serde_jsons_byte_for_byte() {
        let mut odd =
            Series::new("\u{e9}t\u{e9} \"q\"\\\n;x=y", -120, 60, vec![Some(-0.0), Some(f64::NAN), Some(1e300)]);
        odd.tags.insert("k\t".into(), "v\u{1}".into());
        let series = vec![
            odd,
            Series::new("empty", 0, 10, vec![None, None]),
            Series::new(
                "floats",
                10,
                10,
                vec![Some(0.1 + 0.2), Some(1e-7), Some(-123456789.25), Some(f64::NEG_INFINITY)],
            ),
        ];
        for no_null_points in [false, true] {
            let opts = JsonOptions { no_null_points, pretty: false };
            let tree = serde_json::to_string(&json_tree(&series, &opts)).unwrap();
            assert_eq!(json(&series, &opts), tree, "noNullPoints {no_null_points}");
        }
        assert_eq!(json(&[], &JsonOptions::default()), "[]");
    }

    #[test]
    fn json_as_grafana_reads_it() {
        assert_eq!(
            json(&sample(), &JsonOptions::default()),
            r#"[{"target":"a.b","tags":{"name":"a.b"},"datapoints":[[1.5,60],[null,120],[null,180]]}]"#
        );
        let no_nulls = json(&sample(), &JsonOptions { no_null_points: true, pretty: false });
        assert!(no_nulls.contains("[[1.5,60],[null,180]]"), "{no_nulls}");
        let empty = vec![Series::new("e", 0, 60, vec![None])];
        assert_eq!(json(&empty, &JsonOptions { no_null_points: true, pretty: false }), "[]");
    }

    #[test]
    fn csv_and_raw_as_graphite_web() {
        assert_eq!(
            csv(&sample(), chrono_tz::UTC),
            "a.b,1970-01-01 00:01:00,1.5\r\na.b,1970-01-01 00:02:00,\r\na.b,1970-01-01 00:03:00,inf\r\n"
        );
        assert_eq!(raw(&sample()), "a.b,60,240,60|1.5,None,inf\n");
        assert_eq!(csv_field("x,y"), "\"x,y\"");
    }

    #[test]
    fn cluster_formats_carry_graphite_webs_keys() {
        let mut s = sample();
        s[0].path_expression = "a.*".into();
        let info = series_info(&s);
        let pickle::Value::List(items) = &info else { panic!("{info:?}") };
        let pickle::Value::Dict(entries) = &items[0] else { panic!("{info:?}") };
        let keys: Vec<&pickle::Value> = entries.iter().map(|(k, _)| k).collect();
        let names = [
            "name",
            "start",
            "end",
            "step",
            "values",
            "pathExpression",
            "valuesPerPoint",
            "consolidationFunc",
            "xFilesFactor",
        ];
        assert_eq!(keys, names.map(|n| pickle::Value::Str(n.into())).iter().collect::<Vec<_>>());
        assert_eq!(entries[5].1, pickle::Value::Str("a.*".into()));
        assert_eq!(
            entries[4].1,
            pickle::Value::List(vec![
                pickle::Value::Float(1.5),
                pickle::Value::None,
                pickle::Value::Float(f64::INFINITY)
            ])
        );
        let packed = msgpack(&sample()).unwrap();
        let decoded = rmpv::decode::read_value(&mut &packed[..]).unwrap();
        assert_eq!(decoded[0]["pathExpression"].as_str(), Some("a.b"));
        assert_eq!(decoded[0]["values"][1], rmpv::Value::Nil);
        assert_eq!(decoded[0]["step"].as_i64(), Some(60));
    }
}
