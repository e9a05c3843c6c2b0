//! Server access control lists: a room's `m.room.server_acl` state decides
//! which servers may take part in it over federation.

use ruma::{ServerName, events::room::server_acl::RoomServerAclEventContent};
use serde_json::Value;

use crate::{
    api::error::{ApiResult, MatrixError},
    room::Room,
};

/// Checks that `room`'s current server ACL allows `server`. A room without
/// an ACL allows every server.
///
/// The content is read leniently, because the authorization rules do not
/// check it. An `allow_ip_literals` that is not a boolean counts as `true`,
/// and entries of `allow` and `deny` that are not strings are skipped. A
/// missing or malformed `allow` allows no server.
///
/// # Errors
///
/// `M_FORBIDDEN` when the ACL denies `server`, or when `server` is not a
/// valid server name.
pub fn check(room: &Room, server: &str) -> ApiResult<()> {
    let Some(event) = room
        .state
        .get(&("m.room.server_acl".to_owned(), String::new()))
    else {
        return Ok(());
    };
    let acl = parse_acl(&event.content_value());
    let allowed = ServerName::parse(server).is_ok_and(|name| acl.is_allowed(&name));
    if allowed {
        Ok(())
    } else {
        Err(MatrixError::forbidden(format!(
            "The room's server ACL denies {server}"
        )))
    }
}

fn parse_acl(content: &Value) -> RoomServerAclEventContent {
    let patterns = |field: &str| -> Vec<String> {
        content
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let allow_ip_literals = content
        .get("allow_ip_literals")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    RoomServerAclEventContent::new(allow_ip_literals, patterns("allow"), patterns("deny"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn allows(content: Value, server: &str) -> bool {
        parse_acl(&content).is_allowed(&ServerName::parse(server).unwrap())
    }

    #[test]
    fn malformed_fields_keep_the_rest() {
        let acl =
            json!({ "allow": ["*", 7], "deny": ["evil.example", null], "allow_ip_literals": "no" });
        assert!(!allows(acl.clone(), "evil.example"));
        assert!(allows(acl.clone(), "good.example:8448"));
        assert!(allows(acl, "1.2.3.4"));
    }

    #[test]
    fn missing_allow_denies_everyone() {
        assert!(!allows(json!({}), "good.example"));
        assert!(!allows(json!({ "allow": "*" }), "good.example"));
    }

    #[test]
    fn ip_literals_denied_when_false() {
        let acl = json!({ "allow": ["*"], "allow_ip_literals": false });
        assert!(!allows(acl.clone(), "1.2.3.4"));
        assert!(!allows(acl.clone(), "[::1]:8448"));
        assert!(allows(acl, "good.example"));
    }
}
