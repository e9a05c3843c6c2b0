//! The Client-Server API calls that the load test makes, over one
//! [`Connection`].

use std::{
    fmt::{self, Write as _},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    http::{Connection, HttpError, Response},
    target::Target,
};

/// Path prefix of the Client-Server API endpoints used here.
const CLIENT_V3: &str = "/_matrix/client/v3";

/// A registered user's device and access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
}

/// Stage that completes the User-Interactive Auth of a registration.
#[derive(Debug, Clone)]
pub enum RegistrationAuth {
    /// The `m.login.dummy` stage, for servers with open registration.
    Dummy,
    /// The `m.login.registration_token` stage with this token.
    Token(String),
}

/// Failure of one API call.
#[derive(Debug)]
pub enum ApiError {
    Http(HttpError),
    /// The server returned a non-2xx status, with the standard error body
    /// when it sent one.
    Status {
        status: u16,
        errcode: Option<String>,
        message: Option<String>,
        /// `retry_after_ms` of an `M_LIMIT_EXCEEDED` error.
        retry_after_ms: Option<u64>,
    },
    /// A 2xx response whose body is not JSON or lacks a field the load test
    /// needs.
    InvalidBody(String),
}

impl ApiError {
    /// Key under which the error is counted: the Matrix errcode when the
    /// server sent one, otherwise the HTTP status or the transport failure.
    pub fn label(&self) -> String {
        match self {
            Self::Http(error) => error.label().to_owned(),
            Self::Status {
                errcode: Some(errcode),
                ..
            } => errcode.clone(),
            Self::Status {
                status,
                errcode: None,
                ..
            } => format!("HTTP {status}"),
            Self::InvalidBody(_) => "invalid response body".to_owned(),
        }
    }
}

impl ApiError {
    /// Returns whether the request failed because no connection could be
    /// opened.
    pub fn is_connect_failure(&self) -> bool {
        matches!(self, Self::Http(HttpError::Connect { .. }))
    }

    /// Returns whether the request ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Http(HttpError::TimedOut(_)))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(error) => error.fmt(f),
            Self::Status {
                status,
                errcode,
                message,
                ..
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(errcode) = errcode {
                    write!(f, " {errcode}")?;
                }
                if let Some(message) = message {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            Self::InvalidBody(reason) => write!(f, "invalid response body: {reason}"),
        }
    }
}

impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        Self::Http(error)
    }
}

/// Builds the error for a non-2xx response from its standard error body
/// (`{"errcode": …, "error": …}`), which may be missing or not JSON.
pub fn status_error(status: u16, body: &[u8]) -> ApiError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|json| json.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ApiError::Status {
        status,
        errcode: field("errcode"),
        message: field("error"),
        retry_after_ms: json
            .as_ref()
            .and_then(|json| json.get("retry_after_ms"))
            .and_then(Value::as_u64),
    }
}

/// Percent-encodes one path segment, keeping only RFC 3986 unreserved
/// characters, so that room IDs (`!opaque:server`) survive in a path.
pub fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// One `GET /sync` request.
#[derive(Debug, Clone, Copy)]
pub struct SyncRequest<'a> {
    /// Filter ID, or filter as JSON text, sent in the query string.
    pub filter: &'a str,
    /// `next_batch` of the previous response; `None` for an initial sync.
    pub since: Option<&'a str>,
    /// How long the server may hold the request open, in milliseconds.
    pub timeout_ms: u64,
}

/// A successful `/sync` response.
#[derive(Debug, Clone)]
pub struct SyncResponse {
    /// Size of the response body, in bytes.
    pub body_bytes: usize,
    pub body: Value,
}

/// A Client-Server API client on one keep-alive connection.
pub struct Client {
    connection: Connection,
    base_path: String,
    timeout: Duration,
}

impl Client {
    pub fn new(target: &Target, timeout: Duration) -> Self {
        Self {
            connection: Connection::new(target.clone()),
            base_path: target.base_path.clone(),
            timeout,
        }
    }

