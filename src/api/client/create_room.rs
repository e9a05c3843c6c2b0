//! `POST /_matrix/client/v3/createRoom`.
//!
//! The room ID must be known to find the owning shard. Room versions 1 to 11
//! use a random `!id:server`. In version 12 the ID is the reference hash of
//! the create event, so the dispatcher builds that event once to learn the
//! ID. The owning shard then rebuilds it identically (same content, sender
//! and timestamp) as the room's first event.

use std::{cell::RefCell, rc::Rc};

use ruma::{OwnedRoomId, OwnedUserId, RoomVersionId};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};

use super::directory;
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    auth::token::random_id,
    room::{EventDraft, Room, append::append, builder, versions},
    shard::Shard,
    store::Map,
};

#[derive(Deserialize)]
struct CreateRoomBody {
    visibility: Option<String>,
    room_alias_name: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
    room_version: Option<String>,
    creation_content: Option<JsonMap<String, Value>>,
    #[serde(default)]
    initial_state: Vec<InitialState>,
    preset: Option<String>,
    #[serde(default)]
    is_direct: bool,
    power_level_content_override: Option<JsonMap<String, Value>>,
}

#[derive(Deserialize)]
struct InitialState {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    state_key: String,
    content: Value,
}

/// Attempts at a free room ID before giving up. A v12 room ID repeats only
/// when the same user creates identical rooms in the same millisecond, and
/// each retry moves the timestamp on by one.
const MAX_ATTEMPTS: usize = 8;

/// `POST /_matrix/client/v3/createRoom`.
pub async fn create_room(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let sender = request.auth()?.user_id.clone();
    let body: CreateRoomBody = request.body()?;
    let version = body
        .room_version
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_ROOM_VERSION.to_owned());
    versions::rules_for(&version)?;
    let invites = parse_invites(&body.invite)?;
    for invitee in &invites {
        super::membership::check_invitee(shard, invitee)?;
    }

    let preset = preset_of(&body);
    let extra_creators: &[OwnedUserId] = if preset == "trusted_private_chat" {
        &invites
    } else {
        &[]
    };
    let spec = NewRoom {
        sender: &sender,
        version: &version,
        creation_content: body.creation_content.clone(),
        extra_creators,
        alias_name: body.room_alias_name.as_deref(),
        drafts: &|version_id, alias| {
            initial_drafts(&sender, version_id, &body, &preset, alias, &invites)
        },
    };
    let room_id = create(shard, &spec).await?;
    tracing::info!(%room_id, version, "created room");
    Ok(json!({ "room_id": room_id }))
}

/// The parts of a new room, for `createRoom` and room upgrades.
pub struct NewRoom<'a> {
    pub sender: &'a OwnedUserId,
    pub version: &'a str,
    /// Content of the create event besides the fields the version requires.
    pub creation_content: Option<JsonMap<String, Value>>,
    /// Users added to `additional_creators` where the version has them.
    pub extra_creators: &'a [OwnedUserId],
    /// Local alias to claim for the room.
    pub alias_name: Option<&'a str>,
    /// The events after the create event, given the version and the
    /// claimed alias.
    pub drafts: &'a DraftsFn<'a>,
}

/// Builds the events after the create event from the room version and the
/// claimed alias.
pub type DraftsFn<'a> = dyn Fn(&RoomVersionId, Option<&str>) -> ApiResult<Vec<EventDraft>> + 'a;

/// Creates the room on its owning shard and returns its ID.
///
/// # Errors
///
/// `M_UNSUPPORTED_ROOM_VERSION`, `M_ROOM_IN_USE` for a taken alias, the
/// first rejected event's error, or 500 when no free room ID is found.
pub async fn create(shard: &Rc<Shard>, spec: &NewRoom<'_>) -> ApiResult<OwnedRoomId> {
    versions::rules_for(spec.version)?;
    for _ in 0..MAX_ATTEMPTS {
        let created_ts = shard.next_create_millis();
        match try_create(shard, spec, created_ts).await {
            Ok(room_id) => return Ok(room_id),
            Err(Attempt::Taken) => {}
            Err(Attempt::Failed(error)) => return Err(error),
        }
    }
    Err(MatrixError::internal(
        "No free room ID after several attempts; retry",
    ))
}

/// The reason one creation attempt did not create the room.
enum Attempt {
    /// The derived room ID already exists.
    Taken,
    Failed(MatrixError),
}

