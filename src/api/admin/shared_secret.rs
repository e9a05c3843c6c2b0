//! Synapse-compatible shared-secret registration: `GET` and `POST
//! /_synapse/admin/v1/register`, as Synapse's admin API documentation
//! ("Shared-Secret Registration") describes it.
//!
//! `GET` returns a nonce. `POST` carries the nonce, the account's username,
//! password and admin flag, and `mac`: the hex HMAC-SHA1, keyed with
//! `registration_shared_secret`, of `nonce 00 username 00 password 00
//! admin|notadmin`. A nonce is valid for 60 seconds, and the first `POST`
//! that names it removes it, whether its MAC matches or not.
//!
//! Nonces live in memory on the shard that owns them (`shard_of(nonce)`),
//! so they do not survive a restart.

use std::{
    cell::RefCell,
    collections::HashMap,
    rc::Rc,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;

use super::account;
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    auth::token::random_bytes,
    shard::Shard,
};

/// How long a nonce stays valid.
const NONCE_LIFETIME: Duration = Duration::from_secs(60);
/// Nonces kept per shard; issuing one more drops the oldest.
const MAX_NONCES: usize = 10_000;

thread_local! {
    /// The nonces owned by the shard running on this thread.
    static NONCES: RefCell<NonceStore> = RefCell::new(NonceStore::default());
}

/// Issued nonces and when they were issued.
#[derive(Default)]
struct NonceStore {
    issued: HashMap<String, Instant>,
}

impl NonceStore {
    fn insert(&mut self, nonce: String, now: Instant) {
        self.issued
            .retain(|_, issued| now.duration_since(*issued) < NONCE_LIFETIME);
        if self.issued.len() >= MAX_NONCES
            && let Some(oldest) = self
                .issued
                .iter()
                .min_by_key(|(_, issued)| **issued)
                .map(|(nonce, _)| nonce.clone())
        {
            self.issued.remove(&oldest);
        }
        self.issued.insert(nonce, now);
    }

    /// Removes `nonce` and returns whether it was issued and has not expired.
    fn take(&mut self, nonce: &str, now: Instant) -> bool {
        self.issued
            .remove(nonce)
            .is_some_and(|issued| now.duration_since(issued) < NONCE_LIFETIME)
    }
}

// NOTE: the protocol also has `displayname`, for the new profile. Profiles
// are not served, so the field is ignored like any other unknown field.
#[derive(Deserialize)]
struct RegisterBody {
    nonce: String,
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
    mac: String,
    user_type: Option<String>,
}

/// `GET /_synapse/admin/v1/register`.
///
/// # Errors
///
/// `M_UNKNOWN` (400) when `registration_shared_secret` is not configured.
pub async fn nonce(shard: &Rc<Shard>) -> ApiResult<Value> {
    configured_secret(shard)?;
    let nonce = hex(&random_bytes::<32>());
    let stored = nonce.clone();
    shard
        .on_shard(shard.owner(&nonce), move |_| async move {
            NONCES.with(|nonces| nonces.borrow_mut().insert(stored, Instant::now()));
        })
        .await?;
    Ok(json!({ "nonce": nonce }))
}

/// `POST /_synapse/admin/v1/register`: creates the account with a first
/// device. The MAC covers the username as sent; the account gets it
/// lowercased.
///
/// # Errors
///
/// `M_UNKNOWN` (400) without a configured secret or for an unknown or
/// expired nonce, `M_FORBIDDEN` for a wrong MAC, and the errors of account
/// creation.
pub async fn register(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let secret = configured_secret(shard)?.to_owned();
    let body: RegisterBody = request.body()?;

    let nonce = body.nonce.clone();
    let issued = shard
        .on_shard(shard.owner(&nonce), move |_| async move {
            NONCES.with(|nonces| nonces.borrow_mut().take(&nonce, Instant::now()))
        })
        .await?;
    if !issued {
        return Err(MatrixError::unknown(
            "Unknown or expired nonce; get a new one with GET /_synapse/admin/v1/register",
        ));
    }
    if body.user_type.is_some() {
        return Err(MatrixError::invalid_param("user_type is not supported"));
    }
    if body.username.contains('\0') || body.password.contains('\0') {
        return Err(MatrixError::invalid_param(
            "username and password must not contain NUL",
        ));
    }
    if !mac_matches(&secret, &body) {
        tracing::warn!("shared-secret registration with a wrong MAC");
        return Err(MatrixError::forbidden("HMAC incorrect"));
    }

    let localpart = body.username.to_lowercase();
    let created =
        account::create_account(shard, &localpart, body.password, body.admin, true).await?;
    let device = created
        .device
        .ok_or_else(|| MatrixError::internal("Account created without a device"))?;
    Ok(json!({
        "user_id": created.user_id,
        "access_token": device.access_token,
        "device_id": device.device_id,
        "home_server": shard.config.server_name,
    }))
}

fn configured_secret(shard: &Shard) -> ApiResult<&str> {
    shard
        .config
        .registration_shared_secret
        .as_deref()
        .ok_or_else(|| MatrixError::unknown("Shared secret registration is not enabled"))
}

fn mac_matches(secret: &str, body: &RegisterBody) -> bool {
    let Some(expected) = unhex(&body.mac) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    let role: &[u8] = if body.admin { b"admin" } else { b"notadmin" };
    for (index, part) in [
        body.nonce.as_bytes(),
        body.username.as_bytes(),
        body.password.as_bytes(),
        role,
    ]
    .iter()
    .enumerate()
    {
        if index > 0 {
            mac.update(b"\0");
        }
        mac.update(part);
    }
    mac.verify_slice(&expected).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{NONCE_LIFETIME, NonceStore, RegisterBody, hex, mac_matches, unhex};

    #[test]
    fn nonce_is_single_use() {
        let mut nonces = NonceStore::default();
        let now = Instant::now();
        nonces.insert("n".into(), now);
        assert!(nonces.take("n", now));
        assert!(!nonces.take("n", now));
        assert!(!nonces.take("never issued", now));
    }

    #[test]
    fn nonce_expires() {
        let mut nonces = NonceStore::default();
        let now = Instant::now();
        nonces.insert("n".into(), now);
        assert!(!nonces.take("n", now + NONCE_LIFETIME + Duration::from_millis(1)));
    }

    fn body(admin: bool, mac: String) -> RegisterBody {
        RegisterBody {
            nonce: "abc".into(),
            username: "alice".into(),
            password: "pw".into(),
            admin,
            mac,
            user_type: None,
        }
    }

    #[test]
    fn mac_covers_every_field() {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"secret").unwrap();
        mac.update(b"abc\0alice\0pw\0admin");
        let good = hex(&mac.finalize().into_bytes());
        assert!(mac_matches("secret", &body(true, good.clone())));
        assert!(!mac_matches("secret", &body(false, good.clone())));
        assert!(!mac_matches("other", &body(true, good)));
        assert!(!mac_matches("secret", &body(true, "zz".into())));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("0g"), None);
    }
}
