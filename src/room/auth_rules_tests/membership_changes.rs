//! Cases for invites, leaves and kicks, bans and unbans, knocks (v7+) and
//! unknown memberships.

use serde_json::json;

use super::{ALL, Accepted, Base, Case, Rejected};
use crate::room::test_room::{
    Stage, ban, create, invite, join, join_rule, kick, knock, leave, levels, member, membership,
    user,
};

const AUTH: Stage = Stage::Auth;

/// Returns power levels in which bob and carol have the given levels.
fn bob_and_carol(version: u8, bob: i64, carol: i64) -> crate::room::test_room::Event {
    levels(
        version,
        json!({ "users": { user("bob"): bob, user("carol"): carol } }),
    )
}

pub(super) fn cases() -> Vec<Case> {
    let mut cases = invites();
    cases.extend(leaves_and_kicks());
    cases.extend(bans());
    cases.extend(knocks());
    cases
}

fn invites() -> Vec<Case> {
    vec![
        Case {
            name: "invite by member",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| invite("alice", "bob"),
            expect: Accepted,
        },
        Case {
            name: "invite below invite level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![levels(v, json!({ "invite": 50 })), join("bob")],
            event: |_| invite("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite at invite level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| {
                let content = json!({ "invite": 50, "users": { user("bob"): 50 } });
                vec![levels(v, content), join("bob")]
            },
            event: |_| invite("bob", "carol"),
            expect: Accepted,
        },
        Case {
            name: "invite at default invite level",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| invite("bob", "carol"),
            expect: Accepted,
        },
        Case {
            name: "invite by non-member",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| invite("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite of joined user",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| invite("alice", "bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite of banned user",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![ban("alice", "bob")],
            event: |_| invite("alice", "bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invite of invited user",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![invite("alice", "bob")],
            event: |_| invite("alice", "bob"),
            expect: Accepted,
        },
        Case {
            name: "invite of knocking user",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), knock("bob")],
            event: |_| invite("alice", "bob"),
            expect: Accepted,
        },
    ]
}

fn leaves_and_kicks() -> Vec<Case> {
    vec![
        Case {
            name: "member leaves",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| leave("bob"),
            expect: Accepted,
        },
        Case {
            name: "invitee rejects invite",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![invite("alice", "bob")],
            event: |_| leave("bob"),
            expect: Accepted,
        },
        Case {
            name: "leave without membership",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| leave("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "leave twice",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob"), leave("bob")],
            event: |_| leave("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "banned user leaves",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![ban("alice", "bob")],
            event: |_| leave("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knocking user withdraws knock",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), knock("bob")],
            event: |_| leave("bob"),
            expect: Accepted,
        },
        Case {
            name: "kick by creator",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| kick("alice", "bob"),
            expect: Accepted,
        },
        Case {
            name: "kick below kick level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 49, 0), join("bob"), join("carol")],
            event: |_| kick("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "kick of user at own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 50, 50), join("bob"), join("carol")],
            event: |_| kick("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "kick of user below own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 50, 49), join("bob"), join("carol")],
            event: |_| kick("bob", "carol"),
            expect: Accepted,
        },
        Case {
            name: "kick by non-member",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 50, 0), join("carol")],
            event: |_| kick("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "kick revokes invite",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![invite("alice", "bob")],
            event: |_| kick("alice", "bob"),
            expect: Accepted,
        },
        Case {
            name: "unban at ban and kick levels",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 50, 0), join("bob"), ban("alice", "carol")],
            event: |_| kick("bob", "carol"),
            expect: Accepted,
        },
        Case {
            name: "unban below ban level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| {
                let content = json!({ "ban": 60, "users": { user("bob"): 50 } });
                vec![levels(v, content), join("bob"), ban("alice", "carol")]
            },
            event: |_| kick("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "unban below kick level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| {
                let content = json!({ "kick": 60, "users": { user("bob"): 50 } });
                vec![levels(v, content), join("bob"), ban("alice", "carol")]
            },
            event: |_| kick("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "creator kicked by higher user before v12",
            versions: 1..=11,
            base: Base::Standard,
            setup: |v| {
                let content = json!({ "users": { user("alice"): 50, user("bob"): 100 } });
                vec![levels(v, content), join("bob")]
            },
            event: |_| kick("bob", "alice"),
            expect: Accepted,
        },
        Case {
            name: "creator kicked by level 100 user in v12",
            versions: 12..=12,
            base: Base::Standard,
            setup: |v| {
                vec![
                    levels(v, json!({ "users": { user("bob"): 100 } })),
                    join("bob"),
                ]
            },
            event: |_| kick("bob", "alice"),
            expect: Rejected(AUTH),
        },
    ]
}

fn bans() -> Vec<Case> {
    vec![
        Case {
            name: "ban by creator",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob")],
            event: |_| ban("alice", "bob"),
            expect: Accepted,
        },
        Case {
            name: "ban below ban level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 49, 0), join("bob"), join("carol")],
            event: |_| ban("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "ban of user at own level",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 50, 50), join("bob"), join("carol")],
            event: |_| ban("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "ban of user who never joined",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| ban("alice", "dave"),
            expect: Accepted,
        },
        Case {
            name: "ban by non-member",
            versions: ALL,
            base: Base::Standard,
            setup: |v| vec![bob_and_carol(v, 60, 0), join("carol")],
            event: |_| ban("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional creator banned by level 100 user",
            versions: 12..=12,
            base: Base::Empty,
            setup: |v| {
                vec![
                    create(v, json!({ "additional_creators": [user("bob")] })),
                    join("alice"),
                    levels(v, json!({ "users": { user("carol"): 100 } })),
                    join_rule("public"),
                    join("bob"),
                    join("carol"),
                ]
            },
            event: |_| ban("carol", "bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "additional creator bans level 100 user",
            versions: 12..=12,
            base: Base::Empty,
            setup: |v| {
                vec![
                    create(v, json!({ "additional_creators": [user("bob")] })),
                    join("alice"),
                    levels(v, json!({ "users": { user("carol"): 100 } })),
                    join_rule("public"),
                    join("bob"),
                    join("carol"),
                ]
            },
            event: |_| ban("bob", "carol"),
            expect: Accepted,
        },
    ]
}

fn knocks() -> Vec<Case> {
    vec![
        Case {
            name: "knock on knock room",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock")],
            event: |_| knock("bob"),
            expect: Accepted,
        },
        Case {
            name: "knock before v7",
            versions: 1..=6,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock on public room",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock on invite room",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("invite")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock on restricted room",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invitee turned to knock by another user",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), invite("alice", "bob")],
            event: |_| membership("alice", "bob", "knock"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock for another user",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock")],
            event: |_| membership("alice", "bob", "knock"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock while invited",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), invite("alice", "bob")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock while joined",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join("bob"), join_rule("knock")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock while banned",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), ban("alice", "bob")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock after leaving",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join("bob"), leave("bob"), join_rule("knock")],
            event: |_| knock("bob"),
            expect: Accepted,
        },
        Case {
            name: "knock on knock_restricted room",
            versions: 10..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock_restricted")],
            event: |_| knock("bob"),
            expect: Accepted,
        },
        Case {
            name: "knock on knock_restricted room before v10",
            versions: 7..=9,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock_restricted")],
            event: |_| knock("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "unknown membership",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| membership("bob", "bob", "dance"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "member event without membership",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| member("bob", "bob", json!({ "displayname": "Bob" })),
            expect: Rejected(Stage::Build),
        },
    ]
}
