//! State resolution on forked room graphs built with the real builder, with
//! the resolved state each case must reach per the spec's algorithm.

use std::{collections::HashMap, sync::Arc};

use ruma::{OwnedEventId, events::StateEventType, state_res::StateMap};
use serde_json::{Value, json};

use super::{
    Pdu,
    resolve::resolve,
    test_room::{CREATOR, Event, TestRoom, ban, join, levels, levels_by, standard, user},
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

/// Room version 12 starts the iterative auth checks from an empty state map,
/// where earlier versions start from the unconflicted state. A join rules
/// change authorized by power levels that an unconflicted later change took
/// away therefore survives only in room version 12.
#[test]
fn v12_auth_checks_start_empty() {
    for (version, expected) in [(11, "public"), (12, "invite")] {
        let mut events = Events::default();
        let room = base(version, &mut events);
        let (mut demoting, mut changing) = (room.fork(), room.fork());
        let demotion = events.add(
            &mut demoting,
            &levels(version, json!({ "users": { user("bob"): 0 } })),
        );
        events.add(
            &mut changing,
            &Event::state(
                "bob",
                "m.room.join_rules",
                "",
                json!({ "join_rule": "invite" }),
            ),
        );
        // Both forks carry the demotion, so it is unconflicted.
        let mut changed = state_map(&changing);
        changed.insert(
            (StateEventType::RoomPowerLevels, String::new()),
            demotion.event_id.clone(),
        );
        let maps = vec![state_map(&demoting), changed];

        let state = resolve(&room.room.rules, &maps, &|id| events.0.get(id).cloned()).unwrap();
        let rule = resolved_event(&events, &state, "m.room.join_rules", "");
        assert_eq!(content_field(&rule, "join_rule"), expected, "v{version}");
        let levels = resolved_event(&events, &state, "m.room.power_levels", "");
        assert_eq!(levels.event_id, demotion.event_id, "v{version}");
    }
}

/// Version 1 of the algorithm: the deeper of two conflicting topics wins,
/// whichever branch it is on.
#[test]
fn v1_deeper_topic_wins() {
    for deeper_first in [true, false] {
        let mut events = Events::default();
        let room = base(1, &mut events);
        let (mut first, mut second) = (room.fork(), room.fork());
        let (deep, shallow) = if deeper_first {
            (&mut first, &mut second)
        } else {
            (&mut second, &mut first)
        };
        events.add(deep, &Event::message(CREATOR));
        events.add(deep, &topic(CREATOR, "deep"));
        events.add(shallow, &topic(CREATOR, "shallow"));

        let state = events.resolve(&room, &[&first, &second]);
        let resolved = resolved_event(&events, &state, "m.room.topic", "");
        assert_eq!(content_field(&resolved, "topic"), "deep");
    }
}

/// Version 1 takes the shallowest power levels first and then each deeper
/// one the rules allow, so a later change made without the other branch's
/// demotion undoes it: the state reset the specification warns of.
#[test]
fn v1_deeper_power_levels_reset_a_demotion() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let (mut demoting, mut promoting) = (room.fork(), room.fork());
    events.add(
        &mut demoting,
        &levels(1, json!({ "users": { user("bob"): 0 } })),
    );
    events.add(&mut promoting, &Event::message(CREATOR));
    events.add(
        &mut promoting,
        &levels(
            1,
            json!({ "users": { user("bob"): 50, user("carol"): 50 } }),
        ),
    );

    let state = events.resolve(&room, &[&demoting, &promoting]);
    let levels = resolved_event(&events, &state, "m.room.power_levels", "");
    assert_eq!(levels.content_value()["users"][user("bob")], 50);
    assert_eq!(levels.content_value()["users"][user("carol")], 50);
}

/// Version 1 stops at the first power levels event that the state resolved
/// so far rejects, even when a deeper one would be allowed.
#[test]
fn v1_power_levels_stop_at_first_rejected() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let (mut demoting, mut by_bob, mut by_creator) = (room.fork(), room.fork(), room.fork());
    events.add(
        &mut demoting,
        &levels(1, json!({ "users": { user("bob"): 0 } })),
    );
    events.add(&mut by_bob, &Event::message(CREATOR));
    events.add(
        &mut by_bob,
        &levels_by(
            1,
            "bob",
            json!({ "users": { user("bob"): 50 }, "state_default": 40 }),
        ),
    );
    events.add(&mut by_creator, &Event::message(CREATOR));
    events.add(&mut by_creator, &Event::message(CREATOR));
    events.add(
        &mut by_creator,
        &levels(
            1,
            json!({ "users": { user("bob"): 50 }, "events_default": 10 }),
        ),
    );

    let state = events.resolve(&room, &[&demoting, &by_bob, &by_creator]);
    let levels = resolved_event(&events, &state, "m.room.power_levels", "");
    assert_eq!(levels.content_value()["users"][user("bob")], 0);
    assert!(levels.content_value().get("events_default").is_none());
}

