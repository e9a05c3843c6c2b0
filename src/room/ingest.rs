//! Events created by other servers: the checks that the server-server API
//! performs on receipt of a PDU, then placing the event in the room's graph.
//!
//! An event may name any known events as `prev_events`, so it can fork the
//! room or merge branches. The state before it is the state after its one
//! predecessor, or the resolution of the states after each of them. The
//! room's current state is the resolution of the states after every forward
//! extremity. Resolution and loading stored states run on threads of their
//! own (see `resolve::off_shard`), so the shard keeps serving its other rooms
//! meanwhile.
//!
//! NOTE: the shard thread still copies the current state for resolution and
//! compares it with the result, about 11 ms for an event that forks a room
//! of 10,000 members (`cargo bench -p bench --bench ingest`).

use std::{cell::RefCell, rc::Rc, sync::Arc};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId,
    events::StateEventType,
    room_version_rules::{EventIdFormatVersion, RoomVersionRules},
    signatures::{PublicKeyMap, Verified},
    state_res::StateMap,
};

use super::{
    Pdu, append, history, resolve,
    state::{Room, StateKey, load_pdu},
    state_groups::{self, StateIds},
};
use crate::{
    api::error::{ApiResult, MatrixError},
    shard::Shard,
    store::{EventRecord, Map, MembershipRecord, Store, WriteBatch, keys},
};

/// The result of taking in a received event.
#[derive(Debug)]
pub enum Outcome {
    /// The event passed every check and is part of the room's graph.
    Accepted(Arc<Pdu>),
    /// The event passed the checks against its own history but not against
    /// the room's current state, so it is stored and kept out of the
    /// timeline and the forward extremities.
    SoftFailed(Arc<Pdu>),
    /// The event is already stored.
    Known,
}

/// Checks `object`, an event of `room` signed by other servers whose keys
/// are in `keys`, and adds it to the room.
///
/// # Errors
///
/// `M_BAD_JSON` for an event that does not parse, `M_FORBIDDEN` with the
/// reason for a failed signature or authorization check, `M_NOT_FOUND` when
/// a `prev_events` or `auth_events` entry is unknown, or a storage error.
pub async fn ingest(
    shard: &Rc<Shard>,
    room: &Rc<RefCell<Room>>,
    object: CanonicalJsonObject,
    keys: &PublicKeyMap,
) -> ApiResult<Outcome> {
    let (rules, room_id) = {
        let room = room.borrow();
        (room.rules.clone(), room.room_id.clone())
    };
    ruma::state_res::check_pdu_format(&object, &rules.event_format)
        .map_err(|reason| MatrixError::bad_json(format!("Invalid event format: {reason}")))?;
    let object = verify(object, keys, &rules)?;
    let event_id = event_id(&object, &rules)?;
    if shard.store.get(Map::Events, event_id.as_bytes())?.is_some() {
        return Ok(Outcome::Known);
    }
    if object.get("room_id") != Some(&CanonicalJsonValue::String(room_id.to_string())) {
        return Err(MatrixError::bad_json("Event is for another room"));
    }
    let draft = Pdu::parse(object, event_id, room_id.clone(), 0)
        .map_err(|error| MatrixError::bad_json(format!("Invalid event: {error}")))?;

    // The state before the event, from its predecessors.
    let mut prev_states = Vec::new();
    for prev in &draft.prev_events {
        prev_states.push(state_after(shard, room, prev).await?);
    }
    let state_before = resolve_states(shard, &rules, prev_states, Vec::new()).await?;
    let state_after_event = match &draft.state_key {
        Some(_) => Arc::new(with_event(&state_before, &draft)),
        None => state_before.clone(),
    };

    check_auth_events(&shard.store, &rules, &draft)?;
    check_against(&shard.store, &rules, &draft, &state_before).map_err(|reason| {
        MatrixError::forbidden(format!("Event rejected by the state before it: {reason}"))
    })?;

    // Apply, unless the room changed while resolution ran.
    loop {
        let (extremities, soft_failed) = {
            let room = room.borrow();
            let current = |kind: &str, key: &str| {
                room.state_event(kind, key)
                    .map(|event| event.event_id.to_string())
            };
            let soft_failed = check_with(&shard.store, &rules, &draft, current).err();
            (room.forward_extremities.clone(), soft_failed)
        };
        if let Some(reason) = soft_failed {
            tracing::info!(event_id = %draft.event_id, %reason, "received event soft-failed");
            let pdu = store_soft_failed(shard, room, draft, &state_after_event).await?;
            return Ok(Outcome::SoftFailed(pdu));
        }

        let mut remaining: Vec<OwnedEventId> = extremities
            .iter()
            .filter(|id| !draft.prev_events.contains(id))
            .cloned()
            .collect();
        let mut forks = vec![state_after_event.clone()];
        for extremity in &remaining {
            forks.push(state_after(shard, room, extremity).await?);
        }
        let current = resolve_states(shard, &rules, forks, vec![Arc::new(draft.clone())]).await?;

        let staged = {
            let mut room_mut = room.borrow_mut();
            if room_mut.forward_extremities == extremities {
                remaining.insert(0, draft.event_id.clone());
                Some(stage(
                    shard,
                    &mut room_mut,
                    draft.clone(),
                    &state_after_event,
                    &current,
                    remaining,
                )?)
            } else {
                None
            }
        };
        let Some((pdu, batch)) = staged else {
            continue;
        };
        append::commit(shard, &room_id, batch).await?;
        return Ok(Outcome::Accepted(pdu));
    }
}

