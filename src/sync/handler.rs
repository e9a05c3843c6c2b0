//! `GET /_matrix/client/v3/sync`, on the user's shard.
//!
//! The response covers, per room, the events with positions in
//! `(since[s], upto[s]]`, where `s` is the room's shard and `upto` is this
//! shard's frontier when the response is built. With nothing new and a
//! `timeout`, the request waits for the next announcement to the user.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::{
    filter::{EventFormat, RoomFilter, SyncFilter},
    index::UserRoom,
    response::{JoinedRoom, LeftRoom, Rooms, SyncEvent, SyncResponse, TimelineOut},
    token,
};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::{ApiRequest, Auth},
    },
    room::{
        client_format::{self, ClientEvent, Viewer},
        history::Visibility,
        signature::{self, NewSignatures},
    },
    shard::{Shard, now_millis},
    store::{EventRecord, Map, keys},
};

/// Maximum `/sync` long-poll timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeline events per room when the filter sets no limit.
const DEFAULT_TIMELINE_LIMIT: u64 = 10;
/// Maximum timeline rows read per room and response, so that a filter
/// matching few events does not read a whole long window.
const MAX_TIMELINE_SCAN: usize = 2_000;

/// `GET /_matrix/client/v3/sync`, serialized here because the response
/// borrows this shard's cached events.
pub async fn sync(shard: &Shard, request: &ApiRequest) -> ApiResult<Vec<u8>> {
    let auth = request.auth()?;
    let since = match request.query("since") {
        Some(text) => Some(
            token::parse_sync(text, shard.nr_shards())
                .ok_or_else(|| MatrixError::invalid_param("Invalid since token"))?,
        ),
        None => None,
    };
    let timeout =
        Duration::from_millis(request.query_u64("timeout")?.unwrap_or(0)).min(MAX_TIMEOUT);
    let full_state = match request.query("full_state") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(MatrixError::invalid_param(
                "full_state must be true or false",
            ));
        }
    };
    if let Some(presence) = request.query("set_presence")
        && !matches!(presence, "online" | "offline" | "unavailable")
    {
        return Err(MatrixError::invalid_param(
            "set_presence must be online, offline or unavailable",
        ));
    }
    let sync_filter = super::filter_cache::load(shard, request, auth)?;

    let mut waited = false;
    loop {
        let upto = shard.sync.borrow().frontier.clone();
        let compare_from = if full_state { None } else { since.as_deref() };
        let changed = changed_rooms(shard, auth, compare_from, &upto, &sync_filter.room)?;
        let nothing_new = changed.is_empty() && since.is_some() && !full_state;
        if nothing_new && !waited && !timeout.is_zero() && !shard.stopping.get() {
            let woken = shard.sync.borrow_mut().wait(&auth.user_id);
            let _ = monoio::time::timeout(timeout, woken).await;
            waited = true;
            continue;
        }
        let response = build_response(
            shard,
            auth,
            since.as_deref(),
            &upto,
            &changed,
            full_state,
            &sync_filter,
        )?;
        return serde_json::to_vec(&response)
            .map_err(|e| MatrixError::internal(format!("Failed to serialize the response: {e}")));
    }
}

/// Rooms to include: all current ones for an initial sync, else those with
/// events or membership changes after `since`.
fn changed_rooms(
    shard: &Shard,
    auth: &Auth,
    since: Option<&[u64]>,
    upto: &[u64],
    room_filter: &RoomFilter,
) -> ApiResult<BTreeMap<OwnedRoomId, UserRoom>> {
    let mut index = shard.sync.borrow_mut();
    let user = index.user(&shard.store, &auth.user_id)?;
    let mut changed = BTreeMap::new();
    for (room_id, room) in &user.rooms {
        if !room_filter.allows_room(room_id.as_str()) {
            continue;
        }
        let owner = room.owner;
        let upper = upto.get(owner).copied().unwrap_or(0);
        let include = match since {
            None => {
                matches!(room.membership.as_str(), "join" | "invite" | "knock")
                    || room_filter.include_leave
            }
            Some(since) => {
                let lower = since.get(owner).copied().unwrap_or(0);
                room.last_pos.min(upper) > lower
                    || (room.membership_pos > lower && room.membership_pos <= upper)
            }
        };
        if include {
            changed.insert(room_id.clone(), room.clone());
        }
    }
    Ok(changed)
}

