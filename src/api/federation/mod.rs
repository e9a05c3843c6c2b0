//! The server-server API endpoints, and the `X-Matrix` check of the
//! requests that need it.

mod acl;
mod events;
mod membership;
mod restricted;
mod transactions;

use std::rc::Rc;

use ruma::CanonicalJsonValue;
use serde_json::{Value, json};

use super::{
    error::{ApiResult, MatrixError},
    request::ApiRequest,
    router::FederationRoute,
};
use crate::{federation::request_auth, http::HttpRequest, shard::Shard};

/// Checks the `X-Matrix` authorization of `http` and returns the server
/// that signed it.
///
/// # Errors
///
/// `M_UNAUTHORIZED` for a missing, malformed or invalid signature, or when
/// the origin's keys cannot be fetched; `M_NOT_JSON` for a body that is
/// not JSON.
pub async fn authenticate(shard: &Shard, http: &HttpRequest) -> ApiResult<String> {
    let header = http
        .authorization
        .as_deref()
        .and_then(request_auth::parse)
        .ok_or_else(|| MatrixError::unauthorized("Missing or malformed X-Matrix authorization"))?;
    if ruma::ServerName::parse(&header.origin).is_err() {
        return Err(MatrixError::unauthorized(format!(
            "Invalid origin {:?}",
            header.origin
        )));
    }
    if header.origin == shard.config.server_name {
        return Err(MatrixError::unauthorized(
            "The request claims to come from this server",
        ));
    }
    let content = if http.body.is_empty() {
        None
    } else {
        let value = serde_json::from_slice::<Value>(&http.body)
            .map_err(|error| MatrixError::not_json(format!("Body is not JSON: {error}")))?;
        let value = CanonicalJsonValue::try_from(value).map_err(|error| {
            MatrixError::bad_json(format!("Body is not canonical JSON: {error}"))
        })?;
        Some(value)
    };
    let uri = if http.query.is_empty() {
        http.path.clone()
    } else {
        format!("{}?{}", http.path, http.query)
    };
    let keys = shard
        .remote_keys
        .keys_for(shard, &header.origin, &header.key)
        .await
        .map_err(|reason| {
            tracing::info!(origin = header.origin, %reason, "failed to get the keys of a requesting server");
            MatrixError::unauthorized(reason)
        })?;
    request_auth::verify(
        &header,
        &shard.config.server_name,
        &http.method,
        &uri,
        content.as_ref(),
        &keys,
    )
    .map_err(|reason| {
        tracing::info!(origin = header.origin, %reason, "rejected a server request signature");
        MatrixError::unauthorized(format!("Invalid X-Matrix signature: {reason}"))
    })?;
    Ok(header.origin)
}

/// Runs a server-server API endpoint.
///
/// # Errors
///
/// Returns the endpoint's error.
pub async fn handle(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    route: &FederationRoute,
) -> ApiResult<Value> {
    match route {
        FederationRoute::Version => Ok(json!({
            "server": { "name": "Eltrix", "version": env!("CARGO_PKG_VERSION") }
        })),
        FederationRoute::QueryDirectory => query_directory(shard, request),
        FederationRoute::MakeJoin(room_id, user_id) => {
            membership::make_join(shard, request, room_id, user_id).await
        }
        FederationRoute::SendJoin(room_id, event_id) => {
            membership::send_join(shard, request, room_id, event_id).await
        }
        FederationRoute::Send(_) => transactions::send(shard, request).await,
        FederationRoute::Event(event_id) => events::event(shard, request, event_id).await,
        FederationRoute::MissingEvents(room_id) => events::missing_events(shard, request, room_id),
        FederationRoute::StateIds(room_id) => events::state_ids(shard, request, room_id),
        FederationRoute::State(room_id) => events::state(shard, request, room_id),
        FederationRoute::EventAuth(room_id, event_id) => {
            events::event_auth(shard, request, room_id, event_id)
        }
        FederationRoute::Backfill(room_id) => events::backfill(shard, request, room_id),
    }
}

/// `GET /_matrix/federation/v1/query/directory`: a local alias's room.
fn query_directory(shard: &Shard, request: &ApiRequest) -> ApiResult<Value> {
    let alias = request
        .query("room_alias")
        .ok_or_else(|| MatrixError::missing_param("Missing room_alias"))?;
    let parsed = ruma::RoomAliasId::parse(alias)
        .map_err(|_| MatrixError::invalid_param("Invalid room alias"))?;
    if parsed.server_name() != shard.config.server_name.as_str() {
        return Err(MatrixError::not_found("Room alias is not on this server"));
    }
    let room_id = super::client::directory::resolve(shard, alias)?;
    Ok(json!({ "room_id": room_id, "servers": [shard.config.server_name] }))
}
