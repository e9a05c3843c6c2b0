//! State resolution on forked room graphs built with the real builder, with
//! the resolved state each case must reach per the spec's algorithm.

use std::{collections::HashMap, sync::Arc};

use ruma::{OwnedEventId, events::StateEventType, state_res::StateMap};
use serde_json::{Value, json};

use super::{
    Pdu,
    resolve::resolve,
    test_room::{CREATOR, Event, TestRoom, ban, join, levels, standard, user},
};

/// Room versions that resolve state with version 2 of the algorithm.
const V2_VERSIONS: std::ops::RangeInclusive<u8> = 2..=12;

/// Every event built in the forks, for the resolver to fetch.
#[derive(Default)]
struct Events(HashMap<OwnedEventId, Arc<Pdu>>);

impl Events {
    fn add(&mut self, room: &mut TestRoom, event: &Event) -> Arc<Pdu> {
        let pdu = room
            .attempt(event)
            .unwrap_or_else(|rejection| panic!("{} rejected: {}", event.kind, rejection.reason));
        self.0.insert(pdu.event_id.clone(), pdu.clone());
        pdu
    }

    fn resolve(&self, room: &TestRoom, forks: &[&TestRoom]) -> StateMap<OwnedEventId> {
        let maps: Vec<StateMap<OwnedEventId>> = forks.iter().map(|fork| state_map(fork)).collect();
        resolve(&room.room.rules, &maps, &|id| self.0.get(id).cloned()).unwrap()
    }
}

fn state_map(room: &TestRoom) -> StateMap<OwnedEventId> {
    room.room
        .state
        .iter()
        .map(|((kind, key), pdu)| {
            (
                (StateEventType::from(kind.as_str()), key.clone()),
                pdu.event_id.clone(),
            )
        })
        .collect()
}

fn topic(sender: &str, text: &str) -> Event {
    Event::state(sender, "m.room.topic", "", json!({ "topic": text }))
}

/// Builds a public room where bob is joined with power 50.
fn base(version: u8, events: &mut Events) -> TestRoom {
    let mut room = TestRoom::new(version);
    for event in standard(version) {
        events.add(&mut room, &event);
    }
    events.add(&mut room, &join("bob"));
    events.add(&mut room, &join("carol"));
    events.add(
        &mut room,
        &levels(version, json!({ "users": { user("bob"): 50 } })),
    );
    events.add(&mut room, &topic(CREATOR, "original"));
    room
}

fn resolved_event(
    events: &Events,
    state: &StateMap<OwnedEventId>,
    kind: &str,
    key: &str,
) -> Arc<Pdu> {
    let id = state
        .get(&(StateEventType::from(kind), key.to_owned()))
        .unwrap_or_else(|| panic!("no {kind} in the resolved state"));
    events.0[id].clone()
}

fn content_field(pdu: &Pdu, field: &str) -> Value {
    pdu.content_value()[field].clone()
}

#[test]
fn later_topic_wins_between_equal_senders() {
    for version in V2_VERSIONS {
        let mut events = Events::default();
        let room = base(version, &mut events);
        let (mut first, mut second) = (room.fork(), room.fork());
        events.add(&mut first, &topic(CREATOR, "first"));
        // One more event on the second branch gives its topic a later
        // timestamp, the tie-break of the mainline ordering.
        events.add(&mut second, &Event::message(CREATOR));
        events.add(&mut second, &topic(CREATOR, "second"));

        let state = events.resolve(&room, &[&first, &second]);
        let resolved = resolved_event(&events, &state, "m.room.topic", "");
        assert_eq!(content_field(&resolved, "topic"), "second", "v{version}");
    }
}

#[test]
fn demotion_invalidates_the_demoted_users_change() {
    for version in V2_VERSIONS {
        let mut events = Events::default();
        let room = base(version, &mut events);
        let (mut demoting, mut changing) = (room.fork(), room.fork());
        events.add(
            &mut demoting,
            &levels(version, json!({ "users": { user("bob"): 0 } })),
        );
        events.add(&mut changing, &topic("bob", "by bob"));

        let state = events.resolve(&room, &[&demoting, &changing]);
        let resolved = resolved_event(&events, &state, "m.room.topic", "");
        assert_eq!(content_field(&resolved, "topic"), "original", "v{version}");
        let levels = resolved_event(&events, &state, "m.room.power_levels", "");
        assert_eq!(
            levels.content_value()["users"][user("bob")],
            0,
            "v{version}"
        );
    }
}

#[test]
fn ban_beats_the_banned_users_member_update() {
    for version in V2_VERSIONS {
        let mut events = Events::default();
        let room = base(version, &mut events);
        let (mut banning, mut updating) = (room.fork(), room.fork());
        events.add(&mut banning, &ban(CREATOR, "carol"));
        let renamed = json!({ "membership": "join", "displayname": "Carol" });
        events.add(
            &mut updating,
            &Event::state("carol", "m.room.member", &user("carol"), renamed),
        );

        let state = events.resolve(&room, &[&banning, &updating]);
        let member = resolved_event(&events, &state, "m.room.member", &user("carol"));
        assert_eq!(content_field(&member, "membership"), "ban", "v{version}");
    }
}

#[test]
fn unconflicted_changes_of_both_branches_are_kept() {
    for version in V2_VERSIONS {
        let mut events = Events::default();
        let room = base(version, &mut events);
        let (mut naming, mut describing) = (room.fork(), room.fork());
        events.add(
            &mut naming,
            &Event::state(CREATOR, "m.room.name", "", json!({ "name": "Named" })),
        );
        events.add(&mut describing, &topic("bob", "described"));

        let state = events.resolve(&room, &[&naming, &describing]);
        let name = resolved_event(&events, &state, "m.room.name", "");
        assert_eq!(content_field(&name, "name"), "Named", "v{version}");
        let resolved = resolved_event(&events, &state, "m.room.topic", "");
        assert_eq!(content_field(&resolved, "topic"), "described", "v{version}");
    }
}

#[test]
fn version_1_is_not_resolved() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let maps = vec![state_map(&room), state_map(&room.fork())];
    let result = resolve(&room.room.rules, &maps, &|id| events.0.get(id).cloned());
    assert!(result.is_err());
}

#[test]
fn resolution_off_the_shard_matches() {
    let mut events = Events::default();
    let room = base(12, &mut events);
    let (mut first, mut second) = (room.fork(), room.fork());
    events.add(&mut first, &topic(CREATOR, "first"));
    events.add(&mut second, &Event::message(CREATOR));
    events.add(&mut second, &topic(CREATOR, "second"));
    let inline = events.resolve(&room, &[&first, &second]);

    let forks = vec![state_map(&first), state_map(&second)];
    let rules = room.room.rules.clone();
    let all = events.0.clone();
    let off_shard = monoio::start::<monoio::LegacyDriver, _>(async move {
        super::resolve::resolve_off_shard(rules, forks, all).await
    })
    .unwrap();
    assert_eq!(off_shard, inline);
}
