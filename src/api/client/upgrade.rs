//! `POST /_matrix/client/v3/rooms/{roomId}/upgrade`, on the old room's shard.
//!
//! The server checks that the user may send `m.room.tombstone`, creates the
//! replacement room with a `predecessor`, copies the transferable state,
//! moves the local aliases, then tombstones the old room and raises the
//! power needed to send or invite there.

use std::rc::Rc;

use ruma::{OwnedRoomId, OwnedUserId, RoomVersionId};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};

use super::{
    create_room::{self, NewRoom},
    directory,
    membership::{member_draft, parse_user_id},
    messages::member_room,
};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{EventDraft, Room, append, versions},
    shard::Shard,
};

/// State copied to the replacement room, as the spec recommends, plus the
/// canonical alias because the aliases move with the room.
const TRANSFERRED: [&str; 9] = [
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.canonical_alias",
];

#[derive(Deserialize)]
struct UpgradeBody {
    new_version: String,
    #[serde(default)]
    additional_creators: Vec<String>,
}

/// The parts of the old room that the upgrade reads before creating the new one.
struct OldRoom {
    last_event_id: String,
    room_type: Option<Value>,
    /// `(type, content)` of the transferred state events.
    state: Vec<(String, Value)>,
    levels: Option<Value>,
    /// Whether the user has a creator's power in the old room without a
    /// `users` entry: a creator of a version with unlimited creator power,
    /// or the creator of a room without power levels.
    had_creator_power: bool,
}

/// `POST /_matrix/client/v3/rooms/{roomId}/upgrade`.
///
/// # Errors
///
/// `M_UNSUPPORTED_ROOM_VERSION` for an unknown version, `M_FORBIDDEN` for a
/// user who is not joined or may not send `m.room.tombstone`, and
/// `M_INVALID_PARAM` for an invalid additional creator.
pub async fn upgrade(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    let user = request.auth()?.user_id.clone();
    let body: UpgradeBody = request.body()?;
    let (new_version, new_rules) = versions::rules_for(&body.new_version)?;
    // The field is ignored when the new version has no additional creators.
    let additional: Vec<OwnedUserId> = if new_rules.authorization.additional_room_creators {
        body.additional_creators
            .iter()
            .map(|id| parse_user_id(id))
            .collect::<ApiResult<_>>()?
    } else {
        Vec::new()
    };
    let room = member_room(shard, room_id)?;
    let old = read_old_room(shard, &room.borrow(), &user)?;
    if room.borrow().upgrading {
        return Err(MatrixError::conflict(
            "An upgrade of this room is already in progress",
        ));
    }
    let _upgrading = Upgrading::start(&room);

    let mut creation_content = JsonMap::new();
    let mut predecessor = JsonMap::new();
    predecessor.insert("room_id".to_owned(), json!(room_id));
    predecessor.insert("event_id".to_owned(), json!(old.last_event_id));
    creation_content.insert("predecessor".to_owned(), Value::Object(predecessor));
    if let Some(room_type) = &old.room_type {
        creation_content.insert("type".to_owned(), room_type.clone());
    }
    let creators_privileged = new_rules.authorization.explicitly_privilege_room_creators;
    let mut creators = vec![user.clone()];
    if new_rules.authorization.additional_room_creators {
        creators.extend(additional.iter().cloned());
    }
    let levels = NewLevels::new(
        old.levels.as_ref(),
        &user,
        &creators,
        old.had_creator_power,
        creators_privileged,
    );
    let drafts = |_: &RoomVersionId, _: Option<&str>| {
        let mut drafts = vec![member_draft(&user, &user, "join", None)];
        drafts.push(EventDraft::state(
            &user,
            "m.room.power_levels",
            "",
            levels.initial.clone(),
        ));
        for (kind, content) in &old.state {
            drafts.push(EventDraft::state(&user, kind, "", content.clone()));
        }
        if let Some(last) = &levels.last {
            drafts.push(EventDraft::state(
                &user,
                "m.room.power_levels",
                "",
                last.clone(),
            ));
        }
        Ok(drafts)
    };
    let spec = NewRoom {
        sender: &user,
        version: new_version.as_str(),
        creation_content: Some(creation_content),
        extra_creators: if new_rules.authorization.additional_room_creators {
            additional.as_slice()
        } else {
            &[][..]
        },
        alias_name: None,
        drafts: &drafts,
    };
    let new_room_id = create_room::create(shard, &spec).await?;
    directory::move_aliases(shard, room_id, &new_room_id).await?;

    let closing = closing_drafts(shard, &room.borrow(), &user, &new_room_id, &old);
    append::append(shard, &room, closing).await?;
    tracing::info!(
        old_room_id = %room_id,
        %new_room_id,
        version = %new_version,
        "upgraded room"
    );
    Ok(json!({ "replacement_room": new_room_id }))
}

