//! One shard's local state: the rooms and users it owns, its store handle
//! and commit thread. It lives in an `Rc` on its executor thread; other
//! shards reach it only through tasks submitted over the mesh.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    future::Future,
    rc::Rc,
    sync::Arc,
};

use eltrix_shards::{Mesh, ShardId, shard_of};
use ruma::OwnedRoomId;

use crate::{
    api::error::{ApiResult, MatrixError},
    auth::{password::PasswordWorker, token_cache::TokenCache},
    config::Config,
    metrics::ShardMetrics,
    ratelimit::Limiter,
    room::{Room, event_cache::EventCache, keys::SigningKey},
    store::{Committer, Store},
    sync::{FilterCache, SyncIndex},
};

/// A shard's state.
pub struct Shard {
    pub id: ShardId,
    pub mesh: Mesh<Shard>,
    pub store: Store,
    pub committer: Committer,
    pub config: Arc<Config>,
    pub key: Arc<SigningKey>,
    pub passwords: PasswordWorker,
    pub rooms: RefCell<HashMap<OwnedRoomId, Rc<RefCell<Room>>>>,
    pub sync: RefCell<SyncIndex>,
    /// Last stream position handed out, in microseconds since the epoch.
    clock: Cell<u64>,
    /// Last `origin_server_ts` given to a create event, in milliseconds.
    last_create_millis: Cell<u64>,
    /// Set when shutdown starts; new requests get 503.
    pub stopping: Cell<bool>,
    /// Requests accepted on this shard and not yet responded to.
    pub in_flight: Cell<usize>,
    /// Tasks from the mesh running on this shard, such as handlers of
    /// requests that other shards accepted.
    pub tasks_running: Cell<usize>,
    /// Notified when shutdown starts, to stop accepting connections.
    pub stop: tokio::sync::Notify,
    pub metrics: ShardMetrics,
    pub tokens: TokenCache,
    pub events: EventCache,
    pub filters: FilterCache,
    pub limiter: Limiter,
    pub client_tls: Arc<rustls::ClientConfig>,
    pub remote_keys: crate::federation::KeyCache,
    pub outbound: crate::federation::sender::Outbound,
}

/// The parts a shard is built from.
pub struct ShardParts {
    pub id: ShardId,
    /// The federation listener's TLS setup, when federation is on.
    pub federation_tls: Option<monoio_rustls::TlsAcceptor>,
    /// TLS settings of outbound federation requests.
    pub client_tls: Arc<rustls::ClientConfig>,
    pub mesh: Mesh<Shard>,
    pub store: Store,
    pub committer: Committer,
    pub config: Arc<Config>,
    pub key: Arc<SigningKey>,
    pub passwords: PasswordWorker,
    /// Every stream position persisted before this start is below this.
    pub boot_pos: u64,
}

impl Shard {
    /// Creates the shard state.
    #[must_use]
    pub fn new(parts: ShardParts) -> Self {
        let nr_shards = parts.mesh.nr_shards();
        Self {
            id: parts.id,
            mesh: parts.mesh,
            store: parts.store,
            committer: parts.committer,
            config: parts.config,
            key: parts.key,
            passwords: parts.passwords,
            rooms: RefCell::new(HashMap::new()),
            sync: RefCell::new(SyncIndex::new(nr_shards, parts.boot_pos)),
            clock: Cell::new(parts.boot_pos),
            last_create_millis: Cell::new(0),
            stopping: Cell::new(false),
            in_flight: Cell::new(0),
            tasks_running: Cell::new(0),
            stop: tokio::sync::Notify::new(),
            metrics: ShardMetrics::default(),
            tokens: TokenCache::default(),
            events: EventCache::default(),
            filters: FilterCache::default(),
            limiter: Limiter::default(),
            client_tls: parts.client_tls,
            remote_keys: crate::federation::KeyCache::default(),
            outbound: crate::federation::sender::Outbound::default(),
        }
    }

    /// Number of shards in this server.
    #[must_use]
    pub fn nr_shards(&self) -> usize {
        self.mesh.nr_shards()
    }

    /// Returns the shard that owns `id`.
    #[must_use]
    pub fn owner(&self, id: &str) -> ShardId {
        shard_of(id, self.nr_shards())
    }

