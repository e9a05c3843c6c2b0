//! Version 1 of the state resolution algorithm, which only room version 1
//! uses and ruma-state-res does not implement.
//!
//! The resolved state starts as the union of the unconflicted entries.
//! Conflicts are then settled in passes: `m.room.power_levels`, then
//! `m.room.join_rules`, then each `m.room.member` key. A pass sorts the
//! candidates by ascending `depth`, then descending SHA-1 of the event ID,
//! takes the first and keeps taking the next one while the authorization
//! rules allow it in the state resolved so far. Every other conflicted key
//! gets the candidate of highest `depth`, then lowest SHA-1 of the event ID,
//! that the rules allow.
//!
//! The specification does not say whether the member pass orders all
//! conflicted member events in one list. Each member key is its own list
//! here, as in Synapse (`synapse/state/v1.py`), so that one user's membership
//! cannot cut short the resolution of another's.

use std::{cmp::Reverse, collections::BTreeMap, sync::Arc};

use ruma::{
    EventId, OwnedEventId,
    events::StateEventType,
    room_version_rules::AuthorizationRules,
    state_res::{self, StateMap},
};
use sha1::{Digest, Sha1};

use super::Pdu;

type StateKey = (StateEventType, String);

/// Resolves `forks` with version 1 of the algorithm.
///
/// # Errors
///
/// Returns the ID of a conflicted event that `fetch` does not find.
pub fn resolve(
    rules: &AuthorizationRules,
    forks: &[StateMap<OwnedEventId>],
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) -> Result<StateMap<OwnedEventId>, String> {
    let (mut resolved, conflicted) = separate(forks);

    let mut candidates: BTreeMap<StateKey, Vec<Arc<Pdu>>> = BTreeMap::new();
    for (key, ids) in conflicted {
        let events = ids
            .iter()
            .map(|id| fetch(id).ok_or_else(|| format!("conflicted state event {id} is unknown")))
            .collect::<Result<Vec<_>, _>>()?;
        candidates.insert(key, events);
    }

    let auth_passes = [
        |kind: &StateEventType| *kind == StateEventType::RoomPowerLevels,
        |kind: &StateEventType| *kind == StateEventType::RoomJoinRules,
        |kind: &StateEventType| *kind == StateEventType::RoomMember,
    ];
    for in_pass in auth_passes {
        let keys: Vec<StateKey> = candidates
            .keys()
            .filter(|(kind, _)| in_pass(kind))
            .cloned()
            .collect();
        for key in keys {
            let events = candidates.remove(&key).unwrap_or_default();
            resolve_auth_key(rules, &key, events, &mut resolved, fetch);
        }
    }

    for (key, events) in candidates {
        resolve_other_key(rules, &key, events, &mut resolved, fetch);
    }
    Ok(resolved)
}

/// Splits the entries of `forks` into those on which every fork that has
/// the key agrees, and the keys with several event IDs. A key missing from
/// some forks is not a conflict.
fn separate(
    forks: &[StateMap<OwnedEventId>],
) -> (
    StateMap<OwnedEventId>,
    BTreeMap<StateKey, Vec<OwnedEventId>>,
) {
    let mut seen: BTreeMap<StateKey, Vec<OwnedEventId>> = BTreeMap::new();
    for fork in forks {
        for (key, id) in fork {
            let ids = seen.entry(key.clone()).or_default();
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    let mut unconflicted = StateMap::new();
    let mut conflicted = BTreeMap::new();
    for (key, mut ids) in seen {
        if ids.len() == 1 {
            unconflicted.insert(key, ids.remove(0));
        } else {
            conflicted.insert(key, ids);
        }
    }
    (unconflicted, conflicted)
}

/// Settles one key that the authorization rules depend on: the earliest
/// candidate, then each later one for as long as the rules allow it.
fn resolve_auth_key(
    rules: &AuthorizationRules,
    key: &StateKey,
    mut events: Vec<Arc<Pdu>>,
    resolved: &mut StateMap<OwnedEventId>,
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) {
    events.sort_by_cached_key(|event| (event.depth, Reverse(sha1_of(&event.event_id))));
    let mut events = events.into_iter();
    let Some(first) = events.next() else {
        return;
    };
    resolved.insert(key.clone(), first.event_id.clone());
    for event in events {
        if !is_allowed(rules, &event, resolved, fetch) {
            break;
        }
        resolved.insert(key.clone(), event.event_id.clone());
    }
}

/// Settles one key that the authorization rules do not depend on: the
/// latest candidate that the rules allow.
///
/// The specification does not say what happens when the rules allow none of
/// them. The shallowest candidate is kept then, as Synapse does in
/// `synapse/state/v1.py`, so that both servers reach the same state.
fn resolve_other_key(
    rules: &AuthorizationRules,
    key: &StateKey,
    mut events: Vec<Arc<Pdu>>,
    resolved: &mut StateMap<OwnedEventId>,
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) {
    events.sort_by_cached_key(|event| (Reverse(event.depth), sha1_of(&event.event_id)));
    let chosen = events
        .iter()
        .find(|event| is_allowed(rules, event, resolved, fetch))
        .or_else(|| events.last());
    if let Some(event) = chosen {
        resolved.insert(key.clone(), event.event_id.clone());
    }
}

/// Checks whether the state-dependent authorization rules allow `event` in the
/// room state `state`.
fn is_allowed(
    rules: &AuthorizationRules,
    event: &Pdu,
    state: &StateMap<OwnedEventId>,
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) -> bool {
    let fetch_state = |kind: &StateEventType, state_key: &str| {
        state
            .get(&(kind.clone(), state_key.to_owned()))
            .and_then(|id| fetch(id))
    };
    state_res::check_state_dependent_auth_rules(rules, event, fetch_state).is_ok()
}

fn sha1_of(event_id: &EventId) -> [u8; 20] {
    Sha1::digest(event_id.as_str().as_bytes()).into()
}
