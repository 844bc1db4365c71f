//! One carbonlink connection, on a thread of its own: a frame in, its reply out, strictly
//! alternating, for as long as the peer keeps the connection (graphite-web pools them).
//!
//! A frame is a 4-byte big-endian length and that many bytes of pickle. The connection ends
//! when the peer closes it between frames, when it stays idle past
//! [`Settings::idle_timeout`], when the server stops (the listener shuts the socket down), or
//! when a frame is refused; a refusal is counted under `carbonlink.rejected.<reason>`, logged
//! at a bounded rate, and closes only this connection. Refused: a length above
//! [`Settings::frame_bytes_max`] (the body is never read), a frame not complete within
//! [`Settings::frame_timeout`] of its first byte, a peer that closes inside a frame, a body the
//! restricted unpickler refuses, and a request that is not a dict.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Instant;

use super::listener::Shared;
use super::request::Kind;
use super::Settings;
use crate::protocol::unpickle::{loads, UnpickleError};
use crate::render::format::pickle::{dumps, Value as Reply};
use crate::telemetry::ThreadCounters;

/// A body grows by at most this much per read, so that a length the peer does not back with
/// bytes costs little memory.
const BODY_STEP_BYTES: usize = 64 << 10;
/// A body buffer larger than this is given back between frames (a pooled, idle connection
/// keeps little).
const BODY_KEEP_BYTES: usize = 64 << 10;

/// Why we closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The length prefix is above the frame bound.
    TooLarge,
    /// The frame did not arrive whole within the frame timeout.
    Timeout,
    /// The peer closed the connection inside a frame.
    Incomplete,
    /// The request is not a dict.
    NotADict,
    /// The body is not a pickle the restricted unpickler reads.
    Unpickle(UnpickleError),
}

impl Refusal {
    /// The reason, as in `carbonlink.rejected.<reason>`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Timeout => "read_timeout",
            Refusal::Incomplete => "incomplete_frame",
            Refusal::NotADict => "not_a_dict",
            Refusal::Unpickle(e) => e.as_str(),
        }
    }
}

/// How reading a frame ended, when it did not give a frame.
enum End {
    /// The peer closed between frames, the connection was idle too long, or the socket failed
    /// (the server's shutdown among those): nothing to count.
    Quiet,
    /// The peer broke the protocol.
    Refused(Refusal),
}

/// Serves `stream` until it ends (see the module documentation), then shuts it down: the
/// listener holds a second descriptor of the socket (to end it at stop), so dropping ours
/// would not close the connection.
pub(crate) fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared, counters: &ThreadCounters) {
    serve_until_end(&stream, peer, shared, counters);
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_until_end(stream: &TcpStream, peer: SocketAddr, shared: &Shared, counters: &ThreadCounters) {
    // Replies are written whole; a peer that stops reading is dropped after the write timeout.
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| socket2::SockRef::from(stream).set_keepalive(true))
        .and_then(|()| stream.set_write_timeout(Some(shared.settings.write_timeout)));
    if setup.is_err() {
        return;
    }
    let mut body = Vec::new();
    loop {
        match read_frame(stream, &shared.settings, &mut body) {
            Ok(()) => {}
            Err(End::Quiet) => return,
            Err(End::Refused(refusal)) => return shared.refuse(counters, peer, refusal),
        }
        let value = match loads(&body, &shared.unpickle) {
            Ok(v) => v,
            Err(e) => return shared.refuse(counters, peer, Refusal::Unpickle(e)),
        };
        let Ok(answer) = shared.handler.answer(&value) else {
            return shared.refuse(counters, peer, Refusal::NotADict);
        };
        count(shared, counters, answer.kind, answer.is_error, answer.cache_unanswered);
        if write_reply(stream, &answer.reply).is_err() {
            return;
        }
        if body.capacity() > BODY_KEEP_BYTES {
            body = Vec::new();
        }
    }
}

fn count(shared: &Shared, counters: &ThreadCounters, kind: Kind, is_error: bool, cache_unanswered: bool) {
    let ids = &shared.ids;
    counters.incr(ids.requests);
    match kind {
        Kind::CacheQuery => counters.incr(ids.cache_queries),
        Kind::BulkQuery => counters.incr(ids.bulk_queries),
        _ => {}
    }
    if is_error {
        counters.incr(ids.errors);
    }
    if cache_unanswered {
        counters.incr(ids.cache_timeouts);
    }
}

/// Reads one frame's body into `body`: the first byte may take up to the idle timeout, the
/// rest of the frame must follow within the frame timeout.
fn read_frame(stream: &TcpStream, settings: &Settings, body: &mut Vec<u8>) -> Result<(), End> {
    let mut prefix = [0u8; 4];
    stream.set_read_timeout(Some(settings.idle_timeout)).map_err(|_| End::Quiet)?;
    loop {
        match (&*stream).read(&mut prefix[..1]) {
            Ok(0) => return Err(End::Quiet),
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Idle past the timeout, or the socket failed: close without counting.
            Err(_) => return Err(End::Quiet),
        }
    }
    let deadline = Instant::now() + settings.frame_timeout;
    read_exact_by(stream, &mut prefix[1..], deadline)?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > settings.frame_bytes_max {
        return Err(End::Refused(Refusal::TooLarge));
    }
    body.clear();
    while body.len() < len {
        let got = body.len();
        body.resize(len.min(got + BODY_STEP_BYTES), 0);
        read_exact_by(stream, &mut body[got..], deadline)?;
    }
    Ok(())
}

/// Fills `buf` from `stream` before `deadline`.
fn read_exact_by(stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), End> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(End::Refused(Refusal::Timeout));
        }
        stream.set_read_timeout(Some(left)).map_err(|_| End::Quiet)?;
        match (&*stream).read(&mut buf[got..]) {
            Ok(0) => return Err(End::Refused(Refusal::Incomplete)),
            Ok(n) => got += n,
            // The deadline is checked at the top of the loop.
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Err(End::Quiet),
        }
    }
    Ok(())
}

/// Writes `reply` pickled with protocol 2 behind its length, in one write. A reply too long
/// for the length prefix becomes an error reply.
fn write_reply(mut stream: &TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut body = dumps(reply);
    if u32::try_from(body.len()).is_err() {
        let text = format!("reply of {} bytes is too large for a frame", body.len());
        body = dumps(&Reply::Dict(vec![(Reply::Str("error".into()), Reply::Str(text))]));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame)
}
