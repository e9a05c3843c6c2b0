//! Argon2id password hashes, computed on a worker thread so that a burst
//! of logins does not stall the shard's executor.
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane (the OWASP minimum for
//! argon2id), encoded in the PHC string so they can be raised later without
//! breaking stored hashes.

use std::{sync::mpsc, thread};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use tokio::sync::oneshot;

const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// A hash verified against when the user does not exist, so the time a
/// failed login takes does not tell whether the account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    Fv8k2UlZkpYjxYcMqsF7h3w0VXhE9rD1tq4a4xN2qUE";

type Job = Box<dyn FnOnce() + Send>;

/// One worker thread per shard that runs password hashing jobs in order.
#[derive(Clone)]
pub struct PasswordWorker {
    jobs: mpsc::Sender<Job>,
}

impl PasswordWorker {
    /// Starts the worker thread of shard `shard_id`.
    ///
    /// # Errors
    ///
    /// Returns the OS error if the thread cannot be spawned.
    pub fn start(shard_id: usize) -> std::io::Result<Self> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name(format!("password-{shard_id}"))
            .spawn(move || {
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })?;
        Ok(Self { jobs })
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, result) = oneshot::channel();
        let boxed: Job = Box::new(move || {
            let _ = reply.send(job());
        });
        self.jobs.send(boxed).ok()?;
        result.await.ok()
    }

    /// Hashes `password` into a PHC string; `None` if the worker failed.
    pub async fn hash(&self, password: String) -> Option<String> {
        self.run(move || {
            let salt_bytes: [u8; 16] = crate::auth::token::random_bytes();
            let salt = SaltString::encode_b64(&salt_bytes).ok()?;
            hasher()
                .hash_password(password.as_bytes(), &salt)
                .ok()
                .map(|hash| hash.to_string())
        })
        .await
        .flatten()
    }

    /// Checks `password` against `stored`, or against a dummy hash when the
    /// account has none, taking the same time either way.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        self.run(move || {
            let exists = stored.is_some();
            let encoded = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
            let Ok(parsed) = PasswordHash::new(&encoded) else {
                return false;
            };
            let matches = hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            exists && matches
        })
        .await
        .unwrap_or(false)
    }
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}