/// Checks the signatures and content hash of `object`. An event whose
/// content does not match its hash is redacted, as the specification
/// requires, and processed further in that form.
fn verify(
    object: CanonicalJsonObject,
    keys: &PublicKeyMap,
    rules: &RoomVersionRules,
) -> ApiResult<CanonicalJsonObject> {
    match ruma::signatures::verify_event(keys, &object, rules) {
        Ok(Verified::All) => Ok(object),
        Ok(Verified::Signatures) => ruma::canonical_json::redact(object, &rules.redaction, None)
            .map_err(|error| MatrixError::bad_json(format!("Event cannot be redacted: {error}"))),
        Err(error) => Err(MatrixError::forbidden(format!(
            "Event signature check failed: {error}"
        ))),
    }
}

/// Returns the ID of a received event: its `event_id` field in room versions
/// 1 and 2, its reference hash after that.
pub fn event_id(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> ApiResult<OwnedEventId> {
    let id = match (rules.event_id_format, object.get("event_id")) {
        (EventIdFormatVersion::V1, Some(CanonicalJsonValue::String(id))) => id.clone(),
        (EventIdFormatVersion::V1, _) => {
            return Err(MatrixError::bad_json("Event has no event_id"));
        }
        _ => {
            let hash = ruma::signatures::reference_hash(object, rules)
                .map_err(|error| MatrixError::bad_json(format!("Invalid event: {error}")))?;
            format!("${hash}")
        }
    };
    OwnedEventId::try_from(id).map_err(|error| MatrixError::bad_json(error.to_string()))
}

/// Returns the state after `event_id`: the current state for the room's
/// only forward extremity, else its state group, else for an event stored
/// before state groups its position in the state history.
async fn state_after(
    shard: &Shard,
    room: &RefCell<Room>,
    event_id: &EventId,
) -> ApiResult<Arc<StateIds>> {
    let room_id = {
        let room = room.borrow();
        // The room's only forward extremity has the current state after it.
        if room.forks.is_empty()
            && room
                .last_event
                .as_ref()
                .is_some_and(|last| last.event_id == event_id)
        {
            return Ok(Arc::new(room.state_id_map()));
        }
        room.room_id.to_string()
    };
    // Rebuilding a large room's state reads and parses a snapshot, so it
    // runs on a thread of its own.
    let (store, group_room, group_event) =
        (shard.store.clone(), room_id.clone(), event_id.to_string());
    let grouped =
        resolve::off_shard(move || state_groups::state_after(&store, &group_room, &group_event))
            .await
            .map_err(MatrixError::internal)??;
    if let Some(state) = grouped {
        return Ok(Arc::new(state));
    }
    let room_id = room_id.as_str();
    let Some(record) = shard
        .store
        .get_json::<EventRecord>(Map::Events, event_id.as_bytes())?
    else {
        return Err(MatrixError::not_found(format!(
            "Previous event {event_id} is unknown"
        )));
    };
    if record.room_id != room_id {
        return Err(MatrixError::forbidden(format!(
            "Previous event {event_id} is in another room"
        )));
    }
    Ok(Arc::new(history::state_at(
        &shard.store,
        room_id,
        record.pos,
    )?))
}

/// Resolves `forks`, or returns the only one, on a thread of its own.
/// `unstored` contains the events that resolution may need and the store
/// does not have yet.
async fn resolve_states(
    shard: &Shard,
    rules: &RoomVersionRules,
    forks: Vec<Arc<StateIds>>,
    unstored: Vec<Arc<Pdu>>,
) -> ApiResult<Arc<StateIds>> {
    if forks.len() <= 1 {
        return Ok(forks.into_iter().next().unwrap_or_default());
    }
    let (rules, store) = (rules.clone(), shard.store.clone());
    let resolved = resolve::off_shard(move || {
        let mut distinct: Vec<Arc<StateIds>> = Vec::new();
        for fork in forks {
            if !distinct
                .iter()
                .any(|known| Arc::ptr_eq(known, &fork) || **known == *fork)
            {
                distinct.push(fork);
            }
        }
        if distinct.len() <= 1 {
            return Ok(distinct.pop().unwrap_or_default());
        }
        let maps: Vec<StateMap<OwnedEventId>> =
            distinct.iter().map(|fork| to_state_map(fork)).collect();
        let resolved = resolve::resolve_with_store(&rules, &maps, &store, unstored)?;
        Ok(Arc::new(
            resolved
                .into_iter()
                .map(|((kind, key), id)| ((kind.to_string(), key), id.to_string()))
                .collect(),
        ))
    })
    .await
    .and_then(|result| result)
    .map_err(|reason: String| {
        MatrixError::forbidden(format!("State resolution failed: {reason}"))
    })?;
    Ok(resolved)
}

fn to_state_map(state: &StateIds) -> StateMap<OwnedEventId> {
    state
        .iter()
        .filter_map(|((kind, key), id)| {
            let id = OwnedEventId::try_from(id.as_str()).ok()?;
            Some(((StateEventType::from(kind.as_str()), key.clone()), id))
        })
        .collect()
}

/// Returns `state` with `pdu` applied when it is a state event.
fn with_event(state: &StateIds, pdu: &Pdu) -> StateIds {
    let mut after = state.clone();
    if let Some(state_key) = &pdu.state_key {
        after.insert(
            (pdu.kind.to_string(), state_key.clone()),
            pdu.event_id.to_string(),
        );
    }
    after
}

/// Applies the authorization rules with the event's own `auth_events` as the
/// state, which rejects an event whose claimed history does not allow it.
fn check_auth_events(store: &Store, rules: &RoomVersionRules, pdu: &Pdu) -> ApiResult<()> {
    let mut auth_state = StateIds::new();
    let mut auth_ids = pdu.auth_events.clone();
    // Room version 12 leaves the create event out of `auth_events`, and the
    // room ID names it.
    if rules.authorization.room_create_event_id_as_room_id
        && pdu.kind != ruma::events::TimelineEventType::RoomCreate
        && let Ok(create_id) =
            OwnedEventId::try_from(format!("${}", pdu.room_id.as_str().trim_start_matches('!')))
    {
        auth_ids.push(create_id);
    }
    for id in &auth_ids {
        let Some(event) = load_pdu(store, id.as_str())? else {
            return Err(MatrixError::not_found(format!(
                "Auth event {id} is unknown"
            )));
        };
        if let Some(state_key) = &event.state_key {
            auth_state.insert((event.kind.to_string(), state_key.clone()), id.to_string());
        }
    }
    check_against(store, rules, pdu, &auth_state).map_err(|reason| {
        MatrixError::forbidden(format!("Event rejected by its auth events: {reason}"))
    })
}

/// Applies the authorization rules to `pdu` against `state`.
fn check_against(
    store: &Store,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    state: &StateIds,
) -> Result<(), String> {
    check_with(store, rules, pdu, |kind, key| {
        state.get(&(kind.to_owned(), key.to_owned())).cloned()
    })
}

/// Applies the authorization rules to `pdu` against the state that
/// `lookup` returns the event ID of, by type and state key.
fn check_with(
    store: &Store,
    rules: &RoomVersionRules,
    pdu: &Pdu,
    lookup: impl Fn(&str, &str) -> Option<String>,
) -> Result<(), String> {
    super::auth::check_server_rules(pdu)?;
    let fetch_event = |id: &EventId| load_pdu(store, id.as_str()).ok().flatten().map(Arc::new);
    ruma::state_res::check_state_independent_auth_rules(&rules.authorization, pdu, fetch_event)?;
    let fetch_state = |kind: &StateEventType, key: &str| {
        lookup(&kind.to_string(), key)
            .and_then(|id| load_pdu(store, &id).ok().flatten().map(Arc::new))
    };
    ruma::state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, fetch_state)
}

