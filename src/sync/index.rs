//! The sync index of the users a shard owns.
//!
//! Room shards announce each durable event to the shards of the users it
//! concerns. Announcements from one room shard arrive in position order, so
//! `frontier[s]` (the highest position announced by shard `s`) means every
//! event of shard `s` up to it that concerns a local user has arrived. A sync
//! token is that frontier vector; see `docs/sync-tokens.md`.

use std::{collections::HashMap, sync::Arc};

use eltrix_shards::ShardId;
use ruma::{OwnedRoomId, OwnedUserId, RoomId};
use tokio::sync::oneshot;

use super::tail::RoomTail;
use crate::store::{Map, MembershipRecord, Store, StoreError, keys};

/// An event announced by the shard that owns its room.
#[derive(Debug, Clone)]
pub struct RoomNotification {
    pub source: ShardId,
    pub room_id: OwnedRoomId,
    pub pos: u64,
    /// Position of the room's event announced before this one.
    pub prev_pos: u64,
    pub event_id: Arc<str>,
    /// Local users on the receiving shard who should see it.
    pub users: Arc<Vec<OwnedUserId>>,
    /// A membership change carried by the event: `(user, membership)`.
    pub membership: Option<(OwnedUserId, String)>,
}

/// One room in a user's index.
#[derive(Debug, Clone)]
pub struct UserRoom {
    /// The shard that owns the room.
    pub owner: ShardId,
    pub membership: String,
    /// Position of the membership event.
    pub membership_pos: u64,
    /// Position of the newest event announced to the user.
    pub last_pos: u64,
}

/// A user's rooms and waiting `/sync` requests.
#[derive(Default)]
pub struct UserIndex {
    pub rooms: HashMap<OwnedRoomId, UserRoom>,
    waiters: Vec<oneshot::Sender<()>>,
}

/// Maximum rooms with a timeline tail per shard. By estimate a tail of 16
/// event IDs and positions takes about 1.5 KiB, so the tails of a shard
/// stay under about 48 MiB.
pub const MAX_TAILS: usize = 32_768;

/// The index of every loaded local user on this shard.
pub struct SyncIndex {
    pub frontier: Vec<u64>,
    users: HashMap<OwnedUserId, UserIndex>,
    /// The newest events of each room announced to this shard.
    tails: HashMap<OwnedRoomId, RoomTail>,
}

impl SyncIndex {
    /// Creates an index whose frontier starts at `boot_pos`, above every
    /// position persisted before this start.
    #[must_use]
    pub fn new(nr_shards: usize, boot_pos: u64) -> Self {
        Self {
            frontier: vec![boot_pos; nr_shards],
            users: HashMap::new(),
            tails: HashMap::new(),
        }
    }

