//! The append path on the room's shard: build, authorize, apply to the
//! in-memory state, persist, and announce to the users' shards.
//!
//! Building and applying happen without an await, so the shard's single
//! thread orders the events of a room. The commit thread then makes them
//! durable and announces them in the same order.

use std::{cell::RefCell, collections::BTreeMap, rc::Rc, sync::Arc};

use eltrix_shards::ShardId;
use ruma::{OwnedUserId, events::TimelineEventType};

use super::{
    EventDraft, Pdu, auth, builder,
    signature::{self, NewSignatures},
    state::Room,
    state_groups,
};
use crate::{
    api::error::{ApiResult, MatrixError},
    shard::{Shard, now_millis},
    store::{EventRecord, Map, MembershipRecord, WriteBatch, keys},
    sync::RoomNotification,
};

/// Maximum length of an event type and a state key, in bytes, per the PDU size limits.
const MAX_ID_BYTES: usize = 255;

/// Builds, checks and persists `drafts` as the next events of `room`.
///
/// Nothing is applied unless every draft passes: a rejected draft returns
/// `M_FORBIDDEN` with the rule that failed and leaves the room unchanged.
///
/// # Errors
///
/// Returns the first draft's build or authorization error, or a storage
/// error if the commit fails.
pub async fn append(
    shard: &Rc<Shard>,
    room: &Rc<RefCell<Room>>,
    drafts: Vec<EventDraft>,
) -> ApiResult<Vec<Arc<Pdu>>> {
    let (pdus, batch) = prepare(shard, &mut room.borrow_mut(), drafts)?;
    let room_id = room.borrow().room_id.clone();
    commit(shard, &room_id, batch).await?;
    send_to_other_servers(shard, &mut room.borrow_mut(), &pdus);
    Ok(pdus)
}

/// Queues durable local events for the other servers with joined members.
/// Callers of [`prepare`] call it after [`commit`] succeeds.
pub fn send_to_other_servers(shard: &Rc<Shard>, room: &mut Room, pdus: &[Arc<Pdu>]) {
    let destinations = room.other_servers(&shard.config.server_name);
    if destinations.is_empty() {
        return;
    }
    // A member of another server may have joined since the events were
    // built unsigned.
    let mut new = NewSignatures::default();
    let mut events = Vec::with_capacity(pdus.len());
    for pdu in pdus {
        match signature::wire_pdu(shard, pdu, &room.rules.redaction, &mut new) {
            Ok(value) => events.push(value),
            Err(error) => tracing::error!(
                event_id = %pdu.event_id,
                ?error,
                "failed to prepare event for other servers"
            ),
        }
    }
    new.persist(shard);
    crate::federation::sender::enqueue(shard, &destinations, &events);
}

/// Persists a batch from [`prepare`]; on failure the room is dropped from
/// memory so that the next request reloads what is durable.
///
/// # Errors
///
/// Returns the storage error.
pub async fn commit(
    shard: &Shard,
    room_id: &ruma::OwnedRoomId,
    batch: WriteBatch,
) -> ApiResult<()> {
    let (events, started) = (batch.events, std::time::Instant::now());
    let result = shard.committer.commit(batch).await;
    shard.metrics.record_commit(events, started.elapsed());
    if let Err(error) = result {
        tracing::error!(%room_id, %error, "failed to persist events; reloading the room");
        shard.evict_room(room_id);
        return Err(error.into());
    }
    Ok(())
}

