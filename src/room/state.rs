//! A room's current state, held in memory by its owning shard.

use std::{
    collections::{BTreeMap, HashMap},
    rc::Rc,
    sync::Arc,
};

use ruma::{
    CanonicalJsonObject, OwnedEventId, OwnedRoomId, OwnedUserId, RoomVersionId,
    room_version_rules::RoomVersionRules,
};
use tokio::sync::Notify;

use super::{pdu::Pdu, versions};
use crate::store::{EventRecord, Map, RoomRecord, Store, StoreError, keys};

/// `(event type, state key)`.
pub type StateKey = (String, String);

/// Users to announce events to, grouped by their shard.
pub type Recipients = Arc<Vec<(usize, Arc<Vec<OwnedUserId>>)>>;

/// The store key of a client transaction (see [`super::Txn`]).
pub type TxnKey = Vec<u8>;

/// Most `prev_events` that a local event lists; the specification allows 20.
pub const MAX_PREV_EVENTS: usize = 20;

/// An in-memory room.
pub struct Room {
    pub room_id: OwnedRoomId,
    pub version: RoomVersionId,
    pub rules: RoomVersionRules,
    pub creator: OwnedUserId,
    pub created_ts: u64,
    pub state: BTreeMap<StateKey, Arc<Pdu>>,
    /// Current state keyed by event ID, for the authorization check.
    pub state_ids: HashMap<OwnedEventId, StateKey>,
    /// Membership of every user with an `m.room.member` state event.
    pub members: HashMap<OwnedUserId, String>,
    /// Local joined and invited members grouped by owning shard, the
    /// recipients of each new event's announcement; rebuilt after a
    /// membership change.
    pub(crate) recipients: Option<Recipients>,
    /// The servers other than this one with joined members, sorted; rebuilt
    /// after a membership change.
    pub(crate) remote_servers: Option<Arc<Vec<String>>>,
    /// The events without successors: `last_event` first, then `forks`.
    pub forward_extremities: Vec<OwnedEventId>,
    /// The newest event, one of the `prev_events` of the next one.
    pub last_event: Option<Arc<Pdu>>,
    /// The other forward extremities, left by events received on other
    /// branches. The next local event lists them in `prev_events` too, which
    /// merges the branches.
    pub forks: Vec<Arc<Pdu>>,
    /// The state group of the current state; see `state_groups`.
    pub state_group: Option<u64>,
    /// Deltas from `state_group` back to its nearest full snapshot.
    pub state_group_chain: u32,
    pub depth: u64,
    pub last_pos: u64,
    /// Position of the newest event announced to the users' shards, which
    /// the next announcement names as its predecessor.
    pub announced_pos: u64,
    /// Sends whose event is built but not yet durable, so a retry with the
    /// same transaction ID waits for it instead of creating a second event.
    pub pending_txns: HashMap<TxnKey, (OwnedEventId, Rc<Notify>)>,
    /// Set while an upgrade of the room runs, so that concurrent upgrades do
    /// not create several replacement rooms.
    pub upgrading: bool,
}

impl Room {
    /// Creates an empty room whose first event will be `m.room.create`.
    #[must_use]
    pub fn new(
        room_id: OwnedRoomId,
        version: RoomVersionId,
        rules: RoomVersionRules,
        creator: OwnedUserId,
        created_ts: u64,
    ) -> Self {
        Self {
            room_id,
            version,
            rules,
            creator,
            created_ts,
            state: BTreeMap::new(),
            state_ids: HashMap::new(),
            members: HashMap::new(),
            recipients: None,
            remote_servers: None,
            forward_extremities: Vec::new(),
            last_event: None,
            forks: Vec::new(),
            state_group: None,
            state_group_chain: 0,
            depth: 0,
            last_pos: 0,
            announced_pos: 0,
            pending_txns: HashMap::new(),
            upgrading: false,
        }
    }

    /// Loads a room and its current state from the store.
    ///
    /// # Errors
    ///
    /// Returns a storage error; `Ok(None)` if the room is unknown.
    pub fn load(store: &Store, room_id: &OwnedRoomId) -> Result<Option<Self>, StoreError> {
        let Some(record) = store.get_json::<RoomRecord>(Map::Rooms, room_id.as_bytes())? else {
            return Ok(None);
        };
        let Ok((version, rules)) = versions::rules_for(&record.room_version) else {
            tracing::error!(%room_id, version = record.room_version, "stored room has an unknown version");
            return Ok(None);
        };
        let Ok(creator) = OwnedUserId::try_from(record.creator.as_str()) else {
            return Ok(None);
        };
        let mut room = Self::new(room_id.clone(), version, rules, creator, record.created_ts);
        room.depth = record.depth;
        room.last_pos = record.last_pos;
        room.announced_pos = record.last_pos;
        room.forward_extremities = record
            .forward_extremities
            .iter()
            .filter_map(|id| OwnedEventId::try_from(id.as_str()).ok())
            .collect();

        room.state_group = record.state_group;
        room.state_group_chain = record.state_group_chain;
        if let Some((head, forks)) = record.forward_extremities.split_first() {
            room.last_event = load_pdu(store, head)?.map(Arc::new);
            for fork in forks {
                room.forks.extend(load_pdu(store, fork)?.map(Arc::new));
            }
        }
        for (_, event_id) in store.scan_prefix(Map::RoomState, &keys::prefix(room_id.as_str()))? {
            let event_id = String::from_utf8_lossy(&event_id).into_owned();
            if let Some(pdu) = load_pdu(store, &event_id)? {
                room.set_state(Arc::new(pdu));
            }
        }
        Ok(Some(room))
    }

