//! Events received from another server on forked branches of a room: the
//! receipt checks, the state after each event, and state resolution where
//! the branches merge. The room lives on a real shard with a real store and
//! commit thread; the other server's events are built and signed with its
//! own key, as that server would.

use std::{cell::RefCell, collections::BTreeMap, rc::Rc, sync::Arc};

use base64::Engine as _;
use ruma::{
    CanonicalJsonObject, OwnedRoomId, OwnedUserId, serde::Base64, signatures::Ed25519KeyPair,
};
use serde_json::{Value, json};

use super::{
    EventDraft, Pdu, Room, append, builder,
    ingest::{self, Outcome},
    keys::SigningKey,
    signature::{self, NewSignatures},
    state::load_pdu,
    state_groups, versions,
};
use crate::{
    auth::password::PasswordWorker,
    config::Config,
    shard::{Shard, ShardParts},
    store::{Committer, Store},
};

const REMOTE: &str = "remote.test";
const ALICE: &str = "@alice:localhost";
const BOB: &str = "@bob:remote.test";

fn signing_key(version: &str) -> SigningKey {
    let document = Ed25519KeyPair::generate();
    let pair = Ed25519KeyPair::from_der(&document, version.to_owned()).unwrap();
    let public_base64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
    SigningKey {
        pair,
        public_base64,
        old_keys: Vec::new(),
    }
}

fn draft(sender: &str, kind: &str, state_key: Option<&str>, content: Value, ts: u64) -> EventDraft {
    EventDraft {
        sender: OwnedUserId::try_from(sender).unwrap(),
        kind: kind.to_owned(),
        state_key: state_key.map(str::to_owned),
        content,
        redacts: None,
        txn: None,
        origin_server_ts: Some(ts),
    }
}

fn topic(sender: &str, text: &str, ts: u64) -> EventDraft {
    draft(
        sender,
        "m.room.topic",
        Some(""),
        json!({ "topic": text }),
        ts,
    )
}

fn message(sender: &str, ts: u64) -> EventDraft {
    let content = json!({ "msgtype": "m.text", "body": "hello" });
    draft(sender, "m.room.message", None, content, ts)
}

/// A shard of one, the other server's key, and a room of `version` where
/// Alice (local, power 100) and Bob (remote, power 50) are joined.
struct Fixture {
    shard: Rc<Shard>,
    room: Rc<RefCell<Room>>,
    remote_key: SigningKey,
    dir: std::path::PathBuf,
    /// Kept open so that announcements to the shard do not fail.
    _tasks: Vec<tokio::sync::mpsc::UnboundedReceiver<eltrix_shards::ShardTask<Shard>>>,
}

