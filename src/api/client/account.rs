//! `GET /_matrix/client/v3/account/whoami` and
//! `GET /_matrix/client/v3/joined_rooms`, on the user's shard.

use serde_json::{Value, json};

use crate::{
    api::{error::ApiResult, request::ApiRequest},
    shard::Shard,
};

/// `GET /_matrix/client/v3/account/whoami`.
pub fn whoami(request: &ApiRequest) -> ApiResult<Value> {
    let auth = request.auth()?;
    Ok(json!({ "user_id": auth.user_id, "device_id": auth.device_id, "is_guest": false }))
}

/// `GET /_matrix/client/v3/joined_rooms`, from the user's sync index.
pub fn joined_rooms(shard: &Shard, request: &ApiRequest) -> ApiResult<Value> {
    let auth = request.auth()?;
    let mut index = shard.sync.borrow_mut();
    let user = index.user(&shard.store, &auth.user_id)?;
    let mut rooms: Vec<String> = user
        .rooms
        .iter()
        .filter(|(_, room)| room.membership == "join")
        .map(|(room_id, _)| room_id.to_string())
        .collect();
    rooms.sort();
    Ok(json!({ "joined_rooms": rooms }))
}
