//! Cases for `m.room.power_levels`: who may send it, which changes a sender
//! may make, the value formats each version accepts, and the unlimited
//! power of v12 room creators.

use serde_json::json;

use super::{ALL, Accepted, Base, Case, Rejected};
use crate::room::test_room::{Event, Stage, create, join, join_rule, levels, levels_by, user};

const AUTH: Stage = Stage::Auth;

/// The largest integer that canonical JSON allows, 2^53 − 1.
const MAX_LEVEL: i64 = 9_007_199_254_740_991;

/// Returns power levels in which bob, at 50, may send power levels.
fn bob_moderator(version: u8, extra: serde_json::Value) -> Event {
    let mut content = json!({
        "events": { "m.room.power_levels": 50 },
        "users": { user("bob"): 50 },
    });
    for (key, value) in extra.as_object().unwrap() {
        match (content.get_mut(key), value) {
            (Some(serde_json::Value::Object(map)), serde_json::Value::Object(more)) => {
                map.extend(more.clone());
            }
            _ => {
                content[key] = value.clone();
            }
        }
    }
    levels(version, content)
}

/// Returns bob's change of [`bob_moderator`] levels, with `extra` merged
/// the same way.
fn bob_changes(version: u8, extra: serde_json::Value) -> Event {
    let mut event = bob_moderator(version, extra);
    event.sender = user("bob");
    event
}

/// Returns the events that set [`bob_moderator`] levels and join bob.
fn moderated_room(version: u8, extra: serde_json::Value) -> Vec<Event> {
    vec![bob_moderator(version, extra), join("bob")]
}

pub(super) fn cases() -> Vec<Case> {
    let mut cases = changes();
    cases.extend(formats());
    cases.extend(creators());
    cases
}

fn changes() -> Vec<Case> {
    vec![
        Case {
            name: "power levels change by creator",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "ban": 60 })),
            expect: Accepted,
        },
        Case {
            name: "power levels by non-member",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_moderator(v, json!({}))],
            event: |v| bob_changes(v, json!({ "ban": 40 })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "power levels below state level",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |v| levels_by(v, "bob", json!({ "ban": 0 })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "field set above own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "kick": 51 })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "field set to own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "kick": 50 })),
            expect: Accepted,
        },
        Case {
            name: "field held above own level changed",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({ "ban": 60 })),
            event: |v| bob_changes(v, json!({ "ban": 40 })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "field held above own level removed",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({ "redact": 60 })),
            event: |v| bob_changes(v, json!({})),
            expect: Rejected(AUTH),
        },
        Case {
            name: "user granted more than own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "users": { user("carol"): 51 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "user granted own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "users": { user("carol"): 50 } })),
            expect: Accepted,
        },
        Case {
            name: "user at own level demoted",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({ "users": { user("carol"): 50 } })),
            event: |v| bob_changes(v, json!({ "users": { user("carol"): 10 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "user below own level demoted",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({ "users": { user("carol"): 49 } })),
            event: |v| bob_changes(v, json!({ "users": { user("carol"): 10 } })),
            expect: Accepted,
        },
        Case {
            name: "own level lowered",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "users": { user("bob"): 10 } })),
            expect: Accepted,
        },
        Case {
            name: "own level raised",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "users": { user("bob"): 51 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "event level set above own",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "events": { "m.room.name": 51 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "event level held above own changed",
            versions: ALL,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({ "events": { "m.room.topic": 60 } })),
            event: |v| bob_changes(v, json!({ "events": { "m.room.topic": 40 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "notification level above own from v6",
            versions: 6..=12,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "notifications": { "room": 51 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "notification level unchecked before v6",
            versions: 1..=5,
            base: Base::Standard,
            setup: |v| moderated_room(v, json!({})),
            event: |v| bob_changes(v, json!({ "notifications": { "room": 51 } })),
            expect: Accepted,
        },
        Case {
            name: "first power levels unchecked",
            versions: ALL,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({})), join("alice")],
            event: |v| levels(v, json!({ "users": { user("bob"): 1000 }, "ban": 1000 })),
            expect: Accepted,
        },
        Case {
            name: "creator's default level without power levels",
            versions: ALL,
            base: Base::Empty,
            setup: |v| vec![create(v, json!({})), join("alice")],
            event: |_| Event::state("alice", "m.room.name", "", json!({ "name": "Room" })),
            expect: Accepted,
        },
        Case {
            name: "member's default level without power levels",
            versions: ALL,
            base: Base::Empty,
            setup: |v| {
                vec![
                    create(v, json!({})),
                    join("alice"),
                    join_rule("public"),
                    join("bob"),
                ]
            },
            event: |_| Event::state("bob", "m.room.name", "", json!({ "name": "Room" })),
            expect: Rejected(AUTH),
        },
    ]
}

fn formats() -> Vec<Case> {
    vec![
        Case {
            name: "string levels before v10",
            versions: 1..=9,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "ban": "50", "users": { user("bob"): "50" } })),
            expect: Accepted,
        },
        Case {
            name: "string levels from v10",
            versions: 10..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "ban": "50", "users": { user("bob"): "50" } })),
            expect: Rejected(Stage::Validate),
        },
        Case {
            name: "string levels reach auth from v10",
            versions: 10..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "events": { "m.room.name": "50" } })).unvalidated(),
            expect: Rejected(AUTH),
        },
        Case {
            name: "signed padded string level counts",
            versions: 1..=9,
            base: Base::Standard,
            setup: |v| {
                vec![
                    levels(v, json!({ "users": { user("bob"): " +050 " } })),
                    join("bob"),
                ]
            },
            event: |_| Event::state("bob", "m.room.topic", "", json!({ "topic": "t" })),
            expect: Accepted,
        },
        Case {
            name: "signed padded string level too low",
            versions: 1..=9,
            base: Base::Standard,
            setup: |v| {
                vec![
                    levels(v, json!({ "users": { user("bob"): " +049 " } })),
                    join("bob"),
                ]
            },
            event: |_| Event::state("bob", "m.room.topic", "", json!({ "topic": "t" })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "level above canonical JSON range",
            versions: 6..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { user("bob"): MAX_LEVEL + 1 } })),
            expect: Rejected(Stage::Build),
        },
        Case {
            name: "level below canonical JSON range",
            versions: 6..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { user("bob"): -MAX_LEVEL - 1 } })),
            expect: Rejected(Stage::Build),
        },
        Case {
            name: "lowest canonical JSON level",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { user("bob"): -MAX_LEVEL } })),
            expect: Accepted,
        },
        // Versions 1–5 accept floats over federation only for backwards
        // compatibility, and a homeserver should prevent its users from
        // sending them.
        Case {
            name: "float level",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { user("bob"): 50.5 } })),
            expect: Rejected(Stage::Validate),
        },
        Case {
            name: "users key that is not a user ID",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { "bob": 10 } })),
            expect: Rejected(AUTH),
        },
    ]
}

