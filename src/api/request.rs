//! A request after routing and authentication, ready for its handler. It is
//! `Send`, so the dispatcher can move it to the shard that owns its target.

use ruma::OwnedUserId;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{error::ApiResult, error::MatrixError, router::Route};

/// The authenticated user and device.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user_id: OwnedUserId,
    pub device_id: String,
    /// Whether the account is a server admin, read when the token is first
    /// resolved on a shard.
    pub admin: bool,
}

/// A routed request.
#[derive(Debug)]
pub struct ApiRequest {
    pub route: Route,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub auth: Option<Auth>,
    /// The server that signed a server-server API request.
    pub origin: Option<String>,
}

impl ApiRequest {
    /// Parses the body as JSON into `T`.
    ///
    /// # Errors
    ///
    /// `M_NOT_JSON` for bytes that are not JSON (including invalid UTF-8),
    /// `M_BAD_JSON` for JSON of the wrong shape.
    pub fn body<T: DeserializeOwned>(&self) -> ApiResult<T> {
        // Every request body of the APIs served is a JSON object, and
        // checking that first keeps serde's type names out of the error.
        let object = self.body_object()?;
        serde_json::from_value(Value::Object(object))
            .map_err(|error| MatrixError::bad_json(error.to_string()))
    }

    /// Parses the body as a JSON object.
    ///
    /// # Errors
    ///
    /// `M_NOT_JSON` for invalid JSON, `M_BAD_JSON` if it is not an object.
    pub fn body_object(&self) -> ApiResult<serde_json::Map<String, Value>> {
        match self.body_value()? {
            Value::Object(map) => Ok(map),
            _ => Err(MatrixError::bad_json("Request body must be a JSON object")),
        }
    }

    /// Parses an optional body: an empty one gives `T::default()`.
    ///
    /// # Errors
    ///
    /// As [`Self::body`] for a body that is present.
    pub fn body_or_default<T: DeserializeOwned + Default>(&self) -> ApiResult<T> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        self.body()
    }

    fn body_value(&self) -> ApiResult<Value> {
        serde_json::from_slice(&self.body).map_err(|error| {
            MatrixError::not_json(format!("Request body is not valid JSON: {error}"))
        })
    }

    /// Returns the first value of query parameter `name`.
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Parses query parameter `name` as an unsigned number.
    ///
    /// # Errors
    ///
    /// `M_INVALID_PARAM` if it is present and not a number.
    pub fn query_u64(&self, name: &str) -> ApiResult<Option<u64>> {
        self.query(name)
            .map(|text| {
                text.parse().map_err(|_| {
                    MatrixError::invalid_param(format!("{name} must be a non-negative integer"))
                })
            })
            .transpose()
    }

    /// Returns the authenticated user. Only routes that need auth reach handlers
    /// that call this.
    ///
    /// # Errors
    ///
    /// `M_MISSING_TOKEN` if the request carried no token.
    pub fn auth(&self) -> ApiResult<&Auth> {
        self.auth
            .as_ref()
            .ok_or_else(|| MatrixError::missing_token("Missing access token"))
    }
}

/// Splits a query string into decoded pairs.
#[must_use]
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        if !text.contains(['+', '%']) {
            return text.to_owned();
        }
        let spaced = text.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}
