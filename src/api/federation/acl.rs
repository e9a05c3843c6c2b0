//! Server access control lists: a room's `m.room.server_acl` state decides
//! which servers may take part in it over federation.

use ruma::{ServerName, events::room::server_acl::RoomServerAclEventContent};

use crate::{
    api::error::{ApiResult, MatrixError},
    room::Room,
};

/// Checks that `room`'s current server ACL allows `server`. A room without
/// an ACL allows every server, and so does one whose ACL content does not
/// parse, because the authorization rules do not check that content.
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
    let acl = match serde_json::from_str::<RoomServerAclEventContent>(event.content.get()) {
        Ok(acl) => acl,
        Err(error) => {
            tracing::debug!(room_id = %room.room_id, event_id = %event.event_id, %error, "ignoring a server ACL that does not parse");
            return Ok(());
        }
    };
    let allowed = ServerName::parse(server).is_ok_and(|name| acl.is_allowed(&name));
    if allowed {
        Ok(())
    } else {
        Err(MatrixError::forbidden(format!(
            "The room's server ACL denies {server}"
        )))
    }
}
