//! Offset pagination shared by the admin list endpoints: `limit` and
//! `offset` query parameters in, `{<items>, total, next_offset}` out.

use serde_json::{Value, json};

use crate::api::{
    error::{ApiResult, MatrixError},
    request::ApiRequest,
};

/// Items per page when the request sets no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` served; larger values are lowered to it.
const MAX_LIMIT: usize = 1000;

/// The page a list request selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub offset: usize,
}

impl PageRequest {
    /// Reads `limit` and `offset` from the query.
    ///
    /// # Errors
    ///
    /// `M_INVALID_PARAM` unless each is a non-negative decimal integer and
    /// `limit` is at least 1.
    pub fn from_query(request: &ApiRequest) -> ApiResult<Self> {
        let limit = parse(request.query("limit"), "limit")?.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 {
            return Err(MatrixError::invalid_param("limit must be at least 1"));
        }
        let offset = parse(request.query("offset"), "offset")?.unwrap_or(0);
        Ok(Self {
            limit: limit.min(MAX_LIMIT),
            offset,
        })
    }

    /// Returns the items of this page out of `items`.
    pub fn select<T>(&self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }

    /// Builds the response: `items` under `name`, the `total` count, and
    /// `next_offset` unless this is the last page.
    #[must_use]
    pub fn response(&self, name: &str, items: Vec<Value>, total: usize) -> Value {
        let end = self.offset.saturating_add(items.len());
        let mut body = json!({ name: items, "total": total });
        if end < total {
            body["next_offset"] = json!(end);
        }
        body
    }
}

fn parse(text: Option<&str>, name: &str) -> ApiResult<Option<usize>> {
    let Some(text) = text else {
        return Ok(None);
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MatrixError::invalid_param(format!(
            "{name} must be a non-negative integer, not {text:?}"
        )));
    }
    text.parse()
        .map(Some)
        .map_err(|_| MatrixError::invalid_param(format!("{name} {text} is too large")))
}

#[cfg(test)]
mod tests {
    use super::{PageRequest, parse};

    #[test]
    fn rejects_signs_fractions_and_words() {
        for text in ["-1", "+1", "1.5", "abc", "", " 1"] {
            assert!(parse(Some(text), "limit").is_err(), "{text:?} was accepted");
        }
        assert_eq!(parse(Some("007"), "limit").unwrap(), Some(7));
        assert_eq!(parse(None, "limit").unwrap(), None);
    }

    #[test]
    fn next_offset_only_before_the_last_page() {
        let page = PageRequest {
            limit: 2,
            offset: 2,
        };
        assert_eq!(page.select(0..5), vec![2, 3]);
        let middle = page.response("items", vec![2.into(), 3.into()], 5);
        assert_eq!(middle["next_offset"], 4);
        let last = page.response("items", vec![2.into(), 3.into()], 4);
        assert!(last.get("next_offset").is_none());
    }
}