impl From<MatrixError> for Attempt {
    fn from(error: MatrixError) -> Self {
        Self::Failed(error)
    }
}

async fn try_create(
    shard: &Rc<Shard>,
    spec: &NewRoom<'_>,
    created_ts: u64,
) -> Result<OwnedRoomId, Attempt> {
    let sender = spec.sender;
    let (version_id, rules) = versions::rules_for(spec.version)?;
    let create = create_draft(
        sender,
        &version_id,
        spec.creation_content.clone(),
        spec.extra_creators,
        created_ts,
    )?;
    let room_id = room_id_for(shard, sender, &version_id, &create, created_ts)?;

    let alias = match spec.alias_name {
        Some(name) => Some(directory::claim_for_new_room(shard, name, &room_id, sender).await?),
        None => None,
    };
    let mut drafts = vec![create];
    match (spec.drafts)(&version_id, alias.as_deref()) {
        Ok(rest) => drafts.extend(rest),
        Err(error) => {
            if let Some(alias) = alias {
                directory::release(shard, &alias, &room_id).await;
            }
            return Err(Attempt::Failed(error));
        }
    }

    let owner = shard.owner(room_id.as_str());
    let (target, sender) = (room_id.clone(), sender.clone());
    let created = shard
        .on_shard(owner, move |shard| async move {
            let exists = shard.rooms.borrow().contains_key(&target)
                || shard.store.get(Map::Rooms, target.as_bytes())?.is_some();
            if exists {
                return Ok(false);
            }
            let room = Room::new(target.clone(), version_id, rules, sender, created_ts);
            let room = Rc::new(RefCell::new(room));
            shard
                .rooms
                .borrow_mut()
                .insert(target.clone(), room.clone());
            if let Err(error) = append(&shard, &room, drafts).await {
                shard.evict_room(&target);
                // The authorization rules rejected an initial event, so the
                // request's parameters make an invalid initial state.
                if error.errcode == "M_FORBIDDEN" {
                    return Err(MatrixError::invalid_room_state(error.message));
                }
                return Err(error);
            }
            Ok::<bool, MatrixError>(true)
        })
        .await
        .and_then(|result| result);

    match created {
        Ok(true) => Ok(room_id),
        result => {
            if let Some(alias) = alias {
                directory::release(shard, &alias, &room_id).await;
            }
            match result {
                Ok(_) => Err(Attempt::Taken),
                Err(error) => Err(Attempt::Failed(error)),
            }
        }
    }
}

/// The new room's ID: derived from the create event in room version 12,
/// random `!id:server` before.
fn room_id_for(
    shard: &Shard,
    sender: &OwnedUserId,
    version_id: &RoomVersionId,
    create: &EventDraft,
    created_ts: u64,
) -> ApiResult<OwnedRoomId> {
    let rules = version_id
        .rules()
        .ok_or_else(|| MatrixError::unsupported_room_version("Unknown room version"))?;
    if !rules.authorization.room_create_event_id_as_room_id {
        return OwnedRoomId::try_from(format!("!{}:{}", random_id(18), shard.config.server_name))
            .map_err(|e| MatrixError::internal(e.to_string()));
    }
    let placeholder = OwnedRoomId::try_from(format!("!placeholder:{}", shard.config.server_name))
        .map_err(|e| MatrixError::internal(e.to_string()))?;
    let room = Room::new(
        placeholder,
        version_id.clone(),
        rules,
        sender.clone(),
        created_ts,
    );
    let pdu = builder::build(
        &room,
        create,
        &shard.config.server_name,
        &shard.key,
        0,
        created_ts,
    )?;
    Ok(pdu.room_id)
}

fn parse_invites(invites: &[String]) -> ApiResult<Vec<OwnedUserId>> {
    invites
        .iter()
        .map(|id| super::membership::parse_user_id(id))
        .collect()
}

fn preset_of(body: &CreateRoomBody) -> String {
    match body.preset.as_deref() {
        Some(preset) => preset.to_owned(),
        None if body.visibility.as_deref() == Some("public") => "public_chat".to_owned(),
        None => "private_chat".to_owned(),
    }
}

