//! Maps a method and path to a [`Route`]: an unknown path is 404
//! `M_UNRECOGNIZED`, a known path with another method 405 `M_UNRECOGNIZED`.

use percent_encoding::percent_decode_str;

use super::error::MatrixError;

/// Every endpoint served, with its decoded path parameters.
#[derive(Debug, Clone)]
pub enum Route {
    Versions,
    WellKnownClient,
    ServerKeys,
    Health,
    HealthLive,
    HealthReady,
    Metrics,
    Capabilities,
    Register,
    RegisterAvailable,
    RegistrationTokenValidity,
    LoginFlows,
    Login,
    Logout,
    LogoutAll,
    Whoami,
    CreateRoom,
    JoinByIdOrAlias(String),
    KnockByIdOrAlias(String),
    JoinedRooms,
    Sync,
    CreateFilter(String),
    GetFilter(String, String),
    Alias(AliasAction, String),
    Room(String, RoomAction),
    /// `GET /_synapse/admin/v1/register`: a nonce for shared-secret registration.
    SharedSecretNonce,
    /// `POST /_synapse/admin/v1/register`.
    SharedSecretRegister,
    Admin(AdminRoute),
    /// Endpoints of the server-server API under `/_matrix/federation/`.
    Federation(FederationRoute),
}

/// Endpoints under `/_matrix/federation/`.
#[derive(Debug, Clone)]
pub enum FederationRoute {
    /// `GET /_matrix/federation/v1/version`.
    Version,
    /// `GET /_matrix/federation/v1/query/directory`.
    QueryDirectory,
    /// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`.
    MakeJoin(String, String),
    /// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`.
    SendJoin(String, String),
    /// `PUT /_matrix/federation/v1/send/{txnId}`.
    Send(String),
    /// `GET /_matrix/federation/v1/event/{eventId}`.
    Event(String),
    /// `POST /_matrix/federation/v1/get_missing_events/{roomId}`.
    MissingEvents(String),
    /// `GET /_matrix/federation/v1/state_ids/{roomId}`.
    StateIds(String),
    /// `GET /_matrix/federation/v1/state/{roomId}`.
    State(String),
    /// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`.
    EventAuth(String, String),
    /// `GET /_matrix/federation/v1/backfill/{roomId}`.
    Backfill(String),
}

impl FederationRoute {
    /// Returns whether the endpoint needs `X-Matrix` authorization.
    #[must_use]
    pub fn needs_server_auth(&self) -> bool {
        !matches!(self, Self::Version)
    }

    fn template(&self) -> &'static str {
        match self {
            Self::Version => "/_matrix/federation/v1/version",
            Self::QueryDirectory => "/_matrix/federation/v1/query/directory",
            Self::MakeJoin(..) => "/_matrix/federation/v1/make_join/{roomId}/{userId}",
            Self::SendJoin(..) => "/_matrix/federation/v2/send_join/{roomId}/{eventId}",
            Self::Send(_) => "/_matrix/federation/v1/send/{txnId}",
            Self::Event(_) => "/_matrix/federation/v1/event/{eventId}",
            Self::MissingEvents(_) => "/_matrix/federation/v1/get_missing_events/{roomId}",
            Self::StateIds(_) => "/_matrix/federation/v1/state_ids/{roomId}",
            Self::State(_) => "/_matrix/federation/v1/state/{roomId}",
            Self::EventAuth(..) => "/_matrix/federation/v1/event_auth/{roomId}/{eventId}",
            Self::Backfill(_) => "/_matrix/federation/v1/backfill/{roomId}",
        }
    }
}

/// Endpoints under `/_eltrix/admin/v1/`, with their decoded path parameters.
#[derive(Debug, Clone)]
pub enum AdminRoute {
    ListUsers,
    CreateUser,
    GetUser(String),
    DeactivateUser(String),
    Statistics,
    ListRooms,
    GetRoom(String),
    DeleteRoom(String),
    PurgeHistory(String),
}

/// Methods on `/directory/room/{roomAlias}`.
#[derive(Debug, Clone, Copy)]
pub enum AliasAction {
    Get,
    Put,
    Delete,
}

