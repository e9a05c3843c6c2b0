//! Membership endpoints: `POST /_matrix/client/v3/join/{roomIdOrAlias}`
//! and `POST /_matrix/client/v3/rooms/{roomId}/{join,invite,leave,kick,ban,
//! unban,forget}`. Every change is an `m.room.member` event checked by the
//! room version's authorization rules. A join to a restricted room without
//! an invite must meet one of the room's allow conditions, and a local member
//! authorises it (`room::restricted`).

use std::{cell::RefCell, collections::BTreeMap, rc::Rc};

use eltrix_shards::ShardId;
use ruma::{OwnedRoomId, OwnedUserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::member_room;
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{
        EventDraft, Room,
        append::append,
        restricted::{self, Restriction},
    },
    shard::Shard,
    store::{Map, WriteBatch, keys},
};

#[derive(Deserialize)]
struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

#[derive(Default, Deserialize)]
pub(super) struct ReasonBody {
    pub(super) reason: Option<String>,
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

/// Returns the room that a `{roomIdOrAlias}` path parameter names, reading
/// an alias's record from the store on this shard.
///
/// # Errors
///
/// `M_INVALID_PARAM` for an invalid room ID or alias, `M_NOT_FOUND` for an
/// alias unknown here, which includes every alias of another server.
pub fn resolve_room_id_or_alias(shard: &Shard, target: &str) -> ApiResult<OwnedRoomId> {
    if target.starts_with('#') {
        super::directory::resolve(shard, target)
    } else {
        parse_room_id(target)
    }
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}`: resolves an alias here,
/// then joins on the room's shard.
pub async fn join_by_id_or_alias(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    target: &str,
) -> ApiResult<Value> {
    let room_id = resolve_room_id_or_alias(shard, target)?;
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
    let mut draft = member_draft(&sender, &sender, "join", reason);
    let restriction = restricted::restriction(&room.borrow(), &sender);
    if let Some(restriction) = restriction {
        authorise_restricted_join(shard, &room, &restriction, &mut draft).await?;
    }
    append(shard, &room, vec![draft]).await?;
    Ok(json!({ "room_id": room_id }))
}

/// Checks that the sender of a join `draft` is joined to one of the rooms
/// that `restriction` allows, then names a local member who may invite in
/// the draft's `join_authorised_via_users_server`.
///
/// # Errors
///
/// `M_FORBIDDEN` when the sender meets no condition or no local member may
/// invite, a storage error, or 503 if a shard has stopped.
async fn authorise_restricted_join(
    shard: &Rc<Shard>,
    room: &Rc<RefCell<Room>>,
    restriction: &Restriction,
    draft: &mut EventDraft,
) -> ApiResult<()> {
    let Some(joined) = find_joined_room(shard, &draft.sender, &restriction.allowed_rooms).await?
    else {
        return Err(not_allowed(restriction));
    };

    // The room's state may have changed during the wait, so the join rule and
    // the authoriser come from the state that the join is built on, with no
    // await in between.
    let current = restricted::restriction(&room.borrow(), &draft.sender);
    let Some(current) = current else {
        // The join rule is no longer restricted, or the user was invited
        // meanwhile, so the authorization rules decide without an authoriser.
        return Ok(());
    };
    if !current.allowed_rooms.contains(&joined) {
        return Err(not_allowed(&current));
    }
    let authoriser = restricted::choose_authoriser(&room.borrow(), &shard.config.server_name)
        .ok_or_else(|| {
            MatrixError::forbidden(
                "No user of this server is joined to the room with the power to invite, so \
                 none can authorise the join. Ask a room admin for an invite",
            )
        })?;
    draft.content["join_authorised_via_users_server"] = json!(authoriser);
    Ok(())
}

/// Returns the first of `rooms` that `user_id` is joined to. Each room's
/// membership is read on the shard that owns the room, with one task per
/// shard, and a room this server does not know matches nothing.
pub(crate) async fn find_joined_room(
    shard: &Rc<Shard>,
    user_id: &OwnedUserId,
    rooms: &[OwnedRoomId],
) -> ApiResult<Option<OwnedRoomId>> {
    let mut rooms_by_owner: BTreeMap<ShardId, Vec<OwnedRoomId>> = BTreeMap::new();
    for room_id in rooms {
        let owner = shard.owner(room_id.as_str());
        rooms_by_owner
            .entry(owner)
            .or_default()
            .push(room_id.clone());
    }

    for (owner, rooms) in rooms_by_owner {
        let user_id = user_id.clone();
        let joined = shard
            .on_shard(owner, move |shard| async move {
                first_joined_room(&shard, &user_id, &rooms)
            })
            .await??;
        if joined.is_some() {
            return Ok(joined);
        }
    }
    Ok(None)
}

/// Returns the first of `rooms`, all owned by `shard`, that `user_id` is
/// joined to.
fn first_joined_room(
    shard: &Shard,
    user_id: &OwnedUserId,
    rooms: &[OwnedRoomId],
) -> ApiResult<Option<OwnedRoomId>> {
    for room_id in rooms {
        let room = match shard.room(room_id) {
            Ok(room) => room,
            Err(error) if error.errcode == "M_NOT_FOUND" => continue,
            Err(error) => return Err(error),
        };
        if room.borrow().membership(user_id.as_str()) == "join" {
            return Ok(Some(room_id.clone()));
        }
    }
    Ok(None)
}

/// Returns the error for a join that meets none of the allow conditions.
fn not_allowed(restriction: &Restriction) -> MatrixError {
    let rule = &restriction.join_rule;
    let knock_hint = if rule == "knock_restricted" {
        ". Knock to request an invite instead"
    } else {
        ""
    };
    if restriction.allowed_rooms.is_empty() {
        return MatrixError::forbidden(format!(
            "You are not invited, and the room's {rule} join rule allows no room whose \
             members may join{knock_hint}"
        ));
    }
    let rooms: Vec<&str> = restriction
        .allowed_rooms
        .iter()
        .map(|room_id| room_id.as_str())
        .collect();
    MatrixError::forbidden(format!(
        "You are not invited, and not joined to any room that the room's {rule} join rule \
         allows: {}{knock_hint}",
        rooms.join(", ")
    ))
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