/// Marks a room as being upgraded until dropped, on every exit path.
struct Upgrading<'a>(&'a std::cell::RefCell<Room>);

impl<'a> Upgrading<'a> {
    fn start(room: &'a std::cell::RefCell<Room>) -> Self {
        room.borrow_mut().upgrading = true;
        Self(room)
    }
}

impl Drop for Upgrading<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().upgrading = false;
    }
}

fn read_old_room(shard: &Shard, room: &Room, user: &OwnedUserId) -> ApiResult<OldRoom> {
    if room.membership(user.as_str()) != "join" {
        return Err(MatrixError::forbidden("You are not in this room"));
    }
    // The tombstone is built against the current state, so a user without
    // the power to send it is rejected before anything is created.
    let probe = tombstone(user, &room.room_id);
    append::check(shard, room, &probe)?;

    let content_of = |kind: &str| {
        room.state_event(kind, "")
            .map(|pdu| pdu.content_value())
            .filter(|content| content.as_object().is_some_and(|c| !c.is_empty()))
    };
    let state = TRANSFERRED
        .iter()
        .filter_map(|kind| content_of(kind).map(|content| ((*kind).to_owned(), content)))
        .collect();
    let room_type = content_of("m.room.create").and_then(|c| c.get("type").cloned());
    let last_event_id = room
        .last_event
        .as_ref()
        .map(|pdu| pdu.event_id.to_string())
        .ok_or_else(|| MatrixError::internal("The room has no events"))?;
    let levels = content_of("m.room.power_levels");
    let had_creator_power =
        room.user_power(user.as_str()) == i64::MAX || (levels.is_none() && room.creator == *user);
    Ok(OldRoom {
        last_event_id,
        room_type,
        state,
        levels,
        had_creator_power,
    })
}

fn tombstone(user: &OwnedUserId, replacement: &OwnedRoomId) -> EventDraft {
    EventDraft::state(
        user,
        "m.room.tombstone",
        "",
        json!({
            "body": "This room has been replaced",
            "replacement_room": replacement,
        }),
    )
}

/// Returns the events that close the old room: the tombstone, an emptied
/// canonical alias now that the aliases point to the new room, and power
/// levels that stop ordinary members from sending and inviting. The last
/// two are left out when the user lacks the power to send them.
fn closing_drafts(
    shard: &Shard,
    room: &Room,
    user: &OwnedUserId,
    replacement: &OwnedRoomId,
    old: &OldRoom,
) -> Vec<EventDraft> {
    let mut drafts = vec![tombstone(user, replacement)];
    if old
        .state
        .iter()
        .any(|(kind, _)| kind == "m.room.canonical_alias")
    {
        let cleared = EventDraft::state(user, "m.room.canonical_alias", "", json!({}));
        if append::check(shard, room, &cleared).is_ok() {
            drafts.push(cleared);
        }
    }
    if let Some(levels) = &old.levels {
        let restricted = restrict_levels(levels);
        let draft = EventDraft::state(user, "m.room.power_levels", "", restricted);
        if append::check(shard, room, &draft).is_ok() {
            drafts.push(draft);
        }
    }
    drafts
}

/// Sets `events_default` and `invite` to the greater of 50 and
/// `users_default + 1`, as the spec suggests for a replaced room.
fn restrict_levels(levels: &Value) -> Value {
    let mut levels = integer_levels(levels);
    let users_default = levels
        .get("users_default")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let floor = users_default.saturating_add(1).max(50);
    if let Value::Object(object) = &mut levels {
        for key in ["events_default", "invite"] {
            let current = object.get(key).and_then(Value::as_i64).unwrap_or(0);
            object.insert(key.to_owned(), json!(current.max(floor)));
        }
    }
    levels
}

/// Power levels of the replacement room: `initial` is sent right after the
/// user joins so that the user may send every copied event, and `last`,
/// when it differs, puts the old room's levels back afterwards.
struct NewLevels {
    initial: Value,
    last: Option<Value>,
}