/// Endpoints under `/rooms/{roomId}/`.
#[derive(Debug, Clone)]
pub enum RoomAction {
    Join,
    Invite,
    Leave,
    Kick,
    Ban,
    Unban,
    Forget,
    JoinedMembers,
    Members,
    AllState,
    GetState(String, String),
    PutState(String, String),
    Send(String, String),
    Redact(String, String),
    Event(String),
    Context(String),
    Messages,
    Aliases,
    Upgrade,
}

impl Route {
    /// Returns whether the endpoint needs an access token.
    #[must_use]
    pub fn needs_auth(&self) -> bool {
        !matches!(
            self,
            Self::Versions
                | Self::WellKnownClient
                | Self::ServerKeys
                | Self::Health
                | Self::HealthLive
                | Self::HealthReady
                | Self::Metrics
                | Self::Register
                | Self::RegisterAvailable
                | Self::RegistrationTokenValidity
                | Self::LoginFlows
                | Self::Login
                | Self::Alias(AliasAction::Get, _)
                | Self::SharedSecretNonce
                | Self::SharedSecretRegister
                | Self::Federation(_)
        )
    }
}

impl Route {
    /// Returns the path template of the endpoint, a bounded set of metric
    /// labels.
    #[must_use]
    pub fn template(&self) -> &'static str {
        match self {
            Self::Versions => "/_matrix/client/versions",
            Self::WellKnownClient => "/.well-known/matrix/client",
            Self::ServerKeys => "/_matrix/key/v2/server",
            Self::Health => "/health",
            Self::HealthLive => "/health/live",
            Self::HealthReady => "/health/ready",
            Self::Metrics => "/metrics",
            Self::Capabilities => "/_matrix/client/v3/capabilities",
            Self::Register => "/_matrix/client/v3/register",
            Self::RegisterAvailable => "/_matrix/client/v3/register/available",
            Self::RegistrationTokenValidity => {
                "/_matrix/client/v1/register/m.login.registration_token/validity"
            }
            Self::LoginFlows | Self::Login => "/_matrix/client/v3/login",
            Self::Logout => "/_matrix/client/v3/logout",
            Self::LogoutAll => "/_matrix/client/v3/logout/all",
            Self::Whoami => "/_matrix/client/v3/account/whoami",
            Self::CreateRoom => "/_matrix/client/v3/createRoom",
            Self::JoinByIdOrAlias(_) => "/_matrix/client/v3/join/{roomIdOrAlias}",
            Self::KnockByIdOrAlias(_) => "/_matrix/client/v3/knock/{roomIdOrAlias}",
            Self::JoinedRooms => "/_matrix/client/v3/joined_rooms",
            Self::Sync => "/_matrix/client/v3/sync",
            Self::CreateFilter(_) => "/_matrix/client/v3/user/{userId}/filter",
            Self::GetFilter(..) => "/_matrix/client/v3/user/{userId}/filter/{filterId}",
            Self::Alias(..) => "/_matrix/client/v3/directory/room/{roomAlias}",
            Self::Room(_, action) => action.template(),
            Self::SharedSecretNonce | Self::SharedSecretRegister => "/_synapse/admin/v1/register",
            Self::Admin(route) => route.template(),
            Self::Federation(route) => route.template(),
        }
    }
}

impl AdminRoute {
    fn template(&self) -> &'static str {
        match self {
            Self::ListUsers | Self::CreateUser => "/_eltrix/admin/v1/users",
            Self::GetUser(_) => "/_eltrix/admin/v1/users/{userId}",
            Self::DeactivateUser(_) => "/_eltrix/admin/v1/users/{userId}/deactivate",
            Self::Statistics => "/_eltrix/admin/v1/statistics",
            Self::ListRooms => "/_eltrix/admin/v1/rooms",
            Self::GetRoom(_) | Self::DeleteRoom(_) => "/_eltrix/admin/v1/rooms/{roomId}",
            Self::PurgeHistory(_) => "/_eltrix/admin/v1/rooms/{roomId}/purge",
        }
    }
}

