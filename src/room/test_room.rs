//! A room driven event by event through the steps of the append path:
//! content validation, `builder::build`, `auth::check`, and applying the
//! accepted event. Senders are any user IDs, and every event is signed with
//! one generated server key. Shared by the tests of the authorization rules
//! and of the redaction algorithm.

use std::{collections::BTreeMap, sync::Arc};

use base64::Engine as _;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedRoomId, OwnedUserId,
    room_version_rules::EventsReferenceFormatVersion, signatures::Ed25519KeyPair,
};
use serde_json::{Value, json};

use super::{EventDraft, Pdu, Room, auth, builder, keys::SigningKey, validate, versions};

pub const SERVER: &str = "localhost";

/// The user who creates every test room.
pub const CREATOR: &str = "alice";

/// Returns `@name:localhost`, or `name` unchanged when it is already a user ID.
pub fn user(name: &str) -> String {
    if name.starts_with('@') {
        name.to_owned()
    } else {
        format!("@{name}:{SERVER}")
    }
}

/// The step of the append path that rejected an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `validate::check_content`, which reports malformed power levels.
    Validate,
    /// `builder::build`, including its auth event selection.
    Build,
    /// `auth::check`.
    Auth,
}

#[derive(Debug)]
pub struct Rejection {
    pub stage: Stage,
    pub reason: String,
}

/// The event that a redaction names.
#[derive(Debug, Clone, Copy)]
pub enum Redacts {
    /// The newest event of the room.
    Last,
    Id(&'static str),
}

/// Changes a built PDU before the authorization check, to produce an event
/// that the builder would not create.
pub type Tamper = fn(&mut CanonicalJsonObject, &Room);

/// An event to build: the fields of an [`EventDraft`] plus test controls.
#[derive(Clone)]
pub struct Event {
    pub sender: String,
    pub kind: String,
    pub state_key: Option<String>,
    pub content: Value,
    pub redacts: Option<Redacts>,
    /// Whether to run `validate::check_content` first, as the HTTP path does.
    pub validate: bool,
    pub tamper: Option<Tamper>,
}

impl Event {
    pub fn state(sender: &str, kind: &str, state_key: &str, content: Value) -> Self {
        Self {
            sender: user(sender),
            kind: kind.to_owned(),
            state_key: Some(state_key.to_owned()),
            content,
            redacts: None,
            validate: true,
            tamper: None,
        }
    }

    pub fn timeline(sender: &str, kind: &str, content: Value) -> Self {
        Self {
            state_key: None,
            ..Self::state(sender, kind, "", content)
        }
    }

    pub fn message(sender: &str) -> Self {
        Self::timeline(
            sender,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": "hello" }),
        )
    }

    pub fn redaction(sender: &str, target: Redacts) -> Self {
        Self {
            redacts: Some(target),
            ..Self::timeline(sender, "m.room.redaction", json!({ "reason": "spam" }))
        }
    }

    /// Skips content validation, to reach the authorization rules with
    /// content that the HTTP path rejects earlier.
    pub fn unvalidated(self) -> Self {
        Self {
            validate: false,
            ..self
        }
    }