/// Stores a soft-failed event with its state group, outside the timeline.
async fn store_soft_failed(
    shard: &Rc<Shard>,
    room: &Rc<RefCell<Room>>,
    mut pdu: Pdu,
    state_after_event: &StateIds,
) -> ApiResult<Arc<Pdu>> {
    let room_id = room.borrow().room_id.clone();
    pdu.pos = shard.next_pos();
    let mut batch = WriteBatch::default();
    stage_event_record(&room.borrow(), &pdu, &mut batch)?;
    state_groups::stage_snapshot(&mut batch, room_id.as_str(), pdu.pos, state_after_event);
    state_groups::stage_event_group(&mut batch, pdu.event_id.as_str(), pdu.pos, 0);
    append::commit(shard, &room_id, batch).await?;
    Ok(Arc::new(pdu))
}

fn stage_event_record(room: &Room, pdu: &Pdu, batch: &mut WriteBatch) -> ApiResult<()> {
    let record = EventRecord {
        pdu: serde_json::to_value(&pdu.json).map_err(|e| MatrixError::internal(e.to_string()))?,
        room_id: room.room_id.to_string(),
        pos: pdu.pos,
        room_version: Some(room.version.to_string()),
        redacted_by: None,
        txn: None,
    };
    batch.put_json(Map::Events, pdu.event_id.as_bytes().to_vec(), &record);
    batch.events += 1;
    Ok(())
}