impl Fixture {
    async fn new(version: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "eltrix-ingest-{}-{version}-{}",
            std::process::id(),
            crate::auth::token::random_id(6)
        ));
        let store = Store::open(&dir).unwrap();
        let (committer, _thread) = Committer::start(store.clone()).unwrap();
        let (mesh, tasks) = eltrix_shards::Mesh::new(1);
        let shard = Rc::new(Shard::new(ShardParts {
            id: 0,
            federation_tls: None,
            client_tls: crate::http::client_config(true).unwrap(),
            mesh,
            store,
            committer,
            config: Arc::new(Config::default()),
            key: Arc::new(signing_key("local")),
            passwords: PasswordWorker::start(0).unwrap(),
            boot_pos: 1,
        }));

        let (version_id, rules) = versions::rules_for(version).unwrap();
        let v12 = rules.authorization.room_create_event_id_as_room_id;
        let room_id = OwnedRoomId::try_from(format!("!ingest{version}:localhost")).unwrap();
        let alice = OwnedUserId::try_from(ALICE).unwrap();
        let room = Room::new(room_id, version_id, rules, alice, 1_000);
        let room = Rc::new(RefCell::new(room));

        let mut create = json!({ "room_version": version });
        if !rules_use_creator_field(version) {
            create["creator"] = json!(ALICE);
        }
        let mut users = json!({ BOB: 50 });
        if !v12 {
            users[ALICE] = json!(100);
        }
        let levels = json!({ "users": users, "state_default": 50, "events_default": 0 });
        let member = json!({ "membership": "join" });
        let drafts = vec![
            draft(ALICE, "m.room.create", Some(""), create, 1_000),
            draft(ALICE, "m.room.member", Some(ALICE), member.clone(), 1_001),
            draft(ALICE, "m.room.power_levels", Some(""), levels, 1_002),
            draft(
                ALICE,
                "m.room.join_rules",
                Some(""),
                json!({ "join_rule": "public" }),
                1_003,
            ),
        ];
        append::append(&shard, &room, drafts).await.unwrap();

        let fixture = Self {
            shard,
            room,
            remote_key: signing_key("remote"),
            dir,
            _tasks: tasks,
        };
        let join = fixture.remote_event(
            &fixture.branch(),
            draft(BOB, "m.room.member", Some(BOB), member, 1_004),
        );
        let outcome = fixture.ingest(join).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Accepted(_)),
            "Bob's join is accepted: {outcome:?}"
        );
        fixture
    }

    /// A copy of the room at its current head, where the other server
    /// builds its events.
    fn branch(&self) -> Room {
        self.room.borrow().branch()
    }

    /// Builds and signs `draft` on `branch` as the other server, applies it
    /// there, and returns its JSON as sent over federation.
    fn remote_event(&self, branch: &Room, draft: EventDraft) -> CanonicalJsonObject {
        let pdu = builder::build(branch, &draft, REMOTE, &self.remote_key, 0, 0).unwrap();
        wire_json(&pdu)
    }

    fn remote_on(&self, branch: &mut Room, draft: EventDraft) -> CanonicalJsonObject {
        let pdu = builder::build(branch, &draft, REMOTE, &self.remote_key, 0, 0).unwrap();
        branch.apply(&Arc::new(pdu.clone()));
        wire_json(&pdu)
    }

    fn keys(&self) -> ruma::signatures::PublicKeyMap {
        let mut local = BTreeMap::new();
        local.insert(
            self.shard.key.key_id(),
            Base64::parse(&self.shard.key.public_base64).unwrap(),
        );
        let mut remote = BTreeMap::new();
        remote.insert(
            self.remote_key.key_id(),
            Base64::parse(&self.remote_key.public_base64).unwrap(),
        );
        BTreeMap::from([("localhost".to_owned(), local), (REMOTE.to_owned(), remote)])
    }

    async fn ingest(&self, object: CanonicalJsonObject) -> crate::api::error::ApiResult<Outcome> {
        ingest::ingest(&self.shard, &self.room, object, &self.keys()).await
    }

    async fn local(&self, draft: EventDraft) -> Arc<Pdu> {
        let mut pdus = append::append(&self.shard, &self.room, vec![draft])
            .await
            .unwrap();
        pdus.remove(0)
    }

    fn current(&self, kind: &str, state_key: &str) -> Option<String> {
        self.room
            .borrow()
            .state_event(kind, state_key)
            .map(|pdu| pdu.event_id.to_string())
    }

    fn current_content(&self, kind: &str) -> Value {
        let room = self.room.borrow();
        room.state_event(kind, "").unwrap().content_value()
    }

    fn state_after(&self, event_id: &str, kind: &str) -> Option<String> {
        let room_id = self.room.borrow().room_id.to_string();
        let state = state_groups::state_after(&self.shard.store, &room_id, event_id)
            .unwrap()
            .expect("every event has a state group");
        state.get(&(kind.to_owned(), String::new())).cloned()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shard.committer.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rules_use_creator_field(version: &str) -> bool {
    versions::rules_for(version)
        .map(|(_, rules)| rules.authorization.use_room_create_sender)
        .unwrap_or(false)
}

/// The PDU as a server sends it: with `event_id` only in versions 1 and 2.
fn wire_json(pdu: &Pdu) -> CanonicalJsonObject {
    pdu.json.clone()
}

fn accepted(outcome: Outcome) -> Arc<Pdu> {
    match outcome {
        Outcome::Accepted(pdu) => pdu,
        other => panic!("expected the event to be accepted, got {other:?}"),
    }
}

fn run(test: impl AsyncFn(&str)) {
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    for version in ["2", "3", "6", "9", "10", "11", "12"] {
        runtime.block_on(test(version));
    }
}

#[test]
fn forked_topics_resolve_and_merge() {
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let mut branch = fixture.branch();

        // Alice and Bob change the topic at once, each from the same head.
        let alice_topic = fixture.local(topic(ALICE, "from alice", 2_000)).await;
        let bob_topic = fixture.remote_on(&mut branch, topic(BOB, "from bob", 3_000));
        let bob_topic = accepted(fixture.ingest(bob_topic).await.unwrap());

        let heads = fixture.room.borrow().forward_extremities.len();
        assert_eq!(heads, 2, "v{version}: two branches");
        // Equal power levels, so the later timestamp wins.
        let bob_id = bob_topic.event_id.to_string();
        let alice_id = alice_topic.event_id.to_string();
        assert_eq!(
            fixture.current("m.room.topic", ""),
            Some(bob_id.clone()),
            "v{version}"
        );
        assert_eq!(
            fixture.state_after(&alice_id, "m.room.topic"),
            Some(alice_id.clone())
        );
        assert_eq!(
            fixture.state_after(&bob_id, "m.room.topic"),
            Some(bob_id.clone())
        );

        // Alice's next event merges both branches.
        let merge = fixture.local(message(ALICE, 4_000)).await;
        assert_eq!(
            merge.prev_events.len(),
            2,
            "v{version}: the message lists both heads"
        );
        assert_eq!(
            fixture.room.borrow().forward_extremities,
            vec![merge.event_id.clone()]
        );
        assert_eq!(
            fixture.state_after(merge.event_id.as_str(), "m.room.topic"),
            Some(bob_id)
        );
        // The merge, with two predecessors, verifies like any other event.
        let rules = fixture.room.borrow().rules.clone();
        let verified = ruma::signatures::verify_event(&fixture.keys(), &merge.json, &rules);
        assert_eq!(
            verified.unwrap(),
            ruma::signatures::Verified::All,
            "v{version}: the merge"
        );
    });
}

