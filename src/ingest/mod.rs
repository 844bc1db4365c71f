//! The receivers: carbon plaintext (TCP and UDP) and pickle (TCP) on every ingest thread.
//!
//! Owns: sockets, per-connection buffers and line/frame carry-over, flow control (stop reading
//! TCP while the cache is full). Leaves out: parsing rules (protocol), holding points (cache).
//! Never touches a cache shard or a file directly: points go through the hand-off.
//!
//! Two backends with the same behaviour, one thread each per ingest core: [`run_uring`]
//! (io_uring: multishot accept/recv/recvmsg into provided buffer rings) where [`probe()`] says
//! it can run, and [`run`] (epoll, through mio) everywhere else.

mod batching;
mod decode;
mod event_loop;
mod filter;
mod points;
mod sink;
mod sockets;
mod spread;
mod uring;

pub use decode::{named_point, Decoder, DecoderKind, Limits, Output};
pub use event_loop::{run, Listeners, Shared};
pub use filter::{FilterHandle, MetricFilter, SharedFilter, Verdict};
pub use points::{normalize_timestamp, offer, receiver_counters, OnRefused, PointCounters};
pub use sink::{CacheSink, PointSink, Refused, VecSink};
pub use sockets::{bind_tcp, bind_tcp_group, bind_udp, bind_udp_group, resolve, KernelDrops, LISTEN_BACKLOG};
pub use spread::{Handed, Spread, SpreadHandle};
pub use uring::{probe, run_uring, Unavailable, RING_BUF_GROUPS, RING_CQ_ENTRIES, RING_SQ_ENTRIES};
