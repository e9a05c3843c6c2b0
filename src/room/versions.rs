//! Room versions this server creates and their rules.

use ruma::{RoomVersionId, room_version_rules::RoomVersionRules};

use crate::api::error::MatrixError;

/// The version of new rooms when a request names none: the spec's default.
pub const DEFAULT_ROOM_VERSION: &str = "12";

/// Versions accepted for new rooms, all stable.
pub const SUPPORTED: [&str; 12] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
];

/// Parses a room version and returns it with its rules.
///
/// # Errors
///
/// `M_UNSUPPORTED_ROOM_VERSION` for versions outside [`SUPPORTED`].
pub fn rules_for(version: &str) -> Result<(RoomVersionId, RoomVersionRules), MatrixError> {
    let unsupported = || {
        MatrixError::unsupported_room_version(format!("Room version {version:?} is not supported"))
    };
    if !SUPPORTED.contains(&version) {
        return Err(unsupported());
    }
    let id = RoomVersionId::try_from(version).map_err(|_| unsupported())?;
    let rules = id.rules().ok_or_else(unsupported)?;
    Ok((id, rules))
}
