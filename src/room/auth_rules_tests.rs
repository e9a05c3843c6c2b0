//! The authorization rules of room versions 1–12, as tables of cases taken
//! from the rules in the room version specifications. Every case runs on
//! each version it names: the setup events are built and applied, then the
//! event under test is built and checked by `auth::check`. A rejected event
//! must be rejected at the expected stage and leave the room unchanged, and
//! an accepted one must become the room's newest event and state.

mod create;
mod membership;
mod membership_changes;
mod power_levels;
mod sending;
mod third_party_invite;

use std::{collections::HashSet, ops::RangeInclusive};

use serde_json::json;

use super::test_room::{Event, Stage, TestRoom, create, join, join_rule, join_via, standard};

/// The events a case starts from, before its own setup.
#[derive(Debug, Clone, Copy)]
enum Base {
    /// No events.
    Empty,
    /// A public room of the creator (see [`standard`]).
    Standard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Rejected(Stage),
}

use Outcome::{Accepted, Rejected};

struct Case {
    name: &'static str,
    versions: RangeInclusive<u8>,
    base: Base,
    /// Events applied after the base, all of which must be accepted.
    setup: fn(u8) -> Vec<Event>,
    event: fn(u8) -> Event,
    expect: Outcome,
}

const ALL: RangeInclusive<u8> = 1..=12;

/// Runs `case` on `version` and describes how the outcome differs from the
/// expected one.
fn run_version(case: &Case, version: u8) -> Result<(), String> {
    let mut room = TestRoom::new(version);
    let base = match case.base {
        Base::Empty => Vec::new(),
        Base::Standard => standard(version),
    };
    for event in base.iter().chain(&(case.setup)(version)) {
        room.attempt(event).map_err(|rejection| {
            format!(
                "setup event {} of {} was rejected at {:?}: {}",
                event.kind, event.sender, rejection.stage, rejection.reason
            )
        })?;
    }

    let event = (case.event)(version);
    let before = room.snapshot();
    match (case.expect, room.attempt(&event)) {
        (Accepted, Ok(pdu)) => {
            let newest = room.room.last_event.as_ref().map(|last| &last.event_id);
            if newest != Some(&pdu.event_id) {
                return Err("the accepted event is not the newest event".to_owned());
            }
            let state = pdu
                .state_key
                .as_ref()
                .map(|key| room.room.state_event(&pdu.kind.to_string(), key));
            match state {
                Some(Some(current)) if current.event_id != pdu.event_id => {
                    Err("the accepted state event is not the current state".to_owned())
                }
                Some(None) => Err("the accepted state event is missing from the state".to_owned()),
                _ => Ok(()),
            }
        }
        (Accepted, Err(rejection)) => Err(format!(
            "expected acceptance, rejected at {:?}: {}",
            rejection.stage, rejection.reason
        )),
        (Rejected(stage), Ok(_)) => Err(format!("expected rejection at {stage:?}, accepted")),
        (Rejected(stage), Err(rejection)) if rejection.stage != stage => Err(format!(
            "expected rejection at {stage:?}, rejected at {:?}: {}",
            rejection.stage, rejection.reason
        )),
        (Rejected(_), Err(_)) if room.snapshot() != before => {
            Err("the rejected event changed the room".to_owned())
        }
        (Rejected(_), Err(_)) => Ok(()),
    }
}

/// Runs every case on every version it names and fails with the list of
/// all disagreements.
fn assert_cases(cases: &[Case]) {
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|case| {
            case.versions.clone().filter_map(|version| {
                run_version(case, version)
                    .err()
                    .map(|failure| format!("{} (v{version}): {failure}", case.name))
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case runs disagree with the spec:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn create_and_auth_events_rules() {
    assert_cases(&create::cases());
}

#[test]
fn join_rules() {
    assert_cases(&membership::cases());
}

#[test]
fn invite_leave_ban_and_knock_rules() {
    assert_cases(&membership_changes::cases());
}

#[test]
fn power_levels_rules() {
    assert_cases(&power_levels::cases());
}

#[test]
fn sending_rules() {
    assert_cases(&sending::cases());
}

#[test]
fn third_party_invite_rules() {
    assert_cases(&third_party_invite::cases());
}

#[test]
fn case_names_are_unique() {
    let tables = [
        create::cases(),
        membership::cases(),
        membership_changes::cases(),
        power_levels::cases(),
        sending::cases(),
        third_party_invite::cases(),
    ];
    let mut names = HashSet::new();
    for case in tables.iter().flatten() {
        assert!(
            names.insert(case.name),
            "duplicate case name {:?}",
            case.name
        );
    }
}

// Rule 1.3 of every version: "If `content.room_version` is present and is
// not a recognised version, reject."
#[test]
fn create_with_unknown_room_version() {
    assert_cases(&[Case {
        name: "create with unknown room_version",
        versions: ALL,
        base: Base::Empty,
        setup: |_| vec![],
        event: |v| create(v, json!({ "room_version": "999" })),
        expect: Rejected(Stage::Auth),
    }]);
}

// Rule 4.2.1 of versions 8–12: if `content` has a
// `join_authorised_via_users_server` key, "If the event is not validly
// signed by the homeserver of the user ID denoted by the key, reject."
#[test]
fn restricted_join_needs_authorising_server_signature() {
    assert_cases(&[Case {
        name: "restricted join unsigned by authorising server",
        versions: 8..=12,
        base: Base::Standard,
        setup: |_| vec![join("@eve:other.example"), join_rule("restricted")],
        event: |_| join_via("bob", "@eve:other.example"),
        expect: Rejected(Stage::Auth),
    }]);
}
