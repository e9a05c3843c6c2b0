//! Cases for joins under each join rule: `public`, `invite`, `knock`
//! (v7+), `restricted` (v8+) and `knock_restricted` (v10+).

use serde_json::json;

use super::{ALL, Accepted, Base, Case, Rejected};
use crate::room::test_room::{
    Stage, ban, invite, join, join_rule, join_via, knock, leave, levels, member, membership, user,
};

const AUTH: Stage = Stage::Auth;

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "join public room",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "join for another user",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![],
            event: |_| membership("alice", "bob", "join"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "banned user joins public room",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![ban("alice", "bob")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "rejoin after leaving public room",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob"), leave("bob")],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "join invite room uninvited",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join_rule("invite")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "join invite room after invite",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join_rule("invite"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "join invite room while joined",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join("bob"), join_rule("invite")],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "join invite room after invite was revoked",
            versions: ALL,
            base: Base::Standard,
            setup: |_| {
                vec![
                    join_rule("invite"),
                    invite("alice", "bob"),
                    membership("alice", "bob", "leave"),
                ]
            },
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "banned invitee joins invite room",
            versions: ALL,
            base: Base::Standard,
            setup: |_| {
                vec![
                    join_rule("invite"),
                    invite("alice", "bob"),
                    ban("alice", "bob"),
                ]
            },
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invitee joins private room",
            versions: ALL,
            base: Base::Standard,
            setup: |_| vec![join_rule("private"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        // Knocking, added in v7.
        Case {
            name: "join knock room after invite",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "join knock room after invite before v7",
            versions: 1..=6,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "join knock room uninvited",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "join knock room while knocking",
            versions: 7..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock"), knock("bob")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        // Restricted rooms, added in v8.
        Case {
            name: "restricted join authorised by member",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted")],
            event: |_| join_via("bob", "alice"),
            expect: Accepted,
        },
        Case {
            name: "restricted join without authoriser",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "restricted join authorised by non-member",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted")],
            event: |_| join_via("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "restricted join authorised by invitee",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted"), invite("alice", "carol")],
            event: |_| join_via("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "restricted join authoriser below invite level",
            versions: 8..=12,
            base: Base::Standard,
            setup: |v| {
                vec![
                    levels(v, json!({ "invite": 50, "users": { user("carol"): 49 } })),
                    join("carol"),
                    join_rule("restricted"),
                ]
            },
            event: |_| join_via("bob", "carol"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "restricted join authoriser at invite level",
            versions: 8..=12,
            base: Base::Standard,
            setup: |v| {
                vec![
                    levels(v, json!({ "invite": 50, "users": { user("carol"): 50 } })),
                    join("carol"),
                    join_rule("restricted"),
                ]
            },
            event: |_| join_via("bob", "carol"),
            expect: Accepted,
        },
        Case {
            name: "restricted join after invite",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "banned user joins restricted room",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted"), ban("alice", "bob")],
            event: |_| join_via("bob", "alice"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "restricted join with invalid authoriser",
            versions: 8..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted")],
            event: |_| {
                let content = json!({
                    "membership": "join",
                    "join_authorised_via_users_server": "not a user",
                });
                member("bob", "bob", content)
            },
            expect: Rejected(Stage::Build),
        },
        Case {
            name: "restricted join rule before v8",
            versions: 1..=7,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted")],
            event: |_| join_via("bob", "alice"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "invitee joins restricted room before v8",
            versions: 1..=7,
            base: Base::Standard,
            setup: |_| vec![join_rule("restricted"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        // `knock_restricted`, added in v10.
        Case {
            name: "knock_restricted join authorised by member",
            versions: 10..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock_restricted")],
            event: |_| join_via("bob", "alice"),
            expect: Accepted,
        },
        Case {
            name: "knock_restricted join without authoriser",
            versions: 10..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock_restricted")],
            event: |_| join("bob"),
            expect: Rejected(AUTH),
        },
        Case {
            name: "knock_restricted join after invite",
            versions: 10..=12,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock_restricted"), invite("alice", "bob")],
            event: |_| join("bob"),
            expect: Accepted,
        },
        Case {
            name: "knock_restricted join rule before v10",
            versions: 1..=9,
            base: Base::Standard,
            setup: |_| vec![join_rule("knock_restricted")],
            event: |_| join_via("bob", "alice"),
            expect: Rejected(AUTH),
        },
    ]
}