impl RoomAction {
    fn template(&self) -> &'static str {
        match self {
            Self::Join => "/_matrix/client/v3/rooms/{roomId}/join",
            Self::Invite => "/_matrix/client/v3/rooms/{roomId}/invite",
            Self::Leave => "/_matrix/client/v3/rooms/{roomId}/leave",
            Self::Kick => "/_matrix/client/v3/rooms/{roomId}/kick",
            Self::Ban => "/_matrix/client/v3/rooms/{roomId}/ban",
            Self::Unban => "/_matrix/client/v3/rooms/{roomId}/unban",
            Self::Forget => "/_matrix/client/v3/rooms/{roomId}/forget",
            Self::JoinedMembers => "/_matrix/client/v3/rooms/{roomId}/joined_members",
            Self::Members => "/_matrix/client/v3/rooms/{roomId}/members",
            Self::AllState => "/_matrix/client/v3/rooms/{roomId}/state",
            Self::GetState(..) | Self::PutState(..) => {
                "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"
            }
            Self::Send(..) => "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}",
            Self::Redact(..) => "/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}",
            Self::Event(_) => "/_matrix/client/v3/rooms/{roomId}/event/{eventId}",
            Self::Context(_) => "/_matrix/client/v3/rooms/{roomId}/context/{eventId}",
            Self::Messages => "/_matrix/client/v3/rooms/{roomId}/messages",
            Self::Aliases => "/_matrix/client/v3/rooms/{roomId}/aliases",
            Self::Upgrade => "/_matrix/client/v3/rooms/{roomId}/upgrade",
        }
    }
}

/// Resolves `method` and the still-encoded `path`.
///
/// # Errors
///
/// Returns `M_UNRECOGNIZED` (404 or 405) for unknown endpoints and
/// `M_INVALID_PARAM` for path segments that do not decode to UTF-8.
pub fn resolve(method: &str, path: &str) -> Result<Route, MatrixError> {
    let raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let segments = raw
        .iter()
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| MatrixError::invalid_param("Path segment is not valid UTF-8"))
        })
        .collect::<Result<Vec<String>, _>>()?;
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();

    let (route, allowed) = match parts.as_slice() {
        ["_matrix", "client", "versions"] => (Some(Route::Versions), &["GET"][..]),
        [".well-known", "matrix", "client"] => (Some(Route::WellKnownClient), &["GET"][..]),
        // The form with a key ID is deprecated; servers return every key.
        ["_matrix", "key", "v2", "server"] | ["_matrix", "key", "v2", "server", _] => {
            (Some(Route::ServerKeys), &["GET"][..])
        }
        ["health"] => (Some(Route::Health), &["GET"][..]),
        ["health", "live"] => (Some(Route::HealthLive), &["GET"][..]),
        ["health", "ready"] => (Some(Route::HealthReady), &["GET"][..]),
        ["metrics"] => (Some(Route::Metrics), &["GET"][..]),
        ["_matrix", "client", "v3" | "r0" | "v1", rest @ ..] => client_route(method, rest),
        ["_synapse", "admin", "v1", "register"] => {
            let route = if method == "POST" {
                Route::SharedSecretRegister
            } else {
                Route::SharedSecretNonce
            };
            (Some(route), &["GET", "POST"][..])
        }
        ["_eltrix", "admin", "v1", rest @ ..] => admin_route(method, rest),
        ["_matrix", "federation", version, rest @ ..] => federation_route(version, rest),
        _ => (None, &[][..]),
    };
    match route {
        Some(route) if allowed.contains(&method) => Ok(route),
        Some(_) => Err(MatrixError::method_not_allowed()),
        None => Err(MatrixError::unrecognized("Unrecognized request")),
    }
}

type Resolved = (Option<Route>, &'static [&'static str]);

fn federation_route(version: &str, parts: &[&str]) -> Resolved {
    let owned = |s: &&str| (*s).to_owned();
    let route = match (version, parts) {
        ("v1", ["version"]) => (Some(FederationRoute::Version), &["GET"][..]),
        ("v1", ["query", "directory"]) => (Some(FederationRoute::QueryDirectory), &["GET"][..]),
        ("v1", ["make_join", room, user]) => (
            Some(FederationRoute::MakeJoin(owned(room), owned(user))),
            &["GET"][..],
        ),
        ("v2", ["send_join", room, event]) => (
            Some(FederationRoute::SendJoin(owned(room), owned(event))),
            &["PUT"][..],
        ),
        ("v1", ["send", txn]) => (Some(FederationRoute::Send(owned(txn))), &["PUT"][..]),
        ("v1", ["event", event]) => (Some(FederationRoute::Event(owned(event))), &["GET"][..]),
        ("v1", ["get_missing_events", room]) => (
            Some(FederationRoute::MissingEvents(owned(room))),
            &["POST"][..],
        ),
        ("v1", ["state_ids", room]) => (Some(FederationRoute::StateIds(owned(room))), &["GET"][..]),
        ("v1", ["state", room]) => (Some(FederationRoute::State(owned(room))), &["GET"][..]),
        ("v1", ["event_auth", room, event]) => (
            Some(FederationRoute::EventAuth(owned(room), owned(event))),
            &["GET"][..],
        ),
        ("v1", ["backfill", room]) => (Some(FederationRoute::Backfill(owned(room))), &["GET"][..]),
        _ => (None, &[][..]),
    };
    (route.0.map(Route::Federation), route.1)
}

