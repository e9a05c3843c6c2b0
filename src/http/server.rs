//! Accept loop and connection handling.

use std::{future::Future, net::SocketAddr, rc::Rc, time::Duration};

use monoio::net::{ListenerOpts, TcpListener};

use super::{
    body::{Chunked, decode_chunked},
    transport::Transport,
};

/// Maximum request head size, in bytes.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// Time a keep-alive connection may sit idle before it is closed.
    pub idle_timeout: Duration,
    /// Time allowed to receive the rest of a request once it has started,
    /// and for the client to take a response.
    pub request_timeout: Duration,
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// The request target up to `?`, still percent-encoded.
    pub path: String,
    /// The raw query string after `?`, if any.
    pub query: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

/// A response ready to be written.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl HttpResponse {
    /// Returns a JSON response with `status`.
    #[must_use]
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }
}

/// Serves `handler` on `addr` until `stop` resolves.
///
/// # Errors
///
/// Returns the OS error if the port cannot be bound.
pub async fn listen<H, Fut>(
    addr: SocketAddr,
    limits: Limits,
    tls: Option<monoio_rustls::TlsAcceptor>,
    handler: Rc<H>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(HttpRequest) -> Fut + 'static,
    Fut: Future<Output = HttpResponse> + 'static,
{
    let listener = TcpListener::bind_with_config(addr, &ListenerOpts::default().reuse_port(true))?;
    let mut stop = std::pin::pin!(stop);
    loop {
        monoio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match &tls {
                        None => {
                            monoio::spawn(serve_connection(stream, peer, limits, handler.clone()));
                        }
                        Some(acceptor) => {
                            monoio::spawn(serve_tls(acceptor.clone(), stream, peer, limits, handler.clone()));
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

/// Completes the TLS handshake within the request timeout, then serves the
/// connection.
async fn serve_tls<H, Fut>(
    acceptor: monoio_rustls::TlsAcceptor,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
    limits: Limits,
    handler: Rc<H>,
) where
    H: Fn(HttpRequest) -> Fut,
    Fut: Future<Output = HttpResponse>,
{
    match monoio::time::timeout(limits.request_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(stream, peer, limits, handler).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

enum Parsed {
    Request(HttpRequest, bool),
    Reject(u16, &'static str, &'static str),
}

async fn serve_connection<H, Fut>(
    mut stream: impl Transport,
    peer: SocketAddr,
    limits: Limits,
    handler: Rc<H>,
) where
    H: Fn(HttpRequest) -> Fut,
    Fut: Future<Output = HttpResponse>,
{
    let mut buffer = Vec::new();
    loop {
        let parsed = match read_request(&mut stream, &mut buffer, peer, limits).await {
            Some(parsed) => parsed,
            None => return,
        };
        let (response, keep_alive, head_only) = match parsed {
            Parsed::Request(request, keep_alive) => {
                let head_only = request.method == "HEAD";
                (handler(request).await, keep_alive, head_only)
            }
            Parsed::Reject(status, errcode, message) => {
                (error_response(status, errcode, message), false, false)
            }
        };

        if write_response(
            &mut stream,
            response,
            keep_alive,
            head_only,
            limits.request_timeout,
        )
        .await
        .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

async fn read_request(
    stream: &mut impl Transport,
    buffer: &mut Vec<u8>,
    peer: SocketAddr,
    limits: Limits,
) -> Option<Parsed> {
    let max_body = limits.max_body;
    let mut first = true;
    let (head_len, mut request, framing, keep_alive, expects_continue) = loop {
        if !buffer.is_empty() {
            match parse_head(buffer, peer) {
                Ok(Some(head)) => break head,
                Ok(None) if buffer.len() > MAX_HEAD_BYTES => {
                    return Some(Parsed::Reject(
                        431,
                        "M_TOO_LARGE",
                        "Request head is too large",
                    ));
                }
                Ok(None) => {}
                Err(HeadError::Malformed) => {
                    return Some(Parsed::Reject(400, "M_UNKNOWN", "Malformed HTTP request"));
                }
                Err(HeadError::TooManyHeaders) => {
                    return Some(Parsed::Reject(
                        431,
                        "M_TOO_LARGE",
                        "Too many request headers",
                    ));
                }
            }
        }
        let wait = if first && buffer.is_empty() {
            limits.idle_timeout
        } else {
            limits.request_timeout
        };
        first = false;
        if !stream.read_more(buffer, wait).await {
            return None;
        }
    };
    buffer.drain(..head_len);

    match framing {
        Framing::Length(length) if length > max_body => {
            return Some(Parsed::Reject(
                413,
                "M_TOO_LARGE",
                "Request body is too large",
            ));
        }
        _ => {}
    }
    if expects_continue {
        let _ = stream
            .write_within(
                b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
                limits.request_timeout,
            )
            .await;
    }

    match framing {
        Framing::Length(length) => {
            while buffer.len() < length {
                if !stream.read_more(buffer, limits.request_timeout).await {
                    return None;
                }
            }
            request.body = buffer.drain(..length).collect();
        }
        Framing::Chunked => loop {
            match decode_chunked(buffer, max_body) {
                Chunked::Complete(body, consumed) => {
                    buffer.drain(..consumed);
                    request.body = body;
                    break;
                }
                Chunked::Partial if buffer.len() <= max_body.saturating_mul(2) + 1024 => {
                    if !stream.read_more(buffer, limits.request_timeout).await {
                        return None;
                    }
                }
                Chunked::Invalid => {
                    return Some(Parsed::Reject(400, "M_UNKNOWN", "Invalid chunked body"));
                }
                Chunked::TooLarge | Chunked::Partial => {
                    return Some(Parsed::Reject(
                        413,
                        "M_TOO_LARGE",
                        "Request body is too large",
                    ));
                }
            }
        },
    }
    Some(Parsed::Request(request, keep_alive))
}

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// Buffers kept for reuse per shard thread.
const POOLED_BUFFERS: usize = 1024;

thread_local! {
    /// Read buffers reused by the shard's connections. A pending io_uring
    /// read owns its buffer, so each connection waiting for bytes keeps one, and
    /// once the read completes the buffer returns here. monoio reads into a
    /// `Vec`'s spare capacity, so the buffers need no zeroing.
    static READ_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) fn take_read_buffer() -> Vec<u8> {
    READ_BUFFERS
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK))
}

pub(super) fn return_read_buffer(mut buffer: Vec<u8>) {
    buffer.clear();
    READ_BUFFERS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_BUFFERS && buffer.capacity() >= READ_CHUNK {
            pool.push(buffer);
        }
    });
}

enum Framing {
    Length(usize),
    Chunked,
}

type Head = (usize, HttpRequest, Framing, bool, bool);

/// A request head that cannot be served.
enum HeadError {
    Malformed,
    TooManyHeaders,
}

fn parse_head(buffer: &[u8], peer: SocketAddr) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    let method = parsed.method.ok_or(HeadError::Malformed)?.to_owned();
    let target = parsed.path.ok_or(HeadError::Malformed)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut keep_alive = parsed.version == Some(1);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut authorization = None;
    let mut expects_continue = false;

    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HeadError::Malformed)?
            .trim();
        match header.name.to_ascii_lowercase().as_str() {
            "content-length" => {
                let length = value.parse().map_err(|_| HeadError::Malformed)?;
                // RFC 9112 section 6.3: differing lengths are a framing error.
                if content_length.is_some_and(|seen| seen != length) {
                    return Err(HeadError::Malformed);
                }
                content_length = Some(length);
            }
            "transfer-encoding" if value.eq_ignore_ascii_case("chunked") => chunked = true,
            "transfer-encoding" => return Err(HeadError::Malformed),
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => keep_alive = true,
            "authorization" => authorization = Some(value.to_owned()),
            "expect" if value.eq_ignore_ascii_case("100-continue") => expects_continue = true,
            _ => {}
        }
    }

    // RFC 9112 section 6.1: chunked framing wins over Content-Length, and
    // the connection closes after the response.
    let framing = match (chunked, content_length) {
        (true, length) => {
            keep_alive &= length.is_none();
            Framing::Chunked
        }
        (false, length) => Framing::Length(length.unwrap_or(0)),
    };
    let request = HttpRequest {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        authorization,
        body: Vec::new(),
        peer,
    };
    Ok(Some((
        head_len,
        request,
        framing,
        keep_alive,
        expects_continue,
    )))
}

fn error_response(status: u16, errcode: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "errcode": errcode, "error": message });
    HttpResponse::json(status, body.to_string().into_bytes())
}

/// Writes `response`. A response to HEAD (`head_only`) has no content
/// (RFC 9110, 9.3.2), and its content-length is the size of the body left out.
async fn write_response(
    stream: &mut impl Transport,
    response: HttpResponse,
    keep_alive: bool,
    head_only: bool,
    timeout: Duration,
) -> std::io::Result<()> {
    use std::fmt::Write as _;

    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n\
         access-control-allow-origin: *\r\n\
         access-control-allow-methods: GET, POST, PUT, DELETE, OPTIONS\r\n\
         access-control-allow-headers: X-Requested-With, Content-Type, Authorization\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
    );
    for (name, value) in &response.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str(if keep_alive {
        "connection: keep-alive\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_within(bytes, timeout).await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
