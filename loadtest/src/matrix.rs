//! The Client-Server API calls that the load test makes, over one
//! [`Connection`].

use std::{
    fmt::{self, Write as _},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    http::{Connection, HttpError},
    target::Target,
};

/// Path prefix of the Client-Server API endpoints used here.
const CLIENT_V3: &str = "/_matrix/client/v3";

/// A registered user's access token.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
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

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(error) => error.fmt(f),
            Self::Status {
                status,
                errcode,
                message,
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

/// A Client-Server API client on one keep-alive connection.
pub struct Client {
    connection: Connection,
    base_path: String,
}

impl Client {
    pub fn new(target: &Target, timeout: Duration) -> Self {
        Self {
            connection: Connection::new(target.clone(), timeout),
            base_path: target.base_path.clone(),
        }
    }

    /// Sends a request to `CLIENT_V3` + `endpoint` and returns the status and
    /// body, whatever the status.
    fn call(
        &mut self,
        method: &str,
        endpoint: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let path = format!("{}{CLIENT_V3}{endpoint}", self.base_path);
        let response =
            self.connection
                .request(method, &path, token, body.to_string().as_bytes())?;
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

    /// `POST /_matrix/client/v3/register` without a password, following the
    /// User-Interactive Auth flow: the first request returns 401 with a
    /// session, the second completes the single stage within that session.
    pub fn register(
        &mut self,
        username: &str,
        auth: &RegistrationAuth,
    ) -> Result<Session, ApiError> {
        let mut body =
            json!({ "username": username, "initial_device_display_name": "eltrix-loadtest" });
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

    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
    /// with an `m.text` message. The response body of a success is not read.
    pub fn send_text(
        &mut self,
        token: &str,
        room_id: &str,
        txn_id: &str,
        text: &str,
    ) -> Result<(), ApiError> {
        let endpoint = format!(
            "/rooms/{}/send/m.room.message/{}",
            encode_path_segment(room_id),
            encode_path_segment(txn_id)
        );
        let body = json!({ "msgtype": "m.text", "body": text });
        let (status, bytes) = self.call("PUT", &endpoint, Some(token), &body)?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(status_error(status, &bytes))
        }
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::InvalidBody(error.to_string()))
}

fn session_from(bytes: &[u8]) -> Result<Session, ApiError> {
    let response = parse_json(bytes)?;
    Ok(Session {
        user_id: string_field(&response, "user_id")?,
        access_token: string_field(&response, "access_token")?,
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
    use super::{ApiError, encode_path_segment, status_error};

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
}