    /// Returns the next stream position: microseconds since the epoch, strictly
    /// increasing on this shard even if the clock steps back.
    #[must_use]
    pub fn next_pos(&self) -> u64 {
        let pos = now_micros().max(self.clock.get() + 1);
        self.clock.set(pos);
        pos
    }

    /// Returns a timestamp for a new room's create event. Timestamps
    /// increase strictly on each shard and are congruent to the shard's ID
    /// modulo the shard count, so no two shards hand out the same one and
    /// identical rooms created at once get different v12 room IDs.
    #[must_use]
    pub fn next_create_millis(&self) -> u64 {
        let floor = now_millis().max(self.last_create_millis.get() + 1);
        let millis = first_in_class(floor, self.id, self.nr_shards());
        self.last_create_millis.set(millis);
        millis
    }

    /// Runs `task` on shard `target`: in place when that is this shard,
    /// otherwise over the mesh.
    ///
    /// # Errors
    ///
    /// Returns 503 if the target shard has stopped.
    pub async fn on_shard<F, Fut, R>(self: &Rc<Self>, target: ShardId, task: F) -> ApiResult<R>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return Ok(task(self.clone()).await);
        }
        Ok(self.mesh.submit_to(target, task).await?)
    }

    /// Returns the room `room_id`, loading it from the store on first use.
    ///
    /// # Errors
    ///
    /// `M_NOT_FOUND` if the room is unknown here.
    pub fn room(&self, room_id: &OwnedRoomId) -> ApiResult<Rc<RefCell<Room>>> {
        debug_assert_eq!(
            self.owner(room_id.as_str()),
            self.id,
            "room served by a shard that does not own it"
        );
        if let Some(room) = self.rooms.borrow().get(room_id) {
            return Ok(room.clone());
        }
        let room = Room::load(&self.store, room_id)?
            .ok_or_else(|| MatrixError::not_found("Unknown room"))?;
        let room = Rc::new(RefCell::new(room));
        self.rooms
            .borrow_mut()
            .insert(room_id.clone(), room.clone());
        Ok(room)
    }

    /// Evicts removed access tokens from every shard's cache; call it after
    /// the removal is committed and before responding.
    pub async fn evict_tokens(self: &Rc<Self>, token_hashes: Vec<String>) {
        if token_hashes.is_empty() {
            return;
        }
        for target in 0..self.nr_shards() {
            let hashes = token_hashes.clone();
            let evicted = self
                .on_shard(target, move |shard| async move {
                    for hash in &hashes {
                        shard.tokens.evict(hash);
                    }
                })
                .await;
            if evicted.is_err() {
                tracing::error!(target, "failed to evict access tokens on a stopped shard");
            }
        }
    }

    /// Drops a room from memory so the next use reloads it from the store.
    pub fn evict_room(&self, room_id: &OwnedRoomId) {
        self.rooms.borrow_mut().remove(room_id);
    }
}

/// Returns the smallest value at or above `floor` that is congruent to
/// `shard_id` modulo `nr_shards`.
#[must_use]
pub fn first_in_class(floor: u64, shard_id: ShardId, nr_shards: usize) -> u64 {
    let (shard_id, nr_shards) = (shard_id as u64, nr_shards.max(1) as u64);
    floor + (shard_id + nr_shards - floor % nr_shards) % nr_shards
}

/// Microseconds since the Unix epoch.
#[must_use]
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_millis() -> u64 {
    now_micros() / 1000
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::first_in_class;

    #[test]
    fn create_timestamps_of_shards_never_meet() {
        let mut seen = HashSet::new();
        for shard_id in 0..3 {
            // Every shard starts from the same clock reading, as when
            // requests reach all shards in the same millisecond.
            let mut next_floor = 1_000;
            for _ in 0..100 {
                let millis = first_in_class(next_floor, shard_id, 3);
                assert_eq!(millis % 3, shard_id as u64);
                assert!(seen.insert(millis), "two shards produced {millis}");
                next_floor = millis + 1;
            }
        }
    }

    #[test]
    fn first_in_class_is_at_or_above_floor() {
        assert_eq!(first_in_class(10, 1, 4), 13);
        assert_eq!(first_in_class(13, 1, 4), 13);
        assert_eq!(first_in_class(10, 0, 1), 10);
    }
}