fn client_route(method: &str, parts: &[&str]) -> Resolved {
    let owned = |s: &&str| (*s).to_owned();
    match parts {
        ["capabilities"] => (Some(Route::Capabilities), &["GET"]),
        ["register"] => (Some(Route::Register), &["POST"]),
        ["register", "available"] => (Some(Route::RegisterAvailable), &["GET"]),
        ["register", "m.login.registration_token", "validity"] => {
            (Some(Route::RegistrationTokenValidity), &["GET"])
        }
        ["login"] if method == "GET" => (Some(Route::LoginFlows), &["GET", "POST"]),
        ["login"] => (Some(Route::Login), &["GET", "POST"]),
        ["logout"] => (Some(Route::Logout), &["POST"]),
        ["logout", "all"] => (Some(Route::LogoutAll), &["POST"]),
        ["account", "whoami"] => (Some(Route::Whoami), &["GET"]),
        ["createRoom"] => (Some(Route::CreateRoom), &["POST"]),
        ["join", target] => (Some(Route::JoinByIdOrAlias(owned(target))), &["POST"]),
        ["knock", target] => (Some(Route::KnockByIdOrAlias(owned(target))), &["POST"]),
        ["joined_rooms"] => (Some(Route::JoinedRooms), &["GET"]),
        ["sync"] => (Some(Route::Sync), &["GET"]),
        ["user", user, "filter"] => (Some(Route::CreateFilter(owned(user))), &["POST"]),
        ["user", user, "filter", id] => (Some(Route::GetFilter(owned(user), owned(id))), &["GET"]),
        ["directory", "room", alias] => {
            let action = match method {
                "PUT" => AliasAction::Put,
                "DELETE" => AliasAction::Delete,
                _ => AliasAction::Get,
            };
            (
                Some(Route::Alias(action, owned(alias))),
                &["GET", "PUT", "DELETE"],
            )
        }
        ["rooms", room, rest @ ..] => {
            let (action, allowed) = room_route(method, rest);
            (
                action.map(|action| Route::Room(owned(room), action)),
                allowed,
            )
        }
        _ => (None, &[]),
    }
}

fn room_route(method: &str, parts: &[&str]) -> (Option<RoomAction>, &'static [&'static str]) {
    let owned = |s: &&str| (*s).to_owned();
    let post = &["POST"][..];
    match parts {
        ["join"] => (Some(RoomAction::Join), post),
        ["invite"] => (Some(RoomAction::Invite), post),
        ["leave"] => (Some(RoomAction::Leave), post),
        ["kick"] => (Some(RoomAction::Kick), post),
        ["ban"] => (Some(RoomAction::Ban), post),
        ["unban"] => (Some(RoomAction::Unban), post),
        ["forget"] => (Some(RoomAction::Forget), post),
        ["joined_members"] => (Some(RoomAction::JoinedMembers), &["GET"]),
        ["members"] => (Some(RoomAction::Members), &["GET"]),
        ["state"] => (Some(RoomAction::AllState), &["GET"]),
        ["state", kind] => (Some(state_action(method, kind, "")), &["GET", "PUT"]),
        ["state", kind, key] => (Some(state_action(method, kind, key)), &["GET", "PUT"]),
        ["send", kind, txn] => (Some(RoomAction::Send(owned(kind), owned(txn))), &["PUT"]),
        ["redact", event, txn] => (Some(RoomAction::Redact(owned(event), owned(txn))), &["PUT"]),
        ["event", event] => (Some(RoomAction::Event(owned(event))), &["GET"]),
        ["context", event] => (Some(RoomAction::Context(owned(event))), &["GET"]),
        ["messages"] => (Some(RoomAction::Messages), &["GET"]),
        ["aliases"] => (Some(RoomAction::Aliases), &["GET"]),
        ["upgrade"] => (Some(RoomAction::Upgrade), &["POST"]),
        _ => (None, &[]),
    }
}

