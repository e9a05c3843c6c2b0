//! A blocking HTTP/1.1 client over one keep-alive `TcpStream`, with a
//! deadline on every request, and the response parser and error mapping
//! that it shares with the event-loop client in [`crate::longpoll`].

use std::{
    fmt::{self, Write as _},
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use crate::target::Target;

/// Maximum size of a response's status line and headers.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Maximum size of a response body. Responses to sends and joins are a few
/// hundred bytes, but an initial `/sync` over many rooms can reach megabytes.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Maximum length of a chunk-size line, extensions included.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// Whether the server lets the connection be reused for another request.
    pub keep_alive: bool,
}

/// Result of parsing the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A response, and the number of bytes of the buffer it took.
    Complete { response: Response, consumed: usize },
}

/// Rule that marks the end of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Status line and the headers the client acts on.
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// Parses one response from the start of `buffer`. `at_eof` is true once the
/// server has closed the connection, which ends a body that has neither a
/// length nor chunked coding. Interim 1xx responses are skipped.
pub fn parse_response(buffer: &[u8], at_eof: bool) -> Result<Parsed, String> {
    let mut offset = 0;
    loop {
        let rest = &buffer[offset..];
        let Some(head_len) = find(rest, b"\r\n\r\n").map(|at| at + 4) else {
            if rest.len() > MAX_HEAD_BYTES {
                return Err(format!("response head exceeds {MAX_HEAD_BYTES} bytes"));
            }
            return Ok(Parsed::Incomplete);
        };
        let head = parse_head(&rest[..head_len])?;
        let body_start = offset + head_len;
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return Err("unexpected 101 Switching Protocols".to_owned());
            }
            offset = body_start;
            continue;
        }
        return parse_body(buffer, body_start, &head, at_eof);
    }
}

fn parse_body(
    buffer: &[u8],
    body_start: usize,
    head: &Head,
    at_eof: bool,
) -> Result<Parsed, String> {
    let body = &buffer[body_start..];
    let complete = |body: Vec<u8>, consumed: usize, keep_alive: bool| Parsed::Complete {
        response: Response {
            status: head.status,
            body,
            keep_alive,
        },
        consumed,
    };
    match head.framing {
        Framing::Empty => Ok(complete(Vec::new(), body_start, head.keep_alive)),
        Framing::Length(length) if length > MAX_BODY_BYTES => Err(format!(
            "Content-Length {length} exceeds {MAX_BODY_BYTES} bytes"
        )),
        Framing::Length(length) if body.len() >= length => Ok(complete(
            body[..length].to_vec(),
            body_start + length,
            head.keep_alive,
        )),
        Framing::Chunked => match decode_chunked(body)? {
            Some((decoded, used)) => Ok(complete(decoded, body_start + used, head.keep_alive)),
            None => Ok(Parsed::Incomplete),
        },
        Framing::UntilClose if body.len() > MAX_BODY_BYTES => {
            Err(format!("response body exceeds {MAX_BODY_BYTES} bytes"))
        }
        Framing::UntilClose if at_eof => Ok(complete(body.to_vec(), buffer.len(), false)),
        Framing::Length(_) | Framing::UntilClose => Ok(Parsed::Incomplete),
    }
}

