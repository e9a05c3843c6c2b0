//! The redaction algorithm of room versions 1–12, taken from the lists of
//! kept keys in the room version specifications. The tests check which
//! content keys of a built event survive in `client_format::fields` once
//! the event is redacted. They also check which top-level keys survive the
//! version's redaction rules.

use std::{collections::BTreeSet, ops::RangeInclusive};

use ruma::{CanonicalJsonValue, canonical_json::redact};
use serde_json::{Map, Value, json};

use super::{
    Pdu, client_format,
    test_room::{Event, Redacts, TestRoom, member, standard, user},
    versions,
};
use crate::store::EventRecord;

const ALL: RangeInclusive<u8> = 1..=12;

/// A redacted event's expected content.
struct ContentCase {
    name: &'static str,
    versions: RangeInclusive<u8>,
    event: fn() -> Event,
    redacted_content: fn() -> Value,
}

fn state(kind: &str, state_key: &str, content: Value) -> Event {
    Event::state("alice", kind, state_key, content)
}

fn power_levels() -> Event {
    state(
        "m.room.power_levels",
        "",
        json!({
            "ban": 50, "events": { "m.room.name": 50 }, "events_default": 0, "invite": 0,
            "kick": 50, "notifications": { "room": 50 }, "redact": 50, "state_default": 50,
            "users": { user("alice"): 100 }, "users_default": 0, "com.example.extra": 1,
        }),
    )
}

fn power_levels_without_invite() -> Value {
    json!({
        "ban": 50, "events": { "m.room.name": 50 }, "events_default": 0, "kick": 50,
        "redact": 50, "state_default": 50, "users": { user("alice"): 100 }, "users_default": 0,
    })
}

fn create() -> Event {
    state(
        "m.room.create",
        "",
        json!({
            "creator": user("alice"), "room_version": "1", "m.federate": true,
            "predecessor": { "room_id": "!old:localhost" }, "type": "m.space",
        }),
    )
}

fn join_rules() -> Event {
    let allow = json!([{ "type": "m.room_membership", "room_id": "!space:localhost" }]);
    state(
        "m.room.join_rules",
        "",
        json!({ "join_rule": "restricted", "allow": allow, "com.example.extra": 1 }),
    )
}

fn authorised_join() -> Event {
    member(
        "bob",
        "bob",
        json!({
            "membership": "join", "displayname": "Bob",
            "join_authorised_via_users_server": user("alice"),
        }),
    )
}

fn signed() -> Value {
    json!({
        "mxid": user("bob"), "token": "abc123",
        "signatures": { "identity.example": { "ed25519:0": "c2lnbmF0dXJl" } },
    })
}

fn third_party_invite() -> Event {
    let invite = json!({ "display_name": "b...@example.org", "signed": signed() });
    member(
        "alice",
        "bob",
        json!({ "membership": "invite", "third_party_invite": invite, "reason": "hi" }),
    )
}

fn aliases() -> Event {
    let content = json!({ "aliases": ["#a:localhost"] });
    state("m.room.aliases", "localhost", content)
}

