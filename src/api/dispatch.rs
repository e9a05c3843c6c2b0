//! The dispatcher on every shard: it routes a request, authenticates it,
//! finds the shard that owns its target (room, user or alias) and runs the
//! handler there, returning the response to the connection's shard.

use std::{rc::Rc, time::Instant};

use eltrix_shards::ShardId;
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::Value;

use super::{
    client,
    error::{ApiResult, MatrixError},
    request::{ApiRequest, Auth, parse_query},
    router::{self, FederationRoute, RoomAction, Route},
};
use crate::{
    auth::token::{hash_token, hashes_equal},
    http::{HttpRequest, HttpResponse},
    shard::Shard,
    store::{DeviceRecord, Map, TokenRecord, UserRecord, keys},
};

/// Serves one HTTP request on the shard that accepted its connection.
pub async fn serve(shard: Rc<Shard>, http: HttpRequest) -> HttpResponse {
    if http.method == "OPTIONS" {
        return HttpResponse::json(200, b"{}".to_vec());
    }
    let started = Instant::now();
    shard.in_flight.set(shard.in_flight.get() + 1);
    let (peer, method, path) = (http.peer, http.method.clone(), http.path.clone());
    let outcome = route_and_run(&shard, http).await;
    shard.in_flight.set(shard.in_flight.get() - 1);

    let mut response = match outcome.result {
        Ok(Body::Json(body)) => {
            HttpResponse::json(200, serde_json::to_vec(&body).unwrap_or_default())
        }
        Ok(Body::Serialized(bytes)) => HttpResponse::json(200, bytes),
        Ok(Body::Text(text)) => HttpResponse {
            content_type: "text/plain; version=0.0.4",
            ..HttpResponse::json(200, text.into_bytes())
        },
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
            let mut response = HttpResponse::json(error.status, error.body());
            if let Some(retry_after_ms) = error.retry_after_ms() {
                // `Retry-After` is in whole seconds, rounded up.
                let seconds = retry_after_ms.div_ceil(1000).max(1);
                response.headers.push(("retry-after", seconds.to_string()));
            }
            response
        }
    };
    shard.metrics.record_request(
        &method,
        outcome.template,
        response.status,
        started.elapsed(),
    );
    response
        .headers
        .push(("x-eltrix-shard", outcome.owner.to_string()));
    response
}

/// A response body: JSON for the Matrix APIs, text for `/metrics`.
enum Body {
    Json(Value),
    /// JSON already serialized on the owning shard.
    Serialized(Vec<u8>),
    Text(String),
}

struct Outcome {
    result: ApiResult<Body>,
    owner: ShardId,
    /// Route template for metrics; `"unknown"` for unrouted requests.
    template: &'static str,
}

async fn route_and_run(shard: &Rc<Shard>, http: HttpRequest) -> Outcome {
    let fail = |error, template| Outcome {
        result: Err(error),
        owner: shard.id,
        template,
    };
    if shard.stopping.get() {
        return fail(
            MatrixError::unavailable("The server is shutting down"),
            "unknown",
        );
    }
    let route = match router::resolve(&http.method, &http.path) {
        Ok(route) => route,
        Err(error) => return fail(error, "unknown"),
    };
    let template = route.template();
    if matches!(route, Route::Metrics) {
        let result = scrape(shard).await.map(Body::Text);
        return Outcome {
            result,
            owner: shard.id,
            template,
        };
    }

    let query = parse_query(&http.query);
    let auth = if route.needs_auth() {
        match authenticate(shard, &http, &query) {
            Ok(auth) => Some(auth),
            Err(error) => return fail(error, template),
        }
    } else {
        None
    };
    let origin = match &route {
        Route::Federation(federation) if federation.needs_server_auth() => {
            match super::federation::authenticate(shard, &http).await {
                Ok(origin) => Some(origin),
                Err(error) => return fail(error, template),
            }
        }
        _ => None,
    };
    let limited =
        crate::ratelimit::check(shard, &route, auth.as_ref(), http.peer.ip(), &http.body).await;
    if let Err(error) = limited {
        return fail(error, template);
    }
    let owner = owner_of(shard, &route, auth.as_ref());
    let request = ApiRequest {
        route,
        query,
        body: http.body,
        auth,
        origin,
    };
    let result = shard
        .on_shard(owner, move |shard| async move {
            shard.metrics.record_handled();
            if matches!(request.route, Route::Sync) {
                crate::sync::handler::sync(&shard, &request)
                    .await
                    .map(Body::Serialized)
            } else {
                client::handle(&shard, &request).await.map(Body::Json)
            }
        })
        .await
        .and_then(|result| result);
    Outcome {
        result,
        owner,
        template,
    }
}

/// Collects every shard's metrics over the mesh and renders them.
async fn scrape(shard: &Rc<Shard>) -> ApiResult<String> {
    let mut snapshots = Vec::with_capacity(shard.nr_shards());
    for target in 0..shard.nr_shards() {
        let snapshot = shard
            .on_shard(target, |shard| async move {
                let waiters = shard.sync.borrow().waiter_count();
                shard.metrics.snapshot(shard.id, waiters)
            })
            .await?;
        snapshots.push(snapshot);
    }
    Ok(crate::metrics::render(&snapshots))
}

/// Resolves the access token from the `Authorization` header or the
/// deprecated `access_token` query parameter.
fn authenticate(shard: &Shard, http: &HttpRequest, query: &[(String, String)]) -> ApiResult<Auth> {
    let header = http
        .authorization
        .as_deref()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
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
    if let Some(auth) = shard.tokens.get(&hash) {
        return Ok(auth);
    }
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
    let admin = shard
        .store
        .get_json::<UserRecord>(Map::Users, record.user_id.as_bytes())?
        .is_some_and(|user| user.admin);
    let user_id = OwnedUserId::try_from(record.user_id).map_err(|_| unknown())?;
    let auth = Auth {
        user_id,
        device_id: record.device_id,
        admin,
    };
    shard.tokens.insert(hash, auth.clone());
    Ok(auth)
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
        Route::Federation(
            FederationRoute::MakeJoin(room_id, _)
            | FederationRoute::SendJoin(room_id, _)
            | FederationRoute::MissingEvents(room_id)
            | FederationRoute::StateIds(room_id)
            | FederationRoute::State(room_id)
            | FederationRoute::EventAuth(room_id, _)
            | FederationRoute::Backfill(room_id),
        ) => shard.owner(room_id),
        _ => shard.id,
    }
}
