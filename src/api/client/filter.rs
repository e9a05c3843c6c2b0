//! `POST /_matrix/client/v3/user/{userId}/filter` and
//! `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`, on the user's
//! shard.

use serde_json::{Value, json};

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    auth::token::random_id,
    shard::Shard,
    store::{Map, WriteBatch, keys},
    sync::filter::SyncFilter,
};

fn check_owner(request: &ApiRequest, user_id: &str) -> ApiResult<()> {
    if request.auth()?.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Filters belong to their own user"));
    }
    Ok(())
}

/// `POST /_matrix/client/v3/user/{userId}/filter`.
pub async fn create(shard: &Shard, request: &ApiRequest, user_id: &str) -> ApiResult<Value> {
    check_owner(request, user_id)?;
    let filter = Value::Object(request.body_object()?);
    serde_json::from_value::<SyncFilter>(filter.clone())
        .map_err(|e| MatrixError::bad_json(format!("Invalid filter: {e}")))?;
    let filter_id = random_id(12).to_lowercase();
    let mut batch = WriteBatch::default();
    batch.put_json(Map::Filters, keys::pair(user_id, &filter_id), &filter);
    shard.committer.commit(batch).await?;
    Ok(json!({ "filter_id": filter_id }))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`.
pub fn get(
    shard: &Shard,
    request: &ApiRequest,
    user_id: &str,
    filter_id: &str,
) -> ApiResult<Value> {
    check_owner(request, user_id)?;
    load(shard, user_id, filter_id)?.ok_or_else(|| MatrixError::not_found("Filter not found"))
}

/// Loads a stored filter.
///
/// # Errors
///
/// Returns a storage error.
pub fn load(shard: &Shard, user_id: &str, filter_id: &str) -> ApiResult<Option<Value>> {
    Ok(shard
        .store
        .get_json::<Value>(Map::Filters, &keys::pair(user_id, filter_id))?)
}