/// Stages an accepted event: the event, its timeline row and state group,
/// the room's new current state and forward extremities (`extremities`, the
/// event first), and the announcements to local members.
fn stage(
    shard: &Shard,
    room: &mut Room,
    mut pdu: Pdu,
    state_after_event: &StateIds,
    current: &StateIds,
    extremities: Vec<OwnedEventId>,
) -> ApiResult<(Arc<Pdu>, WriteBatch)> {
    let room_id = room.room_id.to_string();
    pdu.pos = shard.next_pos();
    let mut batch = WriteBatch::default();
    stage_event_record(room, &pdu, &mut batch)?;
    batch.put(
        Map::Timeline,
        keys::timeline(&room_id, pdu.pos),
        pdu.event_id.as_bytes().to_vec(),
    );

    // The state group after the event: the predecessor's group for a
    // message after one event, a delta on it for a state event, and a
    // snapshot after several predecessors or at the end of a chain.
    let single_prev_group = match pdu.prev_events.as_slice() {
        [prev] => state_groups::group_of(&shard.store, prev.as_str())?,
        _ => None,
    };
    let (event_group, event_chain) = match (single_prev_group, &pdu.state_key) {
        (Some((group, chain)), None) => (group, chain),
        (Some((parent, chain)), Some(state_key)) if chain < state_groups::MAX_CHAIN => {
            let entry = (
                pdu.kind.to_string(),
                state_key.clone(),
                pdu.event_id.to_string(),
            );
            state_groups::stage_delta(&mut batch, &room_id, pdu.pos, parent, entry);
            (pdu.pos, chain + 1)
        }
        _ => {
            state_groups::stage_snapshot(&mut batch, &room_id, pdu.pos, state_after_event);
            (pdu.pos, 0)
        }
    };
    state_groups::stage_event_group(&mut batch, pdu.event_id.as_str(), event_group, event_chain);
    if let Some(target) = &pdu.redacts {
        append::stage_redaction(shard, room, &pdu, target.as_str(), &mut batch)?;
    }
    let pdu = Arc::new(pdu);

    // The room's current state changes only where resolution moved it.
    let (changed, removed) = diff(&room.state, current);
    for (key, id) in &changed {
        let event = if id == pdu.event_id.as_str() {
            Some(pdu.clone())
        } else {
            room_state_pdu(shard, room, id)?
        };
        match event {
            Some(event) => room.set_state(event),
            None => tracing::warn!(%room_id, event_id = id, ?key, "resolved state event not found"),
        }
    }
    for key in &removed {
        room.remove_state(key);
    }
    stage_state_changes(shard, &room_id, &changed, &removed, pdu.pos, &mut batch);
    let current_group = CurrentGroup {
        event: (event_group, event_chain),
        changed: removed.is_empty().then_some(changed),
    };
    finish(shard, room, pdu, current, extremities, current_group, batch)
}