/// Room version 1 resolves with version 1 of the algorithm, where the
/// deeper topic wins even though the other one is later.
#[test]
fn v1_fork_resolves_by_depth() {
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fixture = Fixture::new("1").await;
        let mut branch = fixture.branch();

        let alice_topic = fixture.local(topic(ALICE, "from alice", 5_000)).await;
        let bob_message = fixture.remote_on(&mut branch, message(BOB, 2_000));
        accepted(fixture.ingest(bob_message).await.unwrap());
        let bob_topic = fixture.remote_on(&mut branch, topic(BOB, "from bob", 3_000));
        let bob_topic = accepted(fixture.ingest(bob_topic).await.unwrap());

        assert!(bob_topic.depth > alice_topic.depth);
        assert_eq!(fixture.room.borrow().forward_extremities.len(), 2);
        assert_eq!(
            fixture.current("m.room.topic", ""),
            Some(bob_topic.event_id.to_string())
        );
        let merge = fixture.local(message(ALICE, 6_000)).await;
        assert_eq!(merge.prev_events.len(), 2);
        assert_eq!(
            fixture.state_after(merge.event_id.as_str(), "m.room.topic"),
            Some(bob_topic.event_id.to_string())
        );
    });
}

#[test]
fn change_after_demotion_soft_fails() {
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let mut branch = fixture.branch();

        // Alice demotes Bob while his branch, which has not seen it, renames
        // the room with the power he had.
        let mut levels = fixture.current_content("m.room.power_levels");
        levels["users"][BOB] = json!(0);
        let demotion = draft(ALICE, "m.room.power_levels", Some(""), levels, 2_000);
        let demotion = fixture.local(demotion).await;
        let head = fixture.room.borrow().forward_extremities.clone();
        let name = draft(
            BOB,
            "m.room.name",
            Some(""),
            json!({ "name": "bob's" }),
            3_000,
        );
        let name = fixture.remote_on(&mut branch, name);

        let outcome = fixture.ingest(name).await.unwrap();
        let Outcome::SoftFailed(name) = outcome else {
            panic!("v{version}: expected a soft failure, got {outcome:?}");
        };
        let levels = fixture.current("m.room.power_levels", "");
        assert_eq!(levels, Some(demotion.event_id.to_string()), "v{version}");
        assert_eq!(fixture.current("m.room.name", ""), None, "v{version}");
        assert_eq!(
            fixture.room.borrow().forward_extremities,
            head,
            "v{version}"
        );
        let own_state = fixture.state_after(name.event_id.as_str(), "m.room.name");
        assert_eq!(own_state, Some(name.event_id.to_string()), "v{version}");
    });
}