    /// Applies an announcement and wakes the affected users' `/sync`.
    pub fn apply(&mut self, note: &RoomNotification) {
        if let Some(frontier) = self.frontier.get_mut(note.source) {
            *frontier = (*frontier).max(note.pos);
        }
        match self.tails.get_mut(&note.room_id) {
            Some(tail) => tail.push(note.prev_pos, note.pos, note.event_id.clone()),
            None => {
                if self.tails.len() >= MAX_TAILS {
                    // Any tail may go: a room without one reads the store.
                    let evicted = self.tails.keys().next().cloned();
                    if let Some(room_id) = evicted {
                        self.tails.remove(&room_id);
                    }
                }
                let tail = RoomTail::starting_at(note.prev_pos, note.pos, note.event_id.clone());
                self.tails.insert(note.room_id.clone(), tail);
            }
        }
        for user_id in note.users.iter() {
            let Some(user) = self.users.get_mut(user_id) else {
                continue;
            };
            let entry = user
                .rooms
                .entry(note.room_id.clone())
                .or_insert_with(|| UserRoom {
                    owner: note.source,
                    membership: "leave".to_owned(),
                    membership_pos: 0,
                    last_pos: 0,
                });
            entry.last_pos = entry.last_pos.max(note.pos);
            if let Some((member, membership)) = &note.membership
                && member == user_id
            {
                entry.membership.clone_from(membership);
                entry.membership_pos = note.pos;
            }
            for waiter in user.waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Returns the user's index, loading it from the store on first use.
    ///
    /// # Errors
    ///
    /// Returns a storage error.
    pub fn user(
        &mut self,
        store: &Store,
        user_id: &OwnedUserId,
    ) -> Result<&mut UserIndex, StoreError> {
        if !self.users.contains_key(user_id) {
            let loaded = load_user(store, user_id, self.frontier.len())?;
            self.users.insert(user_id.clone(), loaded);
        }
        Ok(self.users.get_mut(user_id).expect("inserted above"))
    }

    /// Registers a waiter woken by the user's next announcement.
    pub fn wait(&mut self, user_id: &OwnedUserId) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        if let Some(user) = self.users.get_mut(user_id) {
            user.waiters.retain(|waiter| !waiter.is_closed());
            user.waiters.push(sender);
        }
        receiver
    }

    /// Returns the room's events with positions in `(lower, upper]`, newest first
    /// and at most `count`, when its tail reaches back to `lower`. Only valid
    /// when every event of the room up to `upper` was announced to this
    /// shard, as for a room that one of its users was joined to throughout.
    #[must_use]
    pub fn tail_window(
        &self,
        room_id: &RoomId,
        lower: u64,
        upper: u64,
        count: usize,
    ) -> Option<Vec<(u64, Arc<str>)>> {
        self.tails.get(room_id)?.window(lower, upper, count)
    }

    /// Forgets the room's tail, after some of its events were deleted.
    pub fn drop_tail(&mut self, room_id: &RoomId) {
        self.tails.remove(room_id);
    }

    /// Removes a forgotten room from the user's index.
    pub fn forget(&mut self, user_id: &OwnedUserId, room_id: &OwnedRoomId) {
        if let Some(user) = self.users.get_mut(user_id) {
            user.rooms.remove(room_id);
        }
    }

    /// Returns the number of `/sync` requests waiting on this shard.
    #[must_use]
    pub fn waiter_count(&self) -> usize {
        let open = |user: &UserIndex| user.waiters.iter().filter(|w| !w.is_closed()).count();
        self.users.values().map(open).sum()
    }

    /// Wakes every waiting `/sync`, so they respond before shutdown.
    pub fn wake_all(&mut self) {
        for user in self.users.values_mut() {
            for waiter in user.waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

fn load_user(
    store: &Store,
    user_id: &OwnedUserId,
    nr_shards: usize,
) -> Result<UserIndex, StoreError> {
    let mut index = UserIndex::default();
    for (key, value) in store.scan_prefix(Map::UserRooms, &keys::prefix(user_id.as_str()))? {
        let Ok(record) = serde_json::from_slice::<MembershipRecord>(&value) else {
            continue;
        };
        let Ok(room_id) = OwnedRoomId::try_from(keys::last_part(&key)) else {
            continue;
        };
        let last_pos = store
            .scan_range(
                Map::Timeline,
                &keys::timeline(room_id.as_str(), 0),
                &keys::timeline(room_id.as_str(), u64::MAX),
                true,
                1,
            )?
            .first()
            .map_or(record.pos, |(key, _)| keys::timeline_pos(key));
        let room = UserRoom {
            owner: eltrix_shards::shard_of(room_id.as_str(), nr_shards),
            membership: record.membership,
            membership_pos: record.pos,
            last_pos,
        };
        index.rooms.insert(room_id, room);
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(room: usize, pos: u64) -> RoomNotification {
        RoomNotification {
            source: 0,
            room_id: OwnedRoomId::try_from(format!("!r{room}:x")).unwrap(),
            pos,
            prev_pos: 0,
            event_id: Arc::from(format!("$e{pos}")),
            users: Arc::new(Vec::new()),
            membership: None,
        }
    }

    #[test]
    fn tails_are_bounded() {
        let mut index = SyncIndex::new(1, 0);
        for room in 0..MAX_TAILS + 10 {
            index.apply(&note(room, room as u64 + 1));
        }
        assert_eq!(index.tails.len(), MAX_TAILS);
        let newest = note(MAX_TAILS + 9, MAX_TAILS as u64 + 10);
        let window = index.tail_window(&newest.room_id, 0, u64::MAX, 10);
        assert_eq!(window.map(|events| events.len()), Some(1));
    }

    #[test]
    fn tail_follows_announcements() {
        let mut index = SyncIndex::new(1, 0);
        let first = note(1, 5);
        index.apply(&first);
        let second = RoomNotification {
            prev_pos: 5,
            ..note(1, 9)
        };
        index.apply(&second);
        let window = index.tail_window(&first.room_id, 0, 9, 10).unwrap();
        let positions: Vec<u64> = window.iter().map(|(pos, _)| *pos).collect();
        assert_eq!(positions, vec![9, 5]);
        index.drop_tail(&first.room_id);
        assert!(index.tail_window(&first.room_id, 0, 9, 10).is_none());
    }
}
