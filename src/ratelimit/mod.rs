//! Token-bucket rate limits. Each bucket lives on the shard that owns its
//! key (a user ID or a client IP address), so no two cores share limiter
//! state. The dispatcher takes a token on that shard before running the
//! request.

mod bucket;

use std::{cell::RefCell, collections::HashMap, rc::Rc, time::Instant};

pub use bucket::BucketState;

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::Auth,
        router::{RoomAction, Route},
    },
    config::{ActionLimits, Bucket, RateLimits},
    shard::Shard,
};

/// A limited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Login,
    Registration,
    Message,
    CreateRoom,
    Join,
}

impl Action {
    /// Returns the limited action of `route`, if any.
    #[must_use]
    pub fn of(route: &Route) -> Option<Self> {
        match route {
            Route::Login => Some(Self::Login),
            Route::Register | Route::SharedSecretRegister | Route::SharedSecretNonce => {
                Some(Self::Registration)
            }
            Route::CreateRoom => Some(Self::CreateRoom),
            Route::JoinByIdOrAlias(_) | Route::KnockByIdOrAlias(_) => Some(Self::Join),
            Route::Room(_, action) => match action {
                RoomAction::Join | RoomAction::Invite => Some(Self::Join),
                // An upgrade creates a room.
                RoomAction::Upgrade => Some(Self::CreateRoom),
                RoomAction::Send(..) | RoomAction::PutState(..) | RoomAction::Redact(..) => {
                    Some(Self::Message)
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn limits(self, config: &RateLimits) -> ActionLimits {
        match self {
            Self::Login => config.login,
            Self::Registration => config.registration,
            Self::Message => config.message,
            Self::CreateRoom => config.create_room,
            Self::Join => config.join,
        }
    }
}

/// Buckets are swept of entries that have refilled once there are this many.
const SWEEP_AT: usize = 100_000;

/// The buckets whose keys this shard owns.
#[derive(Default)]
pub struct Limiter {
    buckets: RefCell<HashMap<(Action, String), BucketState>>,
}

impl Limiter {
    /// Takes one token from the bucket of `action` and `key`, or returns
    /// how many milliseconds remain until one is available.
    pub fn take(&self, action: Action, key: &str, bucket: Bucket, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.borrow_mut();
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, state| !state.is_full(bucket, now));
        }
        buckets
            .entry((action, key.to_owned()))
            .or_insert_with(|| BucketState::full(bucket, now))
            .take(bucket, now)
    }
}

/// Checks the rate limits of a request before it runs: the client IP's
/// bucket, then the user's, each on the shard that owns it. The user of a
/// login is the account named in its body. Admins and unlimited routes pass
/// without a check.
///
/// # Errors
///
/// 429 `M_LIMIT_EXCEEDED` with `retry_after_ms` when a bucket is empty.
pub async fn check(
    shard: &Rc<Shard>,
    route: &Route,
    auth: Option<&Auth>,
    ip: std::net::IpAddr,
    body: &[u8],
) -> ApiResult<()> {
    let config = &shard.config.rate_limits;
    if !config.enabled || auth.is_some_and(|auth| auth.admin) {
        return Ok(());
    }
    let Some(action) = Action::of(route) else {
        return Ok(());
    };
    let limits = action.limits(config);
    let user = match action {
        Action::Login => login_account(body),
        _ => auth.map(|auth| auth.user_id.to_string()),
    };
    let keys = [
        limits.per_ip.map(|bucket| (bucket, ip.to_string())),
        limits.per_user.zip(user),
    ];
    for (bucket, key) in keys.into_iter().flatten() {
        let owner = shard.owner(&key);
        let outcome = shard
            .on_shard(owner, move |shard| async move {
                shard.limiter.take(action, &key, bucket, Instant::now())
            })
            .await?;
        if let Err(retry_after_ms) = outcome {
            return Err(MatrixError::limit_exceeded(retry_after_ms));
        }
    }
    Ok(())
}

/// Returns the account a login body names, lowercased, from
/// `identifier.user` or the deprecated top-level `user`.
fn login_account(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Identifier {
        user: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct LoginBody {
        identifier: Option<Identifier>,
        user: Option<String>,
    }
    let body: LoginBody = serde_json::from_slice(body).ok()?;
    let user = body
        .identifier
        .and_then(|identifier| identifier.user)
        .or(body.user)?;
    let localpart = user.strip_prefix('@').map_or(user.as_str(), |id| {
        id.split_once(':').map_or(id, |(localpart, _)| localpart)
    });
    Some(format!("login:{}", localpart.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::login_account;

    #[test]
    fn login_account_from_identifier_or_user() {
        let identifier = br#"{"identifier": {"type": "m.id.user", "user": "Alice"}}"#;
        assert_eq!(login_account(identifier).as_deref(), Some("login:alice"));
        let full_id = br#"{"user": "@alice:localhost"}"#;
        assert_eq!(login_account(full_id).as_deref(), Some("login:alice"));
        assert_eq!(login_account(b"{}"), None);
        assert_eq!(login_account(b"not json"), None);
    }
}
