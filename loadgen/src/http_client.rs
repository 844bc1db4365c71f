//! A blocking HTTP/1.1 client that keeps each response's body, for `--verify` and the visibility
//! probe: one keep-alive connection, one request at a time, the body collected up to a bound.
//! The request bytes and the response parser are [`http`](crate::http)'s; the render mode's own
//! client ([`render`](crate::render)) counts bodies instead of keeping them and stays separate so
//! that its measured loop is not touched; it shares [`FetchError`].
//!
//! Failures (connect, write, read, a malformed response, a body over the bound, a request longer
//! than the timeout) drop the connection; the next request opens a new one. A keep-alive
//! connection the server closed while idle (the write fails, or the close comes before any
//! response byte) is reopened and the request sent again once, as HTTP clients do.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{HttpError, ResponseParser};
use crate::render::{make_room, READ_BUF_BYTES};

/// Why a request got no usable response.
#[derive(Debug)]
pub enum FetchError {
    Connect(io::Error),
    Write(io::Error),
    Read(io::Error),
    Protocol(HttpError),
    /// No complete response within the timeout.
    Timeout(Duration),
    /// The body was longer than the bound.
    BodyTooLong(usize),
}

impl FetchError {
    /// The server had closed an idle keep-alive connection: the request never reached it.
    pub(crate) fn is_stale_connection(&self, got_response_bytes: bool) -> bool {
        match self {
            FetchError::Write(_) => true,
            FetchError::Read(err) => {
                use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
                !got_response_bytes && matches!(err.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
            }
            FetchError::Protocol(HttpError::Truncated) => !got_response_bytes,
            FetchError::Connect(_) | FetchError::Protocol(_) | FetchError::Timeout(_) | FetchError::BodyTooLong(_) => {
                false
            }
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect(err) => write!(f, "connect: {err}"),
            FetchError::Write(err) => write!(f, "writing the request: {err}"),
            FetchError::Read(err) => write!(f, "reading the response: {err}"),
            FetchError::Protocol(err) => write!(f, "bad response: {err}"),
            FetchError::Timeout(after) => write!(f, "no complete response within {} s", after.as_secs_f64()),
            FetchError::BodyTooLong(max) => write!(f, "a response body longer than {max} bytes"),
        }
    }
}

impl std::error::Error for FetchError {}

/// One connection (when open), its read buffer and parser.
#[derive(Debug)]
pub struct HttpClient {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`; `start <= end <= buf.len()`.
    start: usize,
    end: usize,
    parser: ResponseParser,
}

impl HttpClient {
    /// A client of `addr` whose requests each take at most about `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> HttpClient {
        HttpClient {
            addr,
            timeout,
            stream: None,
            buf: vec![0; READ_BUF_BYTES],
            start: 0,
            end: 0,
            parser: ResponseParser::default(),
        }
    }

    /// Sends `request` (the complete bytes of one request) and returns the response's status;
    /// its body replaces `body`, at most `body_max` bytes.
    pub fn fetch(&mut self, request: &[u8], body: &mut Vec<u8>, body_max: usize) -> Result<u16, FetchError> {
        let started = Instant::now();
        let reused = self.stream.is_some();
        match self.try_fetch(request, body, body_max, started) {
            Err((err, got_bytes)) if reused && err.is_stale_connection(got_bytes) => {
                self.close();
                self.try_fetch(request, body, body_max, started).map_err(|(err, _)| err)
            }
            result => result.map_err(|(err, _)| err),
        }
    }

    /// One attempt; on failure also says whether any response byte had arrived. The connection
    /// is closed after a failure and after a response that ends it.
    fn try_fetch(
        &mut self,
        request: &[u8],
        body: &mut Vec<u8>,
        body_max: usize,
        started: Instant,
    ) -> Result<u16, (FetchError, bool)> {
        body.clear();
        let result = self.send_and_read(request, body, body_max, started);
        match &result {
            Ok((_, close)) if !close && self.start == self.end => {}
            _ => self.close(),
        }
        result.map(|(status, _)| status)
    }

    /// The status and whether the connection ends after this response.
    fn send_and_read(
        &mut self,
        request: &[u8],
        body: &mut Vec<u8>,
        body_max: usize,
        started: Instant,
    ) -> Result<(u16, bool), (FetchError, bool)> {
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.connect().map_err(|err| (FetchError::Connect(err), false))?,
        };
        let stream = self.stream.insert(stream);
        stream.write_all(request).map_err(|err| (FetchError::Write(err), false))?;
        self.parser.reset();
        let mut got_bytes = false;
        let mut too_long = false;
        loop {
            let mut on_body = |part: &[u8]| {
                if body.len() + part.len() > body_max {
                    too_long = true;
                } else {
                    body.extend_from_slice(part);
                }
            };
            let used = self
                .parser
                .feed(&self.buf[self.start..self.end], &mut on_body)
                .map_err(|err| (FetchError::Protocol(err), true))?;
            self.start += used;
            if too_long {
                return Err((FetchError::BodyTooLong(body_max), true));
            }
            if let Some(response) = self.parser.response() {
                return Ok((response.status, response.close));
            }
            if started.elapsed() >= self.timeout {
                return Err((FetchError::Timeout(self.timeout), got_bytes));
            }
            make_room(&mut self.buf, &mut self.start, &mut self.end);
            let n = match stream.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err((FetchError::Timeout(self.timeout), got_bytes));
                }
                Err(err) => return Err((FetchError::Read(err), got_bytes)),
            };
            if n == 0 {
                // A body that runs until the close has had every byte handed out already.
                let response = self.parser.eof().map_err(|err| (FetchError::Protocol(err), got_bytes))?;
                return Ok((response.status, true));
            }
            got_bytes = true;
            self.end += n;
        }
    }

    fn connect(&mut self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        (self.start, self.end) = (0, 0);
        Ok(stream)
    }

    fn close(&mut self) {
        self.stream = None;
        (self.start, self.end) = (0, 0);
    }
}
