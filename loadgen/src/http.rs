//! The HTTP/1.1 client side of the render mode, written from RFC 9112 (message syntax) and the
//! HTML form encoding (`application/x-www-form-urlencoded`), not from the `carbyne` crate: base
//! URLs, Graphite `/render` requests as Grafana's Graphite data source sends them, and a
//! streaming response parser. Pure: no I/O, no clock.
//!
//! What it leaves out, because the render mode does not need it: TLS, proxies, redirects,
//! authentication, compression (no `Accept-Encoding` is sent, so servers answer with identity
//! bodies), pipelining (one request in flight per connection), and `HEAD` requests.
//!
//! **Requests.** A render request is a form, `target=E&target=F&from=-24h&until=now&format=json&
//! maxDataPoints=1000`, sent as Grafana sends it: as a `POST` body (`Content-Type:
//! application/x-www-form-urlencoded`), or as the query string of a `GET`.
//!
//! **Responses** are parsed as they arrive ([`ResponseParser::feed`] takes whatever bytes are
//! there and says how many it used), so a body of megabytes is never re-scanned and never held:
//! the parser hands body bytes to a callback. A response that is not complete yet is not an
//! error, only "more bytes needed". The body's end is found as RFC 9112 section 6.3 says:
//! no body for 1xx (skipped: the final response follows), 204 and 304; chunked when the last
//! transfer coding is `chunked`; else `Content-Length`; else everything until the server closes.

use std::fmt;

/// Longest response head (status line and headers) accepted.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;

/// Longest chunk-size line (size, extensions and CRLF) or trailer line accepted.
pub const CHUNK_LINE_BYTES_MAX: usize = 4 * 1024;

/// Most hexadecimal digits in a chunk size: 15 digits fit in a `u64` with room to spare.
const CHUNK_SIZE_DIGITS_MAX: usize = 15;

const _: () = assert!(CHUNK_LINE_BYTES_MAX <= HEAD_BYTES_MAX);

/// An `http://` base URL: where to connect, what to send as `Host`, and the path prefix under
/// which the API lives (graphite-web's URL_PREFIX), without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `host` or `host:port` exactly as written, for the `Host` header.
    pub authority: String,
    /// `host:port` with the default port 80 filled in, for resolving (IPv6 hosts in brackets).
    pub socket_addr: String,
    /// `""` or `/prefix` (never ending in `/`).
    pub path_prefix: String,
}

/// A base URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Only `http://` is spoken.
    Scheme,
    /// No host after `http://`.
    NoHost,
    /// `user:password@` is not supported.
    UserInfo,
    /// The port is not a number from 1 to 65535.
    Port,
    /// A query string or fragment in a base URL.
    QueryOrFragment,
    /// Whitespace or control characters.
    BadCharacter,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "only http:// URLs are supported",
            UrlError::NoHost => "no host after http://",
            UrlError::UserInfo => "user:password@ in the URL is not supported",
            UrlError::Port => "the port must be a number from 1 to 65535",
            UrlError::QueryOrFragment => "a base URL has no query string or fragment",
            UrlError::BadCharacter => "whitespace or control characters in the URL",
        })
    }
}