    /// Applies an accepted event as the room's newest: its state, the single
    /// forward extremity, depth and position. A create event also fixes the
    /// room ID, which room version 12 derives from it.
    pub fn apply(&mut self, pdu: &Arc<Pdu>) {
        if pdu.kind == ruma::events::TimelineEventType::RoomCreate {
            self.room_id = pdu.room_id.clone();
        }
        self.set_state(pdu.clone());
        self.forward_extremities = vec![pdu.event_id.clone()];
        self.last_event = Some(pdu.clone());
        self.forks.clear();
        self.depth = pdu.depth;
        self.last_pos = pdu.pos;
    }

    /// Returns the `prev_events` of the next local event: every forward
    /// extremity, newest first, at most [`MAX_PREV_EVENTS`].
    #[must_use]
    pub fn prev_events(&self) -> Vec<Arc<Pdu>> {
        self.last_event
            .iter()
            .chain(self.forks.iter())
            .take(MAX_PREV_EVENTS)
            .cloned()
            .collect()
    }

    /// Returns the current state as `(type, state key)` to event ID.
    #[must_use]
    pub fn state_id_map(&self) -> super::state_groups::StateIds {
        self.state
            .iter()
            .map(|(key, pdu)| (key.clone(), pdu.event_id.to_string()))
            .collect()
    }

    /// Returns a copy of the room at its current state and newest event,
    /// without pending transactions, for building a branch that forks here.
    #[must_use]
    pub fn branch(&self) -> Self {
        let mut room = Self::new(
            self.room_id.clone(),
            self.version.clone(),
            self.rules.clone(),
            self.creator.clone(),
            self.created_ts,
        );
        for pdu in self.state.values() {
            room.set_state(pdu.clone());
        }
        room.forward_extremities
            .clone_from(&self.forward_extremities);
        room.last_event.clone_from(&self.last_event);
        room.forks.clone_from(&self.forks);
        room.state_group = self.state_group;
        room.state_group_chain = self.state_group_chain;
        room.depth = self.depth;
        room.last_pos = self.last_pos;
        room
    }

    /// Makes `pdu` the current state for its type and state key.
    pub fn set_state(&mut self, pdu: Arc<Pdu>) {
        let Some(state_key) = pdu.state_key.clone() else {
            return;
        };
        let key = (pdu.kind.to_string(), state_key);
        if key.0 == "m.room.member" {
            self.recipients = None;
            self.remote_servers = None;
        }
        if key.0 == "m.room.member"
            && let (Ok(user_id), Some(membership)) =
                (OwnedUserId::try_from(key.1.as_str()), pdu.membership())
        {
            self.members.insert(user_id, membership);
        }
        self.state_ids.insert(pdu.event_id.clone(), key.clone());
        if let Some(replaced) = self.state.insert(key, pdu) {
            self.state_ids.remove(&replaced.event_id);
        }
    }

    /// Removes the current state event of `key`, for a state that resolution
    /// produced without it.
    pub fn remove_state(&mut self, key: &StateKey) {
        let Some(removed) = self.state.remove(key) else {
            return;
        };
        self.state_ids.remove(&removed.event_id);
        if key.0 == "m.room.member" {
            self.recipients = None;
            self.remote_servers = None;
            if let Ok(user_id) = OwnedUserId::try_from(key.1.as_str()) {
                self.members.remove(&user_id);
            }
        }
    }

    /// Returns the current state event of `kind` and `state_key`.
    #[must_use]
    pub fn state_event(&self, kind: &str, state_key: &str) -> Option<&Arc<Pdu>> {
        self.state.get(&(kind.to_owned(), state_key.to_owned()))
    }

    /// Returns the membership of `user_id`, `"leave"` if none.
    #[must_use]
    pub fn membership(&self, user_id: &str) -> String {
        let membership = OwnedUserId::try_from(user_id)
            .ok()
            .and_then(|id| self.members.get(&id).cloned());
        membership.unwrap_or_else(|| "leave".to_owned())
    }

