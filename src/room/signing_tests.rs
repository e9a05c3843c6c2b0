//! Checks of the events that the builder creates, made without the
//! builder's code: ruma's event verifier, the test vectors of the spec's
//! appendix, and hashes and references recomputed here for every room
//! version.

use std::sync::Arc;

use base64::Engine as _;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedUserId,
    canonical_json::redact,
    room_version_rules::{EventIdFormatVersion, EventsReferenceFormatVersion, RedactionRules},
    serde::Base64,
    signatures::{
        Ed25519KeyPair, PublicKeyMap, Verified, hash_and_sign_event, sign_json, verify_event,
    },
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{EventDraft, Pdu, Room, builder, keys::SigningKey, versions};

/// The seed of the appendix's test signing key, `ed25519:1` of `domain`.
const SPEC_SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const SERVER: &str = "localhost";

fn spec_key_pair() -> Ed25519KeyPair {
    // The appendix's seed has nonzero trailing bits, which strict decoding
    // rejects.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let seed = lenient.decode(SPEC_SEED).unwrap();
    // A PKCS#8 v1 document for an ed25519 private key: the fixed header of
    // RFC 8410 followed by the 32-byte seed.
    let mut document = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    document.extend_from_slice(&seed);
    Ed25519KeyPair::from_der(&document, "1".to_owned()).unwrap()
}

fn object(value: Value) -> CanonicalJsonObject {
    match CanonicalJsonValue::try_from(value).unwrap() {
        CanonicalJsonValue::Object(object) => object,
        other => panic!("expected an object, got {other:?}"),
    }
}

fn signature_of(object: &CanonicalJsonObject, server: &str) -> String {
    let Some(CanonicalJsonValue::Object(signatures)) = object.get("signatures") else {
        panic!("no signatures");
    };
    let Some(CanonicalJsonValue::Object(by_server)) = signatures.get(server) else {
        panic!("no signature of {server}");
    };
    let (_, CanonicalJsonValue::String(signature)) = by_server.iter().next().unwrap() else {
        panic!("signature is not a string");
    };
    signature.clone()
}

fn content_hash_of(object: &CanonicalJsonObject) -> String {
    let Some(CanonicalJsonValue::Object(hashes)) = object.get("hashes") else {
        panic!("no hashes");
    };
    let Some(CanonicalJsonValue::String(hash)) = hashes.get("sha256") else {
        panic!("no sha256 hash");
    };
    hash.clone()
}

#[test]
fn spec_vector_empty_object() {
    let mut signed = CanonicalJsonObject::new();
    sign_json("domain", &spec_key_pair(), &mut signed).unwrap();
    assert_eq!(
        signature_of(&signed, "domain"),
        "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
    );
}

#[test]
fn spec_vector_object_with_data() {
    let mut signed = object(json!({ "one": 1, "two": "Two" }));
    sign_json("domain", &spec_key_pair(), &mut signed).unwrap();
    assert_eq!(
        signature_of(&signed, "domain"),
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
    );
}