    /// Sends a request to `path`, which starts after the URL's base path,
    /// and returns the response whatever its status.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, ApiError> {
        let path = format!("{}{path}", self.base_path);
        let response = self
            .connection
            .request(method, &path, token, body, deadline)?;
        Ok(response)
    }

    /// Sends a request to `CLIENT_V3` + `endpoint` with a JSON body and
    /// returns the status and body, whatever the status.
    fn call(
        &mut self,
        method: &str,
        endpoint: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let path = format!("{CLIENT_V3}{endpoint}");
        let deadline = Instant::now() + self.timeout;
        let response = self.send(method, &path, token, body.to_string().as_bytes(), deadline)?;
        Ok((response.status, response.body))
    }

    /// Sends a request and returns the JSON body of a 2xx response.
    fn call_ok(
        &mut self,
        method: &str,
        endpoint: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let (status, bytes) = self.call(method, endpoint, token, body)?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &bytes));
        }
        parse_json(&bytes)
    }

    /// Sends a GET without a body to `path` and returns the body of a 2xx
    /// response.
    fn get_ok(
        &mut self,
        path: &str,
        token: Option<&str>,
        deadline: Instant,
    ) -> Result<Vec<u8>, ApiError> {
        let response = self.send("GET", path, token, b"", deadline)?;
        if !(200..300).contains(&response.status) {
            return Err(status_error(response.status, &response.body));
        }
        Ok(response.body)
    }

    /// `POST /_matrix/client/v3/register`, following the User-Interactive
    /// Auth flow: the first request returns 401 with a session, the second
    /// completes the single stage within that session. The password is
    /// derived from the username, because some servers (Synapse) require
    /// one; the load test logs in with access tokens only.
    pub fn register(
        &mut self,
        username: &str,
        auth: &RegistrationAuth,
    ) -> Result<Session, ApiError> {
        let mut body = json!({
            "username": username,
            "password": format!("{username}-password"),
            "initial_device_display_name": "eltrix-loadtest",
        });
        let (status, bytes) = self.call("POST", "/register", None, &body)?;
        if (200..300).contains(&status) {
            return session_from(&bytes);
        }
        if status != 401 {
            return Err(status_error(status, &bytes));
        }

        let challenge: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut auth_body = match auth {
            RegistrationAuth::Dummy => json!({ "type": "m.login.dummy" }),
            RegistrationAuth::Token(token) => {
                json!({ "type": "m.login.registration_token", "token": token })
            }
        };
        if let Some(session) = challenge.get("session") {
            auth_body["session"] = session.clone();
        }
        body["auth"] = auth_body;
        let (status, bytes) = self.call("POST", "/register", None, &body)?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, &bytes));
        }
        session_from(&bytes)
    }

    /// `GET /_matrix/client/v3/account/whoami`; returns the user ID.
    pub fn whoami(&mut self, token: &str) -> Result<String, ApiError> {
        let deadline = Instant::now() + self.timeout;
        let path = format!("{CLIENT_V3}/account/whoami");
        let body = self.get_ok(&path, Some(token), deadline)?;
        string_field(&parse_json(&body)?, "user_id")
    }

    /// `GET /_matrix/client/versions`, which needs no access token. The
    /// response body is not read.
    pub fn versions(&mut self) -> Result<(), ApiError> {
        let deadline = Instant::now() + self.timeout;
        self.get_ok("/_matrix/client/versions", None, deadline)?;
        Ok(())
    }

    /// `POST /_matrix/client/v3/createRoom` with the `public_chat` preset;
    /// returns the room ID.
    pub fn create_public_room(&mut self, token: &str, name: &str) -> Result<String, ApiError> {
        let body = json!({ "preset": "public_chat", "name": name });
        let response = self.call_ok("POST", "/createRoom", Some(token), &body)?;
        string_field(&response, "room_id")
    }

    /// `POST /_matrix/client/v3/join/{roomIdOrAlias}`.
    pub fn join(&mut self, token: &str, room_id: &str) -> Result<(), ApiError> {
        let endpoint = format!("/join/{}", encode_path_segment(room_id));
        self.call_ok("POST", &endpoint, Some(token), &json!({}))?;
        Ok(())
    }

    /// `POST /_matrix/client/v3/user/{userId}/filter`, which returns the
    /// filter ID.
    pub fn upload_filter(
        &mut self,
        token: &str,
        user_id: &str,
        filter: &Value,
    ) -> Result<String, ApiError> {
        let endpoint = format!("/user/{}/filter", encode_path_segment(user_id));
        let response = self.call_ok("POST", &endpoint, Some(token), filter)?;
        string_field(&response, "filter_id")
    }

    /// `GET /_matrix/client/v3/joined_rooms`; returns the room IDs.
    pub fn joined_rooms(&mut self, token: &str) -> Result<Vec<String>, ApiError> {
        let deadline = Instant::now() + self.timeout;
        let path = format!("{CLIENT_V3}/joined_rooms");
        let body = parse_json(&self.get_ok(&path, Some(token), deadline)?)?;
        let rooms = body
            .get("joined_rooms")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::InvalidBody("missing array field \"joined_rooms\"".into()))?;
        Ok(rooms
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect())
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
    /// with an `m.text` message; returns the event ID.
    pub fn send_text(
        &mut self,
        token: &str,
        room_id: &str,
        txn_id: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        let deadline = Instant::now() + self.timeout;
        let path = send_message_path("", room_id, txn_id);
        let response = self.send("PUT", &path, Some(token), &text_message(text), deadline)?;
        send_event_id(&response)
    }

    /// `GET /_matrix/client/v3/sync`. The HTTP request may take the sync
    /// `timeout_ms` plus the client's request timeout, but ends at `stop_at`
    /// when that comes first.
    pub fn sync(
        &mut self,
        token: &str,
        request: &SyncRequest<'_>,
        stop_at: Option<Instant>,
    ) -> Result<SyncResponse, ApiError> {
        let long_poll = Duration::from_millis(request.timeout_ms);
        let mut deadline = Instant::now() + long_poll + self.timeout;
        if let Some(stop_at) = stop_at {
            deadline = deadline.min(stop_at);
        }
        let body = self.get_ok(&sync_path("", request), Some(token), deadline)?;
        Ok(SyncResponse {
            body_bytes: body.len(),
            body: parse_json(&body)?,
        })
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/messages` with `dir=b` and no
    /// `from`, so the page starts at the newest event; returns the number of
    /// events in the chunk.
    pub fn messages_backwards(
        &mut self,
        token: &str,
        room_id: &str,
        limit: u32,
    ) -> Result<usize, ApiError> {
        let deadline = Instant::now() + self.timeout;
        let path = format!(
            "{CLIENT_V3}/rooms/{}/messages?dir=b&limit={limit}",
            encode_path_segment(room_id)
        );
        let body = parse_json(&self.get_ok(&path, Some(token), deadline)?)?;
        body.get("chunk")
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| ApiError::InvalidBody("missing array field \"chunk\"".into()))
    }
}

/// Builds the path of `PUT …/rooms/{roomId}/send/m.room.message/{txnId}`
/// under `base_path`, the URL's path prefix.
pub fn send_message_path(base_path: &str, room_id: &str, txn_id: &str) -> String {
    format!(
        "{base_path}{CLIENT_V3}/rooms/{}/send/m.room.message/{}",
        encode_path_segment(room_id),
        encode_path_segment(txn_id)
    )
}

/// Encodes the JSON content of an `m.text` message with body `text`.
pub fn text_message(text: &str) -> Vec<u8> {
    json!({ "msgtype": "m.text", "body": text })
        .to_string()
        .into_bytes()
}

/// The part of a send response that the load test reads.
#[derive(Deserialize)]
struct SendResponse {
    event_id: String,
}

/// Returns the event ID of a 2xx send response, or the error that a non-2xx
/// response carries.
pub fn send_event_id(response: &Response) -> Result<String, ApiError> {
    if !(200..300).contains(&response.status) {
        return Err(status_error(response.status, &response.body));
    }
    serde_json::from_slice::<SendResponse>(&response.body)
        .map(|sent| sent.event_id)
        .map_err(|error| ApiError::InvalidBody(error.to_string()))
}

/// Builds the path and query of a `/sync` request under `base_path`, the
/// URL's path prefix.
pub fn sync_path(base_path: &str, request: &SyncRequest<'_>) -> String {
    format!("{base_path}{CLIENT_V3}/sync?{}", sync_query(request))
}

/// Builds the query string of a `/sync` request, without the leading `?`.
pub fn sync_query(request: &SyncRequest<'_>) -> String {
    let mut query = format!(
        "filter={}&timeout={}",
        encode_path_segment(request.filter),
        request.timeout_ms
    );
    if let Some(since) = request.since {
        query.push_str("&since=");
        query.push_str(&encode_path_segment(since));
    }
    query
}

/// Returns the `next_batch` token of a sync response.
pub fn next_batch(sync: &Value) -> Result<String, ApiError> {
    string_field(sync, "next_batch")
}

/// Returns the number of joined rooms in a sync response.
pub fn joined_room_count(sync: &Value) -> usize {
    sync.pointer("/rooms/join")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::InvalidBody(error.to_string()))
}

fn session_from(bytes: &[u8]) -> Result<Session, ApiError> {
    let response = parse_json(bytes)?;
    Ok(Session {
        user_id: string_field(&response, "user_id")?,
        access_token: string_field(&response, "access_token")?,
        device_id: string_field(&response, "device_id")?,
    })
}

fn string_field(response: &Value, name: &str) -> Result<String, ApiError> {
    response
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::InvalidBody(format!("missing string field {name:?}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{
        ApiError, SyncRequest, encode_path_segment, joined_room_count, next_batch, send_event_id,
        send_message_path, status_error, sync_path, sync_query, text_message,
    };
    use crate::http::Response;

    fn response(status: u16, body: &[u8]) -> Response {
        Response {
            status,
            body: body.to_vec(),
            keep_alive: true,
        }
    }

    #[test]
    fn room_id_is_percent_encoded() {
        assert_eq!(encode_path_segment("!abc:localhost"), "%21abc%3Alocalhost");
        assert_eq!(encode_path_segment("a-b.c_d~9"), "a-b.c_d~9");
        assert_eq!(encode_path_segment("é/"), "%C3%A9%2F");
    }

    #[test]
    fn status_error_reads_errcode() {
        let error = status_error(
            429,
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests"}"#,
        );
        assert_eq!(error.label(), "M_LIMIT_EXCEEDED");
        assert_eq!(
            error.to_string(),
            "HTTP 429 M_LIMIT_EXCEEDED: Too many requests"
        );
    }

    #[test]
    fn status_error_without_json_uses_status() {
        let error = status_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(error.label(), "HTTP 502");
        assert!(matches!(
            error,
            ApiError::Status {
                errcode: None,
                message: None,
                ..
            }
        ));
    }

    #[test]
    fn status_error_reads_retry_after() {
        let error = status_error(
            429,
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":250}"#,
        );
        assert!(matches!(
            error,
            ApiError::Status {
                retry_after_ms: Some(250),
                ..
            }
        ));
    }

    #[test]
    fn sync_query_encodes_filter_and_since() {
        let initial = SyncRequest {
            filter: r#"{"room":{"timeline":{"limit":1}}}"#,
            since: None,
            timeout_ms: 0,
        };
        assert_eq!(
            sync_query(&initial),
            "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A1%7D%7D%7D&timeout=0"
        );
        let incremental = SyncRequest {
            since: Some("s1_2 3"),
            timeout_ms: 30_000,
            ..initial
        };
        assert!(
            sync_query(&incremental).ends_with("&timeout=30000&since=s1_2%203"),
            "{}",
            sync_query(&incremental)
        );
    }

    #[test]
    fn sync_path_keeps_base_path() {
        let request = SyncRequest {
            filter: "f1",
            since: Some("s7"),
            timeout_ms: 30_000,
        };
        assert_eq!(
            sync_path("/prefix", &request),
            "/prefix/_matrix/client/v3/sync?filter=f1&timeout=30000&since=s7"
        );
        assert!(sync_path("", &request).starts_with("/_matrix/client/v3/sync?"));
    }

    #[test]
    fn sync_response_fields() {
        let sync = json!({
            "next_batch": "s42",
            "rooms": {"join": {
                "!a:x": {"timeline": {"events": [{"event_id": "$1"}, {"event_id": "$2"}], "limited": true}},
                "!b:x": {"timeline": {"events": []}}
            }}
        });
        assert_eq!(next_batch(&sync).unwrap(), "s42");
        assert_eq!(joined_room_count(&sync), 2);
    }

    #[test]
    fn sync_response_without_rooms() {
        let sync = json!({"next_batch": "s1"});
        assert_eq!(joined_room_count(&sync), 0);
        assert!(next_batch(&json!({})).is_err());
    }

    #[test]
    fn send_path_encodes_room_and_txn() {
        assert_eq!(
            send_message_path("/base", "!r:x", "17-3"),
            "/base/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/17-3"
        );
    }

    #[test]
    fn text_message_is_m_text() {
        let content: serde_json::Value = serde_json::from_slice(&text_message("hi")).unwrap();
        assert_eq!(content, json!({ "msgtype": "m.text", "body": "hi" }));
    }

    #[test]
    fn send_event_id_reads_event_id() {
        let ok = response(200, br#"{"event_id":"$e1:x","extra":[1]}"#);
        assert_eq!(send_event_id(&ok).unwrap(), "$e1:x");
    }

    #[test]
    fn send_event_id_rejects_missing_field() {
        for body in [
            &br#"{"room_id":"!r"}"#[..],
            br#"{"event_id":7}"#,
            b"not json",
        ] {
            let error = send_event_id(&response(200, body)).unwrap_err();
            assert!(matches!(error, ApiError::InvalidBody(_)), "{error}");
            assert_eq!(error.label(), "invalid response body");
        }
    }

    #[test]
    fn send_event_id_maps_status_errors() {
        let limited = response(
            429,
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow","retry_after_ms":50}"#,
        );
        let error = send_event_id(&limited).unwrap_err();
        assert_eq!(error.label(), "M_LIMIT_EXCEEDED");
        assert!(matches!(
            error,
            ApiError::Status {
                status: 429,
                retry_after_ms: Some(50),
                ..
            }
        ));
    }
}