#[test]
fn rejected_events_change_nothing() {
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let head = fixture.room.borrow().forward_extremities.clone();

        // Bob's power of 50 is below the 100 that power levels need.
        let mut branch = fixture.branch();
        let levels = json!({ "users": { BOB: 100 } });
        let raise = fixture.remote_on(
            &mut branch,
            draft(BOB, "m.room.power_levels", Some(""), levels, 2_000),
        );
        let error = fixture.ingest(raise).await.unwrap_err();
        assert_eq!(error.errcode, "M_FORBIDDEN", "v{version}: {error:?}");

        // A signature by a key that the server does not have.
        let mut branch = fixture.branch();
        let mut forged = fixture.remote_on(&mut branch, message(BOB, 2_001));
        let other = signing_key("remote");
        ruma::signatures::hash_and_sign_event(
            REMOTE,
            &other.pair,
            &mut forged,
            &fixture.room.borrow().rules.redaction,
        )
        .unwrap();
        let error = fixture.ingest(forged).await.unwrap_err();
        assert_eq!(error.errcode, "M_FORBIDDEN", "v{version}: {error:?}");

        // A sender who never joined.
        let mut branch = fixture.branch();
        let stranger = fixture.remote_on(&mut branch, message("@eve:remote.test", 2_002));
        assert!(fixture.ingest(stranger).await.is_err(), "v{version}");

        assert_eq!(
            fixture.room.borrow().forward_extremities,
            head,
            "v{version}"
        );
    });
}

#[test]
fn events_from_a_kicked_member_soft_fail() {
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let mut branch = fixture.branch();
        let kick = json!({ "membership": "leave" });
        fixture
            .local(draft(ALICE, "m.room.member", Some(BOB), kick, 2_000))
            .await;
        let head = fixture.room.borrow().forward_extremities.clone();

        // Bob's branch has not seen the kick.
        let late = fixture.remote_on(&mut branch, message(BOB, 3_000));
        let outcome = fixture.ingest(late.clone()).await.unwrap();
        assert!(
            matches!(outcome, Outcome::SoftFailed(_)),
            "v{version}: {outcome:?}"
        );
        assert_eq!(
            fixture.room.borrow().forward_extremities,
            head,
            "v{version}"
        );
        assert!(
            matches!(fixture.ingest(late).await.unwrap(), Outcome::Known),
            "v{version}"
        );
    });
}

#[test]
fn received_redaction_redacts_its_target() {
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let mut branch = fixture.branch();
        let said = fixture.remote_on(&mut branch, message(BOB, 2_000));
        let said = accepted(fixture.ingest(said).await.unwrap());

        let mut redaction = draft(BOB, "m.room.redaction", None, json!({}), 3_000);
        redaction.redacts = Some(said.event_id.clone());
        let redaction = fixture.remote_on(&mut branch, redaction);
        let redaction = accepted(fixture.ingest(redaction).await.unwrap());

        let record = fixture
            .shard
            .store
            .get_json::<crate::store::EventRecord>(
                crate::store::Map::Events,
                said.event_id.as_bytes(),
            )
            .unwrap()
            .expect("the message is stored");
        assert_eq!(
            record.redacted_by.as_deref(),
            Some(redaction.event_id.as_str()),
            "v{version}"
        );
    });
}