fn build_response(
    shard: &Shard,
    auth: &Auth,
    since: Option<&[u64]>,
    upto: &[u64],
    changed: &BTreeMap<OwnedRoomId, UserRoom>,
    full_state: bool,
    sync_filter: &SyncFilter,
) -> ApiResult<SyncResponse> {
    let viewer = Viewer {
        user_id: auth.user_id.as_str(),
        device_id: &auth.device_id,
    };
    let mut rooms = Rooms::default();
    for (room_id, room) in changed {
        let owner = room.owner;
        let lower = since
            .and_then(|since| since.get(owner).copied())
            .unwrap_or(0);
        let upper = upto.get(owner).copied().unwrap_or(0).max(lower);
        // A user joined since before the window was joined at every event in
        // it, which the visibility rules always allow, so the room's history
        // need not be read.
        let joined_throughout = room.membership == "join" && room.membership_pos <= lower;
        let visibility = if joined_throughout {
            None
        } else {
            Some(Visibility::load(
                &shard.store,
                room_id.as_str(),
                auth.user_id.as_str(),
            )?)
        };
        let section = RoomSection {
            room_id,
            visibility,
            lower,
            upper,
            initial: since.is_none(),
            full_state,
        };
        match room.membership.as_str() {
            "join" => {
                let value = joined_room(shard, viewer, &section, room, sync_filter)?;
                rooms.join.insert(room_id.to_string(), value);
            }
            "invite" => {
                let events = stripped_state(shard, room_id, auth.user_id.as_str())?;
                let value = json!({ "invite_state": { "events": events } });
                rooms.invite.insert(room_id.to_string(), value);
            }
            "knock" => {
                let events = stripped_state(shard, room_id, auth.user_id.as_str())?;
                let value = json!({ "knock_state": { "events": events } });
                rooms.knock.insert(room_id.to_string(), value);
            }
            "leave" | "ban" => {
                let section = RoomSection {
                    upper: room.membership_pos.min(upper),
                    ..section
                };
                let value = left_room(shard, viewer, &section, sync_filter)?;
                rooms.leave.insert(room_id.to_string(), value);
            }
            _ => {}
        }
    }
    Ok(SyncResponse::new(token::format_sync(upto), rooms))
}

/// Returns the event in the filter's `event_format`.
fn render(shard: &Shard, sync_filter: &SyncFilter, event: ClientEvent) -> SyncEvent {
    match sync_filter.event_format {
        Some(EventFormat::Federation) => {
            let cached = &event.event;
            let mut new = NewSignatures::default();
            let pdu =
                signature::wire_event(shard, &cached.event_id, cached.record.clone(), &mut new);
            new.persist(shard);
            match pdu {
                Ok(pdu) => SyncEvent::Federation(pdu),
                // The stored PDU may be unredacted, so the client format,
                // which is redacted for the viewer, goes out instead.
                Err(error) => {
                    tracing::warn!(
                        event_id = cached.event_id,
                        ?error,
                        "failed to prepare event in the federation format; sending the client format"
                    );
                    SyncEvent::Client(event)
                }
            }
        }
        _ => SyncEvent::Client(event),
    }
}

struct RoomSection<'a> {
    room_id: &'a OwnedRoomId,
    /// The user's view of the history; `None` when every event in the window
    /// is visible.
    visibility: Option<Visibility>,
    /// Exclusive lower position.
    lower: u64,
    /// Inclusive upper position.
    upper: u64,
    initial: bool,
    full_state: bool,
}