/// Parses the status line and headers. `head` ends with the blank line.
fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text =
        std::str::from_utf8(head).map_err(|_| "response head is not valid UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (version, status) = parse_status_line(status_line)?;

    let mut content_length = None;
    let mut transfer_encoding: Option<String> = None;
    let mut close = version == "HTTP/1.0";
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("invalid header line {line:?}"))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(format!("invalid header name {name:?}"));
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<usize>()
                .map_err(|_| format!("invalid Content-Length {value:?}"))?;
            if content_length.is_some_and(|previous| previous != length) {
                return Err("conflicting Content-Length headers".to_owned());
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = Some(value.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }

    let framing = if matches!(status, 100..=199 | 204 | 304) {
        Framing::Empty
    } else if let Some(codings) = transfer_encoding {
        // Transfer-Encoding overrides Content-Length. Without a final
        // `chunked` coding, the body runs to the end of the connection.
        if codings.rsplit(',').next().map(str::trim) == Some("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        content_length.map_or(Framing::UntilClose, Framing::Length)
    };
    let keep_alive = !close && framing != Framing::UntilClose;
    Ok(Head {
        status,
        framing,
        keep_alive,
    })
}

fn parse_status_line(line: &str) -> Result<(&str, u16), String> {
    let invalid = || format!("invalid status line {line:?}");
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(invalid());
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let status = code.parse::<u16>().map_err(|_| invalid())?;
    if status < 100 {
        return Err(invalid());
    }
    Ok((version, status))
}

/// Decodes a chunked body from the start of `input`. Returns the body and the
/// bytes used, trailers included, or `None` when more input is needed.
fn decode_chunked(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_len) = find(&input[at..], b"\r\n") else {
            if input.len() - at > MAX_CHUNK_LINE_BYTES {
                return Err("chunk-size line is too long".to_owned());
            }
            return Ok(None);
        };
        let size = parse_chunk_size(&input[at..at + line_len])?;
        at += line_len + 2;

        if size == 0 {
            return Ok(skip_trailers(input, at).map(|end| (body, end)));
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(format!("chunked body exceeds {MAX_BODY_BYTES} bytes"));
        }
        if input.len() < at + size + 2 {
            return Ok(None);
        }
        if &input[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data is not followed by CRLF".to_owned());
        }
        body.extend_from_slice(&input[at..at + size]);
        at += size + 2;
    }
}

/// Parses the hexadecimal size of a chunk-size line, ignoring extensions.
fn parse_chunk_size(line: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(line).unwrap_or_default();
    let digits = text.split(';').next().unwrap_or_default().trim();
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid chunk size {:?}",
            String::from_utf8_lossy(line)
        ));
    }
    usize::from_str_radix(digits, 16)
        .map_err(|error| format!("invalid chunk size {digits:?}: {error}"))
}

/// Returns the offset after the trailer section that starts at `at`, or
/// `None` when it has not fully arrived.
fn skip_trailers(input: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let line_len = find(&input[at..], b"\r\n")?;
        at += line_len + 2;
        if line_len == 0 {
            return Some(at);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Failure of one HTTP exchange.
#[derive(Debug)]
pub enum HttpError {
    Connect {
        addr: SocketAddr,
        source: io::Error,
    },
    /// The request did not complete within its deadline; the duration is
    /// the time that it was given.
    TimedOut(Duration),
    /// The server closed the connection before sending any response byte.
    ClosedBeforeResponse,
    Io(io::Error),
    InvalidResponse(String),
}

impl HttpError {
    /// Short, stable name of the failure kind, used to count errors.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect failed",
            Self::TimedOut(_) => "timed out",
            Self::ClosedBeforeResponse => "connection closed",
            Self::Io(_) => "I/O error",
            Self::InvalidResponse(_) => "invalid response",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { addr, source } => write!(f, "failed to connect to {addr}: {source}"),
            Self::TimedOut(timeout) => {
                write!(f, "request timed out after {} ms", timeout.as_millis())
            }
            Self::ClosedBeforeResponse => {
                f.write_str("server closed the connection before responding")
            }
            Self::Io(error) => write!(f, "I/O error: {error}"),
            Self::InvalidResponse(reason) => write!(f, "invalid HTTP response: {reason}"),
        }
    }
}