/// Returns the entries of `new` that differ from `old` and the keys of
/// `old` that `new` lacks, walking both maps once in their shared order.
fn diff(
    old: &std::collections::BTreeMap<StateKey, Arc<Pdu>>,
    new: &StateIds,
) -> (Vec<(StateKey, String)>, Vec<StateKey>) {
    use std::cmp::Ordering;
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    let mut old_entries = old.iter().peekable();
    let mut new_entries = new.iter().peekable();
    loop {
        match (old_entries.peek(), new_entries.peek()) {
            (None, None) => break,
            (Some((key, _)), None) => {
                removed.push((*key).clone());
                old_entries.next();
            }
            (None, Some((key, id))) => {
                changed.push(((*key).clone(), (*id).clone()));
                new_entries.next();
            }
            (Some((old_key, event)), Some((new_key, id))) => match old_key.cmp(new_key) {
                Ordering::Less => {
                    removed.push((*old_key).clone());
                    old_entries.next();
                }
                Ordering::Greater => {
                    changed.push(((*new_key).clone(), (*id).clone()));
                    new_entries.next();
                }
                Ordering::Equal => {
                    if event.event_id.as_str() != id.as_str() {
                        changed.push(((*new_key).clone(), (*id).clone()));
                    }
                    old_entries.next();
                    new_entries.next();
                }
            },
        }
    }
    (changed, removed)
}

/// The inputs from which `finish` records the group of the new current state.
struct CurrentGroup {
    /// The group and chain length of the state after the accepted event.
    event: (u64, u32),
    /// The entries that changed in the current state, when none was removed,
    /// so the new group can be a delta on the previous one.
    changed: Option<Vec<((String, String), String)>>,
}

