//! Membership endpoints: `POST /_matrix/client/v3/join/{roomIdOrAlias}`
//! and `POST /_matrix/client/v3/rooms/{roomId}/{join,invite,leave,kick,ban,
//! unban,forget}`. Every change is an `m.room.member` event checked by the
//! room version's authorization rules.

use std::rc::Rc;

use ruma::{OwnedRoomId, OwnedUserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::member_room;
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{EventDraft, append::append},
    shard::Shard,
    store::{Map, WriteBatch, keys},
};

#[derive(Deserialize)]
struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct ReasonBody {
    reason: Option<String>,
}

/// Parses a room ID from a path.
///
/// # Errors
///
/// `M_INVALID_PARAM` if it is not a valid room ID.
pub fn parse_room_id(room_id: &str) -> ApiResult<OwnedRoomId> {
    let invalid = || MatrixError::invalid_param(format!("Invalid room ID {room_id:?}"));
    if room_id.len() < 2
        || room_id.len() > 255
        || room_id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid());
    }
    OwnedRoomId::try_from(room_id).map_err(|_| invalid())
}

/// Parses a user ID from a request, accepting only the historical grammar:
/// a localpart of printable ASCII other than `:`, then a server name.
///
/// # Errors
///
/// `M_INVALID_PARAM` for anything else.
pub fn parse_user_id(user_id: &str) -> ApiResult<OwnedUserId> {
    let invalid = || MatrixError::invalid_param(format!("Invalid user ID {user_id:?}"));
    let localpart = user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .map(|(local, _)| local);
    let printable = |c: char| ('\u{21}'..='\u{7e}').contains(&c) && c != ':';
    match localpart {
        Some(local)
            if !local.is_empty() && local.chars().all(printable) && user_id.len() <= 255 =>
        {
            OwnedUserId::try_from(user_id).map_err(|_| invalid())
        }
        _ => Err(invalid()),
    }
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}`: resolves an alias here,
/// then joins on the room's shard.
pub async fn join_by_id_or_alias(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    target: &str,
) -> ApiResult<Value> {
    let room_id = if target.starts_with('#') {
        super::directory::resolve(shard, target)?
    } else {
        parse_room_id(target)?
    };
    let sender = request.auth()?.user_id.clone();
    let reason = request.body_or_default::<ReasonBody>()?.reason;
    shard
        .on_shard(shard.owner(room_id.as_str()), move |shard| async move {
            join_as(&shard, &room_id, sender, reason).await
        })
        .await?
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join`.
pub async fn join(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    let reason = request.body_or_default::<ReasonBody>()?.reason;
    join_as(shard, room_id, request.auth()?.user_id.clone(), reason).await
}

async fn join_as(
    shard: &Rc<Shard>,
    room_id: &OwnedRoomId,
    sender: OwnedUserId,
    reason: Option<String>,
) -> ApiResult<Value> {
    crate::api::admin::check_not_blocked(shard, room_id)?;
    let room = shard.room(room_id)?;
    append(
        shard,
        &room,
        vec![member_draft(&sender, &sender, "join", reason)],
    )
    .await?;
    Ok(json!({ "room_id": room_id }))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`.
pub async fn invite(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    change(shard, request, room_id, "invite").await
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`.
pub async fn leave(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    let sender = request.auth()?.user_id.clone();
    let reason = request.body_or_default::<ReasonBody>()?.reason;
    let room = member_room(shard, room_id)?;
    append(
        shard,
        &room,
        vec![member_draft(&sender, &sender, "leave", reason)],
    )
    .await?;
    Ok(json!({}))
}

/// Sets another user's membership: invite, kick (`leave`), ban or unban
/// (`leave` of a banned user).
pub async fn change(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    membership: &str,
) -> ApiResult<Value> {
    let sender = request.auth()?.user_id.clone();
    let body: TargetBody = request.body()?;
    let target = parse_user_id(&body.user_id)?;
    let room = shard.room(room_id)?;
    let is_unban = matches!(
        request.route,
        crate::api::router::Route::Room(_, crate::api::router::RoomAction::Unban)
    );
    if is_unban && room.borrow().membership(target.as_str()) != "ban" {
        return Err(MatrixError::forbidden("The user is not banned"));
    }
    if membership == "invite" {
        check_invitee(shard, &target)?;
    }
    append(
        shard,
        &room,
        vec![member_draft(&sender, &target, membership, body.reason)],
    )
    .await?;
    Ok(json!({}))
}

/// Rejects invites that no one could accept: users of other servers,
/// because invites over federation are not served, and local users who do
/// not exist.
///
/// # Errors
///
/// `M_FORBIDDEN` for a remote user, `M_NOT_FOUND` for an unknown local user.
pub fn check_invitee(shard: &Shard, target: &OwnedUserId) -> ApiResult<()> {
    if target.server_name() != shard.config.server_name.as_str() {
        return Err(MatrixError::forbidden(format!(
            "Cannot invite {target}: this server does not federate with {}",
            target.server_name()
        )));
    }
    if shard.store.get(Map::Users, target.as_bytes())?.is_none() {
        return Err(MatrixError::not_found(format!("Unknown user {target}")));
    }
    Ok(())
}

/// Builds a membership event. Joins carry the display name, which is the user's
/// localpart while profiles cannot be edited.
pub fn member_draft(
    sender: &OwnedUserId,
    target: &OwnedUserId,
    membership: &str,
    reason: Option<String>,
) -> EventDraft {
    let mut content = json!({ "membership": membership });
    if membership == "join" {
        content["displayname"] = json!(target.localpart());
    }
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    EventDraft::state(sender, "m.room.member", target.as_str(), content)
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`, on the user's shard.
pub async fn forget(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    let user_id = request.auth()?.user_id.clone();
    let membership = {
        let mut index = shard.sync.borrow_mut();
        let user = index.user(&shard.store, &user_id)?;
        user.rooms.get(room_id).map(|room| room.membership.clone())
    };
    match membership.as_deref() {
        None => {
            return Err(MatrixError::not_found(
                "You have no membership in this room",
            ));
        }
        Some("join" | "invite" | "knock") => {
            return Err(MatrixError::unknown("Leave the room before forgetting it"));
        }
        Some(_) => {}
    }
    let mut batch = WriteBatch::default();
    batch.delete(
        Map::UserRooms,
        keys::pair(user_id.as_str(), room_id.as_str()),
    );
    shard.committer.commit(batch).await?;
    shard.sync.borrow_mut().forget(&user_id, room_id);
    Ok(json!({}))
}
