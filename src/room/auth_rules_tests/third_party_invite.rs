//! Cases for `m.room.third_party_invite` events and the invites that
//! complete them. The identity server's keys are derived from fixed seeds
//! here, so no identity server is involved.

use base64::Engine as _;
use ruma::{
    CanonicalJsonValue,
    signatures::{Ed25519KeyPair, sign_json},
};
use serde_json::{Value, json};

use super::{ALL, Accepted, Base, Case, Rejected};
use crate::room::test_room::{Event, Stage, ban, join, leave, levels, member, user};

const AUTH: Stage = Stage::Auth;

const TOKEN: &str = "abc123";
const IDENTITY_SERVER: &str = "identity.example";

/// Derives the identity server's key number `seed`.
fn identity_key(seed: u8) -> Ed25519KeyPair {
    // A PKCS#8 v1 document for an Ed25519 private key (RFC 8410): a fixed
    // header followed by the 32-byte seed.
    let mut document = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    document.extend([seed; 32]);
    Ed25519KeyPair::from_der(&document, "0".to_owned()).unwrap()
}

fn public_key(seed: u8) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(identity_key(seed).public_key())
}

/// Returns the `m.room.third_party_invite` event of `sender` for [`TOKEN`],
/// with identity key 1 in `public_key` and key 2 in `public_keys`.
fn third_party_invite(sender: &str) -> Event {
    let validity_url = "https://identity.example/_matrix/identity/v2/pubkey/isvalid";
    let content = json!({
        "display_name": "b...@example.org",
        "key_validity_url": validity_url,
        "public_key": public_key(1),
        "public_keys": [{ "public_key": public_key(2), "key_validity_url": validity_url }],
    });
    Event::state(sender, "m.room.third_party_invite", TOKEN, content)
}

/// Returns `signed` with the signature of identity key `seed`.
fn sign(seed: u8, signed: Value) -> Value {
    let CanonicalJsonValue::Object(mut object) = CanonicalJsonValue::try_from(signed).unwrap()
    else {
        panic!("signed must be an object");
    };
    sign_json(IDENTITY_SERVER, &identity_key(seed), &mut object).unwrap();
    serde_json::to_value(object).unwrap()
}

fn invite_with(sender: &str, target: &str, signed: Value) -> Event {
    let content = json!({
        "membership": "invite",
        "third_party_invite": { "display_name": "b...@example.org", "signed": signed },
    });
    member(sender, target, content)
}

/// Returns an invite of `target` that completes a third-party invite for
/// `mxid` and `token`, signed with identity key `seed`.
fn signed_invite(sender: &str, target: &str, seed: u8, mxid: &str, token: &str) -> Event {
    let signed = sign(seed, json!({ "mxid": user(mxid), "token": token }));
    invite_with(sender, target, signed)
}

fn altered_invite(sender: &str, target: &str) -> Event {
    let mut signed = sign(
        1,
        json!({ "mxid": user(target), "token": TOKEN, "extra": 1 }),
    );
    signed.as_object_mut().unwrap().remove("extra");
    invite_with(sender, target, signed)
}

pub(super) fn cases() -> Vec<Case> {
    let mut cases = third_party_invite_events();
    cases.extend(invites());
    cases
}

fn third_party_invite_events() -> Vec<Case> {
    vec![
        Case {
            name: "third_party_invite below invite level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![levels(v, json!({ "invite": 50 })), join("bob")],
            event: |_| third_party_invite("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "third_party_invite below state_default",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| third_party_invite("bob"),
            expect: Accepted,
        },
        Case {
            name: "third_party_invite below its events level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| {
                let content = json!({ "events": { "m.room.third_party_invite": 100 } });
                vec![levels(v, content), join("bob")]
            },
            event: |_| third_party_invite("bob"),
            expect: Accepted,
        },
        Case {
            name: "third_party_invite from non-member",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| third_party_invite("bob"),
            expect: Rejected(AUTH),
        },
    ]
}

fn invites() -> Vec<Case> {
    vec![
        Case {
            name: "invite with signed third-party invite",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| signed_invite("alice", "bob", 1, "bob", TOKEN),
            expect: Accepted,
        },
        Case {
            name: "invite signed with key from public_keys",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| signed_invite("alice", "bob", 2, "bob", TOKEN),
            expect: Accepted,
        },
        Case {
            name: "invite signed with unknown key",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| signed_invite("alice", "bob", 3, "bob", TOKEN),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite altered after signing",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| altered_invite("alice", "bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite with unknown token",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| signed_invite("alice", "bob", 1, "bob", "other"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite whose mxid is not the target",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| signed_invite("alice", "bob", 1, "carol", TOKEN),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite by other than third_party_invite sender",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice"), join("bob")],
            event: |_| signed_invite("bob", "carol", 1, "carol", TOKEN),
            expect: Rejected(AUTH),
        },
        Case {
            name: "signed third-party invite of banned user",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice"), ban("alice", "bob")],
            event: |_| signed_invite("alice", "bob", 1, "bob", TOKEN),
            expect: Rejected(AUTH),
        },
        Case {
            name: "signed third-party invite of joined user",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice"), join("bob")],
            event: |_| signed_invite("alice", "bob", 1, "bob", TOKEN),
            expect: Accepted,
        },
        Case {
            name: "signed third-party invite after sender left",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob"), third_party_invite("bob"), leave("bob")],
            event: |_| signed_invite("bob", "carol", 1, "carol", TOKEN),
            expect: Accepted,
        },
        Case {
            name: "third-party invite without signed",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| {
                let content = json!({
                    "membership": "invite",
                    "third_party_invite": { "display_name": "b...@example.org" },
                });
                member("alice", "bob", content)
            },
            expect: Rejected(Stage::Build),
        },
        Case {
            name: "third-party invite without token",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![third_party_invite("alice")],
            event: |_| invite_with("alice", "bob", sign(1, json!({ "mxid": user("bob") }))),
            expect: Rejected(Stage::Build),
        },
    ]
}