/// Returns a state event by ID from the room's current state or the store.
fn room_state_pdu(shard: &Shard, room: &Room, event_id: &str) -> ApiResult<Option<Arc<Pdu>>> {
    if let Ok(id) = OwnedEventId::try_from(event_id)
        && let Some(event) = room.state_event_by_id(&id)
    {
        return Ok(Some(event.clone()));
    }
    Ok(load_pdu(&shard.store, event_id)?.map(Arc::new))
}

/// Stages the rows of the current state that `changed` sets and `removed`
/// deletes, with the state history entries at `pos`, and the memberships of
/// local users.
///
/// NOTE: only the accepted event itself is announced to the sync index. A
/// local user whose membership changes through resolution alone keeps the
/// membership their shard's index last saw until their next membership
/// event or a restart, which reloads it from `userid_roomid_membership`.
fn stage_state_changes(
    shard: &Shard,
    room_id: &str,
    changed: &[((String, String), String)],
    removed: &[(String, String)],
    pos: u64,
    batch: &mut WriteBatch,
) {
    let suffix = format!(":{}", shard.config.server_name);
    for ((kind, key), id) in changed {
        batch.put(
            Map::RoomState,
            keys::state(room_id, kind, key),
            id.as_bytes().to_vec(),
        );
        batch.put(
            Map::StateHistory,
            keys::state_history(room_id, kind, key, pos),
            id.as_bytes().to_vec(),
        );
        if kind == "m.room.member"
            && key.ends_with(&suffix)
            && let Ok(Some(event)) = load_pdu(&shard.store, id)
            && let Some(membership) = event.membership()
        {
            let record = MembershipRecord {
                membership,
                event_id: id.clone(),
                pos,
            };
            batch.put_json(Map::UserRooms, keys::pair(key, room_id), &record);
        }
    }
    for (kind, key) in removed {
        batch.delete(Map::RoomState, keys::state(room_id, kind, key));
    }
}

/// Moves the room's head to the accepted event and stages its record and
/// announcements.
fn finish(
    shard: &Shard,
    room: &mut Room,
    pdu: Arc<Pdu>,
    current: &StateIds,
    extremities: Vec<OwnedEventId>,
    current_group: CurrentGroup,
    mut batch: WriteBatch,
) -> ApiResult<(Arc<Pdu>, WriteBatch)> {
    let room_id = room.room_id.to_string();
    let known = room.prev_events();
    let mut forks = Vec::new();
    for id in extremities.iter().skip(1) {
        match known.iter().find(|event| event.event_id == *id) {
            Some(event) => forks.push(event.clone()),
            None => forks.extend(load_pdu(&shard.store, id.as_str())?.map(Arc::new)),
        }
    }
    room.forward_extremities = extremities;
    room.last_event = Some(pdu.clone());
    room.forks = forks;
    room.depth = room.depth.max(pdu.depth);
    room.last_pos = pdu.pos;

    // A current state that is not the state after one event gets a group of
    // its own: a delta on the previous current state, or a snapshot.
    let (group, chain) = match (room.state_group, current_group.changed) {
        _ if room.forward_extremities.len() == 1 => current_group.event,
        (Some(parent), Some(changed)) if room.state_group_chain < state_groups::MAX_CHAIN => {
            let group = shard.next_pos();
            let entries = changed
                .into_iter()
                .map(|((kind, key), id)| (kind, key, id))
                .collect();
            state_groups::stage_entries(&mut batch, &room_id, group, parent, entries);
            (group, room.state_group_chain + 1)
        }
        _ => {
            let group = shard.next_pos();
            state_groups::stage_snapshot(&mut batch, &room_id, group, current);
            (group, 0)
        }
    };
    room.state_group = Some(group);
    room.state_group_chain = chain;

    batch.put_json(Map::Rooms, room_id.as_bytes().to_vec(), &room.record());
    batch.put(
        Map::Meta,
        format!("hlc/{}", shard.id).into_bytes(),
        room.last_pos.to_be_bytes().to_vec(),
    );
    append::add_announcements(shard, room, std::slice::from_ref(&pdu), &mut batch);
    Ok((pdu, batch))
}