impl std::error::Error for UrlError {}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]`; `host` may be a name, an IPv4 address or an IPv6
    /// address in brackets.
    pub fn parse(text: &str) -> Result<BaseUrl, UrlError> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter);
        }
        let scheme_len = "http://".len();
        if text.len() < scheme_len || !text[..scheme_len].eq_ignore_ascii_case("http://") {
            return Err(UrlError::Scheme);
        }
        let rest = &text[scheme_len..];
        if rest.contains(['?', '#']) {
            return Err(UrlError::QueryOrFragment);
        }
        let (authority, path) = rest.find('/').map_or((rest, ""), |slash| rest.split_at(slash));
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() || host == "[]" {
            return Err(UrlError::NoHost);
        }
        Ok(BaseUrl {
            authority: authority.to_owned(),
            socket_addr: format!("{host}:{port}"),
            path_prefix: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// `host` and the port (80 when none is written) of an authority.
fn split_host_port(authority: &str) -> Result<(&str, u16), UrlError> {
    // An IPv6 literal is in brackets; a colon after the closing bracket starts the port.
    let host_end = if authority.starts_with('[') { authority.find(']').map_or(authority.len(), |i| i + 1) } else { 0 };
    match authority[host_end..].rfind(':').map(|i| i + host_end) {
        None => Ok((authority, 80)),
        Some(colon) => {
            let port: u16 = authority[colon + 1..].parse().map_err(|_| UrlError::Port)?;
            if port == 0 {
                return Err(UrlError::Port);
            }
            Ok((&authority[..colon], port))
        }
    }
}

/// GET (the form in the query string) or POST (the form as the body, as Grafana sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// The parameters of one Graphite render request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderForm {
    /// Target expressions, one `target=` each, in order; at least one.
    pub targets: Vec<String>,
    /// `from` (`-24h`, epoch seconds, ...); omitted when `None`.
    pub from: Option<String>,
    /// `until`; omitted when `None`.
    pub until: Option<String>,
    /// `format` (`json` as Grafana asks); omitted when `None`.
    pub format: Option<String>,
    /// `maxDataPoints` (Grafana sends the panel's width in pixels); omitted when `None`.
    pub max_data_points: Option<u64>,
}

impl RenderForm {
    /// The form, encoded: `target=...&from=...&until=...&format=...&maxDataPoints=...`, in the
    /// order Grafana writes them.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut pair = |key: &str, value: &str| {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
            push_form_encoded(&mut out, value);
        };
        for target in &self.targets {
            pair("target", target);
        }
        let points = self.max_data_points.map(|n| n.to_string());
        for (key, value) in [("from", &self.from), ("until", &self.until), ("format", &self.format)] {
            if let Some(value) = value {
                pair(key, value);
            }
        }
        if let Some(points) = &points {
            pair("maxDataPoints", points);
        }
        out
    }
}

/// Appends `value` form-encoded: ASCII letters, digits and `*-._` as they are, space as `+`,
/// every other byte of its UTF-8 as `%XX` (the WHATWG URL standard's
/// application/x-www-form-urlencoded serializer).
pub fn push_form_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
}

/// The bytes of one request for `path` (under the URL's prefix) carrying `form`: keep-alive
/// (HTTP/1.1's default), no compression asked for.
pub fn build_request(method: Method, url: &BaseUrl, path: &str, form: &str) -> Vec<u8> {
    let ua = concat!("carbyne-loadgen/", env!("CARGO_PKG_VERSION"));
    let prefix = &url.path_prefix;
    let host = &url.authority;
    let text = match method {
        Method::Get => {
            let sep = if form.is_empty() { "" } else { "?" };
            format!("GET {prefix}{path}{sep}{form} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\r\n")
        }
        Method::Post => format!(
            "POST {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    };
    text.into_bytes()
}

/// A response that cannot be parsed: the connection is no longer usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head is longer than [`HEAD_BYTES_MAX`].
    HeadTooLong,
    /// Not `HTTP/1.x NNN ...`.
    BadStatusLine,
    /// A header line without a colon, or with a bad name.
    BadHeader,
    /// A `Content-Length` that is not a number, or two that differ.
    BadContentLength,
    /// A chunk-size line that is not hexadecimal, or data not followed by CRLF.
    BadChunk,
    /// A chunk-size or trailer line longer than [`CHUNK_LINE_BYTES_MAX`].
    ChunkLineTooLong,
    /// The server closed before the response was complete.
    Truncated,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::HeadTooLong => "response head longer than 64 KiB",
            HttpError::BadStatusLine => "malformed status line",
            HttpError::BadHeader => "malformed header line",
            HttpError::BadContentLength => "malformed or conflicting Content-Length",
            HttpError::BadChunk => "malformed chunk",
            HttpError::ChunkLineTooLong => "chunk-size or trailer line longer than 4 KiB",
            HttpError::Truncated => "the server closed the connection before the response was complete",
        })
    }
}

impl std::error::Error for HttpError {}

/// What a complete response was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Status code of the final (non-1xx) response.
    pub status: u16,
    /// Body bytes, after removing the chunked framing.
    pub body_bytes: u64,
    /// Every byte the response took on the wire, 1xx heads and framing included.
    pub wire_bytes: u64,
    /// The server will close the connection (or has): it cannot carry another request.
    pub close: bool,
}

/// Where the parser is in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete head.
    Head,
    /// `remaining` body bytes to go (Content-Length).
    Fixed { remaining: u64 },
    /// Waiting for a complete chunk-size line.
    ChunkSize,
    /// `remaining` bytes of the current chunk to go.
    ChunkData { remaining: u64 },
    /// Waiting for the CRLF after a chunk's data.
    ChunkEnd,
    /// Waiting for trailer lines, up to the empty line.
    Trailer,
    /// The body runs until the server closes.
    UntilClose,
    /// The response is complete.
    Done,
}

/// Parses one response at a time from the bytes a connection reads; [`reset`](Self::reset)
/// makes it ready for the next.
#[derive(Debug, Clone)]
pub struct ResponseParser {
    state: State,
    /// Status of the final response; 0 until its head is parsed.
    status: u16,
    /// Body bytes handed out so far.
    body_bytes: u64,
    /// Bytes consumed so far, over every call to `feed` for this response.
    wire_bytes: u64,
    /// The connection will not carry another request.
    close: bool,
}

impl Default for ResponseParser {
    fn default() -> ResponseParser {
        ResponseParser { state: State::Head, status: 0, body_bytes: 0, wire_bytes: 0, close: false }
    }
}

impl ResponseParser {
    /// Ready for a new response.
    pub fn reset(&mut self) {
        *self = ResponseParser::default();
    }

    /// The response, once it is complete.
    pub fn response(&self) -> Option<Response> {
        (self.state == State::Done).then_some(Response {
            status: self.status,
            body_bytes: self.body_bytes,
            wire_bytes: self.wire_bytes,
            close: self.close,
        })
    }

    /// Consumes a prefix of `input` and returns its length, handing body bytes to `on_body`.
    /// Consuming less than all of `input` means either that the response is complete (the rest
    /// belongs to whatever follows) or that the next element (a head, a chunk-size line) is not
    /// complete yet: the caller keeps the unconsumed bytes, reads more after them and calls
    /// again.
    pub fn feed(&mut self, input: &[u8], mut on_body: impl FnMut(&[u8])) -> Result<usize, HttpError> {
        let mut used = 0;
        loop {
            let step = self.step(&input[used..], &mut on_body)?;
            used += step;
            if step == 0 || self.state == State::Done {
                self.wire_bytes += used as u64;
                return Ok(used);
            }
        }
    }

    /// The server closed the connection: completes a body that runs until the close, else
    /// says the response was cut short.
    pub fn eof(&mut self) -> Result<Response, HttpError> {
        if self.state == State::UntilClose {
            self.state = State::Done;
        }
        self.response().ok_or(HttpError::Truncated)
    }

    /// One element of the response from the start of `input`; the bytes it used (0: more are
    /// needed, or the response is done).
    fn step(&mut self, input: &[u8], on_body: &mut impl FnMut(&[u8])) -> Result<usize, HttpError> {
        match self.state {
            State::Head => self.head(input),
            State::Fixed { remaining } => {
                let n = body_part(input, remaining, on_body);
                self.body_bytes += n as u64;
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 { State::Done } else { State::Fixed { remaining } };
                Ok(n)
            }
            State::ChunkSize => {
                let Some((line, used)) = line(input, CHUNK_LINE_BYTES_MAX)? else { return Ok(0) };
                let size = chunk_size(line)?;
                self.state = if size == 0 { State::Trailer } else { State::ChunkData { remaining: size } };
                Ok(used)
            }
            State::ChunkData { remaining } => {
                let n = body_part(input, remaining, on_body);
                self.body_bytes += n as u64;
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 { State::ChunkEnd } else { State::ChunkData { remaining } };
                Ok(n)
            }
            State::ChunkEnd => match input {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Ok(2)
                }
                [] | [b'\r'] => Ok(0),
                _ => Err(HttpError::BadChunk),
            },
            State::Trailer => {
                let Some((line, used)) = line(input, CHUNK_LINE_BYTES_MAX)? else { return Ok(0) };
                if line.is_empty() {
                    self.state = State::Done;
                }
                Ok(used)
            }
            State::UntilClose => {
                on_body(input);
                self.body_bytes += input.len() as u64;
                Ok(input.len())
            }
            State::Done => Ok(0),
        }
    }

    /// Parses a complete head at the start of `input`, if there is one, and decides how the body
    /// ends.
    fn head(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        let window = &input[..input.len().min(HEAD_BYTES_MAX)];
        let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if window.len() >= HEAD_BYTES_MAX { Err(HttpError::HeadTooLong) } else { Ok(0) };
        };
        let head = parse_head(&input[..end])?;
        let used = end + 4;
        if (100..200).contains(&head.status) {
            // An interim response (100 Continue, 103 Early Hints): the final one follows.
            return Ok(used);
        }
        self.status = head.status;
        self.close = head.close;
        self.state = if head.status == 204 || head.status == 304 {
            State::Done
        } else if head.chunked {
            State::ChunkSize
        } else if let Some(0) = head.content_length {
            State::Done
        } else if let Some(n) = head.content_length {
            State::Fixed { remaining: n }
        } else {
            self.close = true;
            State::UntilClose
        };
        Ok(used)
    }
}

/// Hands `min(remaining, input.len())` bytes to `on_body`; returns how many.
fn body_part(input: &[u8], remaining: u64, on_body: &mut impl FnMut(&[u8])) -> usize {
    let n = input.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
    if n > 0 {
        on_body(&input[..n]);
    }
    n
}

/// A CRLF-terminated line at the start of `input` (without its CRLF) and the bytes it takes;
/// `None` if it is not complete yet.
fn line(input: &[u8], max_bytes: usize) -> Result<Option<(&[u8], usize)>, HttpError> {
    let window = &input[..input.len().min(max_bytes)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&input[..end], end + 2))),
        None if window.len() >= max_bytes => Err(HttpError::ChunkLineTooLong),
        None => Ok(None),
    }
}

/// The size on a chunk-size line: hexadecimal digits, then optional whitespace and extensions.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let n_digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if n_digits == 0 || n_digits > CHUNK_SIZE_DIGITS_MAX {
        return Err(HttpError::BadChunk);
    }
    let rest = &line[n_digits..];
    if !rest.is_empty() && !matches!(rest[0], b';' | b' ' | b'\t') {
        return Err(HttpError::BadChunk);
    }
    let digits = std::str::from_utf8(&line[..n_digits]).map_err(|_| HttpError::BadChunk)?;
    u64::from_str_radix(digits, 16).map_err(|_| HttpError::BadChunk)
}

/// What the body framing needs from a head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    /// The last transfer coding is `chunked`.
    chunked: bool,
    /// The connection ends after this response.
    close: bool,
}

/// Parses a head (without its final empty line).
fn parse_head(head: &[u8]) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::BadHeader)?;
    let mut lines = text.split("\r\n");
    let (minor, status) = status_line(lines.next().unwrap_or(""))?;
    // HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 keeps alive unless told it closes.
    let mut close = minor == 0;
    let (mut content_length, mut transfer_encoding) = (None, None);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HttpError::BadHeader)?;
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Err(HttpError::BadHeader);
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| HttpError::BadContentLength)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HttpError::BadContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                    close = false;
                }
            }
        }
    }
    // With Transfer-Encoding, Content-Length is ignored; a last coding other than chunked means
    // the body runs until the close (RFC 9112 section 6.3, items 3 and 4).
    let chunked = transfer_encoding
        .is_some_and(|te| te.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked")));
    let content_length = if transfer_encoding.is_some() { None } else { content_length };
    Ok(Head { status, content_length, chunked, close })
}

/// `HTTP/1.x NNN reason`: the minor version and the status.
fn status_line(line: &str) -> Result<(u8, u16), HttpError> {
    let rest = line.strip_prefix("HTTP/1.").ok_or(HttpError::BadStatusLine)?;
    let minor = match rest.as_bytes().first() {
        Some(b'0') => 0,
        Some(b'1') => 1,
        _ => return Err(HttpError::BadStatusLine),
    };
    let code = rest[1..].strip_prefix(' ').ok_or(HttpError::BadStatusLine)?;
    let digits = code.get(..3).ok_or(HttpError::BadStatusLine)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(code.as_bytes().get(3), None | Some(b' ')) {
        return Err(HttpError::BadStatusLine);
    }
    let status: u16 = digits.parse().map_err(|_| HttpError::BadStatusLine)?;
    if !(100..=599).contains(&status) {
        return Err(HttpError::BadStatusLine);
    }
    Ok((minor, status))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What parsing a whole input gives: the response, its body and the bytes left over, or the
    /// error.
    type Outcome = Result<(Response, Vec<u8>, usize), HttpError>;

    /// Feeds `chunks` one after another as a connection would (keeping unconsumed bytes and
    /// appending the next read), then the close if `eof`.
    fn parse_in(chunks: &[&[u8]], eof: bool) -> Outcome {
        let mut parser = ResponseParser::default();
        let (mut pending, mut body) = (Vec::new(), Vec::new());
        for (idx, chunk) in chunks.iter().enumerate() {
            pending.extend_from_slice(chunk);
            let used = parser.feed(&pending, |b| body.extend_from_slice(b))?;
            pending.drain(..used);
            if let Some(response) = parser.response() {
                let later: usize = chunks[idx + 1..].iter().map(|c| c.len()).sum();
                return Ok((response, body, pending.len() + later));
            }
        }
        if eof {
            return parser.eof().map(|response| (response, body, pending.len()));
        }
        Err(HttpError::Truncated)
    }

    /// Parses `input` whole, then split in two at every byte offset, and checks every way gives
    /// `expected`.
    fn check(input: &[u8], eof: bool, expected: Outcome) {
        assert_eq!(parse_in(&[input], eof), expected, "whole input {:?}", String::from_utf8_lossy(input));
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(parse_in(&[a, b], eof), expected, "split at {split}");
        }
    }

    fn ok(status: u16, body: &str, wire_bytes: usize, close: bool, left: usize) -> Outcome {
        let response = Response { status, body_bytes: body.len() as u64, wire_bytes: wire_bytes as u64, close };
        Ok((response, body.as_bytes().to_vec(), left))
    }

    #[test]
    fn content_length_bodies() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n[1,2]";
        check(r, false, ok(200, "[1,2]", r.len(), false, 0));
        // Bytes after the body are left for whatever follows.
        let mut two = r.to_vec();
        two.extend_from_slice(b"HTTP/1.1 200");
        check(&two, false, ok(200, "[1,2]", r.len(), false, 12));
        // Empty bodies, header case and spacing, a repeated identical length.
        let r = b"HTTP/1.1 400 Bad Request\r\ncontent-LENGTH:0\r\n\r\n";
        check(r, false, ok(400, "", r.len(), false, 0));
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        check(r, false, ok(200, "ab", r.len(), false, 0));
    }

    #[test]
    fn chunked_bodies() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1,2\r\na;ext=1\r\n,3,4,5,6,7\r\n1 \r\n]\r\n0\r\n\r\n";
        check(r, false, ok(200, "[1,2,3,4,5,6,7]", r.len(), false, 0));
        // Trailers, upper-case hex, Content-Length ignored beside Transfer-Encoding.
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
        check(r, false, ok(200, "0123456789", r.len(), false, 0));
    }

    #[test]
    fn bodies_until_close() {
        // No length at all, or a last coding that is not chunked: the body ends at the close.
        let r = b"HTTP/1.1 200 OK\r\n\r\nhello";
        check(r, true, ok(200, "hello", r.len(), true, 0));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxy";
        check(r, true, ok(200, "xy", r.len(), true, 0));
        check(b"HTTP/1.1 200 OK\r\n\r\nhello", false, Err(HttpError::Truncated));
    }

    #[test]
    fn connection_close_and_versions() {
        let r = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx";
        check(r, false, ok(200, "x", r.len(), true, 0));
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
        check(r, false, ok(200, "x", r.len(), true, 0));
        let r = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx";
        check(r, false, ok(200, "x", r.len(), false, 0));
        let r = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nx";
        check(r, false, ok(200, "x", r.len(), true, 0));
    }

    #[test]
    fn statuses_without_a_body_and_interim_responses() {
        let r = b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n";
        check(r, false, ok(204, "", r.len(), false, 0));
        let r = b"HTTP/1.1 304 Not Modified\r\n\r\n";
        check(r, false, ok(304, "", r.len(), false, 0));
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nbad";
        check(r, false, ok(503, "bad", r.len(), false, 0));
    }

    #[test]
    fn malformed_responses() {
        for (input, err) in [
            (&b"HTTP/2 200 OK\r\n\r\n"[..], HttpError::BadStatusLine),
            (b"HTTP/1.1 20 OK\r\n\r\n", HttpError::BadStatusLine),
            (b"HTTP/1.1 2000 OK\r\n\r\n", HttpError::BadStatusLine),
            (b"HTTP/1.1 099 X\r\n\r\n", HttpError::BadStatusLine),
            (b"SSH-2.0-OpenSSH\r\n\r\n", HttpError::BadStatusLine),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", HttpError::BadHeader),
            (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", HttpError::BadHeader),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HttpError::BadContentLength),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HttpError::BadContentLength),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpError::BadChunk),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1x\r\n", HttpError::BadChunk),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", HttpError::BadChunk),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", HttpError::BadChunk),
        ] {
            check(input, false, Err(err));
        }
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; HEAD_BYTES_MAX]].concat();
        assert_eq!(parse_in(&[&long], false), Err(HttpError::HeadTooLong));
        let long_chunk =
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".as_slice(), &[b'e'; 5000]].concat();
        assert_eq!(parse_in(&[&long_chunk], false), Err(HttpError::ChunkLineTooLong));
        // A close inside a chunked or fixed-length body, or inside the head, is a truncation.
        check(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, Err(HttpError::Truncated));
        check(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", true, Err(HttpError::Truncated));
        check(b"HTTP/1.1 200 OK\r\nContent-", true, Err(HttpError::Truncated));
    }

    #[test]
    fn a_parser_is_reused_after_reset() {
        let mut parser = ResponseParser::default();
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(parser.feed(r, |_| {}), Ok(r.len()));
        assert_eq!(parser.response().map(|r| r.status), Some(200));
        // A complete response takes no more bytes until reset.
        assert_eq!(parser.feed(b"HTTP/1.1 404", |_| {}), Ok(0));
        parser.reset();
        let r = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parser.feed(r, |_| {}), Ok(r.len()));
        let want = Response { status: 404, body_bytes: 0, wire_bytes: r.len() as u64, close: false };
        assert_eq!(parser.response(), Some(want));
    }

    #[test]
    fn base_urls() {
        let url = |prefix: &str, authority: &str, addr: &str| BaseUrl {
            authority: authority.to_owned(),
            socket_addr: addr.to_owned(),
            path_prefix: prefix.to_owned(),
        };
        assert_eq!(BaseUrl::parse("http://127.0.0.1:8080"), Ok(url("", "127.0.0.1:8080", "127.0.0.1:8080")));
        assert_eq!(BaseUrl::parse("HTTP://graphite/"), Ok(url("", "graphite", "graphite:80")));
        assert_eq!(BaseUrl::parse("http://g:81/graphite/"), Ok(url("/graphite", "g:81", "g:81")));
        assert_eq!(BaseUrl::parse("http://[::1]:8080/a/b"), Ok(url("/a/b", "[::1]:8080", "[::1]:8080")));
        assert_eq!(BaseUrl::parse("http://[::1]"), Ok(url("", "[::1]", "[::1]:80")));
        for (bad, err) in [
            ("https://g", UrlError::Scheme),
            ("g:80", UrlError::Scheme),
            ("http://", UrlError::NoHost),
            ("http://:80", UrlError::NoHost),
            ("http://u:p@g", UrlError::UserInfo),
            ("http://g:0", UrlError::Port),
            ("http://g:65536", UrlError::Port),
            ("http://g:x", UrlError::Port),
            ("http://g/render?target=a", UrlError::QueryOrFragment),
            ("http://g /x", UrlError::BadCharacter),
        ] {
            assert_eq!(BaseUrl::parse(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn form_encoding() {
        let mut out = String::new();
        push_form_encoded(&mut out, "aliasByNode(perSecond(bench.app*.requests),1) x/é~");
        assert_eq!(out, "aliasByNode%28perSecond%28bench.app*.requests%29%2C1%29+x%2F%C3%A9%7E");
        let form = RenderForm {
            targets: vec!["sumSeries(a.*)".to_owned(), "b.{c,d}".to_owned()],
            from: Some("-24h".to_owned()),
            until: Some("now".to_owned()),
            format: Some("json".to_owned()),
            max_data_points: Some(1000),
        };
        let want = "target=sumSeries%28a.*%29&target=b.%7Bc%2Cd%7D&from=-24h&until=now&format=json&maxDataPoints=1000";
        assert_eq!(form.encode(), want);
        let bare =
            RenderForm { targets: vec!["a".to_owned()], from: None, until: None, format: None, max_data_points: None };
        assert_eq!(bare.encode(), "target=a");
    }

    #[test]
    fn requests() {
        let url = BaseUrl::parse("http://127.0.0.1:8080/graphite").unwrap();
        let ua = concat!("carbyne-loadgen/", env!("CARGO_PKG_VERSION"));
        let post = String::from_utf8(build_request(Method::Post, &url, "/render", "target=a&format=json")).unwrap();
        let want = format!(
            "POST /graphite/render HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\ntarget=a&format=json"
        );
        assert_eq!(post, want);
        let get = String::from_utf8(build_request(Method::Get, &url, "/render", "target=a")).unwrap();
        let want = format!(
            "GET /graphite/render?target=a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\r\n"
        );
        assert_eq!(get, want);
    }
}
