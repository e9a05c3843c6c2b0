//! Parsed `/sync` filters, cached on the user's shard. A client sends the
//! same filter (by ID or inline) with every long-poll, and uploaded filters
//! never change, so each is parsed once.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use super::filter::{self, SyncFilter};
use crate::{
    api::{
        client::filter as stored_filter,
        error::{ApiResult, MatrixError},
        request::{ApiRequest, Auth},
    },
    shard::Shard,
};

/// Filters kept per shard. The cache starts over when it is full.
const CAPACITY: usize = 4096;

/// Filters by user ID and the `filter` parameter's text.
#[derive(Default)]
pub struct FilterCache {
    entries: RefCell<HashMap<(String, String), Rc<SyncFilter>>>,
}

/// Returns the filter of a `/sync` request: the default without a `filter`
/// parameter, else the inline JSON or the user's uploaded filter it names.
///
/// # Errors
///
/// `M_BAD_JSON` for an invalid inline filter, `M_NOT_FOUND` for an unknown
/// filter ID, or a storage error.
pub fn load(shard: &Shard, request: &ApiRequest, auth: &Auth) -> ApiResult<Rc<SyncFilter>> {
    let Some(text) = request.query("filter") else {
        return Ok(Rc::new(SyncFilter::default()));
    };
    let key = (auth.user_id.to_string(), text.to_owned());
    if let Some(found) = shard.filters.entries.borrow().get(&key) {
        return Ok(found.clone());
    }
    let parsed: SyncFilter = if text.trim_start().starts_with('{') {
        filter::parse(text)?
    } else {
        let stored = stored_filter::load(shard, auth.user_id.as_str(), text)?
            .ok_or_else(|| MatrixError::not_found("Unknown filter ID"))?;
        serde_json::from_value(stored)
            .map_err(|e| MatrixError::bad_json(format!("Invalid stored filter: {e}")))?
    };
    let parsed = Rc::new(parsed);
    let mut entries = shard.filters.entries.borrow_mut();
    if entries.len() >= CAPACITY {
        entries.clear();
    }
    entries.insert(key, parsed.clone());
    Ok(parsed)
}
