//! `POST /_matrix/client/v3/knock/{roomIdOrAlias}`: a `knock` membership,
//! which requests an invite to a room whose join rule is `knock` (room
//! version 7 and later) or `knock_restricted` (10 and later).
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#knocking-on-rooms>

use std::rc::Rc;

use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use super::membership::{ReasonBody, member_draft, resolve_room_id_or_alias};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{Room, append::append},
    shard::Shard,
};

/// `POST /_matrix/client/v3/knock/{roomIdOrAlias}`: resolves an alias here,
/// then knocks on the room's shard.
///
/// The `via` and `server_name` query parameters name servers to knock
/// through, which only a room of another server needs. Such rooms are not
/// served: like a join, a knock on one fails with `M_NOT_FOUND`.
pub async fn knock(shard: &Rc<Shard>, request: &ApiRequest, target: &str) -> ApiResult<Value> {
    let room_id = resolve_room_id_or_alias(shard, target)?;
    let sender = request.auth()?.user_id.clone();
    let reason = request.body_or_default::<ReasonBody>()?.reason;
    shard
        .on_shard(shard.owner(room_id.as_str()), move |shard| async move {
            knock_as(&shard, &room_id, sender, reason).await
        })
        .await?
}

async fn knock_as(
    shard: &Rc<Shard>,
    room_id: &OwnedRoomId,
    sender: OwnedUserId,
    reason: Option<String>,
) -> ApiResult<Value> {
    crate::api::admin::check_not_blocked(shard, room_id)?;
    let room = shard.room(room_id)?;
    check_may_knock(&room.borrow(), &sender)?;
    append(
        shard,
        &room,
        vec![member_draft(&sender, &sender, "knock", reason)],
    )
    .await?;
    Ok(json!({ "room_id": room_id }))
}

/// Checks what the authorization rules check of a knock, to explain a
/// rejection in the client's terms. The rules still check the event itself.
///
/// # Errors
///
/// `M_FORBIDDEN` naming the reason.
fn check_may_knock(room: &Room, sender: &OwnedUserId) -> ApiResult<()> {
    let rules = &room.rules.authorization;
    if !rules.knocking {
        return Err(MatrixError::forbidden(format!(
            "Room version {} does not support knocking, which room version 7 added",
            room.version
        )));
    }

    // Without an `m.room.join_rules` event the join rule is `invite`.
    let join_rule = room
        .state_event("m.room.join_rules", "")
        .and_then(|event| {
            let content = event.content_value();
            content
                .get("join_rule")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "invite".to_owned());
    let accepts_knocks = join_rule == "knock"
        || (join_rule == "knock_restricted" && rules.knock_restricted_join_rule);
    if !accepts_knocks {
        return Err(MatrixError::forbidden(format!(
            "The room's join rule is {join_rule:?}, which does not accept knocks"
        )));
    }

    match room.membership(sender.as_str()).as_str() {
        "join" => Err(MatrixError::forbidden(
            "You are already joined to this room",
        )),
        "invite" => Err(MatrixError::forbidden(
            "You are already invited to this room, so join it instead",
        )),
        "ban" => Err(MatrixError::forbidden("You are banned from this room")),
        _ => Ok(()),
    }
}
