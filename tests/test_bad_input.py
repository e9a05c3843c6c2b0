"""Malformed requests: every one must get a 4xx Matrix error and leave the server intact.

Each test ends with `check_intact`, which asserts that /health still returns 200 and
that a message sent before the test is still readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pytest

from harness import (
    SHARD_HEADER,
    Account,
    Homeserver,
    assert_error,
    expect_ok,
    q,
    unique,
)

MAX_SAFE_INTEGER = 2**53 - 1
TWO_MEGABYTES = 2 * 1024 * 1024


@dataclass
class World:
    hs: Homeserver
    alice: Account  # creator of the room, on shard 0
    bob: Account  # member on shard 1, only used to read the canary
    carol: Account  # member on shard 0, the actor for her own membership changes
    room_id: str
    canary_id: str
    redact_target_id: str

    def check_intact(self) -> None:
        assert expect_ok(self.hs.get("/health")) == {"status": "healthy"}
        canary = self.bob.event(self.room_id, self.canary_id)
        assert canary["content"]["body"] == "canary"


@pytest.fixture(scope="module")
def world(hs) -> World:
    alice = hs.register_on_shard("alice", 0)
    bob = hs.register_on_shard("bob", 1)
    carol = hs.register_on_shard("carol", 0)
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    carol.join(room_id)
    canary_id = alice.send_message(room_id, "canary")
    redact_target_id = alice.send_message(room_id, "redaction target")
    return World(hs, alice, bob, carol, room_id, canary_id, redact_target_id)


# ---------------------------------------------------------------------------
# Endpoint table


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: Callable[[World], str]
    # Name of the World account that sends the request, or None for endpoints without auth.
    actor: str | None
    # A body the endpoint accepts, or None for endpoints without a body.
    valid_body: Callable[[World], dict] | None = None
    # Bodies that are JSON objects of the wrong shape or with wrongly typed fields.
    wrong_shapes: tuple[dict, ...] = ()

    def send(self, world: World, **kwargs):
        token = getattr(world, self.actor).access_token if self.actor else None
        return world.hs.request(self.method, self.path(world), token=token, **kwargs)

    def __str__(self) -> str:
        return self.name


GHOST = "@ghost-never-registered:localhost"

JSON_ENDPOINTS = [
    Endpoint(
        "register",
        "POST",
        lambda w: "register",
        None,
        lambda w: {"username": unique("reg"), "password": "pw-reg-1"},
        (
            {"username": 5},
            {"password": ["x"]},
            {"username": unique("reg"), "inhibit_login": "yes"},
            {"username": unique("reg"), "auth": "m.login.dummy"},
            {"username": unique("reg"), "device_id": {}},
        ),
    ),
    Endpoint(
        "login",
        "POST",
        lambda w: "login",
        None,
        lambda w: {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": w.alice.localpart},
            "password": w.alice.password,
        },
        (
            {"type": 5},
            {"type": "m.login.password", "identifier": "alice", "password": "x"},
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": 5},
                "password": "x",
            },
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "x"},
                "password": 7,
            },
        ),
    ),
    Endpoint(
        "createRoom",
        "POST",
        lambda w: "createRoom",
        "alice",
        lambda w: {},
        (
            {"name": 5},
            {"topic": []},
            {"invite": "@x:localhost"},
            {"invite": [5]},
            {"initial_state": {}},
            {"initial_state": [5]},
            {"room_version": 12},
            {"power_level_content_override": []},
            {"is_direct": "yes"},
            {"creation_content": "x"},
        ),
    ),
    Endpoint(
        "join by ID or alias",
        "POST",
        lambda w: f"join/{q(w.room_id)}",
        "carol",
        lambda w: {},
        ({"reason": 5},),
    ),
    Endpoint(
        "rooms join",
        "POST",
        lambda w: f"rooms/{q(w.room_id)}/join",
        "carol",
        lambda w: {},
        ({"reason": 5},),
    ),
    Endpoint(
        "invite",
        "POST",
        lambda w: f"rooms/{q(w.room_id)}/invite",
        "alice",
        lambda w: {"user_id": GHOST},
        ({"user_id": 5}, {}, {"user_id": [GHOST]}, {"user_id": GHOST, "reason": 5}),
    ),
    Endpoint(
        "kick",
        "POST",
        lambda w: f"rooms/{q(w.room_id)}/kick",
        "alice",
        lambda w: {"user_id": GHOST},
        ({"user_id": 5}, {}, {"user_id": GHOST, "reason": 5}),
    ),
    Endpoint(
        "ban",
        "POST",
        lambda w: f"rooms/{q(w.room_id)}/ban",
        "alice",
        lambda w: {"user_id": GHOST},
        ({"user_id": 5}, {}, {"user_id": GHOST, "reason": 5}),
    ),
    Endpoint(
        "unban",
        "POST",
        lambda w: f"rooms/{q(w.room_id)}/unban",
        "alice",
        lambda w: {"user_id": GHOST},
        ({"user_id": 5}, {}, {"user_id": GHOST, "reason": []}),
    ),
    Endpoint(
        "leave",
        "POST",
        lambda w: f"rooms/{q(w.room_id)}/leave",
        "carol",
        lambda w: {},
        ({"reason": 5},),
    ),
    Endpoint(
        "state",
        "PUT",
        lambda w: f"rooms/{q(w.room_id)}/state/org.example.bad/key",
        "alice",
        lambda w: {"v": 1},
    ),
    Endpoint(
        "send",
        "PUT",
        lambda w: f"rooms/{q(w.room_id)}/send/m.room.message/{unique('txn')}",
        "alice",
        lambda w: {"msgtype": "m.text", "body": "valid"},
    ),
    Endpoint(
        "redact",
        "PUT",
        lambda w: (
            f"rooms/{q(w.room_id)}/redact/{q(w.redact_target_id)}/{unique('txn')}"
        ),
        "alice",
        lambda w: {},
        ({"reason": 5},),
    ),
    Endpoint(
        "filter",
        "POST",
        lambda w: f"user/{q(w.alice.user_id)}/filter",
        "alice",
        lambda w: {},
        (
            {"room": []},
            {"event_fields": "content"},
            {"room": {"timeline": {"limit": "ten"}}},
            {"presence": {"types": "m.presence"}},
            {"room": {"rooms": "!x"}},
            {"event_format": 5},
        ),
    ),
    Endpoint(
        "directory",
        "PUT",
        lambda w: f"directory/room/{q('#' + unique('bad') + ':localhost')}",
        "alice",
        lambda w: {"room_id": w.room_id},
        ({"room_id": 5}, {}, {"room_id": ["!x"]}),
    ),
]

READ_ENDPOINTS = [
    Endpoint("whoami", "GET", lambda w: "account/whoami", "alice"),
    Endpoint("capabilities", "GET", lambda w: "capabilities", "alice"),
    Endpoint("joined_rooms", "GET", lambda w: "joined_rooms", "alice"),
    Endpoint("sync", "GET", lambda w: "sync", "alice"),
    Endpoint("state list", "GET", lambda w: f"rooms/{q(w.room_id)}/state", "alice"),
    Endpoint(
        "state one",
        "GET",
        lambda w: f"rooms/{q(w.room_id)}/state/m.room.create/",
        "alice",
    ),
    Endpoint(
        "messages", "GET", lambda w: f"rooms/{q(w.room_id)}/messages?dir=b", "alice"
    ),
    Endpoint("members", "GET", lambda w: f"rooms/{q(w.room_id)}/members", "alice"),
    Endpoint(
        "joined_members",
        "GET",
        lambda w: f"rooms/{q(w.room_id)}/joined_members",
        "alice",
    ),
    Endpoint(
        "event",
        "GET",
        lambda w: f"rooms/{q(w.room_id)}/event/{q(w.canary_id)}",
        "alice",
    ),
    Endpoint("aliases", "GET", lambda w: f"rooms/{q(w.room_id)}/aliases", "alice"),
    Endpoint(
        "filter get", "GET", lambda w: f"user/{q(w.alice.user_id)}/filter/0", "alice"
    ),
    Endpoint("forget", "POST", lambda w: f"rooms/{q(w.room_id)}/forget", "alice"),
    Endpoint("logout", "POST", lambda w: "logout", "alice"),
    Endpoint("logout all", "POST", lambda w: "logout/all", "alice"),
]

AUTHED_ENDPOINTS = [e for e in JSON_ENDPOINTS + READ_ENDPOINTS if e.actor is not None]

WRONG_SHAPES = [
    pytest.param(endpoint, body, id=f"{endpoint.name}-{json.dumps(body)}")
    for endpoint in JSON_ENDPOINTS
    for body in endpoint.wrong_shapes
]


# ---------------------------------------------------------------------------
# Bodies that are not JSON, or not JSON objects

INVALID_JSON = [
    pytest.param(b'{"body": ', id="truncated"),
    pytest.param(b"{not json}", id="bare-words"),
    pytest.param(b"{'body': 'single quotes'}", id="single-quotes"),
    pytest.param(b'{"body": "x",}', id="trailing-comma"),
    pytest.param(b'{"n": NaN}', id="nan"),
    pytest.param(b'{"body": "x"} trailing', id="trailing-garbage"),
]

INVALID_UTF8 = [
    pytest.param(b'{"body": "\xff\xfe"}', id="ff-fe"),
    pytest.param(b'{"body": "\xc3\x28"}', id="bad-continuation"),
    pytest.param(b'{"body": "\xed\xa0\x80"}', id="encoded-surrogate"),
    pytest.param(b'{"\xc0\xaf": 1}', id="overlong-key"),
]

NOT_OBJECTS = [
    pytest.param(b"[]", id="empty-array"),
    pytest.param(b'[{"body": "x"}]', id="array-of-object"),
    pytest.param(b'"text"', id="string"),
    pytest.param(b"5", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="bool"),
]


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
@pytest.mark.parametrize("payload", INVALID_JSON)
def test_invalid_json(world, endpoint, payload):
    assert_error(endpoint.send(world, data=payload), 400, "M_NOT_JSON")
    world.check_intact()


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_invalid_utf8(world, endpoint, payload):
    assert_error(endpoint.send(world, data=payload), 400, "M_NOT_JSON")
    world.check_intact()


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
@pytest.mark.parametrize("payload", NOT_OBJECTS)
def test_body_not_object(world, endpoint, payload):
    assert_error(endpoint.send(world, data=payload), 400, "M_BAD_JSON")
    world.check_intact()


@pytest.mark.parametrize(("endpoint", "body"), WRONG_SHAPES)
def test_wrong_shape(world, endpoint, body):
    assert_error(endpoint.send(world, json_body=body), 400, "M_BAD_JSON")
    world.check_intact()


@pytest.mark.parametrize(
    "endpoint",
    [
        e
        for e in JSON_ENDPOINTS
        if e.name in {"register", "login", "createRoom", "send"}
    ],
    ids=str,
)
def test_empty_body(world, endpoint):
    assert_error(endpoint.send(world, data=b""), 400, "M_NOT_JSON")
    world.check_intact()


@pytest.mark.parametrize(
    "endpoint",
    [e for e in JSON_ENDPOINTS if e.name in {"send", "state", "createRoom", "filter"}],
    ids=str,
)
def test_deeply_nested_json(world, endpoint):
    depth = 100_000
    payload = b'{"a":' * depth + b"1" + b"}" * depth
    assert_error(
        endpoint.send(world, data=payload),
        {400, 413},
        {"M_NOT_JSON", "M_BAD_JSON", "M_TOO_LARGE"},
    )
    world.check_intact()


# ---------------------------------------------------------------------------
# Numbers outside canonical JSON, oversized events and bodies

CONTENT_ENDPOINTS = [e for e in JSON_ENDPOINTS if e.name in {"send", "state"}]


def message_with(extra: str) -> bytes:
    """Return a valid m.text message body with `extra` spliced in as raw JSON members."""
    return f'{{"msgtype": "m.text", "body": "x", {extra}}}'.encode()


# Canonical JSON allows only integers in [-(2**53)+1, (2**53)-1], with no
# fraction or exponent, so each of these must be rejected.
BAD_NUMBERS = [
    pytest.param(message_with('"n": 1.5'), id="float"),
    pytest.param(message_with('"n": 1.0'), id="integral-float"),
    pytest.param(message_with('"n": 1e3'), id="exponent"),
    pytest.param(message_with('"n": -0.0'), id="negative-zero"),
    pytest.param(message_with('"deep": {"list": [0.5]}'), id="nested-float"),
    pytest.param(message_with(f'"n": {MAX_SAFE_INTEGER + 1}'), id="above-max-safe"),
    pytest.param(message_with(f'"n": {-MAX_SAFE_INTEGER - 1}'), id="below-min-safe"),
    pytest.param(message_with(f'"n": {10**30}'), id="huge"),
    pytest.param(message_with(f'"a": [{{"n": {2**64}}}]'), id="nested-huge"),
]


@pytest.mark.parametrize("endpoint", CONTENT_ENDPOINTS, ids=str)
@pytest.mark.parametrize("payload", BAD_NUMBERS)
def test_non_canonical_numbers(world, endpoint, payload):
    assert_error(endpoint.send(world, data=payload), 400, "M_BAD_JSON")
    world.check_intact()


def test_safe_integer_bounds_accepted(world):
    content = {
        "msgtype": "m.text",
        "body": "bounds",
        "max": MAX_SAFE_INTEGER,
        "min": -MAX_SAFE_INTEGER,
    }
    event_id = world.alice.send_event(world.room_id, "m.room.message", content)
    assert world.bob.event(world.room_id, event_id)["content"] == content
    world.check_intact()


def test_float_in_initial_state(world):
    body = b'{"initial_state": [{"type": "org.example.x", "state_key": "", "content": {"n": 0.5}}]}'
    resp = world.alice.request("POST", "createRoom", data=body)
    assert_error(resp, 400, {"M_BAD_JSON", "M_INVALID_ROOM_STATE"})
    world.check_intact()


@pytest.mark.parametrize("endpoint", CONTENT_ENDPOINTS, ids=str)
def test_event_over_64k(world, endpoint):
    content = {"msgtype": "m.text", "body": "x" * 70_000}
    assert_error(endpoint.send(world, json_body=content), 413, "M_TOO_LARGE")
    world.check_intact()


@pytest.mark.parametrize("endpoint", CONTENT_ENDPOINTS, ids=str)
def test_event_under_64k_accepted(world, endpoint):
    content = {"msgtype": "m.text", "body": "y" * 60_000}
    event_id = expect_ok(endpoint.send(world, json_body=content))["event_id"]
    assert world.bob.event(world.room_id, event_id)["content"] == content
    world.check_intact()


def test_event_type_over_255_bytes(world):
    path = f"rooms/{q(world.room_id)}/send/{'t' * 300}/{unique('txn')}"
    assert_error(world.alice.put(path, {"body": "x"}), {400, 413})
    world.check_intact()


def test_state_key_over_255_bytes(world):
    path = f"rooms/{q(world.room_id)}/state/org.example.long/{'k' * 300}"
    assert_error(world.alice.put(path, {"v": 1}), {400, 413})
    world.check_intact()


@pytest.mark.parametrize(
    "endpoint",
    [
        e
        for e in JSON_ENDPOINTS
        if e.name in {"register", "login", "createRoom", "send", "state", "filter"}
    ],
    ids=str,
)
def test_two_megabyte_body(world, endpoint):
    body = b'{"msgtype": "m.text", "body": "' + b"z" * TWO_MEGABYTES + b'"}'
    headers = {"Content-Type": "application/json"}
    if endpoint.actor:
        headers["Authorization"] = (
            f"Bearer {getattr(world, endpoint.actor).access_token}"
        )
    resp = world.hs.raw(endpoint.method, endpoint.path(world), body, headers)
    assert_error(resp, 413, "M_TOO_LARGE")
    world.check_intact()


# ---------------------------------------------------------------------------
# Access tokens


def valid_request_kwargs(endpoint: Endpoint, world: World) -> dict:
    return {"json_body": endpoint.valid_body(world)} if endpoint.valid_body else {}


@pytest.mark.parametrize("endpoint", AUTHED_ENDPOINTS, ids=str)
def test_missing_token(world, endpoint):
    resp = world.hs.request(
        endpoint.method, endpoint.path(world), **valid_request_kwargs(endpoint, world)
    )
    assert_error(resp, 401, "M_MISSING_TOKEN")
    world.check_intact()


@pytest.mark.parametrize("endpoint", AUTHED_ENDPOINTS, ids=str)
def test_unknown_token(world, endpoint):
    resp = world.hs.request(
        endpoint.method,
        endpoint.path(world),
        token="syt_not_a_real_token_0123456789",
        **valid_request_kwargs(endpoint, world),
    )
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    world.check_intact()


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer-without-space"],
)
def test_malformed_authorization_header(world, header):
    resp = world.hs.get("account/whoami", headers={"Authorization": header})
    assert_error(resp, 401, {"M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"})
    world.check_intact()


# ---------------------------------------------------------------------------
# Unknown endpoints and wrong methods

UNKNOWN_PATHS = [
    "/_matrix/client/v3/no_such_endpoint",
    "/_matrix/client/v3/rooms/{room}/no_such_action",
    "/_matrix/client/v99/account/whoami",
    "/_matrix/no_such_api/v1/thing",
    "/no-such-top-level-path",
]


@pytest.mark.parametrize("template", UNKNOWN_PATHS)
@pytest.mark.parametrize("authed", [True, False], ids=["with-token", "without-token"])
def test_unknown_endpoint(world, template, authed):
    path = template.format(room=q(world.room_id))
    token = world.alice.access_token if authed else None
    resp = world.hs.request("GET", path, token=token)
    assert_error(resp, 404, "M_UNRECOGNIZED")
    world.check_intact()


WRONG_METHODS = [
    ("DELETE", "login"),
    ("PUT", "register"),
    ("POST", "account/whoami"),
    ("PUT", "sync"),
    ("GET", "createRoom"),
    ("DELETE", "joined_rooms"),
    ("POST", "/_matrix/client/versions"),
    ("DELETE", "capabilities"),
    ("GET", "rooms/{room}/send/m.room.message/{txn}"),
    ("POST", "rooms/{room}/send/m.room.message/{txn}"),
    ("DELETE", "rooms/{room}/state"),
    ("GET", "rooms/{room}/invite"),
    ("PUT", "rooms/{room}/leave"),
    ("POST", "rooms/{room}/event/{event}"),
    ("PATCH", "directory/room/{alias}"),
    ("PUT", "user/{user}/filter"),
]


@pytest.mark.parametrize(
    ("method", "template"), WRONG_METHODS, ids=[f"{m} {t}" for m, t in WRONG_METHODS]
)
def test_wrong_method(world, method, template):
    path = template.format(
        room=q(world.room_id),
        txn=unique("txn"),
        event=q(world.canary_id),
        alias=q("#" + unique("alias") + ":localhost"),
        user=q(world.alice.user_id),
    )
    resp = world.alice.request(method, path, json_body={})
    assert_error(resp, 405, "M_UNRECOGNIZED")
    world.check_intact()


def test_errors_carry_shard_header(world):
    for resp in (
        world.hs.get("/_matrix/client/v3/no_such_endpoint"),
        world.hs.get("account/whoami"),
        world.alice.request("POST", "createRoom", data=b"{"),
    ):
        assert resp.status_code >= 400
        assert resp.headers.get(SHARD_HEADER) in {"0", "1"}, (
            f"missing {SHARD_HEADER} on {resp.url}"
        )
    world.check_intact()


# ---------------------------------------------------------------------------
# Odd identifiers in paths and bodies

MALFORMED_ROOM_IDS = [
    pytest.param("!", id="bare-sigil"),
    pytest.param("%00", id="nul"),
    pytest.param("!abc%00def", id="embedded-nul"),
    pytest.param("!" + "a" * 2000, id="very-long"),
    pytest.param("%FF%FE", id="non-utf8"),
    pytest.param("!abc%FFdef", id="embedded-non-utf8"),
    pytest.param("not-a-room-id", id="no-sigil"),
    pytest.param(q("#an-alias:localhost"), id="alias"),
]

# A well-formed ID of a room on another server. Its server name is a loopback
# port where nothing listens, so a server that tries federation stays on this host.
REMOTE_ROOM_ID = q("!unknownroom:127.0.0.1:1")

ROOM_ROUTES = [
    ("GET", "rooms/{room}/state", None),
    ("GET", "rooms/{room}/state/m.room.name/", None),
    ("PUT", "rooms/{room}/state/org.example.odd/", {"v": 1}),
    ("GET", "rooms/{room}/messages?dir=b", None),
    ("GET", "rooms/{room}/members", None),
    ("GET", "rooms/{room}/joined_members", None),
    ("GET", "rooms/{room}/event/{event}", None),
    ("GET", "rooms/{room}/aliases", None),
    (
        "PUT",
        "rooms/{room}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": "odd"},
    ),
    ("PUT", "rooms/{room}/redact/{event}/{txn}", {}),
    ("POST", "rooms/{room}/invite", {"user_id": GHOST}),
    ("POST", "rooms/{room}/kick", {"user_id": GHOST}),
    ("POST", "rooms/{room}/join", {}),
    ("POST", "join/{room}", {}),
    ("POST", "rooms/{room}/leave", {}),
]

# Forgetting a room one never joined may succeed as a no-op, so forget is only
# sent malformed IDs.
FORGET_ROUTE = ("POST", "rooms/{room}/forget", {})


def route_ids(routes: list[tuple]) -> list[str]:
    return [f"{method} {template}" for method, template, _body in routes]


@pytest.mark.parametrize(
    ("method", "template", "body"),
    ROOM_ROUTES + [FORGET_ROUTE],
    ids=route_ids(ROOM_ROUTES + [FORGET_ROUTE]),
)
@pytest.mark.parametrize("room", MALFORMED_ROOM_IDS)
def test_malformed_room_id(world, method, template, body, room):
    path = template.format(room=room, event=q(world.canary_id), txn=unique("txn"))
    resp = world.carol.request(method, path, json_body=body)
    assert_error(resp, {400, 403, 404})
    world.check_intact()


@pytest.mark.parametrize(
    ("method", "template", "body"), ROOM_ROUTES, ids=route_ids(ROOM_ROUTES)
)
def test_remote_room_id(world, method, template, body):
    path = template.format(
        room=REMOTE_ROOM_ID, event=q(world.canary_id), txn=unique("txn")
    )
    resp = world.carol.request(method, path, json_body=body)
    assert_error(resp, {400, 403, 404})
    world.check_intact()


MALFORMED_EVENT_IDS = [
    pytest.param("%24", id="bare-sigil"),
    pytest.param("%00", id="nul"),
    pytest.param("%24" + "a" * 2000, id="very-long"),
    pytest.param("%FF", id="non-utf8"),
    pytest.param("not-an-event-id", id="no-sigil"),
]

# Well-formed IDs of events this server does not have.
UNKNOWN_EVENT_IDS = [
    pytest.param(q("$abc:127.0.0.1:1"), id="v1-style"),
    pytest.param(q("$" + "A" * 43), id="v12-style"),
]


@pytest.mark.parametrize("event", MALFORMED_EVENT_IDS + UNKNOWN_EVENT_IDS)
def test_odd_event_id_get(world, event):
    assert_error(world.alice.get(f"rooms/{q(world.room_id)}/event/{event}"), {400, 404})
    world.check_intact()


@pytest.mark.parametrize("event", MALFORMED_EVENT_IDS)
def test_malformed_event_id_redact(world, event):
    resp = world.alice.put(
        f"rooms/{q(world.room_id)}/redact/{event}/{unique('txn')}", {}
    )
    assert_error(resp, {400, 404})
    world.check_intact()


ODD_USER_IDS = [
    pytest.param("%FF", id="non-utf8"),
    pytest.param("%40", id="bare-sigil"),
    pytest.param("not-a-user", id="no-sigil"),
    pytest.param(q("@" + "a" * 2000 + ":localhost"), id="very-long"),
    pytest.param("%00", id="nul"),
]


@pytest.mark.parametrize("user", ODD_USER_IDS)
def test_odd_user_id_in_path(world, user):
    assert_error(world.alice.post(f"user/{user}/filter", {}), {400, 403, 404})
    assert_error(world.alice.get(f"user/{user}/filter/0"), {400, 403, 404})
    world.check_intact()


def test_filter_of_other_user(world):
    resp = world.alice.post(f"user/{q(world.bob.user_id)}/filter", {})
    assert_error(resp, 403, "M_FORBIDDEN")
    world.check_intact()


@pytest.mark.parametrize(
    "user_id",
    ["", "@", "bob", "@bob", "@Bad Name:localhost", "@" + "a" * 300 + ":localhost"],
    ids=["empty", "bare-sigil", "no-sigil", "no-server", "space", "over-255-bytes"],
)
@pytest.mark.parametrize("action", ["invite", "kick", "ban"])
def test_odd_user_id_in_body(world, action, user_id):
    resp = world.alice.post(f"rooms/{q(world.room_id)}/{action}", {"user_id": user_id})
    # An over-long user ID is also an over-long state key, which may be reported as 413.
    assert_error(resp, {400, 403, 404, 413})
    world.check_intact()


ODD_ALIASES = [
    pytest.param("%23", id="bare-sigil"),
    pytest.param("%00", id="nul"),
    pytest.param("no-sigil", id="no-sigil"),
    pytest.param("%23no-server-part", id="no-server"),
    pytest.param("%FF", id="non-utf8"),
    pytest.param(q("#" + "a" * 2000 + ":localhost"), id="very-long"),
]


@pytest.mark.parametrize("alias", ODD_ALIASES)
def test_odd_alias(world, alias):
    path = f"directory/room/{alias}"
    assert_error(world.alice.get(path), {400, 404})
    assert_error(world.alice.put(path, {"room_id": world.room_id}), {400, 404})
    assert_error(world.alice.delete(path), {400, 404})
    world.check_intact()


# ---------------------------------------------------------------------------
# Query parameters

BAD_QUERIES = [
    ("messages-bad-dir", "rooms/{room}/messages", {"dir": "x"}, {"M_INVALID_PARAM"}),
    (
        "messages-no-dir",
        "rooms/{room}/messages",
        {},
        {"M_MISSING_PARAM", "M_INVALID_PARAM"},
    ),
    (
        "messages-bad-limit",
        "rooms/{room}/messages",
        {"dir": "b", "limit": "abc"},
        {"M_INVALID_PARAM"},
    ),
    (
        "messages-bad-from",
        "rooms/{room}/messages",
        {"dir": "b", "from": "garbage"},
        {"M_INVALID_PARAM"},
    ),
    (
        "messages-filter-not-json",
        "rooms/{room}/messages",
        {"dir": "b", "filter": "{nope"},
        {"M_NOT_JSON", "M_BAD_JSON", "M_INVALID_PARAM"},
    ),
    (
        "messages-filter-wrong-shape",
        "rooms/{room}/messages",
        {"dir": "b", "filter": '{"types": "m.room.message"}'},
        {"M_BAD_JSON", "M_INVALID_PARAM"},
    ),
    ("sync-bad-timeout", "sync", {"timeout": "abc"}, {"M_INVALID_PARAM"}),
    ("sync-bad-since", "sync", {"since": "garbage"}, {"M_INVALID_PARAM"}),
    (
        "sync-filter-not-json",
        "sync",
        {"filter": "{nope"},
        {"M_NOT_JSON", "M_BAD_JSON", "M_INVALID_PARAM"},
    ),
    (
        "sync-filter-wrong-shape",
        "sync",
        {"filter": '{"room": []}'},
        {"M_BAD_JSON", "M_INVALID_PARAM"},
    ),
    ("sync-bad-presence", "sync", {"set_presence": "dancing"}, {"M_INVALID_PARAM"}),
    (
        "members-bad-membership",
        "rooms/{room}/members",
        {"membership": "dancing"},
        {"M_INVALID_PARAM"},
    ),
    (
        "available-no-username",
        "register/available",
        {},
        {"M_MISSING_PARAM", "M_INVALID_PARAM"},
    ),
]


@pytest.mark.parametrize(
    ("path", "params", "errcodes"),
    [c[1:] for c in BAD_QUERIES],
    ids=[c[0] for c in BAD_QUERIES],
)
def test_bad_query_parameter(world, path, params, errcodes):
    resp = world.alice.get(path.format(room=q(world.room_id)), params=params)
    assert_error(resp, 400, errcodes)
    world.check_intact()


def test_sync_unknown_filter_id(world):
    resp = world.alice.get("sync", params={"filter": "no-such-filter-42"})
    assert_error(resp, {400, 404}, {"M_INVALID_PARAM", "M_NOT_FOUND"})
    world.check_intact()


@pytest.mark.parametrize("body", [b"[]", b"1", b'"text"', b"null"])
def test_non_object_body_is_bad_json(hs, body):
    alice = hs.register_on_shard(unique("nonobject"), 0)
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    resp = hs.raw("POST", "createRoom", body, headers)
    error = assert_error(resp, 400, "M_BAD_JSON")
    assert "object" in error["error"]