impl NewLevels {
    fn new(
        old: Option<&Value>,
        user: &OwnedUserId,
        creators: &[OwnedUserId],
        user_had_creator_power: bool,
        creators_privileged: bool,
    ) -> Self {
        let mut last = old.map_or_else(|| json!({}), integer_levels);
        let Value::Object(object) = &mut last else {
            return Self {
                initial: json!({}),
                last: None,
            };
        };
        let mut users = object
            .entry("users")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if creators_privileged {
            // Creators of these versions have unlimited power and must not
            // be listed in `users`.
            for creator in creators {
                users.remove(creator.as_str());
            }
        } else if user_had_creator_power && !users.contains_key(user.as_str()) {
            // A creator's unlimited power becomes the highest level the
            // room uses, so the upgrader can still send every event type,
            // including the tombstone of a later upgrade.
            let highest = max_level(&Value::Object(object.clone())).max(100);
            users.insert(user.to_string(), json!(highest));
        }
        object.insert("users".to_owned(), Value::Object(users));

        if creators_privileged {
            return Self {
                initial: last,
                last: None,
            };
        }
        let needed = max_level(&last).max(100);
        let mut initial = last.clone();
        if let Some(users) = initial.get_mut("users").and_then(Value::as_object_mut) {
            users.insert(user.to_string(), json!(needed));
        }
        let last = (initial != last).then_some(last);
        Self { initial, last }
    }
}

/// Returns the power levels with numeric strings, which versions before 10
/// accept, turned into integers, which every version accepts.
fn integer_levels(levels: &Value) -> Value {
    match levels {
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .map_or_else(|_| levels.clone(), |level| json!(level)),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| (key.clone(), integer_levels(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Returns the highest level anywhere in the content.
fn max_level(levels: &Value) -> i64 {
    match levels {
        Value::Number(number) => number.as_i64().unwrap_or(0),
        Value::Object(object) => object.values().map(max_level).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> OwnedUserId {
        OwnedUserId::try_from(id).unwrap()
    }

    #[test]
    fn restricted_levels_raise_sending_and_inviting() {
        let restricted = restrict_levels(&json!({ "users_default": 60, "events_default": 0 }));
        assert_eq!(restricted["events_default"], 61);
        assert_eq!(restricted["invite"], 61);
        let restricted = restrict_levels(&json!({ "events_default": 75 }));
        assert_eq!(restricted["events_default"], 75);
        assert_eq!(restricted["invite"], 50);
    }

    #[test]
    fn string_levels_become_integers() {
        let levels = integer_levels(&json!({ "ban": "50", "users": { "@a:x": "100" }, "x": "no" }));
        assert_eq!(
            levels,
            json!({ "ban": 50, "users": { "@a:x": 100 }, "x": "no" })
        );
    }

    #[test]
    fn creators_removed_from_users_in_privileged_versions() {
        let old = json!({ "users": { "@a:x": 100, "@b:x": 50, "@c:x": 10 } });
        let levels = NewLevels::new(
            Some(&old),
            &user("@a:x"),
            &[user("@a:x"), user("@b:x")],
            true,
            true,
        );
        assert_eq!(levels.initial["users"], json!({ "@c:x": 10 }));
        assert!(levels.last.is_none());
    }

    #[test]
    fn upgrader_raised_then_restored() {
        let old = json!({ "users": { "@a:x": 50, "@z:x": 150 }, "state_default": 50 });
        let levels = NewLevels::new(Some(&old), &user("@a:x"), &[user("@a:x")], false, false);
        assert_eq!(levels.initial["users"]["@a:x"], 150);
        assert_eq!(levels.last.unwrap()["users"]["@a:x"], 50);
    }

    #[test]
    fn privileged_creator_gets_level_100() {
        let old = json!({ "users": { "@b:x": 50 } });
        let levels = NewLevels::new(Some(&old), &user("@a:x"), &[user("@a:x")], true, false);
        assert_eq!(levels.initial["users"]["@a:x"], 100);
        assert!(levels.last.is_none());
    }

    #[test]
    fn privileged_creator_gets_highest_level() {
        let old = json!({ "events": { "m.room.tombstone": 150 }, "users": { "@b:x": 50 } });
        let levels = NewLevels::new(Some(&old), &user("@a:x"), &[user("@a:x")], true, false);
        assert_eq!(levels.initial["users"]["@a:x"], 150);
        assert!(levels.last.is_none());
    }
}
