//! Joins of users of other servers to restricted rooms. `make_join` names
//! a local member who may invite in the template's
//! `join_authorised_via_users_server`, and `send_join` adds this server's
//! signature to a join that names one of its users, as the authorization
//! rules require.

use std::{cell::RefCell, rc::Rc};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedUserId,
    signatures::hash_and_sign_event,
};
use serde_json::json;

use crate::{
    api::{
        client::membership::find_joined_room,
        error::{ApiResult, MatrixError},
    },
    room::{EventDraft, Room, restricted},
    shard::Shard,
    store::Map,
};

/// Returns the error for a user who is joined to none of `allowed_rooms`.
/// It is `M_FORBIDDEN` when this server has one of those rooms and so could
/// check the user's membership. Otherwise it is `M_UNABLE_TO_AUTHORISE_JOIN`,
/// so that the joining server tries another resident server.
fn not_joined(shard: &Shard, allowed_rooms: &[OwnedRoomId]) -> MatrixError {
    let known = allowed_rooms.iter().any(|room_id| {
        shard
            .store
            .get(Map::Rooms, room_id.as_bytes())
            .is_ok_and(|record| record.is_some())
    });
    if known {
        MatrixError::forbidden("The user is not joined to any room that the join rule allows")
    } else {
        MatrixError::unable_to_authorise_join(
            "This server has none of the rooms that the join rule allows",
        )
    }
}

/// Checks that `room`'s current join rule still allows `user_id` through
/// `joined`, after an await during which the state may have changed. A rule
/// that no longer restricts the user allows the join too.
fn still_allowed(room: &Rc<RefCell<Room>>, user_id: &OwnedUserId, joined: &OwnedRoomId) -> bool {
    restricted::restriction(&room.borrow(), user_id)
        .is_none_or(|current| current.allowed_rooms.contains(joined))
}

/// Names the authorising member in `draft`, the join template of `user_id`,
/// when the room's join rule is restricted and the user is joined to one of
/// the allowed rooms that this server has.
///
/// # Errors
///
/// `M_FORBIDDEN` when the user meets no allow condition that this server
/// can check, `M_UNABLE_TO_AUTHORISE_JOIN` when it can check none, and
/// `M_UNABLE_TO_GRANT_JOIN` when no local member may invite.
pub async fn authorise_template(
    shard: &Rc<Shard>,
    room: &Rc<RefCell<Room>>,
    user_id: &OwnedUserId,
    draft: &mut EventDraft,
) -> ApiResult<()> {
    let restriction = restricted::restriction(&room.borrow(), user_id);
    let Some(restriction) = restriction else {
        return Ok(());
    };
    let joined = find_joined_room(shard, user_id, &restriction.allowed_rooms).await?;
    let Some(joined) = joined else {
        return Err(not_joined(shard, &restriction.allowed_rooms));
    };
    if !still_allowed(room, user_id, &joined) {
        return Err(MatrixError::forbidden(
            "The room's join rule changed while the join was checked; try again",
        ));
    }
    let authoriser = restricted::choose_authoriser(&room.borrow(), &shard.config.server_name)
        .ok_or_else(|| {
            MatrixError::unable_to_grant_join(
                "No user of this server in the room has the power to invite",
            )
        })?;
    draft.content["join_authorised_via_users_server"] = json!(authoriser);
    Ok(())
}

/// Signs `join` as this server when its `join_authorised_via_users_server`
/// names a local user, after checking again that its sender meets an allow
/// condition. A join that names no local user is left as it is.
///
/// # Errors
///
/// `M_FORBIDDEN` when the sender meets no allow condition that this server
/// can check, and `M_BAD_JSON` when the event's content hash is wrong or the
/// event cannot be signed.
pub async fn countersign(
    shard: &Rc<Shard>,
    room: &Rc<RefCell<Room>>,
    sender: &OwnedUserId,
    join: &mut CanonicalJsonObject,
) -> ApiResult<()> {
    let authoriser = match join.get("content") {
        Some(CanonicalJsonValue::Object(content)) => {
            match content.get("join_authorised_via_users_server") {
                Some(CanonicalJsonValue::String(user)) => user.clone(),
                _ => return Ok(()),
            }
        }
        _ => return Ok(()),
    };
    let local_suffix = format!(":{}", shard.config.server_name);
    if !authoriser.ends_with(&local_suffix) {
        return Ok(());
    }
    let restriction = restricted::restriction(&room.borrow(), sender);
    if let Some(restriction) = restriction {
        let joined = find_joined_room(shard, sender, &restriction.allowed_rooms).await?;
        let allowed = joined.is_some_and(|joined| still_allowed(room, sender, &joined));
        if !allowed {
            return Err(MatrixError::forbidden(
                "The user is not joined to any room that the join rule allows",
            ));
        }
    }

    // Signing recomputes the content hash, which must match the sender's.
    let rules = room.borrow().rules.clone();
    let mut signed = join.clone();
    hash_and_sign_event(
        &shard.config.server_name,
        &shard.key.pair,
        &mut signed,
        &rules.redaction,
    )
    .map_err(|error| MatrixError::bad_json(format!("The join cannot be signed: {error}")))?;
    if signed.get("hashes") != join.get("hashes") {
        return Err(MatrixError::bad_json(
            "The join's content hash does not match its content",
        ));
    }
    *join = signed;
    Ok(())
}
