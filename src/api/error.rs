//! The one mapping from failures to Matrix error responses.

use serde_json::{Value, json};

use crate::store::StoreError;

/// A Matrix error response: HTTP status, `errcode` and message.
#[derive(Debug, Clone)]
pub struct MatrixError {
    pub status: u16,
    pub errcode: &'static str,
    pub message: String,
    /// Extra top-level fields of the error body (for example UIA `flows`).
    pub extra: Option<Value>,
}

macro_rules! constructors {
    ($($name:ident => $status:literal, $code:literal;)*) => {
        impl MatrixError {
            $(
                #[doc = concat!("`", $code, "` with HTTP ", stringify!($status), ".")]
                pub fn $name(message: impl Into<String>) -> Self {
                    Self { status: $status, errcode: $code, message: message.into(), extra: None }
                }
            )*
        }
    };
}

constructors! {
    not_json => 400, "M_NOT_JSON";
    bad_json => 400, "M_BAD_JSON";
    invalid_param => 400, "M_INVALID_PARAM";
    missing_param => 400, "M_MISSING_PARAM";
    invalid_username => 400, "M_INVALID_USERNAME";
    user_in_use => 400, "M_USER_IN_USE";
    room_in_use => 400, "M_ROOM_IN_USE";
    invalid_room_state => 400, "M_INVALID_ROOM_STATE";
    unable_to_authorise_join => 400, "M_UNABLE_TO_AUTHORISE_JOIN";
    unable_to_grant_join => 400, "M_UNABLE_TO_GRANT_JOIN";
    unsupported_room_version => 400, "M_UNSUPPORTED_ROOM_VERSION";
    unknown => 400, "M_UNKNOWN";
    missing_token => 401, "M_MISSING_TOKEN";
    unknown_token => 401, "M_UNKNOWN_TOKEN";
    unauthorized => 401, "M_UNAUTHORIZED";
    forbidden => 403, "M_FORBIDDEN";
    guest_access_forbidden => 403, "M_GUEST_ACCESS_FORBIDDEN";
    user_deactivated => 403, "M_USER_DEACTIVATED";
    not_found => 404, "M_NOT_FOUND";
    unrecognized => 404, "M_UNRECOGNIZED";
    conflict => 409, "M_UNKNOWN";
    too_large => 413, "M_TOO_LARGE";
    internal => 500, "M_UNKNOWN";
    unavailable => 503, "M_UNKNOWN";
    bad_gateway => 502, "M_UNKNOWN";
}

impl MatrixError {
    /// `M_LIMIT_EXCEEDED` with HTTP 429 and `retry_after_ms`.
    #[must_use]
    pub fn limit_exceeded(retry_after_ms: u64) -> Self {
        Self {
            status: 429,
            errcode: "M_LIMIT_EXCEEDED",
            message: "Too many requests; retry later".to_owned(),
            extra: Some(json!({ "retry_after_ms": retry_after_ms })),
        }
    }

    /// Returns `retry_after_ms` of an `M_LIMIT_EXCEEDED` error.
    #[must_use]
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.extra.as_ref()?.get("retry_after_ms")?.as_u64()
    }

    /// `M_UNRECOGNIZED` with HTTP 405, for a known path with another method.
    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self {
            status: 405,
            ..Self::unrecognized("Method not allowed for this endpoint")
        }
    }

    /// Returns the 401 that starts User-Interactive Auth: the body is `flows` alone,
    /// without an errcode, because no stage has failed yet.
    #[must_use]
    pub fn auth_required(flows: Value) -> Self {
        Self {
            status: 401,
            errcode: "",
            message: String::new(),
            extra: Some(flows),
        }
    }

    /// Adds top-level fields to the error body.
    #[must_use]
    pub fn with_extra(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    /// Serializes the error body.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        // A User-Interactive Auth challenge that reports no failed stage has
        // no errcode (see `Self::auth_required`).
        let mut body = if self.errcode.is_empty() {
            json!({})
        } else {
            json!({ "errcode": self.errcode, "error": self.message })
        };
        if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.extra, &mut body) {
            for (key, value) in extra {
                map.insert(key.clone(), value.clone());
            }
        }
        body.to_string().into_bytes()
    }
}

impl From<StoreError> for MatrixError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "storage failure while serving a request");
        Self::internal("Internal storage error")
    }
}

impl From<eltrix_shards::SubmitError> for MatrixError {
    fn from(error: eltrix_shards::SubmitError) -> Self {
        tracing::error!(%error, "cross-shard request failed");
        Self::unavailable("A shard is not serving; try again")
    }
}

/// Result of a handler.
pub type ApiResult<T = Value> = Result<T, MatrixError>;