/// Encodes a request with a JSON body and, when given, a bearer token.
pub fn encode_request(
    method: &str,
    host: &str,
    path: &str,
    access_token: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    let _ = write!(
        head,
        "User-Agent: eltrix-loadtest/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    head.push_str("Accept: application/json\r\n");
    if let Some(token) = access_token {
        head.push_str("Authorization: Bearer ");
        head.push_str(token);
        head.push_str("\r\n");
    }
    // A GET has no content, so it gets no content headers (RFC 9110, 8.6).
    if !(body.is_empty() && method == "GET") {
        head.push_str("Content-Type: application/json\r\n");
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// One keep-alive connection to the target, opened on first use and opened
/// again after the server closes it or a request fails.
pub struct Connection {
    target: Target,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            stream: None,
            buffer: Vec::new(),
        }
    }

    /// Sends one request and reads its response, failing with
    /// [`HttpError::TimedOut`] when the last response byte has not arrived
    /// by `deadline`.
    ///
    /// When a reused connection turns out to be closed before any response
    /// byte arrives (the server dropped an idle keep-alive connection), the
    /// request is sent once more on a new connection, within the same deadline.
    // NOTE: a server that processed the request and then closed without
    // responding would see that request twice.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        access_token: Option<&str>,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        let request = encode_request(method, &self.target.host_header, path, access_token, body);
        let budget = deadline.saturating_duration_since(Instant::now());
        let reused = self.stream.is_some();
        match self.exchange(&request, deadline, budget) {
            Err(HttpError::ClosedBeforeResponse) if reused => {
                self.exchange(&request, deadline, budget)
            }
            result => result,
        }
    }

    /// Runs one exchange. `budget` is the whole time allowed for the
    /// request, named in a timeout error.
    fn exchange(
        &mut self,
        request: &[u8],
        deadline: Instant,
        budget: Duration,
    ) -> Result<Response, HttpError> {
        let result = self.exchange_until(request, deadline, budget);
        if !matches!(&result, Ok(response) if response.keep_alive) {
            self.stream = None;
            self.buffer.clear();
        }
        result
    }

    fn exchange_until(
        &mut self,
        request: &[u8],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        if self.stream.is_none() {
            self.stream = Some(connect(&self.target, deadline, timeout)?);
        }
        let Self {
            stream: Some(stream),
            buffer,
            ..
        } = self
        else {
            return Err(HttpError::ClosedBeforeResponse);
        };
        // Only one request is in flight, so leftover bytes cannot belong to it.
        buffer.clear();

        stream
            .set_write_timeout(Some(remaining(deadline, timeout)?))
            .map_err(HttpError::Io)?;
        stream
            .write_all(request)
            .map_err(|error| classify(error, true, timeout))?;

        // On the heap, because worker threads run on small stacks.
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Parsed::Complete { response, consumed } =
                parse_response(buffer, false).map_err(HttpError::InvalidResponse)?
            {
                buffer.drain(..consumed);
                return Ok(response);
            }
            stream
                .set_read_timeout(Some(remaining(deadline, timeout)?))
                .map_err(HttpError::Io)?;
            match stream.read(&mut chunk) {
                Ok(0) => return finish_at_eof(buffer),
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(classify(error, buffer.is_empty(), timeout)),
            }
        }
    }
}

/// Opens a connection with `TCP_NODELAY` to the first of the target's
/// addresses that accepts one before `deadline`. `timeout` is the whole time
/// allowed for the request, named in a timeout error.
pub fn connect(
    target: &Target,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, HttpError> {
    let mut last_error = None;
    for addr in &target.addrs {
        match TcpStream::connect_timeout(addr, remaining(deadline, timeout)?) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(HttpError::Io)?;
                return Ok(stream);
            }
            Err(source) => {
                last_error = Some(HttpError::Connect {
                    addr: *addr,
                    source,
                })
            }
        }
    }
    Err(last_error.unwrap_or(HttpError::InvalidResponse(
        "no address to connect to".to_owned(),
    )))
}

/// Completes a response whose body ends at the close of the connection.
pub fn finish_at_eof(buffer: &[u8]) -> Result<Response, HttpError> {
    if buffer.is_empty() {
        return Err(HttpError::ClosedBeforeResponse);
    }
    match parse_response(buffer, true).map_err(HttpError::InvalidResponse)? {
        Parsed::Complete { response, .. } => Ok(Response {
            keep_alive: false,
            ..response
        }),
        Parsed::Incomplete => Err(HttpError::InvalidResponse(
            "connection closed in the middle of a response".to_owned(),
        )),
    }
}

pub fn remaining(deadline: Instant, timeout: Duration) -> Result<Duration, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(HttpError::TimedOut(timeout))
    } else {
        Ok(left)
    }
}

/// Maps an I/O error; `nothing_received` is whether no response byte has
/// arrived yet, in which case a reset means a closed keep-alive connection.
pub fn classify(error: io::Error, nothing_received: bool, timeout: Duration) -> HttpError {
    use io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionReset, TimedOut, UnexpectedEof, WouldBlock,
    };
    match error.kind() {
        WouldBlock | TimedOut => HttpError::TimedOut(timeout),
        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof if nothing_received => {
            HttpError::ClosedBeforeResponse
        }
        _ => HttpError::Io(error),
    }
}

#[cfg(test)]
mod tests {
    use super::{Parsed, Response, encode_request, parse_response};

