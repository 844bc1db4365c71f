//! A whisper-like in-memory [`Store`] for the function tests: fixed series at full resolution,
//! cut to a window the way whisper's `fetch` cuts it (retention horizon, `now`, step-aligned
//! bounds), so that functions which fetch again over another window (movingAverage's look-back,
//! timeShift, hitcount) see what they would see on disk. `tests/reference/functions_driver.py`
//! gives graphite-web the same store, so expected values can be checked against it.
//!
//! Paths match exactly or with `*` inside a node (`a.*.c`); nothing else of the glob grammar.

use crate::render::eval::{Ctx, Spent, Store};
use crate::render::grammar::parse;
use crate::render::series::Series;
use crate::render::RenderError;

/// Fixed series, fetched as whisper would with one archive of `retention_s` seconds.
#[derive(Debug, Clone)]
pub(crate) struct TestStore {
    /// The data, each at its own step; timestamps are multiples of the step.
    pub series: Vec<Series>,
    /// How far back from `now` a fetch reaches (whisper's maxRetention).
    pub retention_s: i64,
}

impl TestStore {
    /// A store of `series` with a retention of 100 days.
    pub(crate) fn new(series: Vec<Series>) -> TestStore {
        for s in &series {
            assert_eq!(s.start.rem_euclid(s.step), 0, "{}: the start must be a multiple of the step", s.name);
        }
        TestStore { series, retention_s: 100 * 86_400 }
    }

    /// Evaluates `target` over (from, until] at `now`.
    pub(crate) fn eval(&self, target: &str, from: i64, until: i64, now: i64) -> Result<Vec<Series>, RenderError> {
        let spent = Spent::default();
        let ctx = Ctx::new(self, from, until, now, &spent);
        ctx.eval(&parse(target)?)
    }
}

/// `pattern` matches `name`: same number of nodes, each equal or matched by `*` wildcards.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p_nodes, n_nodes): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), name.split('.').collect());
    p_nodes.len() == n_nodes.len() && p_nodes.iter().zip(&n_nodes).all(|(p, n)| node_matches(p, n))
}

fn node_matches(pattern: &str, node: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == node,
        Some((head, rest)) => {
            let Some(tail) = node.strip_prefix(head) else { return false };
            (0..=tail.len()).filter(|i| tail.is_char_boundary(*i)).any(|i| node_matches(rest, &tail[i..]))
        }
    }
}

impl Store for TestStore {
    fn find_leaves(&self, pattern: &str, limit: usize) -> Result<Vec<String>, RenderError> {
        let mut names: Vec<String> =
            self.series.iter().filter(|s| glob_matches(pattern, &s.name)).map(|s| s.name.clone()).collect();
        names.sort();
        names.truncate(limit);
        Ok(names)
    }

    /// The index's own tag matching over the tagged names among the series.
    fn find_tagged(&self, exprs: &[String], limit: usize) -> Result<Vec<String>, RenderError> {
        let mut tags = crate::index::TagData::default();
        for s in self.series.iter().filter(|s| s.name.contains(';')) {
            tags.insert(std::sync::Arc::from(s.name.as_str()));
        }
        tags.find_series(exprs, limit).map_err(|e| RenderError::bad(e.to_string()))
    }

    /// whisper's fetch: clamp to (now − retention, now], align both bounds up to the next step.
    fn fetch(&self, path: &str, from: i64, until: i64, now: i64) -> Result<Option<Series>, RenderError> {
        let Some(data) = self.series.iter().find(|s| s.name == path) else { return Ok(None) };
        if from > until {
            return Err(RenderError::bad(format!("invalid time interval: from {from} > until {until}")));
        }
        let oldest = now - self.retention_s;
        if from > now || until < oldest {
            return Ok(None);
        }
        let (from, until, step) = (from.max(oldest), until.min(now), data.step);
        let first = from - from.rem_euclid(step) + step;
        let mut last = until - until.rem_euclid(step) + step;
        if first == last {
            last += step;
        }
        let values = (0..(last - first) / step)
            .map(|i| {
                let t = first + i * step;
                let idx = (t - data.start).div_euclid(step);
                if t < data.start || idx >= data.values.len() as i64 {
                    None
                } else {
                    data.values[idx as usize]
                }
            })
            .collect();
        let mut series = data.clone_meta();
        series.start = first;
        series.end = last;
        series.values = values;
        Ok(Some(series))
    }
}

/// graphite-web 1.1.8 itself, through `tests/reference/functions_store_driver.py`, for the
/// `#[ignore]`d differential tests (`cargo test --lib reference_functions -- --ignored`).
pub(crate) struct Reference {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Reference {
    /// Starts the driver; panics with the reason when graphite-web cannot be imported.
    pub(crate) fn start() -> Reference {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/functions_store_driver.py");
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run /usr/bin/python3 {script}: {e}"));
        let input = child.stdin.take().expect("piped stdin");
        let mut output = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut hello = String::new();
        output.read_line(&mut hello).expect("the driver's handshake");
        let hello: serde_json::Value = serde_json::from_str(&hello).unwrap_or_default();
        assert_eq!(hello["ready"], serde_json::Value::Bool(true), "graphite-web driver: {hello}");
        Reference { child, input, output }
    }