    pub fn tampered(self, tamper: Tamper) -> Self {
        Self {
            tamper: Some(tamper),
            ..self
        }
    }
}

pub fn member(sender: &str, target: &str, content: Value) -> Event {
    Event::state(sender, "m.room.member", &user(target), content)
}

pub fn membership(sender: &str, target: &str, membership: &str) -> Event {
    member(sender, target, json!({ "membership": membership }))
}

pub fn join(name: &str) -> Event {
    membership(name, name, "join")
}

/// Returns a join that names `authoriser` in `join_authorised_via_users_server`.
pub fn join_via(name: &str, authoriser: &str) -> Event {
    let content = json!({
        "membership": "join",
        "join_authorised_via_users_server": user(authoriser),
    });
    member(name, name, content)
}

pub fn leave(name: &str) -> Event {
    membership(name, name, "leave")
}

pub fn knock(name: &str) -> Event {
    membership(name, name, "knock")
}

pub fn invite(sender: &str, target: &str) -> Event {
    membership(sender, target, "invite")
}

pub fn kick(sender: &str, target: &str) -> Event {
    membership(sender, target, "leave")
}

pub fn ban(sender: &str, target: &str) -> Event {
    membership(sender, target, "ban")
}

/// Returns the creator's `m.room.join_rules` event. The restricted rules
/// allow the members of another room.
pub fn join_rule(rule: &str) -> Event {
    let content = if rule.contains("restricted") {
        json!({
            "join_rule": rule,
            "allow": [{ "type": "m.room_membership", "room_id": "!space:localhost" }],
        })
    } else {
        json!({ "join_rule": rule })
    };
    Event::state(CREATOR, "m.room.join_rules", "", content)
}

/// Returns the `m.room.create` event of `sender`, with `room_version` and,
/// in versions 1–10, `creator`. `extra` is merged in last, so it may
/// replace both.
pub fn create_by(version: u8, sender: &str, extra: Value) -> Event {
    let mut content = json!({ "room_version": version.to_string() });
    if version <= 10 {
        content["creator"] = Value::String(user(sender));
    }
    merge(&mut content, extra);
    Event::state(sender, "m.room.create", "", content)
}

pub fn create(version: u8, extra: Value) -> Event {
    create_by(version, CREATOR, extra)
}

/// Returns an `m.room.power_levels` event of `sender`. Before version 12
/// the creator's entry of 100 is added to `users` unless `content` names
/// the creator, because version 12 rejects creators in `users`.
pub fn levels_by(version: u8, sender: &str, content: Value) -> Event {
    let mut content = content;
    if version < 12 {
        let users = content
            .as_object_mut()
            .expect("power levels content is an object")
            .entry("users")
            .or_insert_with(|| json!({}));
        users
            .as_object_mut()
            .expect("users is an object")
            .entry(user(CREATOR))
            .or_insert(json!(100));
    }
    Event::state(sender, "m.room.power_levels", "", content)
}

pub fn levels(version: u8, content: Value) -> Event {
    levels_by(version, CREATOR, content)
}

/// Returns the events of a public room: create, the creator's join, power
/// levels and join rules.
pub fn standard(version: u8) -> Vec<Event> {
    vec![
        create(version, json!({})),
        join(CREATOR),
        levels(version, json!({})),
        join_rule("public"),
    ]
}

fn merge(target: &mut Value, extra: Value) {
    let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) else {
        panic!("merge expects two objects");
    };
    target.extend(extra);
}

/// The parts of a room that applying an event changes.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    state: BTreeMap<(String, String), String>,
    members: BTreeMap<String, String>,
    last_event: Option<String>,
    depth: u64,
    forward_extremities: Vec<String>,
}

pub struct TestRoom {
    pub room: Room,
    key: SigningKey,
    /// The PKCS#8 document of `key`, to give a fork the same key.
    document: Vec<u8>,
    pos: u64,
}

impl TestRoom {
    /// Creates an empty room of `version`, whose first event must be its
    /// `m.room.create`.
    pub fn new(version: u8) -> Self {
        let (version_id, rules) = versions::rules_for(&version.to_string()).unwrap();
        let room_id = if rules.authorization.room_create_event_id_as_room_id {
            format!("!placeholder:{SERVER}")
        } else {
            format!("!room{version}:{SERVER}")
        };
        let room_id = OwnedRoomId::try_from(room_id).unwrap();
        let creator = OwnedUserId::try_from(user(CREATOR)).unwrap();
        let document = Ed25519KeyPair::generate().to_vec();
        let pair = Ed25519KeyPair::from_der(&document, "test".to_owned()).unwrap();
        let public_base64 =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
        Self {
            room: Room::new(room_id, version_id, rules, creator, 1_000),
            key: SigningKey {
                pair,
                public_base64,
                old_keys: Vec::new(),
            },
            document,
            pos: 0,
        }
    }

    /// Returns a copy of the room at its current state and newest event, to
    /// build a branch that forks from here.
    pub fn fork(&self) -> Self {
        let room = self.room.branch();
        let pair = Ed25519KeyPair::from_der(&self.document, "test".to_owned()).unwrap();
        Self {
            room,
            key: SigningKey {
                pair,
                public_base64: self.key.public_base64.clone(),
                old_keys: Vec::new(),
            },
            document: self.document.clone(),
            pos: self.pos,
        }
    }