/// Version 1 resolves membership after power levels and join rules. A ban
/// prevails over the banned user's later member update, and a deeper ban
/// replaces an earlier update.
#[test]
fn v1_ban_holds_against_member_update() {
    for ban_deeper in [false, true] {
        let mut events = Events::default();
        let room = base(1, &mut events);
        let (mut banning, mut updating) = (room.fork(), room.fork());
        let renamed = json!({ "membership": "join", "displayname": "Carol" });
        let update = Event::state("carol", "m.room.member", &user("carol"), renamed);
        if ban_deeper {
            events.add(&mut banning, &Event::message(CREATOR));
        } else {
            events.add(&mut updating, &Event::message("carol"));
        }
        events.add(&mut banning, &ban(CREATOR, "carol"));
        events.add(&mut updating, &update);

        let state = events.resolve(&room, &[&banning, &updating]);
        let member = resolved_event(&events, &state, "m.room.member", &user("carol"));
        assert_eq!(
            content_field(&member, "membership"),
            "ban",
            "ban deeper: {ban_deeper}"
        );
    }
}

/// Version 1 skips a deeper topic whose sender the resolved power levels
/// no longer allow, and keeps the next one that is allowed.
#[test]
fn v1_topic_of_demoted_sender_is_skipped() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let (mut demoting, mut changing) = (room.fork(), room.fork());
    events.add(
        &mut demoting,
        &levels(1, json!({ "users": { user("bob"): 0 } })),
    );
    events.add(&mut demoting, &topic(CREATOR, "by the creator"));
    events.add(&mut changing, &Event::message("bob"));
    events.add(&mut changing, &Event::message("bob"));
    events.add(&mut changing, &topic("bob", "by bob"));

    let state = events.resolve(&room, &[&demoting, &changing]);
    let resolved = resolved_event(&events, &state, "m.room.topic", "");
    assert_eq!(content_field(&resolved, "topic"), "by the creator");
}

/// When the rules allow none of the candidates of a key, version 1 keeps the
/// shallowest, so that servers agree on the key.
#[test]
fn v1_keeps_shallowest_when_none_allowed() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let (mut demoting, mut shallow, mut deep) = (room.fork(), room.fork(), room.fork());
    // The creator changes the topic, then takes everyone's power, their own
    // included, so that the rules allow no topic in the resolved state.
    events.add(&mut demoting, &Event::message(CREATOR));
    events.add(&mut demoting, &topic(CREATOR, "by the creator"));
    events.add(
        &mut demoting,
        &levels(1, json!({ "users": { user(CREATOR): 0, user("bob"): 0 } })),
    );
    events.add(&mut shallow, &topic("bob", "shallow"));
    for _ in 0..3 {
        events.add(&mut deep, &Event::message("bob"));
    }
    events.add(&mut deep, &topic("bob", "deep"));

    let state = events.resolve(&room, &[&demoting, &shallow, &deep]);
    let levels = resolved_event(&events, &state, "m.room.power_levels", "");
    assert_eq!(levels.content_value()["users"][user(CREATOR)], 0);
    let resolved = resolved_event(&events, &state, "m.room.topic", "");
    assert_eq!(content_field(&resolved, "topic"), "shallow");
}

#[test]
fn v1_unconflicted_changes_are_kept() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let (mut naming, mut describing) = (room.fork(), room.fork());
    events.add(
        &mut naming,
        &Event::state(CREATOR, "m.room.name", "", json!({ "name": "Named" })),
    );
    events.add(&mut describing, &topic("bob", "described"));

    let state = events.resolve(&room, &[&naming, &describing]);
    let name = resolved_event(&events, &state, "m.room.name", "");
    assert_eq!(content_field(&name, "name"), "Named");
    let resolved = resolved_event(&events, &state, "m.room.topic", "");
    assert_eq!(content_field(&resolved, "topic"), "described");
}

#[test]
fn v1_unknown_conflicted_event_is_an_error() {
    let mut events = Events::default();
    let room = base(1, &mut events);
    let mut changed = room.fork();
    let missing = events.add(&mut changed, &topic(CREATOR, "unknown"));
    events.0.remove(&missing.event_id);
    let maps = vec![state_map(&room), state_map(&changed)];
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