    /// graphite-web's answer for `target` over (from, until] at `now` on `store`'s data:
    /// `{"series": [...]}` or `{"error": ...}` (see the driver's documentation).
    pub(crate) fn eval(
        &mut self,
        store: &TestStore,
        target: &str,
        from: i64,
        until: i64,
        now: i64,
    ) -> serde_json::Value {
        use std::io::{BufRead, Write};
        let value = |v: &Option<f64>| match v {
            None => serde_json::Value::Null,
            Some(v) if v.is_finite() => serde_json::json!(v),
            Some(v) => serde_json::json!(crate::pyfmt::py_repr(*v)),
        };
        let series: Vec<serde_json::Value> = store
            .series
            .iter()
            .map(|s| {
                let values: Vec<serde_json::Value> = s.values.iter().map(value).collect();
                serde_json::json!({"name": s.name, "start": s.start, "step": s.step, "values": values})
            })
            .collect();
        let request = serde_json::json!({
            "target": target, "from": from, "until": until, "now": now, "xFilesFactor": 0.0,
            "store": {"retention": store.retention_s, "series": series},
        });
        writeln!(self.input, "{request}").and_then(|()| self.input.flush()).expect("write to the driver");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("read from the driver");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver answer {line:?}: {e}"))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where our result differs from graphite-web's answer (None when they agree): the name, path
/// expression, tags, grid and every datapoint as graphite-web's JSON pairs them; NaN equals
/// NaN. Both failing counts as agreeing.
pub(crate) fn differs(ours: &Result<Vec<Series>, RenderError>, theirs: &serde_json::Value) -> Option<String> {
    let (ours, their_list) = match (ours, theirs["series"].as_array()) {
        (Err(_), None) => return None,
        (Err(e), Some(_)) => return Some(format!("we fail ({e}), graphite-web answers {theirs}")),
        (Ok(list), None) => return Some(format!("graphite-web fails ({theirs}), we answer {list:?}")),
        (Ok(list), Some(t)) => (list, t),
    };
    if ours.len() != their_list.len() {
        return Some(format!("{} series, graphite-web {}: {theirs}", ours.len(), their_list.len()));
    }
    for (o, t) in ours.iter().zip(their_list) {
        let tags: std::collections::BTreeMap<String, String> =
            serde_json::from_value(t["tags"].clone()).unwrap_or_default();
        let datapoints = t["datapoints"].as_array().cloned().unwrap_or_default();
        let value = |p: &serde_json::Value| match &p[0] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => s.parse::<f64>().ok().or(Some(f64::NAN)),
            v => v.as_f64(),
        };
        let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
            (a, b) => a.is_none() && b.is_none(),
        };
        let points_agree = o.values.len() == datapoints.len()
            && o.points().zip(&datapoints).all(|((ts, v), p)| p[1].as_i64() == Some(ts) && same(v, value(p)));
        let checks = [
            ("name", o.name == t["name"].as_str().unwrap_or_default()),
            ("pathExpression", o.path_expression == t["pathExpression"].as_str().unwrap_or_default()),
            ("tags", o.tags == tags),
            ("step", Some(o.step) == t["step"].as_i64()),
            ("consolidationFunc", o.consolidation.name() == t["consolidationFunc"].as_str().unwrap_or_default()),
            ("datapoints", points_agree),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, ok)| !ok) {
            let ours: Vec<(i64, Option<f64>)> = o.points().collect();
            return Some(format!(
                "{what} differ: ours {} {:?} {:?} {ours:?}\ngraphite-web {t}",
                o.name, o.path_expression, o.tags
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_cuts_like_whisper() {
        let store = TestStore::new(vec![Series::new("a.b", 600, 60, (0..10).map(|v| Some(v as f64)).collect())]);
        let got = store.fetch("a.b", 630, 900, 10_000).unwrap().unwrap();
        assert_eq!((got.start, got.end, got.step), (660, 960, 60));
        assert_eq!(got.values, vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)]);
        let early = store.fetch("a.b", 300, 660, 10_000).unwrap().unwrap();
        assert_eq!(early.values, vec![None, None, None, None, Some(0.0), Some(1.0)]);
        assert!(store.fetch("a.b", 20_000, 30_000, 10_000).unwrap().is_none());
        assert!(glob_matches("a.*", "a.b") && glob_matches("*.b*", "x.bc") && !glob_matches("a.*", "a.b.c"));
    }
}