/// Builds every draft against a copy of the state, then applies them.
/// # Errors
///
/// Returns the first draft's build or authorization error.
pub fn prepare(
    shard: &Shard,
    room: &mut Room,
    drafts: Vec<EventDraft>,
) -> ApiResult<(Vec<Arc<Pdu>>, WriteBatch)> {
    // A single draft fails before anything is applied; a sequence (room
    // creation) may fail part way and is rolled back.
    let snapshot = (drafts.len() > 1).then(|| Snapshot::take(room));
    let mut pdus = Vec::with_capacity(drafts.len());
    let mut batch = WriteBatch::default();
    for draft in drafts {
        // Events that leave at once are signed now, and so are joins that
        // name an authoriser, whose signature the authorization rules check;
        // see `super::signature`.
        let sign_now =
            !room.other_servers(&shard.config.server_name).is_empty() || names_authoriser(&draft);
        match build_one(shard, room, &draft, sign_now) {
            Ok(pdu) => {
                room.apply(&pdu);
                stage_state_group(room, &pdu, &mut batch);
                stage(shard, room, &pdu, &draft, &mut batch)?;
                pdus.push(pdu);
            }
            Err(error) => {
                if let Some(snapshot) = snapshot {
                    snapshot.restore(room);
                }
                return Err(error);
            }
        }
    }
    batch.put_json(Map::Rooms, room.room_id.as_bytes().to_vec(), &room.record());
    batch.put(
        Map::Meta,
        format!("hlc/{}", shard.id).into_bytes(),
        room.last_pos.to_be_bytes().to_vec(),
    );
    add_announcements(shard, room, &pdus, &mut batch);
    Ok((pdus, batch))
}

/// Checks that `draft` would be accepted as the next event of `room`,
/// without applying or persisting it.
///
/// # Errors
///
/// Returns the build or authorization error that [`append`] would return.
pub fn check(shard: &Shard, room: &Room, draft: &EventDraft) -> ApiResult<()> {
    build_one(shard, room, draft, names_authoriser(draft)).map(|_| ())
}

/// Returns whether `draft` is a join that names an authoriser, which the
/// authorization rules require this server to sign.
fn names_authoriser(draft: &EventDraft) -> bool {
    draft
        .content
        .get("join_authorised_via_users_server")
        .is_some()
}

fn build_one(
    shard: &Shard,
    room: &Room,
    draft: &EventDraft,
    sign_now: bool,
) -> ApiResult<Arc<Pdu>> {
    if draft
        .state_key
        .as_deref()
        .is_some_and(|key| key.contains('\0'))
        || draft.kind.contains('\0')
    {
        return Err(MatrixError::invalid_param(
            "Event type and state key must not contain NUL",
        ));
    }
    if draft.kind.len() > MAX_ID_BYTES
        || draft
            .state_key
            .as_ref()
            .is_some_and(|key| key.len() > MAX_ID_BYTES)
    {
        return Err(MatrixError::invalid_param(
            "Event type and state key are limited to 255 bytes",
        ));
    }
    if draft.state_key.is_some() {
        let integer_levels = room.rules.authorization.integer_power_levels;
        super::validate::check_content(&draft.kind, &draft.content, integer_levels)?;
    }
    let pos = shard.next_pos();
    let build = if sign_now {
        builder::build
    } else {
        builder::build_unsigned
    };
    let pdu = build(
        room,
        draft,
        &shard.config.server_name,
        &shard.key,
        pos,
        now_millis(),
    )?;
    auth::check(room, &pdu)
        .map_err(|reason| MatrixError::forbidden(format!("Event rejected: {reason}")))?;
    Ok(Arc::new(pdu))
}

/// The parts of a room that applying events changes.
struct Snapshot {
    state: BTreeMap<(String, String), Arc<Pdu>>,
    state_ids: std::collections::HashMap<ruma::OwnedEventId, (String, String)>,
    members: std::collections::HashMap<OwnedUserId, String>,
    forward_extremities: Vec<ruma::OwnedEventId>,
    last_event: Option<Arc<Pdu>>,
    forks: Vec<Arc<Pdu>>,
    state_group: Option<u64>,
    state_group_chain: u32,
    depth: u64,
    last_pos: u64,
}

impl Snapshot {
    fn take(room: &Room) -> Self {
        Self {
            state: room.state.clone(),
            state_ids: room.state_ids.clone(),
            members: room.members.clone(),
            forward_extremities: room.forward_extremities.clone(),
            last_event: room.last_event.clone(),
            forks: room.forks.clone(),
            state_group: room.state_group,
            state_group_chain: room.state_group_chain,
            depth: room.depth,
            last_pos: room.last_pos,
        }
    }