    /// Returns the local joined and invited members by owning shard, with
    /// `suffix` the `:server_name` of local user IDs.
    pub fn recipients(&mut self, nr_shards: usize, suffix: &str) -> Recipients {
        if let Some(recipients) = &self.recipients {
            return recipients.clone();
        }
        let mut by_shard: BTreeMap<usize, Vec<OwnedUserId>> = BTreeMap::new();
        for (user_id, membership) in &self.members {
            if matches!(membership.as_str(), "join" | "invite")
                && user_id.as_str().ends_with(suffix)
            {
                let owner = eltrix_shards::shard_of(user_id.as_str(), nr_shards);
                by_shard.entry(owner).or_default().push(user_id.clone());
            }
        }
        let recipients: Recipients = Arc::new(
            by_shard
                .into_iter()
                .map(|(shard, users)| (shard, Arc::new(users)))
                .collect(),
        );
        self.recipients = Some(recipients.clone());
        recipients
    }

    /// Returns the servers other than `own` with a joined member, sorted.
    pub fn other_servers(&mut self, own: &str) -> Arc<Vec<String>> {
        if let Some(servers) = &self.remote_servers {
            return servers.clone();
        }
        let servers: std::collections::BTreeSet<String> = self
            .members
            .iter()
            .filter(|(user, membership)| {
                membership.as_str() == "join" && user.server_name().as_str() != own
            })
            .map(|(user, _)| user.server_name().to_string())
            .collect();
        let servers = Arc::new(servers.into_iter().collect::<Vec<_>>());
        self.remote_servers = Some(servers.clone());
        servers
    }

    /// Finds a current state event by ID, for the authorization check.
    #[must_use]
    pub fn state_event_by_id(&self, event_id: &ruma::EventId) -> Option<&Arc<Pdu>> {
        self.state_ids
            .get(event_id)
            .and_then(|key| self.state.get(key))
    }

    /// Returns the record written to `roomid_room` after each event.
    #[must_use]
    pub fn record(&self) -> RoomRecord {
        RoomRecord {
            room_version: self.version.to_string(),
            creator: self.creator.to_string(),
            created_ts: self.created_ts,
            forward_extremities: self
                .forward_extremities
                .iter()
                .map(ToString::to_string)
                .collect(),
            depth: self.depth,
            last_pos: self.last_pos,
            state_group: self.state_group,
            state_group_chain: self.state_group_chain,
        }
    }

    /// Returns the power level of `user_id`, with the room version's defaults.
    #[must_use]
    pub fn user_power(&self, user_id: &str) -> i64 {
        if self.rules.authorization.explicitly_privilege_room_creators && self.is_creator(user_id) {
            return i64::MAX;
        }
        let Some(levels) = self.state_event("m.room.power_levels", "") else {
            return if self.creator.as_str() == user_id {
                100
            } else {
                0
            };
        };
        let content = levels.content_value();
        content
            .get("users")
            .and_then(|users| users.get(user_id))
            .or_else(|| content.get("users_default"))
            .and_then(as_level)
            .unwrap_or(0)
    }

    /// Returns whether `sender` may redact an event of `target_sender`: their
    /// own event, or anyone's with the room's `redact` level.
    #[must_use]
    pub fn may_redact(&self, sender: &str, target_sender: &str) -> bool {
        sender == target_sender || self.user_power(sender) >= self.required_power("redact", 50)
    }

    /// Returns the power level that `key` (for example `"redact"`) requires.
    #[must_use]
    pub fn required_power(&self, key: &str, default: i64) -> i64 {
        self.state_event("m.room.power_levels", "")
            .and_then(|levels| levels.content_value().get(key).and_then(as_level))
            .unwrap_or(default)
    }

    fn is_creator(&self, user_id: &str) -> bool {
        let Some(create) = self.state_event("m.room.create", "") else {
            return false;
        };
        if create.sender.as_str() == user_id {
            return true;
        }
        create
            .content_value()
            .get("additional_creators")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|list| list.iter().any(|id| id.as_str() == Some(user_id)))
    }
}

fn as_level(value: &serde_json::Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

/// Loads one stored event as a PDU.
///
/// # Errors
///
/// Returns a storage error; `Ok(None)` if the event is unknown or malformed.
pub fn load_pdu(store: &Store, event_id: &str) -> Result<Option<Pdu>, StoreError> {
    let Some(record) = store.get_json::<EventRecord>(Map::Events, event_id.as_bytes())? else {
        return Ok(None);
    };
    Ok(pdu_from_record(event_id, record))
}

/// Parses a stored event record.
#[must_use]
pub fn pdu_from_record(event_id: &str, record: EventRecord) -> Option<Pdu> {
    let json: CanonicalJsonObject = serde_json::from_value(record.pdu).ok()?;
    let event_id = OwnedEventId::try_from(event_id).ok()?;
    let room_id = OwnedRoomId::try_from(record.room_id.as_str()).ok()?;
    Pdu::parse(json, event_id, room_id, record.pos).ok()
}
