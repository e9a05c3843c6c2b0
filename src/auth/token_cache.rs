//! A shard's cache of access-token lookups.
//!
//! Every authenticated request looks its token up; the cache saves the two
//! store reads. Removing a token (logout, or a login that replaces a device's
//! token) commits the removal first, then evicts the hash on every shard
//! before the request gets its response. A lookup racing with that either ran
//! before the eviction, which removes it, or reads the store after the
//! commit, which no longer has the token.

use std::{cell::RefCell, collections::HashMap};

use crate::api::request::Auth;

/// Entries kept before the cache is emptied and refilled.
const CAPACITY: usize = 100_000;

/// Token hash to owner.
#[derive(Default)]
pub struct TokenCache {
    entries: RefCell<HashMap<String, Auth>>,
}

impl TokenCache {
    /// Returns the cached owner of `token_hash`.
    #[must_use]
    pub fn get(&self, token_hash: &str) -> Option<Auth> {
        self.entries.borrow().get(token_hash).cloned()
    }

    /// Caches the owner of `token_hash`.
    pub fn insert(&self, token_hash: String, auth: Auth) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(token_hash, auth);
    }

    /// Forgets `token_hash`.
    pub fn evict(&self, token_hash: &str) {
        self.entries.borrow_mut().remove(token_hash);
    }
}
