//! Self-instrumentation: per-thread counters and carbon's `carbon.agents.<host>-<instance>.*`
//! self-metrics.
//!
//! Owns: the counter registry (names fixed at start-up, one cache-padded slot per counter per
//! thread) and turning counters and gauges into points once per interval. Leaves out: where the
//! points go (the server pushes them into its own cache, as carbon does) and logging.

mod counters;
mod report;

pub use counters::{CounterId, Registry, ThreadCounters};
pub use report::{agent_prefix, hostname, names, Reporter};
