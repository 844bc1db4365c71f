//! `carbyne-loadgen`: a load generator for Graphite back ends, with its own implementation of the
//! carbon wire protocols. It shares no code with the `carbyne` crate on purpose: two independent
//! readings of the protocol catch each other's bugs, where one shared parser would hide them.
//!
//! What it does now: the carbon plaintext protocol over TCP, a reproducible workload (names from a
//! template, timestamps on a grid, values from a seeded SplitMix64), closed-loop or fixed-rate
//! open-loop sending over several connections, and a report of throughput, the time until the
//! server had read everything ("accepted"), and batch-write latency. And the statsd protocol
//! over UDP: a seeded mix of counters, timers, gauges and sets over a set of keys, packed into
//! datagrams, sent flat out or at a fixed rate from several sockets, with the exact line and
//! datagram counts needed to measure the server's loss, and the send latency per datagram. And
//! Graphite's render API over HTTP/1.1: the `/render` requests Grafana sends, in a closed loop
//! over keep-alive connections, with a latency histogram, requests per second and the responses'
//! statuses and sizes. Carbon plaintext also goes over UDP, and the pickle protocol over TCP; a
//! mixed mode sends plaintext, pickle and statsd at once. Every carbon mode can read what it sent
//! back through the render API (`--verify`: points expected, found, missing, wrong) and time how
//! long points take to become visible there (`--visibility`).
//!
//! Code map, bottom up: [`rng`] and [`decimal`] (pure helpers), [`name`] and [`workload`] (what to
//! send), [`plaintext`] (how it looks on the wire), [`pacer`], [`sender`] and [`run`] (how it is
//! sent: one thread and one socket per connection), [`progress`] and [`report`] (what is said
//! about it), [`cli`] (flags). For statsd: [`statsd`] (lines, key types, datagram packing),
//! [`udp`] (one thread and one socket per sender), [`statsd_report`]. For render: [`http`] (URLs,
//! requests, the streaming response parser: pure), [`render`] (one thread and one connection per
//! client), [`render_report`]. Carbon plaintext over UDP: [`plaintext_udp`] (a sender's
//! datagrams, on [`udp`]'s senders), [`plaintext_udp_report`]. Pickle: [`pickle`] (the frame
//! encoder and a connection's frames, on the TCP senders). Both sides at once: [`mixed`]. Reading
//! back: [`sent`] (what left, as offset ranges), [`sampler`] (which points the probe follows),
//! [`http_client`] (a keep-alive client that keeps bodies), [`render_json`] (render answers),
//! [`verify`], [`visibility`], and [`checks`] (both around a run). `main.rs` only glues these
//! together.

pub mod checks;
pub mod cli;
pub mod decimal;
pub mod http;
pub mod http_client;
pub mod json;
pub mod mixed;
pub mod name;
pub mod pacer;
pub mod pickle;
pub mod plaintext;
pub mod plaintext_udp;
pub mod plaintext_udp_report;
pub mod progress;
pub mod render;
pub mod render_json;
pub mod render_report;
pub mod report;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod sender;
pub mod sent;
pub mod statsd;
pub mod statsd_report;
pub mod udp;
pub mod verify;
pub mod visibility;
pub mod workload;

pub use checks::{CheckReports, Checks};
pub use name::{NameError, NamePattern};
pub use pickle::Framing;
pub use plaintext_udp::PlaintextUdpConfig;
pub use plaintext_udp_report::PlaintextUdpReport;
pub use render::RenderConfig;
pub use render_report::RenderReport;
pub use report::Report;
pub use run::RunConfig;
pub use sent::{Sent, SentPart};
pub use statsd::{StatsdError, StatsdSpec, StatsdWorkload};
pub use statsd_report::StatsdReport;
pub use udp::UdpConfig;
pub use verify::{VerifyConfig, VerifyReport};
pub use visibility::{VisibilityConfig, VisibilityReport};
pub use workload::{ValuePattern, Workload, WorkloadError, WorkloadSpec};
