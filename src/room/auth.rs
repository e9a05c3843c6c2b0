//! The room version's authorization rules, applied through ruma-state-res
//! against the room's current state.

use super::{pdu::Pdu, state::Room};

/// Checks `pdu` against the state-independent and state-dependent
/// authorization rules of `room`'s version.
///
/// # Errors
///
/// Returns the reason the rules reject the event.
pub fn check(room: &Room, pdu: &Pdu) -> Result<(), String> {
    let rules = &room.rules.authorization;
    let fetch_event = |id: &ruma::EventId| room.state_event_by_id(id).map(|event| &**event);
    ruma::state_res::check_state_independent_auth_rules(rules, pdu, fetch_event)?;

    let fetch_state = |kind: &ruma::events::StateEventType, key: &str| {
        room.state
            .get(&(kind.to_string(), key.to_owned()))
            .map(|event| &**event)
    };
    ruma::state_res::check_state_dependent_auth_rules(rules, pdu, fetch_state)
}
