//! Criterion benchmark of receiving an event from another server that forks
//! a room of 10,000 members, on a real shard with its store and commit
//! thread. Each iteration takes in a topic change built on a branch from the
//! same old head, which forks the room and resolves the current state, then
//! a local message that merges the branches. A second benchmark times
//! loading the state after an event, the largest step that stays on the
//! shard thread.
//! `cargo bench -p bench --bench ingest` runs it.

use std::{cell::RefCell, collections::BTreeMap, rc::Rc, sync::Arc, time::Duration, time::Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eltrix::{
    auth::password::PasswordWorker,
    config::Config,
    room::{EventDraft, Room, append, builder, ingest, keys::SigningKey, state_groups, versions},
    shard::{Shard, ShardParts},
    store::{Committer, Store},
};
use ruma::{OwnedRoomId, OwnedUserId, serde::Base64, signatures::PublicKeyMap};
use serde_json::json;

/// The server's allocator, so that the shard's allocations cost what they
/// cost in the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MEMBERS: usize = 10_000;
const REMOTE: &str = "remote.test";

fn draft(
    sender: &str,
    kind: &str,
    state_key: Option<&str>,
    content: serde_json::Value,
    ts: u64,
) -> EventDraft {
    EventDraft {
        sender: OwnedUserId::try_from(sender).expect("valid user ID"),
        kind: kind.to_owned(),
        state_key: state_key.map(str::to_owned),
        content,
        redacts: None,
        txn: None,
        origin_server_ts: Some(ts),
    }
}

struct Setup {
    shard: Rc<Shard>,
    room: Rc<RefCell<Room>>,
    /// The room at the head that every iteration's branch starts from.
    fork_point: Room,
    remote_key: SigningKey,
    keys: PublicKeyMap,
    _dir: tempfile::TempDir,
    _tasks: Vec<tokio::sync::mpsc::UnboundedReceiver<eltrix_shards::ShardTask<Shard>>>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("store opens");
    let (committer, _thread) = Committer::start(store.clone()).expect("commit thread");
    let (mesh, tasks) = eltrix_shards::Mesh::new(1);
    let local_dir = dir.path().join("local");
    let remote_dir = dir.path().join("remote");
    std::fs::create_dir_all(&local_dir).expect("key dir");
    std::fs::create_dir_all(&remote_dir).expect("key dir");
    let key = SigningKey::load_or_create(&local_dir).expect("key");
    let remote_key = SigningKey::load_or_create(&remote_dir).expect("key");
    let mut keys = PublicKeyMap::new();
    for (server, signing) in [("localhost", &key), (REMOTE, &remote_key)] {
        let public = Base64::parse(&signing.public_base64).expect("base64 key");
        keys.insert(
            server.to_owned(),
            BTreeMap::from([(signing.key_id(), public)]),
        );
    }
    let shard = Rc::new(Shard::new(ShardParts {
        id: 0,
        federation_tls: None,
        client_tls: eltrix::http::client_config(true).expect("TLS config"),
        mesh,
        store,
        committer,
        config: Arc::new(Config::default()),
        key: Arc::new(key),
        passwords: PasswordWorker::start(0).expect("password worker"),
        boot_pos: 1,
    }));

    let (version, rules) = versions::rules_for("12").expect("v12");
    let placeholder = OwnedRoomId::try_from("!placeholder:localhost").expect("room ID");
    let creator = "@creator:localhost";
    let room = Room::new(
        placeholder,
        version,
        rules,
        OwnedUserId::try_from(creator).expect("user"),
        0,
    );
    let room = Rc::new(RefCell::new(room));
    let bob = format!("@bob:{REMOTE}");
    let join = json!({ "membership": "join" });
    let mut drafts = vec![
        draft(
            creator,
            "m.room.create",
            Some(""),
            json!({ "room_version": "12" }),
            1,
        ),
        draft(creator, "m.room.member", Some(creator), join.clone(), 2),
        draft(
            creator,
            "m.room.power_levels",
            Some(""),
            json!({ "users": { bob.clone(): 100 } }),
            3,
        ),
        draft(
            creator,
            "m.room.join_rules",
            Some(""),
            json!({ "join_rule": "public" }),
            4,
        ),
    ];
    for index in 0..MEMBERS {
        let user = format!("@member{index}:localhost");
        drafts.push(draft(
            &user,
            "m.room.member",
            Some(&user),
            join.clone(),
            10 + index as u64,
        ));
    }
    append::append(&shard, &room, drafts)
        .await
        .expect("room builds");

    let branch = room.borrow().branch();
    let join = draft(&bob, "m.room.member", Some(&bob), join, 20_000);
    let pdu = builder::build(&branch, &join, REMOTE, &remote_key, 0, 0).expect("join builds");
    let object = pdu.json;
    ingest::ingest(&shard, &room, object, &keys)
        .await
        .expect("join is accepted");
    let fork_point = room.borrow().branch();
    Setup {
        shard,
        room,
        fork_point,
        remote_key,
        keys,
        _dir: dir,
        _tasks: tasks,
    }
}

fn forked_event(c: &mut Criterion) {
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    let setup = runtime.block_on(setup());
    let bob = format!("@bob:{REMOTE}");
    let mut ts = 100_000_u64;
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("forking topic in a 10,000-member room, then a merge", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                ts += 10;
                let topic = draft(
                    &bob,
                    "m.room.topic",
                    Some(""),
                    json!({ "topic": ts.to_string() }),
                    ts,
                );
                let pdu =
                    builder::build(&setup.fork_point, &topic, REMOTE, &setup.remote_key, 0, 0)
                        .expect("topic builds");
                let merge = draft(
                    "@creator:localhost",
                    "m.room.message",
                    None,
                    json!({ "body": "m" }),
                    ts + 1,
                );
                let started = Instant::now();
                runtime.block_on(async {
                    ingest::ingest(&setup.shard, &setup.room, pdu.json, &setup.keys)
                        .await
                        .expect("topic is accepted");
                    append::append(&setup.shard, &setup.room, vec![merge])
                        .await
                        .expect("merge");
                });
                total += started.elapsed();
            }
            total
        });
    });

    let room_id = setup.room.borrow().room_id.to_string();
    let head = setup
        .fork_point
        .last_event
        .as_ref()
        .expect("head")
        .event_id
        .to_string();
    group.bench_function("state after an event of a 10,000-member room", |b| {
        b.iter(|| {
            state_groups::state_after(&setup.shard.store, &room_id, &head)
                .expect("store reads")
                .expect("the head has a state group")
        });
    });
    group.finish();
    setup.shard.committer.stop();
}

criterion_group!(benches, forked_event);
criterion_main!(benches);