struct Timeline {
    events: Vec<SyncEvent>,
    /// State events (type, state key) present in `events`.
    state_keys: Vec<(String, String)>,
    limited: bool,
    /// Position of the oldest event read, also the `prev_batch` boundary.
    first_pos: u64,
}

fn joined_room(
    shard: &Shard,
    viewer: Viewer<'_>,
    section: &RoomSection<'_>,
    room: &UserRoom,
    sync_filter: &SyncFilter,
) -> ApiResult<JoinedRoom> {
    let timeline = read_timeline(shard, viewer, section, sync_filter)?;
    let joined_now = room.membership_pos > section.lower;
    let state = if section.initial || section.full_state || joined_now {
        state_events(
            shard,
            viewer,
            section.room_id,
            0,
            timeline.first_pos,
            &timeline.state_keys,
            section.upper,
            sync_filter,
        )?
    } else if timeline.limited {
        state_events(
            shard,
            viewer,
            section.room_id,
            section.lower,
            timeline.first_pos,
            &timeline.state_keys,
            section.upper,
            sync_filter,
        )?
    } else {
        Vec::new()
    };
    // The counts are required unless unchanged since the last sync, so they
    // come with every sync that starts the room or changes its members.
    let members_changed = timeline
        .state_keys
        .iter()
        .any(|(kind, _)| kind == "m.room.member");
    let summary = if section.initial || section.full_state || joined_now || members_changed {
        super::summary::room_summary(&shard.store, section.room_id.as_str(), viewer.user_id)?
    } else {
        json!({})
    };
    Ok(JoinedRoom::new(timeline.into_out(), state, summary))
}

fn left_room(
    shard: &Shard,
    viewer: Viewer<'_>,
    section: &RoomSection<'_>,
    sync_filter: &SyncFilter,
) -> ApiResult<LeftRoom> {
    let timeline = read_timeline(shard, viewer, section, sync_filter)?;
    Ok(LeftRoom::new(timeline.into_out()))
}

impl Timeline {
    fn into_out(self) -> TimelineOut {
        TimelineOut {
            events: self.events,
            limited: self.limited,
            prev_batch: token::format_boundary(self.first_pos),
        }
    }
}

/// Returns the stripped state that an invited or knocking user receives: the
/// room's description and the user's own membership event.
fn stripped_state(shard: &Shard, room_id: &OwnedRoomId, user_id: &str) -> ApiResult<Vec<Value>> {
    const STRIPPED_TYPES: [&str; 7] = [
        "m.room.create",
        "m.room.join_rules",
        "m.room.name",
        "m.room.canonical_alias",
        "m.room.avatar",
        "m.room.encryption",
        "m.room.topic",
    ];
    let mut events = Vec::new();
    for (key, event_id) in shard
        .store
        .scan_prefix(Map::RoomState, &keys::prefix(room_id.as_str()))?
    {
        let mut parts = key.split(|b| *b == 0).skip(1);
        let kind = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let state_key = parts.next().unwrap_or_default();
        let included = STRIPPED_TYPES.contains(&kind.as_str())
            || (kind == "m.room.member" && state_key == user_id.as_bytes());
        if included
            && let Some(record) = shard
                .store
                .get_json::<EventRecord>(Map::Events, &event_id)?
        {
            events.push(client_format::stripped(&record));
        }
    }
    Ok(events)
}