fn content_cases() -> Vec<ContentCase> {
    vec![
        ContentCase {
            name: "message",
            versions: ALL,
            event: || Event::message("alice"),
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "member",
            versions: ALL,
            event: || {
                let content =
                    json!({ "membership": "join", "displayname": "A", "avatar_url": "mxc://a/b" });
                member("alice", "alice", content)
            },
            redacted_content: || json!({ "membership": "join" }),
        },
        ContentCase {
            name: "authorised join before v9",
            versions: 1..=8,
            event: authorised_join,
            redacted_content: || json!({ "membership": "join" }),
        },
        ContentCase {
            name: "authorised join from v9",
            versions: 9..=12,
            event: authorised_join,
            redacted_content: || {
                json!({
                    "membership": "join",
                    "join_authorised_via_users_server": user("alice"),
                })
            },
        },
        ContentCase {
            name: "third-party invite before v11",
            versions: 1..=10,
            event: third_party_invite,
            redacted_content: || json!({ "membership": "invite" }),
        },
        ContentCase {
            name: "third-party invite from v11",
            versions: 11..=12,
            event: third_party_invite,
            redacted_content: || {
                json!({
                    "membership": "invite",
                    "third_party_invite": { "signed": signed() },
                })
            },
        },
        ContentCase {
            name: "create before v11",
            versions: 1..=10,
            event: create,
            redacted_content: || json!({ "creator": user("alice") }),
        },
        ContentCase {
            name: "create from v11",
            versions: 11..=12,
            event: create,
            redacted_content: || create().content,
        },
        ContentCase {
            name: "join rules before v8",
            versions: 1..=7,
            event: join_rules,
            redacted_content: || json!({ "join_rule": "restricted" }),
        },
        ContentCase {
            name: "join rules from v8",
            versions: 8..=12,
            event: join_rules,
            redacted_content: || {
                let mut content = join_rules().content;
                content.as_object_mut().unwrap().remove("com.example.extra");
                content
            },
        },
        ContentCase {
            name: "power levels before v11",
            versions: 1..=10,
            event: power_levels,
            redacted_content: power_levels_without_invite,
        },
        ContentCase {
            name: "power levels from v11",
            versions: 11..=12,
            event: power_levels,
            redacted_content: || {
                let mut content = power_levels_without_invite();
                content["invite"] = json!(0);
                content
            },
        },
        ContentCase {
            name: "history visibility",
            versions: ALL,
            event: || {
                state(
                    "m.room.history_visibility",
                    "",
                    json!({ "history_visibility": "joined", "x": 1 }),
                )
            },
            redacted_content: || json!({ "history_visibility": "joined" }),
        },
        ContentCase {
            name: "aliases before v6",
            versions: 1..=5,
            event: aliases,
            redacted_content: || json!({ "aliases": ["#a:localhost"] }),
        },
        ContentCase {
            name: "aliases from v6",
            versions: 6..=12,
            event: aliases,
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "server ACL",
            versions: ALL,
            event: || {
                state(
                    "m.room.server_acl",
                    "",
                    json!({ "allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": false }),
                )
            },
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "name",
            versions: ALL,
            event: || state("m.room.name", "", json!({ "name": "Room" })),
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "topic",
            versions: ALL,
            event: || state("m.room.topic", "", json!({ "topic": "news" })),
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "encryption",
            versions: ALL,
            event: || {
                state(
                    "m.room.encryption",
                    "",
                    json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
                )
            },
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "guest access",
            versions: ALL,
            event: || {
                state(
                    "m.room.guest_access",
                    "",
                    json!({ "guest_access": "can_join" }),
                )
            },
            redacted_content: || json!({}),
        },
        ContentCase {
            name: "custom state",
            versions: ALL,
            event: || {
                state(
                    "com.example.state",
                    "key",
                    json!({ "membership": "join", "join_rule": "public" }),
                )
            },
            redacted_content: || json!({}),
        },
    ]
}

/// Builds `event` in a public room of `version`, without the authorization
/// check, and returns the PDU with its record.
fn built(version: u8, event: &Event) -> (Pdu, EventRecord) {
    let mut room = TestRoom::new(version);
    for setup in standard(version) {
        room.attempt(&setup).unwrap();
    }
    let pdu = room.build(event).unwrap();
    let record = EventRecord {
        pdu: serde_json::to_value(&pdu.json).unwrap(),
        room_id: pdu.room_id.to_string(),
        pos: pdu.pos,
        room_version: Some(version.to_string()),
        redacted_by: None,
        txn: None,
    };
    (pdu, record)
}

fn client_fields(pdu: &Pdu, record: &EventRecord, redacted: bool) -> Map<String, Value> {
    let record = EventRecord {
        redacted_by: redacted.then(|| "$redaction:localhost".to_owned()),
        ..record.clone()
    };
    client_format::fields(pdu.event_id.as_str(), &record)
}

