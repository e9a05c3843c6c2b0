//! Restricted join rules: `restricted` (room version 8 and later) and
//! `knock_restricted` (10 and later) let a user join without an invite when
//! they meet one of the `allow` conditions of `m.room.join_rules`. The join
//! then names a member who may invite in `join_authorised_via_users_server`.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#restricted-rooms>

use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::Value;

use super::Room;

/// The only allow condition the spec defines: the user is joined to a room.
const ROOM_MEMBERSHIP: &str = "m.room_membership";

/// The `allow` conditions that a join must meet.
pub struct Restriction {
    /// `restricted` or `knock_restricted`.
    pub join_rule: String,
    /// The rooms of the `m.room_membership` conditions with a valid `room_id`.
    pub allowed_rooms: Vec<OwnedRoomId>,
}

/// Returns the conditions that `user_id` must meet to join `room`. Returns
/// `None` when the join rule is not restricted in the room's version, and
/// for joined, invited and banned users, whose membership alone decides
/// whether they may join.
#[must_use]
pub fn restriction(room: &Room, user_id: &OwnedUserId) -> Option<Restriction> {
    if matches!(
        room.membership(user_id.as_str()).as_str(),
        "join" | "invite" | "ban"
    ) {
        return None;
    }
    let content = room.state_event("m.room.join_rules", "")?.content_value();
    let join_rule = content.get("join_rule").and_then(Value::as_str)?;
    let rules = &room.rules.authorization;
    let restricted = (join_rule == "restricted" && rules.restricted_join_rule)
        || (join_rule == "knock_restricted" && rules.knock_restricted_join_rule);
    if !restricted {
        return None;
    }
    Some(Restriction {
        join_rule: join_rule.to_owned(),
        allowed_rooms: allowed_rooms(&content),
    })
}

/// Returns the rooms of the `m.room_membership` conditions in a join rule's
/// `allow` list. Conditions of other types, and room IDs that do not parse,
/// match no user, so they are left out.
fn allowed_rooms(content: &Value) -> Vec<OwnedRoomId> {
    let Some(conditions) = content.get("allow").and_then(Value::as_array) else {
        return Vec::new();
    };
    conditions
        .iter()
        .filter(|condition| condition.get("type").and_then(Value::as_str) == Some(ROOM_MEMBERSHIP))
        .filter_map(|condition| condition.get("room_id").and_then(Value::as_str))
        .filter_map(|room_id| OwnedRoomId::try_from(room_id).ok())
        .collect()
}

/// Chooses the user named in `join_authorised_via_users_server`: a member of
/// `room` on this server (`server_name`) who is joined and whose power level
/// reaches the room's `invite` level, as the authorization rules require.
/// The highest power level wins, then the lowest user ID, so the choice is
/// the same every time.
#[must_use]
pub fn choose_authoriser(room: &Room, server_name: &str) -> Option<OwnedUserId> {
    let invite_level = room.required_power("invite", 0);
    let is_local_member = |user_id: &OwnedUserId| {
        user_id.server_name().as_str() == server_name
            && room.members.get(user_id).map(String::as_str) == Some("join")
    };

    // Users with a level of their own: the creators and those listed in the
    // power levels' `users`.
    let listed = listed_users(room);
    let best_listed = listed
        .iter()
        .filter(|user_id| is_local_member(user_id))
        .map(|user_id| (room.user_power(user_id.as_str()), user_id))
        .filter(|(power, _)| *power >= invite_level)
        .max_by(|(power, user_id), (other_power, other_user_id)| {
            power.cmp(other_power).then(other_user_id.cmp(user_id))
        });
    if let Some((_, user_id)) = best_listed {
        return Some(user_id.clone());
    }

    // Every other member has the `users_default` level.
    let unlisted = room
        .members
        .keys()
        .filter(|user_id| is_local_member(user_id) && !listed.contains(user_id))
        .min()?;
    (room.user_power(unlisted.as_str()) >= invite_level).then(|| unlisted.clone())
}

/// Returns the creators of `room` and the users that its power levels list,
/// sorted.
fn listed_users(room: &Room) -> Vec<OwnedUserId> {
    let mut users = vec![room.creator.clone()];
    if let Some(create) = room.state_event("m.room.create", "") {
        users.push(create.sender.clone());
        let content = create.content_value();
        let additional = content.get("additional_creators").and_then(Value::as_array);
        let names = additional.into_iter().flatten().filter_map(Value::as_str);
        users.extend(parse_user_ids(names));
    }
    if let Some(levels) = room.state_event("m.room.power_levels", "") {
        let content = levels.content_value();
        let listed = content.get("users").and_then(Value::as_object);
        let names = listed
            .into_iter()
            .flat_map(|map| map.keys().map(String::as_str));
        users.extend(parse_user_ids(names));
    }
    users.sort();
    users.dedup();
    users
}