    fn restore(self, room: &mut Room) {
        room.state = self.state;
        room.state_ids = self.state_ids;
        room.members = self.members;
        room.recipients = None;
        room.remote_servers = None;
        room.forward_extremities = self.forward_extremities;
        room.last_event = self.last_event;
        room.forks = self.forks;
        room.state_group = self.state_group;
        room.state_group_chain = self.state_group_chain;
        room.depth = self.depth;
        room.last_pos = self.last_pos;
    }
}

/// Records the state group after `pdu`, which `room` has just applied. A
/// message keeps the current group and a state event adds a delta. A full
/// snapshot is written when the room has no group yet or its chain is at
/// the maximum.
pub(super) fn stage_state_group(room: &mut Room, pdu: &Pdu, batch: &mut WriteBatch) {
    let room_id = room.room_id.to_string();
    let group = match (room.state_group, &pdu.state_key) {
        (Some(group), None) => group,
        (Some(parent), Some(state_key)) if room.state_group_chain < state_groups::MAX_CHAIN => {
            let entry = (
                pdu.kind.to_string(),
                state_key.clone(),
                pdu.event_id.to_string(),
            );
            state_groups::stage_delta(batch, &room_id, pdu.pos, parent, entry);
            room.state_group_chain += 1;
            pdu.pos
        }
        _ => {
            state_groups::stage_snapshot(batch, &room_id, pdu.pos, &room.state_id_map());
            room.state_group_chain = 0;
            pdu.pos
        }
    };
    room.state_group = Some(group);
    state_groups::stage_event_group(batch, pdu.event_id.as_str(), group, room.state_group_chain);
}

fn stage(
    shard: &Shard,
    room: &Room,
    pdu: &Pdu,
    draft: &EventDraft,
    batch: &mut WriteBatch,
) -> ApiResult<()> {
    let room_id = room.room_id.as_str();
    let event_id = pdu.event_id.as_str();
    let record = EventRecord {
        pdu: serde_json::to_value(&pdu.json).map_err(|e| MatrixError::internal(e.to_string()))?,
        room_id: room_id.to_owned(),
        pos: pdu.pos,
        room_version: Some(room.version.to_string()),
        redacted_by: None,
        txn: draft
            .txn
            .as_ref()
            .map(|txn| (txn.device_id.clone(), txn.txn_id.clone())),
    };
    batch.put_json(Map::Events, event_id.as_bytes().to_vec(), &record);
    batch.events += 1;
    batch.put(
        Map::Timeline,
        keys::timeline(room_id, pdu.pos),
        event_id.as_bytes().to_vec(),
    );

    if let Some(state_key) = &pdu.state_key {
        let kind = pdu.kind.to_string();
        batch.put(
            Map::RoomState,
            keys::state(room_id, &kind, state_key),
            event_id.as_bytes().to_vec(),
        );
        batch.put(
            Map::StateHistory,
            keys::state_history(room_id, &kind, state_key, pdu.pos),
            event_id.as_bytes().to_vec(),
        );
    }
    if let (TimelineEventType::RoomMember, Some(user), Some(membership)) =
        (&pdu.kind, &pdu.state_key, pdu.membership())
        && user.ends_with(&format!(":{}", shard.config.server_name))
    {
        let record = MembershipRecord {
            membership,
            event_id: event_id.to_owned(),
            pos: pdu.pos,
        };
        batch.put_json(Map::UserRooms, keys::pair(user, room_id), &record);
    }
    if let Some(txn) = &draft.txn {
        batch.put(Map::Txns, txn.key.clone(), event_id.as_bytes().to_vec());
    }
    if let Some(target) = &pdu.redacts {
        stage_redaction(shard, room, pdu, target.as_str(), batch)?;
    }
    Ok(())
}

