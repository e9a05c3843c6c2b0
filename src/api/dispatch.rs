//! The dispatcher on every shard: it routes a request, authenticates it,
//! finds the shard that owns its target (room, user or alias) and runs the
//! handler there, returning the response to the connection's shard.

use std::rc::Rc;

use eltrix_shards::ShardId;
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::Value;

use super::{
    client,
    error::{ApiResult, MatrixError},
    request::{ApiRequest, Auth, parse_query},
    router::{self, RoomAction, Route},
};
use crate::{
    auth::token::{hash_token, hashes_equal},
    http::{HttpRequest, HttpResponse},
    shard::Shard,
    store::{DeviceRecord, Map, TokenRecord, keys},
};

/// Serves one HTTP request on the shard that accepted its connection.
pub async fn serve(shard: Rc<Shard>, http: HttpRequest) -> HttpResponse {
    if http.method == "OPTIONS" {
        return HttpResponse::json(200, b"{}".to_vec());
    }
    shard.in_flight.set(shard.in_flight.get() + 1);
    let (peer, method, path) = (http.peer, http.method.clone(), http.path.clone());
    let (result, owner) = route_and_run(&shard, http).await;
    shard.in_flight.set(shard.in_flight.get() - 1);

    let mut response = match result {
        Ok(body) => HttpResponse::json(200, serde_json::to_vec(&body).unwrap_or_default()),
        Err(error) => {
            if error.status >= 500 {
                tracing::warn!(
                    shard_id = shard.id,
                    %peer,
                    method,
                    path,
                    status = error.status,
                    errcode = error.errcode,
                    message = error.message,
                    "request failed"
                );
            }
            HttpResponse::json(error.status, error.body())
        }
    };
    response.headers.push(("x-eltrix-shard", owner.to_string()));
    response
}

async fn route_and_run(shard: &Rc<Shard>, http: HttpRequest) -> (ApiResult<Value>, ShardId) {
    if shard.stopping.get() {
        return (
            Err(MatrixError::unavailable("The server is shutting down")),
            shard.id,
        );
    }
    let route = match router::resolve(&http.method, &http.path) {
        Ok(route) => route,
        Err(error) => return (Err(error), shard.id),
    };
    let query = parse_query(&http.query);
    let auth = if route.needs_auth() {
        match authenticate(shard, &http, &query) {
            Ok(auth) => Some(auth),
            Err(error) => return (Err(error), shard.id),
        }
    } else {
        None
    };
    let owner = owner_of(shard, &route, auth.as_ref());
    let request = ApiRequest {
        route,
        query,
        body: http.body,
        auth,
    };
    let result = shard
        .on_shard(owner, move |shard| async move {
            client::handle(&shard, &request).await
        })
        .await
        .and_then(|result| result);
    (result, owner)
}

/// Resolves the access token from the `Authorization` header or the
/// deprecated `access_token` query parameter.
fn authenticate(shard: &Shard, http: &HttpRequest, query: &[(String, String)]) -> ApiResult<Auth> {
    let header = http
        .authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "));
    let param = query
        .iter()
        .find(|(key, _)| key == "access_token")
        .map(|(_, value)| value.as_str());
    let token = header
        .or(param)
        .ok_or_else(|| MatrixError::missing_token("Missing access token"))?;
    let unknown = || {
        MatrixError::unknown_token("Unknown access token")
            .with_extra(serde_json::json!({ "soft_logout": false }))
    };

    let hash = hash_token(token.trim());
    let Some(record) = shard
        .store
        .get_json::<TokenRecord>(Map::Tokens, hash.as_bytes())?
    else {
        tracing::debug!(shard_id = shard.id, "access token not found");
        return Err(unknown());
    };
    let device_key = keys::pair(&record.user_id, &record.device_id);
    let Some(device) = shard
        .store
        .get_json::<DeviceRecord>(Map::Devices, &device_key)?
    else {
        tracing::debug!(
            shard_id = shard.id,
            user_id = record.user_id,
            "device of access token not found"
        );
        return Err(unknown());
    };
    if !hashes_equal(&device.token_hash, &hash) {
        tracing::debug!(
            shard_id = shard.id,
            user_id = record.user_id,
            "access token replaced"
        );
        return Err(unknown());
    }
    let user_id = OwnedUserId::try_from(record.user_id).map_err(|_| unknown())?;
    Ok(Auth {
        user_id,
        device_id: record.device_id,
    })
}

/// Returns the shard whose state a route reads or writes.
fn owner_of(shard: &Shard, route: &Route, auth: Option<&Auth>) -> ShardId {
    let user_shard = || auth.map_or(shard.id, |auth| shard.owner(auth.user_id.as_str()));
    match route {
        Route::Room(_, RoomAction::Forget) => user_shard(),
        Route::Room(room_id, _) => match OwnedRoomId::try_from(room_id.as_str()) {
            Ok(room_id) => shard.owner(room_id.as_str()),
            Err(_) => shard.id,
        },
        Route::Sync
        | Route::Whoami
        | Route::JoinedRooms
        | Route::Logout
        | Route::LogoutAll
        | Route::CreateFilter(_)
        | Route::GetFilter(..) => user_shard(),
        Route::Alias(_, alias) => shard.owner(alias),
        _ => shard.id,
    }
}