fn parse_user_ids<'a>(names: impl Iterator<Item = &'a str>) -> Vec<OwnedUserId> {
    names
        .filter_map(|name| OwnedUserId::try_from(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use ruma::OwnedUserId;
    use serde_json::json;

    use super::{allowed_rooms, choose_authoriser, restriction};
    use crate::room::test_room::{
        Event, SERVER, TestRoom, create, invite, join, join_rule, leave, levels, standard, user,
    };

    fn room_with(version: u8, events: &[Event]) -> TestRoom {
        let mut room = TestRoom::new(version);
        for event in standard(version).iter().chain(events) {
            if let Err(rejection) = room.attempt(event) {
                panic!("setup event rejected: {}", rejection.reason);
            }
        }
        room
    }

    fn authoriser(room: &TestRoom) -> Option<String> {
        choose_authoriser(&room.room, SERVER).map(|user_id| user_id.to_string())
    }

    fn user_id(name: &str) -> OwnedUserId {
        OwnedUserId::try_from(user(name)).unwrap()
    }

    #[test]
    fn allowed_rooms_keep_room_membership_conditions() {
        let content = json!({
            "join_rule": "restricted",
            "allow": [
                { "type": "m.room_membership", "room_id": "!a:example.org" },
                { "type": "com.example.other", "room_id": "!b:example.org" },
                { "type": "m.room_membership" },
                { "type": "m.room_membership", "room_id": "not a room ID" },
                { "type": "m.room_membership", "room_id": "!c:example.org" },
            ],
        });
        let rooms: Vec<String> = allowed_rooms(&content)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(rooms, ["!a:example.org", "!c:example.org"]);
    }

    #[test]
    fn allowed_rooms_without_allow_list() {
        assert!(allowed_rooms(&json!({ "join_rule": "restricted" })).is_empty());
        assert!(allowed_rooms(&json!({ "join_rule": "restricted", "allow": {} })).is_empty());
    }

    #[test]
    fn restriction_by_version_and_membership() {
        let cases = [
            (7, "restricted", false),
            (8, "restricted", true),
            (9, "knock_restricted", false),
            (10, "knock_restricted", true),
            (12, "restricted", true),
            (12, "invite", false),
        ];
        for (version, rule, restricted) in cases {
            let room = room_with(version, &[join_rule(rule)]);
            let found = restriction(&room.room, &user_id("bob"));
            assert_eq!(found.is_some(), restricted, "{rule} in version {version}");
        }

        let room = room_with(10, &[join_rule("restricted"), invite("alice", "bob")]);
        assert!(
            restriction(&room.room, &user_id("bob")).is_none(),
            "invitee"
        );
        let room = room_with(10, &[join_rule("restricted")]);
        assert!(
            restriction(&room.room, &user_id("alice")).is_none(),
            "member"
        );
        let found = restriction(&room.room, &user_id("bob")).unwrap();
        assert_eq!(found.join_rule, "restricted");
        assert_eq!(found.allowed_rooms, ["!space:localhost"]);
    }

    #[test]
    fn authoriser_is_highest_local_member() {
        let dave_level = levels(10, json!({ "invite": 50, "users": { user("dave"): 60 } }));
        let room = room_with(10, &[join("dave"), dave_level]);
        assert_eq!(authoriser(&room).as_deref(), Some(user("alice").as_str()));

        let room = room_with(
            10,
            &[
                join("dave"),
                levels(10, json!({ "invite": 50, "users": { user("dave"): 60 } })),
                leave("alice"),
            ],
        );
        assert_eq!(authoriser(&room).as_deref(), Some(user("dave").as_str()));
    }

    #[test]
    fn authoriser_needs_invite_level() {
        let room = room_with(
            10,
            &[
                join("bob"),
                levels(10, json!({ "invite": 50 })),
                leave("alice"),
            ],
        );
        assert_eq!(authoriser(&room), None);
    }

    #[test]
    fn authoriser_from_users_default() {
        let room = room_with(10, &[join("carol"), join("bob"), leave("alice")]);
        assert_eq!(authoriser(&room).as_deref(), Some(user("bob").as_str()));
    }

    #[test]
    fn authoriser_skips_remote_and_invited_users() {
        let remote = "@eve:other.example";
        let high = json!({ "invite": 50, "users": { remote: 100, user("bob"): 100 } });
        let room = room_with(
            10,
            &[
                join(remote),
                invite("alice", "bob"),
                levels(10, high),
                leave("alice"),
            ],
        );
        assert_eq!(authoriser(&room), None);
    }

    #[test]
    fn authoriser_prefers_creator_in_v12() {
        let high = json!({ "invite": 50, "users": { user("bob"): 100 } });
        let room = room_with(12, &[join("bob"), levels(12, high)]);
        assert_eq!(authoriser(&room).as_deref(), Some(user("alice").as_str()));
    }

    #[test]
    fn authoriser_of_room_without_power_levels() {
        let mut room = TestRoom::new(9);
        for event in [
            create(9, json!({})),
            join("alice"),
            join_rule("public"),
            join("bob"),
        ] {
            room.attempt(&event).unwrap();
        }
        assert_eq!(authoriser(&room).as_deref(), Some(user("alice").as_str()));
    }
}