/// Marks the target of a redaction as redacted. The authorization rules
/// accept any redaction event from room version 3 on, so the redaction is
/// applied only when its sender sent the target or has the `redact` level,
/// or when the sender is on another server that also sent the target, which
/// that server vouches for. Otherwise the event stays in the timeline
/// without effect.
pub(super) fn stage_redaction(
    shard: &Shard,
    room: &Room,
    redaction: &Pdu,
    target: &str,
    batch: &mut WriteBatch,
) -> ApiResult<()> {
    let Some(mut record) = shard
        .store
        .get_json::<EventRecord>(Map::Events, target.as_bytes())?
    else {
        return Ok(());
    };
    let sender = redaction.sender.as_str();
    let target_sender = record
        .pdu
        .get("sender")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let sender_server = server_of(sender);
    let remote_same_server = sender_server.is_some()
        && sender_server != Some(shard.config.server_name.as_str())
        && sender_server == server_of(target_sender);
    if !remote_same_server && !room.may_redact(sender, target_sender) {
        tracing::info!(
            redaction_id = %redaction.event_id,
            target,
            sender,
            "redaction without the redact level left unapplied"
        );
        return Ok(());
    }
    let redaction_id = redaction.event_id.as_str();
    if record.room_id == room.room_id.as_str() && record.redacted_by.is_none() {
        record.redacted_by = Some(redaction_id.to_owned());
        batch.put_json(Map::Events, target.as_bytes().to_vec(), &record);
    }
    Ok(())
}

fn server_of(user_id: &str) -> Option<&str> {
    user_id.split_once(':').map(|(_, server)| server)
}

/// Queues, after the commit, one announcement per event to each shard that
/// owns a local member (joined or invited) or the target of a membership
/// change.
pub(super) fn add_announcements(
    shard: &Shard,
    room: &mut Room,
    pdus: &[Arc<Pdu>],
    batch: &mut WriteBatch,
) {
    let suffix = format!(":{}", shard.config.server_name);
    let recipients = room.recipients(shard.nr_shards(), &suffix);

    let mut notes: Vec<(ShardId, RoomNotification)> = Vec::new();
    for pdu in pdus {
        let membership = match (&pdu.kind, &pdu.state_key) {
            (TimelineEventType::RoomMember, Some(user)) => OwnedUserId::try_from(user.as_str())
                .ok()
                .zip(pdu.membership()),
            _ => None,
        };
        let mut targets: Vec<(ShardId, Arc<Vec<OwnedUserId>>)> = recipients.as_ref().clone();
        // The target of a membership change is notified even when it is no
        // longer joined or invited (a leave, kick or ban).
        if let Some((user, _)) = &membership
            && user.as_str().ends_with(&suffix)
            && !targets.iter().any(|(_, users)| users.contains(user))
        {
            let owner = shard.owner(user.as_str());
            match targets.iter_mut().find(|(target, _)| *target == owner) {
                Some((_, users)) => Arc::make_mut(users).push(user.clone()),
                None => targets.push((owner, Arc::new(vec![user.clone()]))),
            }
        }
        let event_id: Arc<str> = Arc::from(pdu.event_id.as_str());
        for (target, users) in targets {
            let note = RoomNotification {
                source: shard.id,
                room_id: room.room_id.clone(),
                pos: pdu.pos,
                prev_pos: room.announced_pos,
                event_id: event_id.clone(),
                users,
                membership: membership.clone(),
            };
            notes.push((target, note));
        }
        room.announced_pos = pdu.pos;
    }

    // Redacted events change in the store, so every shard drops its cached
    // copy once the redaction is durable.
    let redacted: Arc<Vec<String>> = Arc::new(
        pdus.iter()
            .filter_map(|pdu| pdu.redacts.as_ref().map(ToString::to_string))
            .collect(),
    );
    let mesh = shard.mesh.clone();
    batch.after_commit(Box::new(move || {
        if !redacted.is_empty() {
            for target in 0..mesh.nr_shards() {
                let redacted = redacted.clone();
                let task: eltrix_shards::ShardTask<Shard> = Box::new(move |shard: Rc<Shard>| {
                    Box::pin(async move {
                        for event_id in redacted.iter() {
                            shard.events.evict(event_id);
                        }
                    })
                });
                if mesh.send(target, task).is_err() {
                    tracing::warn!(target, "failed to drop redacted events on a stopped shard");
                }
            }
        }
        for (target, note) in notes {
            let task: eltrix_shards::ShardTask<Shard> = Box::new(move |shard: Rc<Shard>| {
                Box::pin(async move { shard.sync.borrow_mut().apply(&note) })
            });
            if mesh.send(target, task).is_err() {
                tracing::warn!(target, "failed to announce an event to a stopped shard");
            }
        }
    }));
}
