//! Client-Server API handlers, one module per group of endpoints. Each
//! handler runs on the shard the dispatcher chose for its route.

mod account;
mod context;
mod create_room;
pub(crate) mod directory;
mod discovery;
pub mod filter;
mod knock;
mod login;
mod members;
pub(crate) mod membership;
mod messages;
mod register;
mod send;
mod state;
mod upgrade;

use std::rc::Rc;

use serde_json::Value;

use super::{
    error::ApiResult,
    request::ApiRequest,
    router::{AliasAction, RoomAction, Route},
};
use crate::shard::Shard;

pub(crate) use login::{IssuedDevice, issue_device};
pub(crate) use register::validate_localpart;

/// Runs the handler of `request.route`.
pub async fn handle(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    match &request.route {
        Route::Versions => Ok(discovery::versions()),
        Route::WellKnownClient => Ok(discovery::well_known(shard)),
        Route::ServerKeys => super::server_keys::server_keys(shard),
        Route::Health => Ok(discovery::health()),
        Route::HealthLive => Ok(discovery::live()),
        Route::HealthReady => discovery::ready(shard).await,
        Route::Metrics => Err(super::error::MatrixError::unrecognized(
            "Metrics are served by the dispatcher",
        )),
        Route::Capabilities => Ok(discovery::capabilities()),
        Route::Register => register::register(shard, request).await,
        Route::RegisterAvailable => register::available(shard, request),
        Route::RegistrationTokenValidity => register::token_validity(shard, request),
        Route::LoginFlows => Ok(login::flows()),
        Route::Login => login::login(shard, request).await,
        Route::Logout => login::logout(shard, request).await,
        Route::LogoutAll => login::logout_all(shard, request).await,
        Route::Whoami => account::whoami(request),
        Route::JoinedRooms => account::joined_rooms(shard, request),
        Route::CreateRoom => create_room::create_room(shard, request).await,
        Route::JoinByIdOrAlias(target) => {
            membership::join_by_id_or_alias(shard, request, target).await
        }
        Route::KnockByIdOrAlias(target) => knock::knock(shard, request, target).await,
        Route::Sync => Err(super::error::MatrixError::unrecognized(
            "Sync is served by the dispatcher",
        )),
        Route::CreateFilter(user_id) => filter::create(shard, request, user_id).await,
        Route::GetFilter(user_id, filter_id) => filter::get(shard, request, user_id, filter_id),
        Route::Alias(AliasAction::Get, alias) => directory::get(shard, alias).await,
        Route::Alias(AliasAction::Put, alias) => directory::put(shard, request, alias).await,
        Route::Alias(AliasAction::Delete, alias) => directory::delete(shard, request, alias).await,
        Route::Room(room_id, action) => room(shard, request, room_id, action).await,
        Route::SharedSecretNonce => crate::api::admin::shared_secret_nonce(shard).await,
        Route::SharedSecretRegister => {
            crate::api::admin::shared_secret_register(shard, request).await
        }
        Route::Admin(route) => crate::api::admin::handle(shard, request, route).await,
        Route::Federation(route) => crate::api::federation::handle(shard, request, route).await,
    }
}

async fn room(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &str,
    action: &RoomAction,
) -> ApiResult<Value> {
    let room_id = membership::parse_room_id(room_id)?;
    match action {
        RoomAction::Join => membership::join(shard, request, &room_id).await,
        RoomAction::Invite => membership::invite(shard, request, &room_id).await,
        RoomAction::Leave => membership::leave(shard, request, &room_id).await,
        RoomAction::Kick => membership::change(shard, request, &room_id, "leave").await,
        RoomAction::Ban => membership::change(shard, request, &room_id, "ban").await,
        RoomAction::Unban => membership::change(shard, request, &room_id, "leave").await,
        RoomAction::Forget => membership::forget(shard, request, &room_id).await,
        RoomAction::JoinedMembers => members::joined_members(shard, request, &room_id),
        RoomAction::Members => members::members(shard, request, &room_id),
        RoomAction::AllState => state::all_state(shard, request, &room_id),
        RoomAction::Upgrade => upgrade::upgrade(shard, request, &room_id).await,
        RoomAction::GetState(kind, key) => state::get_state(shard, request, &room_id, kind, key),
        RoomAction::PutState(kind, key) => {
            state::put_state(shard, request, &room_id, kind, key).await
        }
        RoomAction::Send(kind, txn) => send::send(shard, request, &room_id, kind, txn).await,
        RoomAction::Redact(event_id, txn) => {
            send::redact(shard, request, &room_id, event_id, txn).await
        }
        RoomAction::Event(event_id) => messages::event(shard, request, &room_id, event_id),
        RoomAction::Context(event_id) => context::context(shard, request, &room_id, event_id),
        RoomAction::Messages => messages::messages(shard, request, &room_id),
        RoomAction::Aliases => directory::room_aliases(shard, request, &room_id),
    }
}