fn admin_route(method: &str, parts: &[&str]) -> Resolved {
    let owned = |s: &&str| (*s).to_owned();
    let (route, allowed): (Option<AdminRoute>, &'static [&'static str]) = match parts {
        ["users"] if method == "POST" => (Some(AdminRoute::CreateUser), &["GET", "POST"]),
        ["users"] => (Some(AdminRoute::ListUsers), &["GET", "POST"]),
        ["users", user] => (Some(AdminRoute::GetUser(owned(user))), &["GET"]),
        ["users", user, "deactivate"] => (Some(AdminRoute::DeactivateUser(owned(user))), &["POST"]),
        ["statistics"] => (Some(AdminRoute::Statistics), &["GET"]),
        ["rooms"] => (Some(AdminRoute::ListRooms), &["GET"]),
        ["rooms", room] if method == "DELETE" => (
            Some(AdminRoute::DeleteRoom(owned(room))),
            &["GET", "DELETE"],
        ),
        ["rooms", room] => (Some(AdminRoute::GetRoom(owned(room))), &["GET", "DELETE"]),
        ["rooms", room, "purge"] => (Some(AdminRoute::PurgeHistory(owned(room))), &["POST"]),
        _ => (None, &[]),
    };
    (route.map(Route::Admin), allowed)
}

fn state_action(method: &str, kind: &str, key: &str) -> RoomAction {
    if method == "PUT" {
        RoomAction::PutState(kind.to_owned(), key.to_owned())
    } else {
        RoomAction::GetState(kind.to_owned(), key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::{AdminRoute, RoomAction, Route, resolve};

    #[test]
    fn decodes_room_path_parameters() {
        let route = resolve(
            "PUT",
            "/_matrix/client/v3/rooms/%21a%3Ax/send/m.room.message/t1",
        );
        let Ok(Route::Room(room, RoomAction::Send(kind, txn))) = route else {
            panic!("unexpected route {route:?}");
        };
        assert_eq!(room, "!a:x");
        assert_eq!(kind, "m.room.message");
        assert_eq!(txn, "t1");
    }

    #[test]
    fn unknown_path_is_404_and_wrong_method_405() {
        assert_eq!(
            resolve("GET", "/_matrix/client/v3/nope")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            resolve("DELETE", "/_matrix/client/v3/sync")
                .unwrap_err()
                .status,
            405
        );
    }

    #[test]
    fn state_with_empty_key() {
        let route = resolve("GET", "/_matrix/client/v3/rooms/!a:x/state/m.room.name/");
        assert!(
            matches!(route, Ok(Route::Room(_, RoomAction::GetState(_, key))) if key.is_empty())
        );
    }

    #[test]
    fn admin_routes_resolve_by_method() {
        let route = resolve("DELETE", "/_eltrix/admin/v1/rooms/%21a%3Ax");
        assert!(matches!(route, Ok(Route::Admin(AdminRoute::DeleteRoom(room))) if room == "!a:x"));
        let route = resolve("POST", "/_eltrix/admin/v1/users");
        assert!(matches!(route, Ok(Route::Admin(AdminRoute::CreateUser))));
        let route = resolve("GET", "/_synapse/admin/v1/register");
        assert!(matches!(route, Ok(Route::SharedSecretNonce)));
        assert!(!Route::SharedSecretRegister.needs_auth());
        assert_eq!(
            resolve("PUT", "/_eltrix/admin/v1/statistics")
                .unwrap_err()
                .status,
            405
        );
    }

    #[test]
    fn knock_takes_room_id_or_alias() {
        let route = resolve("POST", "/_matrix/client/v3/knock/%23lobby%3Ax");
        assert!(matches!(route, Ok(Route::KnockByIdOrAlias(target)) if target == "#lobby:x"));
        assert_eq!(
            resolve("GET", "/_matrix/client/v3/knock/%21a%3Ax")
                .unwrap_err()
                .status,
            405
        );
    }

    #[test]
    fn invalid_utf8_escape_is_invalid_param() {
        let error = resolve("GET", "/_matrix/client/v3/rooms/%ff/state").unwrap_err();
        assert_eq!(error.errcode, "M_INVALID_PARAM");
    }
}
