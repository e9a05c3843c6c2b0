//! Criterion benchmarks of the hot paths of Eltrix: JSON parsing, event
//! building (canonical JSON, hashes, ed25519), signature verification, the
//! authorization check, a cross-shard hop, durable storage commits and reads,
//! and a sync-index update. `cargo bench -p bench` runs them.

// The fixture module also contains helpers that only the bench binary uses.
#[allow(dead_code, unused_imports)]
#[path = "../src/pdu.rs"]
mod pdu;

use std::{hint::black_box, rc::Rc, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use eltrix::{
    room::{EventDraft, Pdu, Room, auth, builder, keys::SigningKey},
    store::{Committer, Map, Store, WriteBatch},
    sync::{RoomNotification, SyncIndex},
};
use ruma::{
    CanonicalJsonObject, OwnedRoomId, OwnedUserId, RoomVersionId,
    signatures::{PublicKeyMap, PublicKeySet, hash_and_sign_event, reference_hash, verify_event},
};
use serde_json::json;

const ORIGIN: &str = "localhost";

/// The server of the fixture PDU's sender, which must sign it.
const FIXTURE_ORIGIN: &str = "example.org";

/// A `PUT /send` request body of typical size.
const SEND_BODY: &str = r#"{"msgtype":"m.text","body":"The shard count only changes at restart; the store is keyed by ID, so nothing moves.","m.mentions":{}}"#;

fn json_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_parse");
    for (name, text) in [("pdu", pdu::MESSAGE_PDU), ("send_body", SEND_BODY)] {
        group.bench_function(format!("serde_json/{name}"), |b| {
            b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(text)).ok());
        });
        group.bench_function(format!("simd_json/{name}"), |b| {
            b.iter_batched(
                || text.as_bytes().to_vec(),
                |mut bytes| simd_json::to_owned_value(&mut bytes).ok(),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn signing_key() -> (tempfile::TempDir, SigningKey) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SigningKey::load_or_create(dir.path()).expect("signing key");
    (dir, key)
}

fn unsigned_pdu() -> CanonicalJsonObject {
    let mut object: CanonicalJsonObject =
        serde_json::from_str(pdu::MESSAGE_PDU).expect("fixture parses");
    object.remove("hashes");
    object.remove("signatures");
    object
}

fn hashing_and_signatures(c: &mut Criterion) {
    let (_dir, key) = signing_key();
    let rules = RoomVersionId::V12.rules().expect("v12 rules");
    let object = unsigned_pdu();
    let mut signed = object.clone();
    hash_and_sign_event(FIXTURE_ORIGIN, &key.pair, &mut signed, &rules.redaction).expect("signs");

    let mut group = c.benchmark_group("event");
    group.bench_function("reference_hash", |b| {
        b.iter(|| reference_hash(black_box(&signed), &rules))
    });
    group.bench_function("hash_and_sign", |b| {
        b.iter_batched(
            || object.clone(),
            |mut object| {
                hash_and_sign_event(FIXTURE_ORIGIN, &key.pair, &mut object, &rules.redaction)
            },
            BatchSize::SmallInput,
        );
    });
    let mut keys = PublicKeySet::new();
    keys.insert(
        format!("ed25519:{}", key.pair.version()),
        ruma::serde::Base64::new(key.pair.public_key().to_vec()),
    );
    let mut key_map = PublicKeyMap::new();
    key_map.insert(FIXTURE_ORIGIN.to_owned(), keys);
    let verified = verify_event(&key_map, &signed, &rules);
    assert!(
        verified.is_ok(),
        "the benchmark event must verify: {verified:?}"
    );
    group.bench_function("verify", |b| {
        b.iter(|| verify_event(&key_map, black_box(&signed), &rules))
    });
    group.finish();
}

/// Builds a v12 room with a creator, one member and power levels, built through the
/// server's own builder.
fn sample_room(key: &SigningKey) -> (Room, OwnedUserId) {
    let creator = OwnedUserId::try_from("@alice:localhost").expect("user ID");
    let (version, rules) = eltrix::room::versions::rules_for("12").expect("v12");
    let placeholder = OwnedRoomId::try_from("!placeholder:localhost").expect("room ID");
    let mut room = Room::new(placeholder, version, rules, creator.clone(), 0);
    let drafts = [
        EventDraft::state(
            &creator,
            "m.room.create",
            "",
            json!({ "room_version": "12" }),
        ),
        EventDraft::state(
            &creator,
            "m.room.member",
            creator.as_str(),
            json!({ "membership": "join" }),
        ),
        EventDraft::state(
            &creator,
            "m.room.power_levels",
            "",
            json!({ "users_default": 0, "events_default": 0 }),
        ),
        EventDraft::state(
            &creator,
            "m.room.join_rules",
            "",
            json!({ "join_rule": "public" }),
        ),
    ];
    for (pos, draft) in drafts.iter().enumerate() {
        let pdu = builder::build(&room, draft, ORIGIN, key, pos as u64 + 1, 1_700_000_000_000)
            .expect("builds");
        room.apply(&Arc::new(pdu));
    }
    (room, creator)
}

fn message_draft(sender: &OwnedUserId) -> EventDraft {
    EventDraft {
        sender: sender.clone(),
        kind: "m.room.message".to_owned(),
        state_key: None,
        content: serde_json::from_str(SEND_BODY).expect("body parses"),
        redacts: None,
        txn: None,
        origin_server_ts: None,
    }
}

fn building_and_auth(c: &mut Criterion) {
    let (_dir, key) = signing_key();
    let (room, sender) = sample_room(&key);
    let draft = message_draft(&sender);
    let message: Pdu =
        builder::build(&room, &draft, ORIGIN, &key, 100, 1_700_000_000_000).expect("builds");

    let mut group = c.benchmark_group("room");
    group.bench_function("build_message", |b| {
        b.iter(|| {
            builder::build(
                &room,
                black_box(&draft),
                ORIGIN,
                &key,
                100,
                1_700_000_000_000,
            )
        });
    });
    group.bench_function("build_message_unsigned", |b| {
        b.iter(|| {
            builder::build_unsigned(
                &room,
                black_box(&draft),
                ORIGIN,
                &key,
                100,
                1_700_000_000_000,
            )
        });
    });
    group.bench_function("auth_check_message", |b| {
        b.iter(|| auth::check(&room, black_box(&message)))
    });
    group.finish();
}

fn cross_shard_hop(c: &mut Criterion) {
    let (mesh, mut inboxes) = eltrix_shards::Mesh::<u64>::new(2);
    let mut remote_inbox = inboxes.pop().expect("two inboxes");
    std::thread::spawn(move || {
        let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let state = Rc::new(7u64);
            while let Some(task) = remote_inbox.recv().await {
                monoio::spawn(task(state.clone()));
            }
        });
    });
    let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .build()
        .expect("runtime");
    c.bench_function("mesh/submit_to_other_thread", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iterations {
                    let value = mesh
                        .submit_to(1, |state: Rc<u64>| async move { *state })
                        .await;
                    black_box(value.ok());
                }
                started.elapsed()
            })
        });
    });
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store opens");
    let (committer, _thread) = Committer::start(store.clone()).expect("commit thread");
    let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    let record = pdu::MESSAGE_PDU.as_bytes().to_vec();

    let mut group = c.benchmark_group("store");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let mut counter = 0u64;
    group.bench_function("durable_commit_one_event", |b| {
        b.iter(|| {
            counter += 1;
            let mut batch = WriteBatch::default();
            batch.put(
                Map::Events,
                format!("$bench{counter}").into_bytes(),
                record.clone(),
            );
            runtime.block_on(committer.commit(batch)).expect("commit");
        });
    });
    group.bench_function("get_event", |b| {
        b.iter(|| store.get(Map::Events, black_box(b"$bench1")))
    });
    group.finish();
}

fn sync_index(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store opens");
    let user = OwnedUserId::try_from("@bob:localhost").expect("user ID");
    let room_id = OwnedRoomId::try_from("!room:localhost").expect("room ID");
    let mut index = SyncIndex::new(2, 0);
    index.user(&store, &user).expect("loads");
    let event_id: std::sync::Arc<str> = std::sync::Arc::from("$event");
    let mut pos = 0;
    c.bench_function("sync_index/apply_announcement", |b| {
        b.iter(|| {
            pos += 1;
            let note = RoomNotification {
                source: 1,
                room_id: room_id.clone(),
                pos,
                prev_pos: pos - 1,
                event_id: event_id.clone(),
                users: std::sync::Arc::new(vec![user.clone()]),
                membership: None,
            };
            index.apply(black_box(&note));
        });
    });
}

criterion_group!(
    benches,
    json_parsing,
    hashing_and_signatures,
    building_and_auth,
    cross_shard_hop,
    storage,
    sync_index
);
criterion_main!(benches);
