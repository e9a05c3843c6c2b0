//! The HTTPS client of outbound federation requests: one TLS connection per
//! request, closed after the response.
//!
//! NOTE: connections are not reused, and host names are resolved with the
//! blocking system resolver on the calling shard, which is fast only for
//! names in `/etc/hosts` such as `localhost`.

use std::{net::ToSocketAddrs, time::Duration};

use monoio::{
    io::{AsyncReadRent, AsyncWriteRentExt},
    net::TcpStream,
};
use rustls::pki_types::ServerName;

use super::{destination, request_auth};
use crate::{http::body, shard::Shard};

/// Time allowed for one request, from connecting to the last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A response from another server.
#[derive(Debug, Clone)]
pub struct FederationResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl FederationResponse {
    /// Parses the body as JSON.
    ///
    /// # Errors
    ///
    /// Returns the parse error.
    pub fn json(&self) -> Result<serde_json::Value, FederationError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            FederationError::InvalidResponse(format!("invalid JSON body: {error}"))
        })
    }
}

/// A request to another server that got no usable response.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    #[error("failed to resolve {host}: {message}")]
    Resolve { host: String, message: String },
    #[error("failed to connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {host} failed: {message}")]
    Tls { host: String, message: String },
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error("failed to sign the request: {0}")]
    Sign(String),
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Sends `method uri` to `server_name`, signed with this server's key when
/// `signed` is set, with `content` as the JSON body.
///
/// # Errors
///
/// Returns why no complete response arrived.
pub async fn request(
    shard: &Shard,
    server_name: &str,
    method: &str,
    uri: &str,
    content: Option<&serde_json::Value>,
    signed: bool,
) -> Result<FederationResponse, FederationError> {
    let exchange = exchange(shard, server_name, method, uri, content, signed);
    match monoio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(FederationError::Timeout(server_name.to_owned())),
    }
}

async fn exchange(
    shard: &Shard,
    server_name: &str,
    method: &str,
    uri: &str,
    content: Option<&serde_json::Value>,
    signed: bool,
) -> Result<FederationResponse, FederationError> {
    let target = destination::resolve(server_name)
        .ok_or_else(|| FederationError::InvalidServerName(server_name.to_owned()))?;
    let body = content.map(|value| serde_json::to_vec(value).unwrap_or_default());
    let mut head = format!(
        "{method} {uri} HTTP/1.1\r\nhost: {}\r\nuser-agent: Eltrix/{}\r\nconnection: close\r\n",
        target.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if signed {
        let canonical = content
            .map(|value| ruma::CanonicalJsonValue::try_from(value.clone()))
            .transpose()
            .map_err(|error| FederationError::Sign(error.to_string()))?;
        let authorization = request_auth::authorization(
            &shard.key,
            &shard.config.server_name,
            server_name,
            method,
            uri,
            canonical.as_ref(),
        )
        .map_err(FederationError::Sign)?;
        head.push_str(&format!("authorization: {authorization}\r\n"));
    }
    if let Some(body) = &body {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_deref().unwrap_or_default());

    let addresses: Vec<std::net::SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|error| FederationError::Resolve {
            host: target.host.clone(),
            message: error.to_string(),
        })?
        .collect();
    let stream = connect_any(&addresses, &target.host).await?;
    let _ = stream.set_nodelay(true);
    let name = ServerName::try_from(target.host.clone()).map_err(|error| FederationError::Tls {
        host: target.host.clone(),
        message: error.to_string(),
    })?;
    let connector = monoio_rustls::TlsConnector::from(shard.client_tls.clone());
    let mut stream =
        connector
            .connect(name, stream)
            .await
            .map_err(|error| FederationError::Tls {
                host: target.host.clone(),
                message: error.to_string(),
            })?;
    let (written, _) = stream.write_all(bytes).await;
    written?;
    read_response(&mut stream).await
}

/// Connects to the first of `addresses` that accepts, in the resolver's
/// order; `localhost` often resolves to `::1` before `127.0.0.1`.
async fn connect_any(
    addresses: &[std::net::SocketAddr],
    host: &str,
) -> Result<TcpStream, FederationError> {
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(*address).await {
            Ok(stream) => return Ok(stream),
            Err(source) => {
                last_error = Some(FederationError::Connect {
                    address: address.to_string(),
                    source,
                });
            }
        }
    }
    Err(last_error.unwrap_or_else(|| FederationError::Resolve {
        host: host.to_owned(),
        message: "no addresses".to_owned(),
    }))
}

async fn read_response(
    stream: &mut impl AsyncReadRent,
) -> Result<FederationResponse, FederationError> {
    let mut buffer = Vec::new();
    let mut eof = false;
    loop {
        if let Some(response) = parse(&buffer, eof)? {
            return Ok(response);
        }
        if eof {
            return Err(FederationError::InvalidResponse(
                "the connection closed before the response was complete".to_owned(),
            ));
        }
        if buffer.len() > MAX_RESPONSE_BYTES {
            return Err(FederationError::InvalidResponse(format!(
                "the response exceeds {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let (result, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
        match result {
            Ok(0) => eof = true,
            Ok(_) => buffer.extend_from_slice(&chunk),
            // Servers commonly end TLS without close_notify after
            // `connection: close`; what arrived is judged by its framing.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => eof = true,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Returns the response once `buffer` contains all of it. A body without a
/// length or chunked framing ends at the end of the stream.
fn parse(buffer: &[u8], eof: bool) -> Result<Option<FederationResponse>, FederationError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => {
            return Err(FederationError::InvalidResponse(format!(
                "malformed response head: {error}"
            )));
        }
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| String::from_utf8_lossy(header.value).trim().to_owned())
    };
    let rest = &buffer[head_len..];
    if header("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        return match body::decode_chunked(rest, MAX_RESPONSE_BYTES) {
            body::Chunked::Complete(body, _) => Ok(Some(FederationResponse { status, body })),
            body::Chunked::Partial => Ok(None),
            body::Chunked::Invalid | body::Chunked::TooLarge => Err(
                FederationError::InvalidResponse("invalid chunked body".to_owned()),
            ),
        };
    }
    if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| {
            FederationError::InvalidResponse(format!("invalid content-length {length}"))
        })?;
        if rest.len() < length {
            return Ok(None);
        }
        return Ok(Some(FederationResponse {
            status,
            body: rest[..length].to_vec(),
        }));
    }
    Ok(eof.then(|| FederationResponse {
        status,
        body: rest.to_vec(),
    }))
}
