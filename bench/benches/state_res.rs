//! Criterion benchmark of state resolution in a room of 10,000 members.
//! Two branches fork from the same state: one bans 50 members, the other
//! changes 50 members' display names and the topic. The forks are resolved
//! with room version 12's rules.
//! `cargo bench -p bench --bench state_res` runs it.

use std::{collections::HashMap, hint::black_box, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use eltrix::room::{EventDraft, Pdu, Room, builder, keys::SigningKey, resolve::resolve};
use ruma::{
    OwnedEventId, OwnedRoomId, OwnedUserId, RoomVersionId, events::StateEventType,
    state_res::StateMap,
};
use serde_json::json;

const ORIGIN: &str = "localhost";
const MEMBERS: usize = 10_000;
const CHANGED: usize = 50;

/// A room being built, with every event kept for the resolver to fetch.
struct Builder {
    room: Room,
    key: Arc<SigningKey>,
    events: HashMap<OwnedEventId, Arc<Pdu>>,
    pos: u64,
}

impl Builder {
    fn add(
        &mut self,
        sender: &OwnedUserId,
        kind: &str,
        state_key: &str,
        content: serde_json::Value,
    ) {
        let draft = EventDraft::state(sender, kind, state_key, content);
        self.pos += 1;
        let pdu = builder::build(
            &self.room,
            &draft,
            ORIGIN,
            &self.key,
            self.pos,
            1_700_000_000_000 + self.pos,
        )
        .expect("event builds");
        let pdu = Arc::new(pdu);
        self.room.apply(&pdu);
        self.events.insert(pdu.event_id.clone(), pdu);
    }

    /// Returns a builder at the same state and newest event.
    fn fork(&self) -> Self {
        Self {
            room: self.room.branch(),
            key: self.key.clone(),
            events: HashMap::new(),
            pos: self.pos,
        }
    }

    fn state_map(&self) -> StateMap<OwnedEventId> {
        self.room
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
}

fn member(index: usize) -> OwnedUserId {
    OwnedUserId::try_from(format!("@member{index}:{ORIGIN}")).expect("valid user ID")
}

fn forked_room() -> (
    Room,
    Vec<StateMap<OwnedEventId>>,
    HashMap<OwnedEventId, Arc<Pdu>>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = Arc::new(SigningKey::load_or_create(dir.path()).expect("signing key"));
    let (version, rules) = (
        RoomVersionId::V12,
        RoomVersionId::V12.rules().expect("v12 rules"),
    );
    let creator = OwnedUserId::try_from(format!("@creator:{ORIGIN}")).expect("valid user ID");
    let placeholder =
        OwnedRoomId::try_from(format!("!placeholder:{ORIGIN}")).expect("valid room ID");
    let mut base = Builder {
        room: Room::new(placeholder, version, rules, creator.clone(), 0),
        key,
        events: HashMap::new(),
        pos: 0,
    };
    base.add(
        &creator,
        "m.room.create",
        "",
        json!({ "room_version": "12" }),
    );
    base.add(
        &creator,
        "m.room.member",
        creator.as_str(),
        json!({ "membership": "join" }),
    );
    base.add(&creator, "m.room.power_levels", "", json!({}));
    base.add(
        &creator,
        "m.room.join_rules",
        "",
        json!({ "join_rule": "public" }),
    );
    for index in 0..MEMBERS {
        let user = member(index);
        base.add(
            &user,
            "m.room.member",
            user.as_str(),
            json!({ "membership": "join" }),
        );
    }

    let (mut banning, mut renaming) = (base.fork(), base.fork());
    for index in 0..CHANGED {
        let user = member(index);
        banning.add(
            &creator,
            "m.room.member",
            user.as_str(),
            json!({ "membership": "ban" }),
        );
        let renamed = member(MEMBERS - 1 - index);
        let content = json!({ "membership": "join", "displayname": format!("Renamed {index}") });
        renaming.add(&renamed, "m.room.member", renamed.as_str(), content);
    }
    renaming.add(&creator, "m.room.topic", "", json!({ "topic": "forked" }));

    let forks = vec![banning.state_map(), renaming.state_map()];
    let mut events = base.events;
    events.extend(banning.events);
    events.extend(renaming.events);
    (base.room, forks, events)
}

fn state_resolution(c: &mut Criterion) {
    let (room, forks, events) = forked_room();
    let fetch = |id: &ruma::EventId| events.get(id).cloned();
    let resolved = resolve(&room.rules, &forks, &fetch).expect("forks resolve");
    assert_eq!(
        resolved.len(),
        MEMBERS + 5,
        "every member, the creator and four room events"
    );
    let mut group = c.benchmark_group("state_res");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("10k_members_two_forks", |b| {
        b.iter(|| resolve(&room.rules, black_box(&forks), &fetch).expect("forks resolve"));
    });
    group.finish();
}

criterion_group!(benches, state_resolution);
criterion_main!(benches);
