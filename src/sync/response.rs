//! The shape of a `/sync` response, serialized straight from the shard's
//! cached events.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::room::client_format::ClientEvent;

/// A sync response. Presence, account data, to-device messages and device
/// lists are always empty because the server does not produce them yet.
#[derive(Serialize)]
pub struct SyncResponse {
    next_batch: String,
    rooms: Rooms,
    presence: NoEvents,
    account_data: NoEvents,
    to_device: NoEvents,
    device_lists: DeviceLists,
    device_one_time_keys_count: Empty,
}

impl SyncResponse {
    #[must_use]
    pub fn new(next_batch: String, rooms: Rooms) -> Self {
        Self {
            next_batch,
            rooms,
            presence: NoEvents::default(),
            account_data: NoEvents::default(),
            to_device: NoEvents::default(),
            device_lists: DeviceLists::default(),
            device_one_time_keys_count: Empty {},
        }
    }
}

/// The rooms of a sync response by membership.
#[derive(Default, Serialize)]
pub struct Rooms {
    pub join: BTreeMap<String, JoinedRoom>,
    pub invite: BTreeMap<String, Value>,
    pub leave: BTreeMap<String, LeftRoom>,
    pub knock: BTreeMap<String, Value>,
}

#[derive(Serialize)]
pub struct JoinedRoom {
    timeline: TimelineOut,
    state: Events,
    account_data: NoEvents,
    ephemeral: NoEvents,
    unread_notifications: UnreadCounts,
    summary: Value,
}

impl JoinedRoom {
    #[must_use]
    pub fn new(timeline: TimelineOut, state: Vec<SyncEvent>, summary: Value) -> Self {
        Self {
            timeline,
            state: Events { events: state },
            account_data: NoEvents::default(),
            ephemeral: NoEvents::default(),
            unread_notifications: UnreadCounts::default(),
            summary,
        }
    }
}

#[derive(Serialize)]
pub struct LeftRoom {
    timeline: TimelineOut,
    state: NoEvents,
    account_data: NoEvents,
}

impl LeftRoom {
    #[must_use]
    pub fn new(timeline: TimelineOut) -> Self {
        Self {
            timeline,
            state: NoEvents::default(),
            account_data: NoEvents::default(),
        }
    }
}

#[derive(Serialize)]
pub struct TimelineOut {
    pub events: Vec<SyncEvent>,
    pub limited: bool,
    pub prev_batch: String,
}

/// An event in the filter's `event_format`.
#[derive(Debug)]
pub enum SyncEvent {
    Client(ClientEvent),
    /// The PDU as other servers see it, signed.
    Federation(Value),
}

impl Serialize for SyncEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Client(event) => event.serialize(serializer),
            Self::Federation(pdu) => pdu.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct Events {
    events: Vec<SyncEvent>,
}

/// `{"events": []}`.
#[derive(Default, Serialize)]
struct NoEvents {
    events: [(); 0],
}

/// `{}`.
#[derive(Default, Serialize)]
struct Empty {}

#[derive(Default, Serialize)]
struct DeviceLists {
    changed: [(); 0],
    left: [(); 0],
}

#[derive(Default, Serialize)]
struct UnreadCounts {
    highlight_count: u64,
    notification_count: u64,
}