/// Builds the create event. In room versions with additional creators, the
/// invitees of a `trusted_private_chat` join `additional_creators`.
fn create_draft(
    sender: &OwnedUserId,
    version: &RoomVersionId,
    creation_content: Option<JsonMap<String, Value>>,
    extra_creators: &[OwnedUserId],
    created_ts: u64,
) -> ApiResult<EventDraft> {
    let mut content = creation_content.unwrap_or_default();
    let rules = version
        .rules()
        .ok_or_else(|| MatrixError::unsupported_room_version("Unknown room version"))?;
    if !rules.authorization.use_room_create_sender {
        content.insert("creator".to_owned(), json!(sender));
    }
    if rules.authorization.additional_room_creators && !extra_creators.is_empty() {
        let mut creators: Vec<Value> = match content.get("additional_creators") {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        };
        for user in extra_creators {
            let user = json!(user);
            if !creators.contains(&user) {
                creators.push(user);
            }
        }
        content.insert("additional_creators".to_owned(), Value::Array(creators));
    }
    content.insert("room_version".to_owned(), json!(version.as_str()));
    let mut draft = EventDraft::state(sender, "m.room.create", "", Value::Object(content));
    draft.origin_server_ts = Some(created_ts);
    Ok(draft)
}

/// Builds the events after `m.room.create`, in the order the spec gives.
fn initial_drafts(
    sender: &OwnedUserId,
    version: &RoomVersionId,
    body: &CreateRoomBody,
    preset: &str,
    alias: Option<&str>,
    invites: &[OwnedUserId],
) -> ApiResult<Vec<EventDraft>> {
    let (join_rule, guest_access) = match preset {
        "public_chat" => ("public", "forbidden"),
        "private_chat" | "trusted_private_chat" => ("invite", "can_join"),
        other => {
            return Err(MatrixError::invalid_param(format!(
                "Unknown preset {other:?}"
            )));
        }
    };

    let mut drafts = vec![super::membership::member_draft(
        sender, sender, "join", None,
    )];
    drafts.push(EventDraft::state(
        sender,
        "m.room.power_levels",
        "",
        power_levels(sender, version, body, preset, invites),
    ));
    if let Some(alias) = alias {
        drafts.push(EventDraft::state(
            sender,
            "m.room.canonical_alias",
            "",
            json!({ "alias": alias }),
        ));
    }
    drafts.push(EventDraft::state(
        sender,
        "m.room.join_rules",
        "",
        json!({ "join_rule": join_rule }),
    ));
    drafts.push(EventDraft::state(
        sender,
        "m.room.history_visibility",
        "",
        json!({ "history_visibility": "shared" }),
    ));
    drafts.push(EventDraft::state(
        sender,
        "m.room.guest_access",
        "",
        json!({ "guest_access": guest_access }),
    ));
    for state in &body.initial_state {
        drafts.push(EventDraft::state(
            sender,
            &state.kind,
            &state.state_key,
            state.content.clone(),
        ));
    }
    if let Some(name) = &body.name {
        drafts.push(EventDraft::state(
            sender,
            "m.room.name",
            "",
            json!({ "name": name }),
        ));
    }
    if let Some(topic) = &body.topic {
        drafts.push(EventDraft::state(
            sender,
            "m.room.topic",
            "",
            json!({ "topic": topic }),
        ));
    }
    for invitee in invites {
        let mut content = json!({ "membership": "invite" });
        if body.is_direct {
            content["is_direct"] = json!(true);
        }
        drafts.push(EventDraft::state(
            sender,
            "m.room.member",
            invitee.as_str(),
            content,
        ));
    }
    Ok(drafts)
}

fn power_levels(
    sender: &OwnedUserId,
    version: &RoomVersionId,
    body: &CreateRoomBody,
    preset: &str,
    invites: &[OwnedUserId],
) -> Value {
    let privileged_creators = version
        .rules()
        .is_some_and(|rules| rules.authorization.explicitly_privilege_room_creators);
    let mut users = JsonMap::new();
    if !privileged_creators {
        users.insert(sender.to_string(), json!(100));
    }
    if preset == "trusted_private_chat" && !privileged_creators {
        for invitee in invites {
            users.insert(invitee.to_string(), json!(100));
        }
    }
    let mut content = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            // Room version 12 requires the tombstone level to be above
            // `state_default`, so that only creators can upgrade.
            "m.room.tombstone": if privileged_creators { 150 } else { 100 },
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "historical": 100,
    });
    if let (Some(overrides), Value::Object(map)) =
        (&body.power_level_content_override, &mut content)
    {
        for (key, value) in overrides {
            map.insert(key.clone(), value.clone());
        }
    }
    content
}
