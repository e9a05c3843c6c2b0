//! Cases for sending events other than membership and power levels:
//! `events_default` and `state_default`, state keys naming users,
//! `m.room.server_acl`, `m.room.aliases` (special before v6), redactions
//! (special before v3).

use serde_json::{Value, json};

use super::{ALL, Accepted, Base, Case, Rejected};
use crate::room::test_room::{Event, Redacts, Stage, invite, join, leave, levels, user};

const AUTH: Stage = Stage::Auth;

fn topic(sender: &str) -> Event {
    Event::state(sender, "m.room.topic", "", json!({ "topic": "news" }))
}

fn server_acl(sender: &str) -> Event {
    let content = json!({ "allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": false });
    Event::state(sender, "m.room.server_acl", "", content)
}

fn aliases(sender: &str, server: &str) -> Event {
    let content = json!({ "aliases": [format!("#room:{server}")] });
    Event::state(sender, "m.room.aliases", server, content)
}

/// Returns the events that set bob's level to `level`, with `content` as
/// the rest of the power levels, and join bob.
fn bob_at(version: u8, level: i64, content: Value) -> Vec<Event> {
    let mut content = content;
    content["users"] = json!({ user("bob"): level });
    vec![levels(version, content), join("bob")]
}

pub(super) fn cases() -> Vec<Case> {
    let mut cases = levels_to_send();
    cases.extend(special_types());
    cases
}

fn levels_to_send() -> Vec<Case> {
    vec![
        Case {
            name: "message at events_default",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| Event::message("bob"),
            expect: Accepted,
        },
        Case {
            name: "message below events_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 9, json!({ "events_default": 10 })),
            event: |_| Event::message("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "message below its events level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 19, json!({ "events": { "m.room.message": 20 } })),
            event: |_| Event::message("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "message at its events level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 20, json!({ "events": { "m.room.message": 20 } })),
            event: |_| Event::message("bob"),
            expect: Accepted,
        },
        Case {
            name: "message type ignores state_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 0, json!({ "state_default": 100 })),
            event: |_| Event::timeline("bob", "com.example.ping", json!({})),
            expect: Accepted,
        },
        Case {
            name: "message from non-member",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| Event::message("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "message from invitee",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![invite("alice", "bob")],
            event: |_| Event::message("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "message after leaving",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob"), leave("bob")],
            event: |_| Event::message("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "state below state_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 49, json!({})),
            event: |_| topic("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "state at state_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 50, json!({})),
            event: |_| topic("bob"),
            expect: Accepted,
        },
        Case {
            name: "state at its events level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 0, json!({ "events": { "m.room.topic": 0 } })),
            event: |_| topic("bob"),
            expect: Accepted,
        },
        Case {
            name: "custom state ignores events_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 0, json!({ "events_default": 0 })),
            event: |_| Event::state("bob", "com.example.state", "", json!({})),
            expect: Rejected(AUTH),
        },
        Case {
            name: "state key naming another user",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 0, json!({ "state_default": 0 })),
            event: |_| Event::state("bob", "com.example.state", &user("carol"), json!({})),
            expect: Rejected(AUTH),
        },
        Case {
            name: "state key naming the sender",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 0, json!({ "state_default": 0 })),
            event: |_| Event::state("bob", "com.example.state", &user("bob"), json!({})),
            expect: Accepted,
        },
    ]
}

fn special_types() -> Vec<Case> {
    vec![
        Case {
            name: "server_acl below state_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 49, json!({})),
            event: |_| server_acl("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "server_acl at state_default",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 50, json!({})),
            event: |_| server_acl("bob"),
            expect: Accepted,
        },
        Case {
            name: "server_acl below its events level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| bob_at(v, 50, json!({ "events": { "m.room.server_acl": 100 } })),
            event: |_| server_acl("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "aliases of own server without power before v6",
            versions: 1..=5,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| aliases("bob", "localhost"),
            expect: Accepted,
        },
        Case {
            name: "aliases of own server from non-member before v6",
            versions: 1..=5,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| aliases("bob", "localhost"),
            expect: Accepted,
        },
        Case {
            name: "aliases of another server before v6",
            versions: 1..=5,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| aliases("alice", "other.example"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "aliases below state_default from v6",
            versions: 6..=12,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| aliases("bob", "localhost"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "aliases of another server from v6",
            versions: 6..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| aliases("alice", "other.example"),
            expect: Accepted,
        },
        Case {
            name: "redaction below its events level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| {
                let mut events = bob_at(v, 59, json!({ "events": { "m.room.redaction": 60 } }));
                events.push(Event::message("alice"));
                events
            },
            event: |_| Event::redaction("bob", Redacts::Last),
            expect: Rejected(AUTH),
        },
        Case {
            name: "redaction of own server's event below redact level",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob"), Event::message("alice")],
            event: |_| Event::redaction("bob", Redacts::Last),
            expect: Accepted,
        },
        Case {
            name: "redaction of remote event below redact level before v3",
            versions: 1..=2,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| Event::redaction("bob", Redacts::Id("$remote:other.example")),
            expect: Rejected(AUTH),
        },
        Case {
            name: "redaction of remote event at redact level before v3",
            versions: 1..=2,
            base: Base::Standard,
            setup: |v| bob_at(v, 50, json!({})),
            event: |_| Event::redaction("bob", Redacts::Id("$remote:other.example")),
            expect: Accepted,
        },
        Case {
            name: "redaction of remote event below redact level from v3",
            versions: 3..=12,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| Event::redaction("bob", Redacts::Id("$remote:other.example")),
            expect: Accepted,
        },
    ]
}