fn redacted_by(fixture: &Fixture, event_id: &str) -> Option<String> {
    fixture
        .shard
        .store
        .get_json::<crate::store::EventRecord>(crate::store::Map::Events, event_id.as_bytes())
        .unwrap()
        .expect("the event is stored")
        .redacted_by
}

/// A user without the redact level may redact the events of other users of
/// the same server, whose server vouches for both, but not those of users
/// of another server.
#[test]
fn received_redaction_needs_same_server() {
    const CAROL: &str = "@carol:remote.test";
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let mut branch = fixture.branch();
        let member = json!({ "membership": "join" });
        let join = fixture.remote_on(
            &mut branch,
            draft(CAROL, "m.room.member", Some(CAROL), member, 2_000),
        );
        accepted(fixture.ingest(join).await.unwrap());
        let bob_message = fixture.remote_on(&mut branch, message(BOB, 2_001));
        let bob_message = accepted(fixture.ingest(bob_message).await.unwrap());
        let alice_message = fixture.local(message(ALICE, 2_002)).await;
        let mut branch = fixture.branch();

        let mut of_bob = draft(CAROL, "m.room.redaction", None, json!({}), 3_000);
        of_bob.redacts = Some(bob_message.event_id.clone());
        let of_bob = fixture.remote_on(&mut branch, of_bob);
        let of_bob = accepted(fixture.ingest(of_bob).await.unwrap());
        assert_eq!(
            redacted_by(&fixture, bob_message.event_id.as_str()),
            Some(of_bob.event_id.to_string()),
            "v{version}: same server"
        );

        let mut of_alice = draft(CAROL, "m.room.redaction", None, json!({}), 3_001);
        of_alice.redacts = Some(alice_message.event_id.clone());
        let of_alice = fixture.remote_event(&branch, of_alice);
        // Room versions 1 and 2 reject the redaction in the authorization
        // rules; later versions accept it without applying it.
        let _ = fixture.ingest(of_alice).await;
        assert_eq!(
            redacted_by(&fixture, alice_message.event_id.as_str()),
            None,
            "v{version}: other server"
        );
    });
}

#[test]
fn local_only_events_signed_on_leaving() {
    run(async |version| {
        let fixture = Fixture::new(version).await;
        let create_id = fixture
            .room
            .borrow()
            .state_event("m.room.create", "")
            .unwrap()
            .event_id
            .to_string();
        let stored = load_pdu(&fixture.shard.store, &create_id).unwrap().unwrap();
        assert!(
            !signature::is_signed_by(&stored.json, "localhost"),
            "v{version}: the create event was built while every member was local"
        );

        let mut new = NewSignatures::default();
        let wire = signature::load_wire_event(&fixture.shard, &create_id, &mut new)
            .unwrap()
            .unwrap();
        assert_eq!(new.len(), 1, "v{version}: signed once");
        let wire: CanonicalJsonObject = serde_json::from_value(wire).unwrap();
        let rules = fixture.room.borrow().rules.clone();
        ruma::signatures::verify_event(&fixture.keys(), &wire, &rules)
            .unwrap_or_else(|error| panic!("v{version}: {error}"));
        new.commit(&fixture.shard.committer).await.unwrap();

        // The second read takes the stored signature.
        let mut again = NewSignatures::default();
        let second = signature::load_wire_event(&fixture.shard, &create_id, &mut again)
            .unwrap()
            .unwrap();
        assert!(again.is_empty(), "v{version}: not signed twice");
        assert_eq!(serde_json::to_value(&wire).unwrap(), second, "v{version}");

        // With Bob's server in the room, new events are signed when built.
        let message = fixture.local(message(ALICE, 5_000)).await;
        assert!(
            signature::is_signed_by(&message.json, "localhost"),
            "v{version}"
        );
    });
}
