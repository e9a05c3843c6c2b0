//! `GET` and `POST /_eltrix/admin/v1/users`, and
//! `GET /_eltrix/admin/v1/users/{userId}`.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::Value;

use super::{
    account::{self, decode_user, user_object},
    page::PageRequest,
};
use crate::{
    api::{error::ApiResult, request::ApiRequest},
    shard::Shard,
    store::Map,
};

#[derive(Deserialize)]
struct CreateUserBody {
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

/// `GET /_eltrix/admin/v1/users`: every account in user ID order.
// NOTE: each page reads the whole `userid_user` keyspace to count `total`,
// so a request takes time linear in the number of accounts.
pub fn list(shard: &Shard, request: &ApiRequest) -> ApiResult<Value> {
    let page = PageRequest::from_query(request)?;
    let rows = shard.store.scan_prefix(Map::Users, b"")?;
    let total = rows.len();
    let mut users = Vec::new();
    for (key, value) in page.select(rows) {
        let user_id = String::from_utf8_lossy(&key);
        users.push(user_object(&user_id, &decode_user(&value)?));
    }
    Ok(page.response("users", users, total))
}

/// `POST /_eltrix/admin/v1/users`: creates an account without a device.
pub async fn create(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let admin_id = request.auth()?.user_id.clone();
    let body: CreateUserBody = request.body()?;
    let created =
        account::create_account(shard, &body.username, body.password, body.admin, false).await?;
    tracing::info!(%admin_id, user_id = created.user_id, "admin created an account");
    Ok(user_object(&created.user_id, &created.record))
}

/// `GET /_eltrix/admin/v1/users/{userId}`.
pub fn get(shard: &Shard, user_id: &str) -> ApiResult<Value> {
    let user_id = account::parse_local_user_id(shard, user_id)?;
    let record = account::load_user(shard, user_id.as_str())?;
    Ok(user_object(user_id.as_str(), &record))
}
