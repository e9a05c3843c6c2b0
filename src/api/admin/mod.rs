//! The admin API under `/_eltrix/admin/v1/`, for accounts whose `admin`
//! flag is set, and Synapse-compatible shared-secret registration at
//! `/_synapse/admin/v1/register`. `docs/admin.md` describes each endpoint.
//!
//! Handlers start on the shard that accepted the connection and move to the
//! shard that owns each user or room they change.

mod account;
mod deactivate;
mod delete_room;
mod deletion;
pub mod first_admin;
mod page;
mod purge;
mod rooms;
mod shared_secret;
mod statistics;
mod users;

use std::rc::Rc;

use serde_json::Value;

pub use delete_room::check_not_blocked;
pub use shared_secret::{nonce as shared_secret_nonce, register as shared_secret_register};

use super::{
    error::{ApiResult, MatrixError},
    request::ApiRequest,
    router::AdminRoute,
};
use crate::shard::Shard;

/// Runs the admin endpoint `route` after checking that the caller is an
/// admin.
///
/// # Errors
///
/// `M_FORBIDDEN` for users who are not admins, or the endpoint's error.
pub async fn handle(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    route: &AdminRoute,
) -> ApiResult<Value> {
    if !request.auth()?.admin {
        return Err(MatrixError::forbidden(
            "The admin API is only for server admins",
        ));
    }
    match route {
        AdminRoute::ListUsers => users::list(shard, request),
        AdminRoute::CreateUser => users::create(shard, request).await,
        AdminRoute::GetUser(user_id) => users::get(shard, user_id),
        AdminRoute::DeactivateUser(user_id) => {
            deactivate::deactivate(shard, request, user_id).await
        }
        AdminRoute::Statistics => statistics::statistics(shard),
        AdminRoute::ListRooms => rooms::list(shard, request),
        AdminRoute::GetRoom(room_id) => rooms::get(shard, room_id).await,
        AdminRoute::DeleteRoom(room_id) => delete_room::delete(shard, request, room_id).await,
        AdminRoute::PurgeHistory(room_id) => purge::purge(shard, request, room_id).await,
    }
}