fn read_timeline(
    shard: &Shard,
    viewer: Viewer<'_>,
    section: &RoomSection<'_>,
    sync_filter: &SyncFilter,
) -> ApiResult<Timeline> {
    let timeline_filter = &sync_filter.room.timeline;
    let limit = timeline_filter
        .limit
        .unwrap_or(DEFAULT_TIMELINE_LIMIT)
        .clamp(1, 1000);
    let limit = usize::try_from(limit).unwrap_or(1000);
    // The filter and the history visibility can drop rows, so rows are read
    // newest first in pages of one more than the limit, until the limit is
    // reached, the window ends or MAX_TIMELINE_SCAN rows were read.
    let now = now_millis();
    let mut matching = Vec::new();
    let mut state_keys = Vec::new();
    let mut first_pos = section.upper.saturating_add(1);
    let mut scanned = 0;
    let mut limited = false;
    'pages: while first_pos > section.lower.saturating_add(1) {
        let page = timeline_rows(shard, section, first_pos - 1, limit + 1)?;
        let full_page = page.len() > limit;
        for (pos, event_id) in page {
            if matching.len() == limit || scanned == MAX_TIMELINE_SCAN {
                limited = true;
                break 'pages;
            }
            scanned += 1;
            first_pos = pos;
            let Some(event) = client_format::load(shard, &event_id, Some(viewer), now) else {
                continue;
            };
            let fields = &event.event.client;
            if !timeline_filter.matches(fields)
                || !section
                    .visibility
                    .as_ref()
                    .is_none_or(|visibility| visibility.can_see_event(pos, fields))
            {
                continue;
            }
            if let (Some(kind), Some(state_key)) = (
                fields.get("type").and_then(Value::as_str),
                fields.get("state_key").and_then(Value::as_str),
            ) {
                state_keys.push((kind.to_owned(), state_key.to_owned()));
            }
            matching.push(event);
        }
        if !full_page {
            break;
        }
    }
    state_keys.reverse();
    let events = matching
        .into_iter()
        .rev()
        .map(|event| render(shard, sync_filter, event))
        .collect();
    Ok(Timeline {
        events,
        state_keys,
        limited,
        first_pos,
    })
}

/// Reads at most `count` timeline rows of the section's room with positions
/// in `(lower, upper]`, newest first. A user joined throughout the window
/// was sent every event of it, so the room's tail on this shard contains
/// them when it reaches back far enough. Otherwise the store is scanned.
fn timeline_rows(
    shard: &Shard,
    section: &RoomSection<'_>,
    upper: u64,
    count: usize,
) -> ApiResult<Vec<(u64, Arc<str>)>> {
    if section.visibility.is_none()
        && let Some(rows) =
            shard
                .sync
                .borrow()
                .tail_window(section.room_id, section.lower, upper, count)
    {
        return Ok(rows);
    }
    let room_id = section.room_id.as_str();
    let rows = shard.store.scan_range(
        Map::Timeline,
        &keys::timeline(room_id, section.lower.saturating_add(1)),
        &keys::timeline(room_id, upper.saturating_add(1)),
        true,
        count,
    )?;
    Ok(rows
        .into_iter()
        .map(|(key, id)| {
            let id: Arc<str> = Arc::from(String::from_utf8_lossy(&id).as_ref());
            (keys::timeline_pos(&key), id)
        })
        .collect())
}

/// Current state events whose position is in `(lower, before)` and not
/// after `upper`, minus those already in the timeline.
#[allow(clippy::too_many_arguments)]
fn state_events(
    shard: &Shard,
    viewer: Viewer<'_>,
    room_id: &OwnedRoomId,
    lower: u64,
    before: u64,
    in_timeline: &[(String, String)],
    upper: u64,
    sync_filter: &SyncFilter,
) -> ApiResult<Vec<SyncEvent>> {
    let now = now_millis();
    let mut events = Vec::new();
    for (key, event_id) in shard
        .store
        .scan_prefix(Map::RoomState, &keys::prefix(room_id.as_str()))?
    {
        let mut parts = key.split(|b| *b == 0).skip(1);
        let kind = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let state_key = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        if in_timeline.contains(&(kind, state_key)) {
            continue;
        }
        let event_id = String::from_utf8_lossy(&event_id);
        let Some(event) = client_format::load(shard, &event_id, Some(viewer), now) else {
            continue;
        };
        let pos = event.event.record.pos;
        if pos > lower
            && pos < before
            && pos <= upper
            && sync_filter.room.state.matches(&event.event.client)
        {
            events.push(render(shard, sync_filter, event));
        }
    }
    Ok(events)
}