fn creators() -> Vec<Case> {
    vec![
        Case {
            name: "creator listed in users in v12",
            versions: 12..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| {
                let content = json!({ "users": { user("alice"): 100 } });
                Event::state("alice", "m.room.power_levels", "", content)
            },
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional creator listed in users",
            versions: 12..=12,
            base: Base::Empty,
            setup: |v| {
                vec![
                    create(v, json!({ "additional_creators": [user("bob")] })),
                    join("alice"),
                ]
            },
            event: |v| levels(v, json!({ "users": { user("bob"): 50 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "creator grants the largest level in v12",
            versions: 12..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { user("bob"): MAX_LEVEL } })),
            expect: Accepted,
        },
        Case {
            name: "creator grants more than 100 before v12",
            versions: 1..=11,
            base: Base::Standard,
            setup: |_| vec![],
            event: |v| levels(v, json!({ "users": { user("bob"): 101 } })),
            expect: Rejected(AUTH),
        },
        Case {
            name: "creator changes field held above 100 in v12",
            versions: 12..=12,
            base: Base::Standard,
            setup: |v| vec![levels(v, json!({ "ban": MAX_LEVEL }))],
            event: |v| levels(v, json!({ "ban": 50 })),
            expect: Accepted,
        },
        Case {
            name: "additional creator changes power levels",
            versions: 12..=12,
            base: Base::Empty,
            setup: |v| {
                vec![
                    create(v, json!({ "additional_creators": [user("bob")] })),
                    join("alice"),
                    levels(v, json!({ "events": { "m.room.power_levels": MAX_LEVEL } })),
                    join_rule("public"),
                    join("bob"),
                ]
            },
            event: |v| levels_by(v, "bob", json!({ "kick": MAX_LEVEL })),
            expect: Accepted,
        },
    ]
}
