//! State resolution of forked room state with ruma-state-res: version 2 of
//! the algorithm, and the revision that room version 12 uses (iterative auth
//! checks from an empty map, and the conflicted state subgraph). Room
//! version 1 goes to version 1 of the algorithm in `resolve_v1`.
//!
//! A room's state forks when events arrive whose `prev_events` are on
//! different branches, which only federation produces. The caller supplies
//! each branch's state and a way to fetch any event of the room.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use ruma::{
    EventId, OwnedEventId,
    room_version_rules::RoomVersionRules,
    state_res::{self, StateMap},
};

use super::Pdu;

/// Resolves the state `forks` of one room into a single state.
///
/// # Errors
///
/// Returns the reason when an event needed for resolution is unknown.
pub fn resolve(
    rules: &RoomVersionRules,
    forks: &[StateMap<OwnedEventId>],
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) -> Result<StateMap<OwnedEventId>, String> {
    let Some(state_res_rules) = rules.state_res.v2_rules() else {
        return super::resolve_v1::resolve(&rules.authorization, forks, fetch);
    };
    let auth_chains = forks
        .iter()
        .map(|fork| auth_chain(fork.values(), fetch).into_iter().collect())
        .collect();
    state_res::resolve(
        &rules.authorization,
        state_res_rules,
        forks,
        auth_chains,
        |id| fetch(id),
        |conflicted| Some(conflicted_subgraph(conflicted, fetch).into_iter().collect()),
    )
    .map_err(|error| error.to_string())
}

/// Resolves `forks` on a thread of its own and waits for the result without
/// blocking the calling shard, which keeps serving its other rooms meanwhile.
/// `events` must hold every event that resolution may fetch.
///
/// # Errors
///
/// Returns the reasons of [`resolve`], or a message if the thread cannot be
/// started.
pub async fn resolve_off_shard(
    rules: RoomVersionRules,
    forks: Vec<StateMap<OwnedEventId>>,
    events: HashMap<OwnedEventId, Arc<Pdu>>,
) -> Result<StateMap<OwnedEventId>, String> {
    let (reply, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("state-res".to_owned())
        .spawn(move || {
            let fetch = |id: &EventId| events.get(id).cloned();
            let _ = reply.send(resolve(&rules, &forks, &fetch));
        })
        .map_err(|error| format!("failed to start a state resolution thread: {error}"))?;
    result
        .await
        .map_err(|_| "the state resolution thread stopped without a result".to_owned())?
}

/// Runs `work` on a thread of its own and waits for its result without
/// blocking the calling shard, which keeps serving its other rooms.
///
/// # Errors
///
/// Returns a message if the thread cannot be started or stops without a
/// result.
pub async fn off_shard<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (reply, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("state-res".to_owned())
        .spawn(move || {
            let _ = reply.send(work());
        })
        .map_err(|error| format!("failed to start a state resolution thread: {error}"))?;
    result
        .await
        .map_err(|_| "the state resolution thread stopped without a result".to_owned())
}

/// Resolves `forks`, reading the events it needs from `unstored` or else
/// from `store`. Meant for [`off_shard`], because reading and resolving a
/// large room's state takes long.
///
/// # Errors
///
/// Returns the reasons of [`resolve`].
pub fn resolve_with_store(
    rules: &RoomVersionRules,
    forks: &[StateMap<OwnedEventId>],
    store: &crate::store::Store,
    unstored: Vec<Arc<Pdu>>,
) -> Result<StateMap<OwnedEventId>, String> {
    let known = unstored
        .into_iter()
        .map(|event| (event.event_id.clone(), event));
    let cache = std::cell::RefCell::new(known.collect::<HashMap<_, _>>());
    let fetch = |id: &EventId| {
        if let Some(event) = cache.borrow().get(id) {
            return Some(Arc::clone(event));
        }
        let event = Arc::new(super::state::load_pdu(store, id.as_str()).ok()??);
        cache.borrow_mut().insert(id.to_owned(), event.clone());
        Some(event)
    };
    resolve(rules, forks, &fetch)
}

/// Returns every event reachable from `starts` through `auth_events`, the
/// starts included.
fn auth_chain<'a>(
    starts: impl Iterator<Item = &'a OwnedEventId>,
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) -> HashSet<OwnedEventId> {
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut pending: Vec<OwnedEventId> = starts.cloned().collect();
    while let Some(id) = pending.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(pdu) = fetch(&id) {
            pending.extend(
                pdu.auth_events
                    .iter()
                    .filter(|parent| !seen.contains(*parent))
                    .cloned(),
            );
        }
    }
    seen
}

/// Returns the conflicted state subgraph: the events on an `auth_events`
/// path from one conflicted state event to another, those events included.
fn conflicted_subgraph(
    conflicted: &StateMap<Vec<OwnedEventId>>,
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
) -> HashSet<OwnedEventId> {
    let targets: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
    // Whether an event reaches a conflicted event through its auth events,
    // computed once per event. The auth graph has no cycles.
    let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
    let ancestors = auth_chain(targets.iter(), fetch);
    for start in &ancestors {
        reaches_target(start, &targets, fetch, &mut reaches);
    }
    ancestors
        .into_iter()
        .filter(|id| targets.contains(id) || reaches.get(id).copied().unwrap_or(false))
        .collect()
}

/// Returns whether `id` has a conflicted event among its strict auth
/// ancestors, without recursion so that long auth chains cannot overflow
/// the stack.
fn reaches_target(
    id: &OwnedEventId,
    targets: &HashSet<OwnedEventId>,
    fetch: &impl Fn(&EventId) -> Option<Arc<Pdu>>,
    reaches: &mut HashMap<OwnedEventId, bool>,
) -> bool {
    if let Some(known) = reaches.get(id) {
        return *known;
    }
    // Depth-first, visiting an event after all of its parents.
    let mut stack: Vec<(OwnedEventId, bool)> = vec![(id.clone(), false)];
    while let Some((current, parents_done)) = stack.pop() {
        if reaches.contains_key(&current) {
            continue;
        }
        let parents = fetch(&current)
            .map(|pdu| pdu.auth_events.clone())
            .unwrap_or_default();
        if parents_done {
            let result = parents.iter().any(|parent| {
                targets.contains(parent) || reaches.get(parent).copied().unwrap_or(false)
            });
            reaches.insert(current, result);
            continue;
        }
        stack.push((current, true));
        for parent in parents {
            if !reaches.contains_key(&parent) {
                stack.push((parent, false));
            }
        }
    }
    reaches.get(id).copied().unwrap_or(false)
}
