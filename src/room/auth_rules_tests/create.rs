//! Cases for the `m.room.create` event, the first join, the `auth_events`
//! checks and `m.federate`.

use ruma::{CanonicalJsonObject, CanonicalJsonValue};
use serde_json::json;

use super::{ALL, Accepted, Base, Case, Rejected};
use crate::room::{
    Room,
    test_room::{
        Event, Stage, auth_events_mut, create, create_by, join, join_rule, levels, reference,
        referenced_id, user,
    },
};

const AUTH: Stage = Stage::Auth;

fn set_other_room_id(json: &mut CanonicalJsonObject, _: &Room) {
    let room_id = CanonicalJsonValue::String("!elsewhere:localhost".to_owned());
    json.insert("room_id".to_owned(), room_id);
}

fn duplicate_auth_event(json: &mut CanonicalJsonObject, _: &Room) {
    let auth_events = auth_events_mut(json);
    let first = auth_events[0].clone();
    auth_events.push(first);
}

fn add_join_rules_auth_event(json: &mut CanonicalJsonObject, room: &Room) {
    let join_rules = room.state_event("m.room.join_rules", "").unwrap();
    let join_rules = reference(room, join_rules.event_id.as_str());
    auth_events_mut(json).push(join_rules);
}

fn remove_create_auth_event(json: &mut CanonicalJsonObject, room: &Room) {
    let create = room
        .state_event("m.room.create", "")
        .unwrap()
        .event_id
        .clone();
    auth_events_mut(json).retain(|entry| referenced_id(entry) != Some(create.as_str()));
}

fn add_create_auth_event(json: &mut CanonicalJsonObject, room: &Room) {
    let create = room.state_event("m.room.create", "").unwrap();
    let create = reference(room, create.event_id.as_str());
    auth_events_mut(json).push(create);
}

/// Returns the events that follow a case's own create event in a public room.
fn public_room_after_create(version: u8) -> Vec<Event> {
    vec![
        join("alice"),
        levels(version, json!({})),
        join_rule("public"),
    ]
}

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "create as first event",
            versions: ALL,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create(v, json!({})),
            expect: Accepted,
        },
        Case {
            name: "create without creator before v11",
            versions: 1..=10,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| {
                Event::state(
                    "alice",
                    "m.room.create",
                    "",
                    json!({ "room_version": v.to_string() }),
                )
            },
            expect: Rejected(AUTH),
        },
        Case {
            name: "create without creator from v11",
            versions: 11..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| {
                Event::state(
                    "alice",
                    "m.room.create",
                    "",
                    json!({ "room_version": v.to_string() }),
                )
            },
            expect: Accepted,
        },
        Case {
            name: "create with previous events",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| create(v, json!({})),
            expect: Rejected(AUTH),
        },
        Case {
            name: "create by user of another server",
            versions: 1..=11,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create_by(v, "@eve:other.example", json!({})),
            expect: Rejected(AUTH),
        },
        Case {
            name: "create by any server in v12",
            versions: 12..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create_by(v, "@eve:other.example", json!({})),
            expect: Accepted,
        },
        Case {
            name: "create with room_id in v12",
            versions: 12..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create(v, json!({})).tampered(set_other_room_id),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional_creators that is not a list",
            versions: 12..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create(v, json!({ "additional_creators": user("bob") })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional_creators with invalid user ID",
            versions: 12..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create(v, json!({ "additional_creators": ["bob"] })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional_creators with a number",
            versions: 12..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create(v, json!({ "additional_creators": [user("bob"), 7] })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional_creators with valid user IDs",
            versions: 12..=12,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| {
                let creators = [user("bob"), "@carol:other.example".to_owned()];
                create(v, json!({ "additional_creators": creators }))
            },
            expect: Accepted,
        },
        Case {
            name: "additional_creators ignored before v12",
            versions: 1..=11,
            base: Base::Empty,
            setup: |_| vec![],
            event: |v| create(v, json!({ "additional_creators": "not a list" })),
            expect: Accepted,
        },
        // The first join.
        Case {
            name: "creator joins right after create",
            versions: ALL,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({}))],
            event: |_| join("alice"),
            expect: Accepted,
        },
        Case {
            name: "other user joins right after create",
            versions: ALL,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({}))],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "content creator joins first before v11",
            versions: 1..=10,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({ "creator": user("bob") }))],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "create sender not named creator before v11",
            versions: 1..=10,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({ "creator": user("bob") }))],
            event: |_| join("alice"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "create sender joins first from v11",
            versions: 11..=12,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({ "creator": user("bob") }))],
            event: |_| join("alice"),
            expect: Accepted,
        },
        Case {
            name: "content creator ignored from v11",
            versions: 11..=12,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({ "creator": user("bob") }))],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional creator's first join",
            versions: 12..=12,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({ "additional_creators": [user("bob")] }))],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        // The checks of `auth_events`.
        Case {
            name: "event naming another room",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| Event::message("alice").tampered(set_other_room_id),
            expect: Rejected(AUTH),
        },
        Case {
            name: "duplicate auth event",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| Event::message("alice").tampered(duplicate_auth_event),
            expect: Rejected(AUTH),
        },
        Case {
            name: "auth event outside the selection",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| Event::message("alice").tampered(add_join_rules_auth_event),
            expect: Rejected(AUTH),
        },
        Case {
            name: "create missing from auth events",
            versions: 1..=11,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| Event::message("alice").tampered(remove_create_auth_event),
            expect: Rejected(AUTH),
        },
        Case {
            name: "create listed in auth events in v12",
            versions: 12..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| Event::message("alice").tampered(add_create_auth_event),
            expect: Rejected(AUTH),
        },
        // `m.federate`.
        Case {
            name: "unfederated room and other server's join",
            versions: ALL,
            base: Base::Empty,
            setup: |v| {
                let mut events = vec![create(v, json!({ "m.federate": false }))];
                events.extend(public_room_after_create(v));
                events
            },
            event: |_| join("@eve:other.example"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "unfederated room and own server's join",
            versions: ALL,
            base: Base::Empty,
            setup: |v| {
                let mut events = vec![create(v, json!({ "m.federate": false }))];
                events.extend(public_room_after_create(v));
                events
            },
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "federated room and other server's join",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| join("@eve:other.example"),
            expect: Accepted,
        },
    ]
}
