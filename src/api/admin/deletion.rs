//! Deleting many keys of one room, shared by room deletion and history
//! purges: writes go out in batches of bounded size, and afterwards the
//! deleted events are dropped from every shard's event cache.

use std::rc::Rc;

use crate::{
    api::error::ApiResult,
    shard::Shard,
    store::{Map, WriteBatch, keys},
};

/// Deletions per write batch, so that purging a large room does not build
/// one batch holding every key of it.
const BATCH_OPS: usize = 10_000;

/// Keys to delete, in the order they are added.
#[derive(Default)]
pub struct Deletion {
    batches: Vec<WriteBatch>,
    current: WriteBatch,
    ops_in_current: usize,
    event_ids: Vec<String>,
    /// Rooms that lose events, whose timeline tails every shard drops.
    rooms: std::collections::BTreeSet<String>,
}

impl Deletion {
    /// Queues the removal of `key` from `map`.
    pub fn delete(&mut self, map: Map, key: Vec<u8>) {
        if self.ops_in_current == BATCH_OPS {
            self.batches.push(std::mem::take(&mut self.current));
            self.ops_in_current = 0;
        }
        self.current.delete(map, key);
        self.ops_in_current += 1;
    }

    /// Queues the removal of an event, its timeline row, its state group
    /// mapping and its stored signature.
    pub fn delete_event(&mut self, room_id: &str, event_id: &str, pos: u64) {
        self.delete(Map::Events, event_id.as_bytes().to_vec());
        self.delete(Map::Timeline, keys::timeline(room_id, pos));
        self.delete(Map::EventStates, event_id.as_bytes().to_vec());
        self.delete(Map::EventSignatures, event_id.as_bytes().to_vec());
        self.event_ids.push(event_id.to_owned());
        if !self.rooms.contains(room_id) {
            self.rooms.insert(room_id.to_owned());
        }
    }

    /// Returns the number of events queued for removal.
    #[must_use]
    pub fn event_count(&self) -> usize {
        self.event_ids.len()
    }

    /// Commits the batches in order, then removes the deleted events from
    /// every shard's event cache. Returns the number of events deleted.
    ///
    /// A redaction committed while the batches were queued can write its
    /// target's record back, so after the batches an empty batch waits for
    /// every write queued before it, and a sweep deletes such records again.
    ///
    /// # Errors
    ///
    /// Returns a storage error; batches committed before it stay committed.
    pub async fn commit(mut self, shard: &Rc<Shard>) -> ApiResult<usize> {
        self.batches.push(self.current);
        for batch in self.batches {
            shard.committer.commit(batch).await?;
        }
        shard.committer.commit(WriteBatch::default()).await?;
        let mut sweep = WriteBatch::default();
        let mut written_back = 0usize;
        for event_id in &self.event_ids {
            if shard.store.get(Map::Events, event_id.as_bytes())?.is_some() {
                sweep.delete(Map::Events, event_id.as_bytes().to_vec());
                written_back += 1;
            }
        }
        if written_back > 0 {
            tracing::debug!(written_back, "deleting events written back by a redaction");
            shard.committer.commit(sweep).await?;
        }
        let count = self.event_ids.len();
        evict_events(shard, self.event_ids, self.rooms).await;
        Ok(count)
    }
}

/// Drops `event_ids` from the event cache of every shard, and the
/// timeline tails of `rooms`.
async fn evict_events(
    shard: &Rc<Shard>,
    event_ids: Vec<String>,
    rooms: std::collections::BTreeSet<String>,
) {
    if event_ids.is_empty() {
        return;
    }
    let event_ids = std::sync::Arc::new(event_ids);
    let rooms: std::sync::Arc<Vec<ruma::OwnedRoomId>> = std::sync::Arc::new(
        rooms
            .iter()
            .filter_map(|room_id| ruma::OwnedRoomId::try_from(room_id.as_str()).ok())
            .collect(),
    );
    for target in 0..shard.nr_shards() {
        let event_ids = event_ids.clone();
        let rooms = rooms.clone();
        let evicted = shard
            .on_shard(target, move |shard| async move {
                for event_id in event_ids.iter() {
                    shard.events.evict(event_id);
                }
                let mut index = shard.sync.borrow_mut();
                for room_id in rooms.iter() {
                    index.drop_tail(room_id);
                }
            })
            .await;
        if evicted.is_err() {
            tracing::error!(target, "failed to drop purged events on a stopped shard");
        }
    }
}
