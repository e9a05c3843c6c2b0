//! Room state at a past position and history visibility, read from the
//! state history map (`roomid_type_statekey_pos_eventid`).

use std::collections::BTreeMap;

use crate::store::{EventRecord, Map, Store, StoreError, keys};

/// Returns the state of `room_id` just after position `pos`: `(type, state key)`
/// to event ID.
///
/// # Errors
///
/// Returns a storage error.
pub fn state_at(
    store: &Store,
    room_id: &str,
    pos: u64,
) -> Result<BTreeMap<(String, String), String>, StoreError> {
    let mut state = BTreeMap::new();
    for (key, event_id) in store.scan_prefix(Map::StateHistory, &keys::prefix(room_id))? {
        let Some((kind, state_key, at)) = keys::split_state_history(&key) else {
            continue;
        };
        if at <= pos {
            state.insert(
                (kind, state_key),
                String::from_utf8_lossy(&event_id).into_owned(),
            );
        }
    }
    Ok(state)
}

/// Returns the state of `room_id` after `event_id`, the event at position
/// `pos`: from the event's state group, or for an event stored before state
/// groups, from the state history up to `pos`.
///
/// # Errors
///
/// Returns a storage error.
pub fn state_after_event(
    store: &Store,
    room_id: &str,
    event_id: &str,
    pos: u64,
) -> Result<BTreeMap<(String, String), String>, StoreError> {
    match super::state_groups::state_after(store, room_id, event_id)? {
        Some(state) => Ok(state),
        None => state_at(store, room_id, pos),
    }
}

/// Returns the changes of one state key over time: `(position, content field)`.
fn field_history(
    store: &Store,
    room_id: &str,
    kind: &str,
    state_key: &str,
    field: &str,
) -> Result<Vec<(u64, String)>, StoreError> {
    let mut prefix = keys::state(room_id, kind, state_key);
    prefix.push(0);
    let mut history = Vec::new();
    for (key, event_id) in store.scan_prefix(Map::StateHistory, &prefix)? {
        let pos = keys::timeline_pos(&key);
        let Some(record) = store.get_json::<EventRecord>(Map::Events, &event_id)? else {
            continue;
        };
        let value = record
            .pdu
            .pointer(&format!("/content/{field}"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        history.push((pos, value.to_owned()));
    }
    Ok(history)
}

/// One user's view of a room's timeline under history visibility.
pub struct Visibility {
    user_id: String,
    history_visibility: Vec<(u64, String)>,
    membership: Vec<(u64, String)>,
}

impl Visibility {
    /// Loads the history visibility changes and the user's membership
    /// changes in `room_id`.
    ///
    /// # Errors
    ///
    /// Returns a storage error.
    pub fn load(store: &Store, room_id: &str, user_id: &str) -> Result<Self, StoreError> {
        Ok(Self {
            user_id: user_id.to_owned(),
            history_visibility: field_history(
                store,
                room_id,
                "m.room.history_visibility",
                "",
                "history_visibility",
            )?,
            membership: field_history(store, room_id, "m.room.member", user_id, "membership")?,
        })
    }

    /// Returns whether the user was ever a member (joined, invited, left or banned).
    #[must_use]
    pub fn ever_member(&self) -> bool {
        !self.membership.is_empty()
    }

    /// Returns whether the history is readable by anyone at `pos`.
    #[must_use]
    pub fn world_readable_at(&self, pos: u64) -> bool {
        before(&self.history_visibility, pos, "shared") == "world_readable"
    }

    /// Applies the spec's visibility rules to the event at `pos`.
    #[must_use]
    pub fn can_see(&self, pos: u64, kind: &str, state_key: Option<&str>) -> bool {
        let visibility_before = before(&self.history_visibility, pos, "shared");
        let membership_before = before(&self.membership, pos, "leave");
        if self.allows(visibility_before, membership_before, pos) {
            return true;
        }
        // A visibility change is visible if either side of it allows it,
        // and so is a change of the user's own membership.
        if kind == "m.room.history_visibility" {
            return self.allows(
                after(&self.history_visibility, pos, "shared"),
                membership_before,
                pos,
            );
        }
        if kind == "m.room.member" && state_key == Some(self.user_id.as_str()) {
            return self.allows(
                visibility_before,
                after(&self.membership, pos, "leave"),
                pos,
            );
        }
        false
    }

    /// Applies [`Self::can_see`] to a client-format event at `pos`.
    #[must_use]
    pub fn can_see_event(
        &self,
        pos: u64,
        event: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let kind = event
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let state_key = event.get("state_key").and_then(serde_json::Value::as_str);
        self.can_see(pos, kind, state_key)
    }

    fn allows(&self, visibility: &str, membership: &str, pos: u64) -> bool {
        match (visibility, membership) {
            ("world_readable", _) | (_, "join") | ("invited", "invite") => true,
            ("joined" | "invited", _) => false,
            _ => self
                .membership
                .iter()
                .any(|(at, m)| *at >= pos && m == "join"),
        }
    }
}

/// Returns the value in force just before `pos`.
fn before<'a>(history: &'a [(u64, String)], pos: u64, default: &'a str) -> &'a str {
    history
        .iter()
        .rev()
        .find(|(at, _)| *at < pos)
        .map_or(default, |(_, value)| value.as_str())
}

/// Returns the value in force just after `pos`.
fn after<'a>(history: &'a [(u64, String)], pos: u64, default: &'a str) -> &'a str {
    history
        .iter()
        .rev()
        .find(|(at, _)| *at <= pos)
        .map_or(default, |(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::Visibility;

    fn visibility(history: &[(u64, &str)], membership: &[(u64, &str)]) -> Visibility {
        let owned =
            |list: &[(u64, &str)]| list.iter().map(|(p, v)| (*p, (*v).to_owned())).collect();
        Visibility {
            user_id: "@u:x".into(),
            history_visibility: owned(history),
            membership: owned(membership),
        }
    }

    #[test]
    fn shared_shows_history_before_join() {
        let v = visibility(&[(1, "shared")], &[(10, "join")]);
        assert!(v.can_see(5, "m.room.message", None));
    }

    #[test]
    fn joined_hides_history_before_join() {
        let v = visibility(&[(1, "joined")], &[(10, "join")]);
        assert!(!v.can_see(5, "m.room.message", None));
        assert!(v.can_see(10, "m.room.member", Some("@u:x")));
        assert!(v.can_see(11, "m.room.message", None));
    }

    #[test]
    fn nothing_after_leaving() {
        let v = visibility(&[(1, "shared")], &[(2, "join"), (8, "leave")]);
        assert!(v.can_see(7, "m.room.message", None));
        assert!(v.can_see(8, "m.room.member", Some("@u:x")));
        assert!(!v.can_see(9, "m.room.message", None));
    }

    #[test]
    fn invited_sees_from_invite() {
        let v = visibility(&[(1, "invited")], &[(5, "invite")]);
        assert!(!v.can_see(4, "m.room.message", None));
        assert!(v.can_see(6, "m.room.message", None));
    }

    #[test]
    fn world_readable_shows_to_anyone() {
        let v = visibility(&[(1, "world_readable")], &[]);
        assert!(v.can_see(3, "m.room.message", None));
    }
}
