//! Rate-limit settings: a token bucket per action, kept per user and per
//! client IP address.

use serde::Deserialize;

/// Slowest accepted refill: one request a day.
const MIN_PER_SECOND: f64 = 1.0 / 86_400.0;

/// One token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: f64,
}

impl Bucket {
    const fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }
}

/// The buckets of one action. A missing bucket does not limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLimits {
    pub per_user: Option<Bucket>,
    pub per_ip: Option<Bucket>,
}

/// Rate limits of the actions the spec names. Admins are exempt.
// NOTE: there are no media endpoints and no application services yet, so
// the `media` limits and the appservice exemption have nothing to apply to.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub enabled: bool,
    /// Login attempts, per client IP and per account named in the request.
    pub login: ActionLimits,
    /// Registration attempts, per client IP.
    pub registration: ActionLimits,
    /// Events sent to rooms (`/send`, `/state`, `/redact`).
    pub message: ActionLimits,
    pub create_room: ActionLimits,
    /// Joins by ID or alias and invites.
    pub join: ActionLimits,
    pub media: ActionLimits,
}

impl Default for RateLimits {
    fn default() -> Self {
        // The per-IP buckets are ten times the per-user ones, written out so
        // that docs/eltrix.example.toml can list the same numbers.
        let both = |user: Bucket, ip: Bucket| ActionLimits {
            per_user: Some(user),
            per_ip: Some(ip),
        };
        Self {
            enabled: true,
            login: both(Bucket::new(0.17, 3.0), Bucket::new(1.7, 30.0)),
            registration: ActionLimits {
                per_user: None,
                per_ip: Some(Bucket::new(0.17, 3.0)),
            },
            message: both(Bucket::new(0.2, 10.0), Bucket::new(2.0, 100.0)),
            create_room: both(Bucket::new(0.05, 5.0), Bucket::new(0.5, 50.0)),
            join: both(Bucket::new(0.1, 10.0), Bucket::new(1.0, 100.0)),
            media: both(Bucket::new(1.0, 20.0), Bucket::new(10.0, 200.0)),
        }
    }
}

impl RateLimits {
    /// Returns the first invalid bucket, named by action and key.
    #[must_use]
    pub fn invalid_bucket(&self) -> Option<String> {
        let actions = [
            ("login", &self.login),
            ("registration", &self.registration),
            ("message", &self.message),
            ("create_room", &self.create_room),
            ("join", &self.join),
            ("media", &self.media),
        ];
        for (name, limits) in actions {
            for (key, bucket) in [("per_user", limits.per_user), ("per_ip", limits.per_ip)] {
                if let Some(bucket) = bucket
                    && !(bucket.per_second >= MIN_PER_SECOND
                        && bucket.per_second.is_finite()
                        && bucket.burst >= 1.0
                        && bucket.burst.is_finite())
                {
                    return Some(format!("rate_limits.{name}.{key}"));
                }
            }
        }
        None
    }
}