    /// Validates and builds `event` as the next event, without the
    /// authorization check.
    pub fn build(&self, event: &Event) -> Result<Pdu, Rejection> {
        let reject = |stage, reason: String| Rejection { stage, reason };
        if event.validate && event.state_key.is_some() {
            let integer_levels = self.room.rules.authorization.integer_power_levels;
            validate::check_content(&event.kind, &event.content, integer_levels)
                .map_err(|error| reject(Stage::Validate, error.message))?;
        }
        let redacts = match event.redacts {
            None => None,
            Some(Redacts::Last) => self
                .room
                .last_event
                .as_ref()
                .map(|pdu| pdu.event_id.clone()),
            Some(Redacts::Id(id)) => Some(OwnedEventId::try_from(id).unwrap()),
        };
        let draft = EventDraft {
            redacts,
            state_key: event.state_key.clone(),
            ..EventDraft::state(
                &OwnedUserId::try_from(event.sender.as_str()).unwrap(),
                &event.kind,
                "",
                event.content.clone(),
            )
        };
        let pos = self.pos + 1;
        let pdu = builder::build(&self.room, &draft, SERVER, &self.key, pos, 1_000 + pos)
            .map_err(|error| reject(Stage::Build, error.message))?;
        let Some(tamper) = event.tamper else {
            return Ok(pdu);
        };
        let mut json = pdu.json.clone();
        tamper(&mut json, &self.room);
        let room_id = match json.get("room_id") {
            Some(CanonicalJsonValue::String(id)) => OwnedRoomId::try_from(id.as_str()).unwrap(),
            _ => pdu.room_id.clone(),
        };
        Ok(Pdu::parse(json, pdu.event_id, room_id, pos).unwrap())
    }

    /// Builds `event` and applies it if `auth::check` accepts it.
    pub fn attempt(&mut self, event: &Event) -> Result<Arc<Pdu>, Rejection> {
        let pdu = Arc::new(self.build(event)?);
        auth::check(&self.room, &pdu).map_err(|reason| Rejection {
            stage: Stage::Auth,
            reason,
        })?;
        self.apply(pdu.clone());
        Ok(pdu)
    }

    fn apply(&mut self, pdu: Arc<Pdu>) {
        self.room.apply(&pdu);
        self.pos += 1;
    }

    pub fn snapshot(&self) -> Snapshot {
        let room = &self.room;
        Snapshot {
            state: room
                .state
                .iter()
                .map(|(key, pdu)| (key.clone(), pdu.event_id.to_string()))
                .collect(),
            members: room
                .members
                .iter()
                .map(|(user_id, membership)| (user_id.to_string(), membership.clone()))
                .collect(),
            last_event: room.last_event.as_ref().map(|pdu| pdu.event_id.to_string()),
            depth: room.depth,
            forward_extremities: room
                .forward_extremities
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// Returns the `auth_events` list of a PDU for changing.
pub fn auth_events_mut(json: &mut CanonicalJsonObject) -> &mut Vec<CanonicalJsonValue> {
    match json.get_mut("auth_events") {
        Some(CanonicalJsonValue::Array(list)) => list,
        _ => panic!("PDU without an auth_events list"),
    }
}

/// Returns a reference to `event_id` in the room version's format: the ID,
/// or in versions 1 and 2 an `[id, hashes]` pair.
pub fn reference(room: &Room, event_id: &str) -> CanonicalJsonValue {
    let id = CanonicalJsonValue::String(event_id.to_owned());
    match room.rules.events_reference_format {
        EventsReferenceFormatVersion::V1 => {
            CanonicalJsonValue::Array(vec![id, CanonicalJsonValue::Object(Default::default())])
        }
        _ => id,
    }
}

/// Returns the event ID in a reference of either format.
pub fn referenced_id(reference: &CanonicalJsonValue) -> Option<&str> {
    match reference {
        CanonicalJsonValue::String(id) => Some(id),
        CanonicalJsonValue::Array(pair) => match pair.first() {
            Some(CanonicalJsonValue::String(id)) => Some(id),
            _ => None,
        },
        _ => None,
    }
}