#[test]
fn spec_vector_minimal_event() {
    let mut event = object(json!({
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1_000_000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": { "age_ts": 1_000_000 },
    }));
    hash_and_sign_event("domain", &spec_key_pair(), &mut event, &RedactionRules::V1).unwrap();
    assert_eq!(
        content_hash_of(&event),
        "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    );
    assert_eq!(
        signature_of(&event, "domain"),
        "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
    );
}

#[test]
fn spec_vector_redactable_event() {
    let mut event = object(json!({
        "content": { "body": "Here is the message content" },
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1_000_000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": { "age_ts": 1_000_000 },
    }));
    hash_and_sign_event("domain", &spec_key_pair(), &mut event, &RedactionRules::V1).unwrap();
    assert_eq!(
        content_hash_of(&event),
        "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
    );
    assert_eq!(
        signature_of(&event, "domain"),
        "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
    );
}

/// Builds a room's first events with the builder and applies them the way
/// the append path does.
struct Chain {
    room: Room,
    key: SigningKey,
    pdus: Vec<Arc<Pdu>>,
}

impl Chain {
    fn new(version: &str) -> Self {
        let (version_id, rules) = versions::rules_for(version).unwrap();
        let creator = OwnedUserId::try_from(format!("@alice:{SERVER}")).unwrap();
        let placeholder = OwnedRoomId::try_from(format!("!placeholder:{SERVER}")).unwrap();
        let room_id = if rules.authorization.room_create_event_id_as_room_id {
            placeholder
        } else {
            OwnedRoomId::try_from(format!("!r{version}:{SERVER}")).unwrap()
        };
        let pair = spec_key_pair();
        let public_base64 =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
        Self {
            room: Room::new(room_id, version_id, rules, creator, 1_000),
            key: SigningKey {
                pair,
                public_base64,
                old_keys: Vec::new(),
            },
            pdus: Vec::new(),
        }
    }

    fn add(&mut self, kind: &str, state_key: Option<&str>, content: Value) -> Arc<Pdu> {
        let sender = self.room.creator.clone();
        let mut draft = EventDraft::state(&sender, kind, state_key.unwrap_or(""), content);
        draft.state_key = state_key.map(str::to_owned);
        let pos = self.pdus.len() as u64 + 1;
        let now = 1_000 + pos;
        let pdu =
            Arc::new(builder::build(&self.room, &draft, SERVER, &self.key, pos, now).unwrap());
        super::auth::check(&self.room, &pdu).unwrap();
        self.room.apply(&pdu);
        self.pdus.push(pdu.clone());
        pdu
    }

    fn build_standard(version: &str) -> Self {
        let mut chain = Self::new(version);
        let creator = chain.room.creator.to_string();
        let create_content = if chain.room.rules.authorization.use_room_create_sender {
            json!({ "room_version": version })
        } else {
            json!({ "room_version": version, "creator": creator })
        };
        chain.add("m.room.create", Some(""), create_content);
        chain.add(
            "m.room.member",
            Some(&creator),
            json!({ "membership": "join" }),
        );
        let users = if chain
            .room
            .rules
            .authorization
            .explicitly_privilege_room_creators
        {
            json!({})
        } else {
            json!({ creator.clone(): 100 })
        };
        chain.add("m.room.power_levels", Some(""), json!({ "users": users }));
        chain.add(
            "m.room.join_rules",
            Some(""),
            json!({ "join_rule": "public" }),
        );
        chain.add(
            "m.room.message",
            None,
            json!({ "msgtype": "m.text", "body": "hello" }),
        );
        chain
    }

    fn public_keys(&self) -> PublicKeyMap {
        let set = [(
            self.key.key_id(),
            Base64::parse(&self.key.public_base64).unwrap(),
        )]
        .into_iter()
        .collect();
        [(SERVER.to_owned(), set)].into_iter().collect()
    }
}

/// Computes the sha256 of the canonical JSON of `object` here, with the
/// same base64 alphabet the spec gives for content hashes.
fn sha256_base64(object: &CanonicalJsonObject, url_safe: bool) -> String {
    let canonical = serde_json::to_string(object).unwrap();
    let digest = Sha256::digest(canonical.as_bytes());
    if url_safe {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    }
}

fn ids(value: Option<&CanonicalJsonValue>, format: EventsReferenceFormatVersion) -> Vec<String> {
    let Some(CanonicalJsonValue::Array(items)) = value else {
        panic!("references are not an array");
    };
    items
        .iter()
        .map(|item| match (format, item) {
            (EventsReferenceFormatVersion::V1, CanonicalJsonValue::Array(pair)) => {
                match pair.first() {
                    Some(CanonicalJsonValue::String(id)) => id.clone(),
                    other => panic!("invalid reference pair {other:?}"),
                }
            }
            (_, CanonicalJsonValue::String(id)) => id.clone(),
            (_, other) => panic!("invalid reference {other:?}"),
        })
        .collect()
}

#[test]
fn every_version_signs_verifiable_events() {
    for version in versions::SUPPORTED {
        let chain = Chain::build_standard(version);
        let keys = chain.public_keys();
        for pdu in &chain.pdus {
            let verified = verify_event(&keys, &pdu.json, &chain.room.rules)
                .unwrap_or_else(|error| panic!("v{version} {}: {error}", pdu.kind));
            assert_eq!(verified, Verified::All, "v{version} {}", pdu.kind);
        }
    }
}

#[test]
fn every_version_has_its_content_hash() {
    for version in versions::SUPPORTED {
        let chain = Chain::build_standard(version);
        for pdu in &chain.pdus {
            let mut unhashed = pdu.json.clone();
            for field in ["unsigned", "signatures", "hashes"] {
                unhashed.remove(field);
            }
            assert_eq!(
                content_hash_of(&pdu.json),
                sha256_base64(&unhashed, false),
                "v{version} {}",
                pdu.kind
            );
        }
    }
}

#[test]
fn every_version_has_its_event_id_format() {
    for version in versions::SUPPORTED {
        let chain = Chain::build_standard(version);
        let rules = &chain.room.rules;
        for pdu in &chain.pdus {
            let id = pdu.event_id.as_str();
            match rules.event_id_format {
                EventIdFormatVersion::V1 => {
                    assert!(id.ends_with(&format!(":{SERVER}")), "v{version} {id}");
                    let Some(CanonicalJsonValue::String(field)) = pdu.json.get("event_id") else {
                        panic!("v{version}: no event_id field");
                    };
                    assert_eq!(field, id);
                }
                format => {
                    // The reference hash covers the redacted event without
                    // its signatures and unsigned data.
                    let mut redacted = redact(pdu.json.clone(), &rules.redaction, None).unwrap();
                    redacted.remove("signatures");
                    redacted.remove("unsigned");
                    let url_safe = format != EventIdFormatVersion::V2;
                    let expected = format!("${}", sha256_base64(&redacted, url_safe));
                    assert_eq!(id, expected, "v{version} {}", pdu.kind);
                    assert!(!pdu.json.contains_key("event_id"), "v{version}");
                }
            }
        }
    }
}

#[test]
fn every_version_links_prev_and_auth_events() {
    for version in versions::SUPPORTED {
        let chain = Chain::build_standard(version);
        let format = chain.room.rules.events_reference_format;
        let create = chain.pdus[0].event_id.to_string();
        for (index, pdu) in chain.pdus.iter().enumerate() {
            let prev = ids(pdu.json.get("prev_events"), format);
            let auth = ids(pdu.json.get("auth_events"), format);
            assert_eq!(pdu.depth, index as u64 + 1, "v{version} depth");
            if index == 0 {
                assert!(prev.is_empty(), "v{version} create has prev_events");
                assert!(auth.is_empty(), "v{version} create has auth_events");
                continue;
            }
            assert_eq!(
                prev,
                vec![chain.pdus[index - 1].event_id.to_string()],
                "v{version} {}",
                pdu.kind
            );
            // Version 12 leaves the create event out of auth_events because
            // the room ID names it.
            let lists_create = !chain
                .room
                .rules
                .authorization
                .room_create_event_id_as_room_id;
            assert_eq!(
                auth.contains(&create),
                lists_create,
                "v{version} {}",
                pdu.kind
            );
            let member = chain.pdus[1].event_id.to_string();
            if index > 1 {
                assert!(
                    auth.contains(&member),
                    "v{version} {} lacks the sender's member event",
                    pdu.kind
                );
            }
            if index > 2 {
                let levels = chain.pdus[2].event_id.to_string();
                assert!(
                    auth.contains(&levels),
                    "v{version} {} lacks power levels",
                    pdu.kind
                );
            }
        }
    }
}

#[test]
fn v12_room_id_is_the_create_reference_hash() {
    let chain = Chain::build_standard("12");
    let create = &chain.pdus[0];
    let hash = create.event_id.as_str().trim_start_matches('$');
    assert_eq!(chain.room.room_id.as_str(), format!("!{hash}"));
    assert!(!create.json.contains_key("room_id"));
    for pdu in &chain.pdus[1..] {
        assert_eq!(
            pdu.json.get("room_id"),
            Some(&CanonicalJsonValue::String(chain.room.room_id.to_string()))
        );
    }
}

/// In room versions 1 and 2 each reference is `[event_id, {"sha256": hash}]`,
/// where the hash is the referenced event's reference hash: the SHA-256 of
/// its redacted form without `signatures` and `unsigned`, in standard
/// unpadded base64.
#[test]
fn v1_v2_references_carry_reference_hashes() {
    for version in ["1", "2"] {
        let chain = Chain::build_standard(version);
        let rules = &chain.room.rules;
        let by_id: std::collections::HashMap<&str, &Pdu> = chain
            .pdus
            .iter()
            .map(|pdu| (pdu.event_id.as_str(), &**pdu))
            .collect();
        let mut checked = 0;
        for pdu in &chain.pdus {
            for field in ["prev_events", "auth_events"] {
                let Some(CanonicalJsonValue::Array(references)) = pdu.json.get(field) else {
                    panic!("v{version}: {field} is not an array");
                };
                for reference in references {
                    let CanonicalJsonValue::Array(pair) = reference else {
                        panic!("v{version}: {field} entry {reference:?} is not a pair");
                    };
                    let [
                        CanonicalJsonValue::String(id),
                        CanonicalJsonValue::Object(hashes),
                    ] = pair.as_slice()
                    else {
                        panic!("v{version}: invalid reference {pair:?}");
                    };
                    let referenced = by_id[id.as_str()];
                    let mut redacted =
                        redact(referenced.json.clone(), &rules.redaction, None).unwrap();
                    redacted.remove("signatures");
                    redacted.remove("unsigned");
                    let expected = sha256_base64(&redacted, false);
                    assert_eq!(
                        hashes.get("sha256"),
                        Some(&CanonicalJsonValue::String(expected)),
                        "v{version}: {field} of {} names {id}",
                        pdu.kind
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "v{version}: no references checked");
    }
}

#[test]
fn deferred_signature_equals_the_build_time_signature() {
    for version in versions::SUPPORTED {
        let chain = Chain::build_standard(version);
        let draft = EventDraft {
            sender: chain.room.creator.clone(),
            kind: "m.room.message".to_owned(),
            state_key: None,
            content: json!({ "msgtype": "m.text", "body": "later" }),
            redacts: None,
            txn: None,
            origin_server_ts: None,
        };
        let signed = builder::build(&chain.room, &draft, SERVER, &chain.key, 9, 5_000).unwrap();
        let unsigned =
            builder::build_unsigned(&chain.room, &draft, SERVER, &chain.key, 9, 5_000).unwrap();
        assert!(!unsigned.json.contains_key("signatures"), "v{version}");

        // The size limit counts the signature that is not there yet.
        let size = |object: &CanonicalJsonObject| serde_json::to_vec(object).unwrap().len();
        assert_eq!(
            size(&signed.json),
            size(&unsigned.json) + builder::signature_bytes(SERVER, &chain.key),
            "v{version}"
        );

        // Versions 1 and 2 draw a random event ID, so the signed copy is
        // compared with itself without its signature.
        let mut deferred = if chain.room.rules.event_id_format == EventIdFormatVersion::V1 {
            let mut stripped = signed.json.clone();
            stripped.remove("signatures");
            stripped
        } else {
            assert_eq!(signed.event_id, unsigned.event_id, "v{version}");
            unsigned.json.clone()
        };
        ruma::signatures::sign_event(
            SERVER,
            &chain.key.pair,
            &mut deferred,
            &chain.room.rules.redaction,
        )
        .unwrap();
        assert_eq!(deferred, signed.json, "v{version}");

        // The signature covers the redacted event, so it stays valid for the
        // redacted copy that the store keeps after a redaction.
        let redacted = redact(deferred, &chain.room.rules.redaction, None).unwrap();
        let verified = verify_event(&chain.public_keys(), &redacted, &chain.room.rules)
            .unwrap_or_else(|error| panic!("v{version}: {error}"));
        assert_eq!(verified, Verified::Signatures, "v{version}");
    }
}
