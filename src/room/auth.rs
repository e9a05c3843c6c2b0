//! The room version's authorization rules, applied through ruma-state-res
//! against the room's current state.

use ruma::{CanonicalJsonValue, events::TimelineEventType};

use super::{pdu::Pdu, state::Room, versions};

/// Checks `pdu` against the state-independent and state-dependent
/// authorization rules of `room`'s version, and the two rules that ruma
/// leaves to the server: a create event's `room_version` must be one this
/// server supports, and a join authorised by a user of another server must
/// carry that server's signature.
///
/// # Errors
///
/// Returns the reason the rules reject the event.
pub fn check(room: &Room, pdu: &Pdu) -> Result<(), String> {
    check_server_rules(pdu)?;
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

/// Checks the two rules that ruma leaves to the server; see [`check`].
///
/// # Errors
///
/// Returns the reason the rules reject the event.
pub fn check_server_rules(pdu: &Pdu) -> Result<(), String> {
    let content = pdu.content_value();
    if pdu.kind == TimelineEventType::RoomCreate
        && let Some(version) = content.get("room_version")
        && !version
            .as_str()
            .is_some_and(|version| versions::SUPPORTED.contains(&version))
    {
        return Err(format!(
            "unknown room version {version} in the create event"
        ));
    }
    if pdu.kind == TimelineEventType::RoomMember
        && let Some(authoriser) = content
            .get("join_authorised_via_users_server")
            .and_then(serde_json::Value::as_str)
    {
        let server = authoriser.split_once(':').map_or("", |(_, server)| server);
        let signed = matches!(
            pdu.json.get("signatures"),
            Some(CanonicalJsonValue::Object(signatures)) if signatures.contains_key(server)
        );
        if !signed {
            return Err(format!(
                "the join is not signed by {server:?}, the server of its authoriser {authoriser}"
            ));
        }
    }
    Ok(())
}