#[test]
fn redacted_content_keeps_version_keys() {
    let mut failures = Vec::new();
    for case in content_cases() {
        for version in case.versions.clone() {
            let event = (case.event)();
            let (pdu, record) = built(version, &event);
            let label = format!("{} (v{version})", case.name);

            let plain = client_fields(&pdu, &record, false);
            if plain.get("content") != Some(&event.content) {
                failures.push(format!("{label}: unredacted content changed: {plain:?}"));
            }
            let redacted = client_fields(&pdu, &record, true);
            let expected = (case.redacted_content)();
            if redacted.get("content") != Some(&expected) {
                failures.push(format!(
                    "{label}: expected {expected}, got {:?}",
                    redacted.get("content")
                ));
            }
            if redacted.get("type") != Some(&json!(event.kind)) {
                failures.push(format!("{label}: type not kept"));
            }
            // Every client-format field of these events is a key that
            // redaction keeps.
            if redacted.keys().ne(plain.keys()) {
                failures.push(format!("{label}: client fields changed: {redacted:?}"));
            }
            let state_key = event.state_key.as_ref().map(|key| json!(key));
            if redacted.get("state_key") != state_key.as_ref() {
                failures.push(format!("{label}: state_key not kept"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Top-level keys kept by versions 1–10.
const KEPT_BEFORE_V11: [&str; 15] = [
    "auth_events",
    "content",
    "depth",
    "event_id",
    "hashes",
    "membership",
    "origin",
    "origin_server_ts",
    "prev_events",
    "prev_state",
    "room_id",
    "sender",
    "signatures",
    "state_key",
    "type",
];

/// Top-level keys kept from version 11, which drops `origin`, `membership`
/// and `prev_state`.
const KEPT_FROM_V11: [&str; 12] = [
    "auth_events",
    "content",
    "depth",
    "event_id",
    "hashes",
    "origin_server_ts",
    "prev_events",
    "room_id",
    "sender",
    "signatures",
    "state_key",
    "type",
];

fn keys(object: &ruma::CanonicalJsonObject) -> BTreeSet<String> {
    object.keys().cloned().collect()
}

// `client_format::fields` copies only the client-format fields, so the
// top-level keys are checked on the redaction that it and the builder
// apply: ruma's `redact` with the rules of `versions::rules_for`.
#[test]
fn redacted_top_level_keeps_version_keys() {
    // Keys added to each built event where missing, so that every rule of
    // the lists above applies to some key.
    let extra = [
        ("event_id", json!("$added:localhost")),
        ("membership", json!("join")),
        ("origin", json!("localhost")),
        ("prev_state", json!([])),
        ("redacts", json!("$target:localhost")),
        ("unsigned", json!({ "age_ts": 1 })),
        ("com.example.key", json!(1)),
    ];
    let events = [
        state("m.room.topic", "", json!({ "topic": "news" })),
        Event::redaction("alice", Redacts::Last),
        create(),
    ];
    for version in ALL {
        let rules = versions::rules_for(&version.to_string()).unwrap().1;
        let kept_keys: &[&str] = if version <= 10 {
            &KEPT_BEFORE_V11
        } else {
            &KEPT_FROM_V11
        };
        for event in &events {
            let (pdu, _) = built(version, event);
            let mut json = pdu.json.clone();
            for (key, value) in &extra {
                let value = CanonicalJsonValue::try_from(value.clone()).unwrap();
                json.entry((*key).to_owned()).or_insert(value);
            }
            let expected: BTreeSet<String> = keys(&json)
                .into_iter()
                .filter(|key| kept_keys.contains(&key.as_str()))
                .collect();
            let redacted = redact(json, &rules.redaction, None).unwrap();
            assert_eq!(keys(&redacted), expected, "v{version} {}", event.kind);
        }
    }
}

#[test]
fn redacted_redaction_keeps_redacts_from_v11() {
    for version in ALL {
        let event = Event::redaction("alice", Redacts::Last);
        let (pdu, record) = built(version, &event);
        let target = json!(pdu.redacts.as_ref().unwrap().as_str());

        let plain = client_fields(&pdu, &record, false);
        assert_eq!(plain.get("redacts"), Some(&target), "v{version} unredacted");
        let redacted = client_fields(&pdu, &record, true);
        if version <= 10 {
            assert_eq!(redacted.get("content"), Some(&json!({})), "v{version}");
            assert_eq!(redacted.get("redacts"), None, "v{version}");
        } else {
            let content = json!({ "redacts": target });
            assert_eq!(redacted.get("content"), Some(&content), "v{version}");
            assert_eq!(redacted.get("redacts"), Some(&target), "v{version}");
        }
    }
}

// Only `m.room.redaction` events redact: before v11 through their
// top-level `redacts`, from v11 through `redacts` in their content.
#[test]
fn content_redacts_outside_redactions_names_no_target() {
    for version in ALL {
        let content = json!({ "msgtype": "m.text", "body": "hi", "redacts": "$target:localhost" });
        let event = Event::timeline("alice", "m.room.message", content);
        let (pdu, record) = built(version, &event);
        assert_eq!(pdu.redacts, None, "v{version}");
        let fields = client_fields(&pdu, &record, false);
        assert_eq!(fields.get("redacts"), None, "v{version}");
    }
}