    fn complete(input: &[u8]) -> (Response, usize) {
        match parse_response(input, false) {
            Ok(Parsed::Complete { response, consumed }) => (response, consumed),
            other => panic!("expected a complete response, got {other:?}"),
        }
    }

    #[test]
    fn content_length_response() {
        let input =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (response, consumed) = complete(input);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{}");
        assert!(response.keep_alive);
        assert_eq!(consumed, input.len());
    }

    #[test]
    fn pipelined_bytes_are_left() {
        let first = b"HTTP/1.1 204 No Content\r\n\r\n".as_slice();
        let input = [first, b"HTTP/1.1 200 OK\r\n"].concat();
        let (response, consumed) = complete(&input);
        assert_eq!(response.status, 204);
        assert!(response.body.is_empty());
        assert_eq!(consumed, first.len());
    }

    #[test]
    fn partial_head_and_body_are_incomplete() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", false),
            Ok(Parsed::Incomplete)
        );
        let short_body = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"a\"";
        assert_eq!(parse_response(short_body, false), Ok(Parsed::Incomplete));
        assert_eq!(parse_response(b"", false), Ok(Parsed::Incomplete));
    }

    #[test]
    fn chunked_response_with_trailer() {
        let input = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (response, consumed) = complete(input);
        assert_eq!(response.body, b"Wikipedia");
        assert_eq!(consumed, input.len());
    }

    #[test]
    fn chunked_response_in_pieces() {
        let input =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        for cut in 0..input.len() {
            assert_eq!(
                parse_response(&input[..cut], false),
                Ok(Parsed::Incomplete),
                "cut at {cut}"
            );
        }
        assert_eq!(complete(input).0.body, b"0123456789");
    }

    #[test]
    fn invalid_chunks_are_rejected() {
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad_size, false).is_err());
        let missing_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY";
        assert!(parse_response(missing_crlf, false).is_err());
    }

    #[test]
    fn connection_close_ends_keep_alive() {
        let input =
            b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (response, _) = complete(input);
        assert_eq!(response.status, 429);
        assert!(!response.keep_alive);
    }

    #[test]
    fn http_1_0_defaults_to_close() {
        let (closed, _) = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!closed.keep_alive);
        let (kept, _) =
            complete(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
        assert!(kept.keep_alive);
    }

    #[test]
    fn body_until_close_needs_eof() {
        let input = b"HTTP/1.1 500 Internal Server Error\r\n\r\noops";
        assert_eq!(parse_response(input, false), Ok(Parsed::Incomplete));
        let Ok(Parsed::Complete { response, consumed }) = parse_response(input, true) else {
            panic!("expected a complete response at end of input");
        };
        assert_eq!(response.body, b"oops");
        assert!(!response.keep_alive);
        assert_eq!(consumed, input.len());
    }

    #[test]
    fn interim_response_is_skipped() {
        let input =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx";
        let (response, consumed) = complete(input);
        assert_eq!(response.status, 201);
        assert_eq!(response.body, b"x");
        assert_eq!(consumed, input.len());
    }

    #[test]
    fn malformed_heads_are_rejected() {
        for input in [
            b"HTTP/2 200 OK\r\n\r\n".as_slice(),
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            assert!(
                parse_response(input, false).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn oversized_body_is_rejected() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n";
        assert!(parse_response(input, false).is_err());
    }

    #[test]
    fn request_encoding() {
        let request = encode_request("PUT", "127.0.0.1:8008", "/x", Some("tok"), b"{}");
        let text = String::from_utf8(request).unwrap();
        assert!(
            text.starts_with("PUT /x HTTP/1.1\r\nHost: 127.0.0.1:8008\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAuthorization: Bearer tok\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"), "{text}");
        let anonymous = String::from_utf8(encode_request("POST", "h:1", "/y", None, b"")).unwrap();
        assert!(!anonymous.contains("Authorization"), "{anonymous}");
        assert!(
            anonymous.ends_with("Content-Length: 0\r\n\r\n"),
            "{anonymous}"
        );
    }

    #[test]
    fn get_without_body_has_no_content_headers() {
        let request = encode_request("GET", "h:1", "/_matrix/client/versions", None, b"");
        let text = String::from_utf8(request).unwrap();
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(!text.contains("Content-Type"), "{text}");
        assert!(text.ends_with("Accept: application/json\r\n\r\n"), "{text}");
    }
}
