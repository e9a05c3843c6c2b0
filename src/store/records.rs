//! Records stored as JSON values in the store's maps.

use serde::{Deserialize, Serialize};

/// `userid_user`: one local account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub password_hash: Option<String>,
    pub created_ts: u64,
    #[serde(default)]
    pub deactivated: bool,
    /// Whether the account may use the admin API; admins are also exempt
    /// from rate limits.
    #[serde(default)]
    pub admin: bool,
}

/// `tokenhash_device`: the owner of an access token, keyed by its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user_id: String,
    pub device_id: String,
}

/// `userid_deviceid_device`: one device and the hash of its current token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub display_name: Option<String>,
    pub token_hash: String,
    pub last_seen_ts: u64,
}

/// `eventid_event`: a PDU as signed, plus local metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub pdu: serde_json::Value,
    pub room_id: String,
    /// Stream position in the room's timeline.
    pub pos: u64,
    /// The room's version, for the redaction algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    /// The redaction event applied to this event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_by: Option<String>,
    /// `device_id` and `txn_id` of the request that sent it, for `unsigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<(String, String)>,
}

/// `roomid_room`: the room's version and timeline head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
    pub room_version: String,
    pub creator: String,
    pub created_ts: u64,
    pub forward_extremities: Vec<String>,
    pub depth: u64,
    pub last_pos: u64,
    /// The state group of the room's current state; `None` in rooms stored
    /// before state groups, until their next state event.
    #[serde(default)]
    pub state_group: Option<u64>,
    /// Deltas from `state_group` back to its nearest full snapshot.
    #[serde(default)]
    pub state_group_chain: u32,
}

/// `userid_roomid_membership`: a user's latest membership in a room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub membership: String,
    pub event_id: String,
    pub pos: u64,
}

/// `roomid_blocked`: a room deleted through the admin API, which no one may
/// join again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockedRoomRecord {
    /// The admin who deleted the room.
    pub blocked_by: String,
    /// When the room was deleted, in milliseconds since the Unix epoch.
    pub blocked_ts: u64,
}
