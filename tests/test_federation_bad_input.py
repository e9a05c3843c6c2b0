"""Malformed and hostile requests to Eltrix's server-server API.

Each request is signed as a real Synapse peer, so it passes the X-Matrix
check and reaches the endpoint's own validation, unless the test is about
that check. Every rejection must be a 4xx Matrix error, a bad event in a
transaction must leave the room unchanged, and the server must still serve
clients at the end of the module.

Events are built for room version 10, the version of every room here: its
event IDs are reference hashes and its redaction keeps the pre-v11 keys.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from canonicaljson import encode_canonical_json
from signedjson.key import generate_signing_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from harness import (
    Account,
    Homeserver,
    RawResponse,
    ServerFactory,
    assert_error,
    expect_ok,
    q,
    tls_pair,
    unique,
)
from synapse_peer import SynapsePeer, synapse_peer

ROOM_VERSION = "10"
FEDERATION = "/_matrix/federation"

# Seconds to wait for any one federation response before calling it a hang.
RESPONSE_TIMEOUT = 15

# The transaction limits of the server-server API (PUT /send).
MAX_PDUS = 50
MAX_EDUS = 100

# Eltrix serves at most 100 events per backfill or get_missing_events page.
MAX_PAGE = 100

# Messages in the shared room, more than one page, so that a huge `limit`
# shows whether the page size is capped.
HISTORY_MESSAGES = MAX_PAGE + 20

# A server name on loopback where nothing listens: key fetches for it fail
# at once, and no request that names it leaves the machine.
UNREACHABLE_SERVER = "localhost:1"

# Marks a request without a body. None cannot, because null is a valid JSON body.
NO_BODY = object()

# Top-level keys that redaction keeps in room versions 1 to 10.
REDACTION_KEYS = {
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "prev_state",
    "auth_events",
    "origin",
    "origin_server_ts",
    "membership",
}


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def eltrix(tmp_path_factory):
    factory = ServerFactory(tmp_path_factory)
    yield factory(federation=True)
    factory.stop_all()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory, eltrix):
    with synapse_peer(tmp_path_factory, peer_server_names=[eltrix.server_name]) as peer:
        yield peer


@dataclass
class Rooms:
    """The rooms that the tests send requests about."""

    alice: Account
    # A public room with a long history and one member on Synapse's server.
    shared: str
    # Synapse's user in `shared`, joined with make_join and send_join.
    member: str
    # The newest event of `shared` when the module starts.
    latest: str
    # A public room with only Eltrix users.
    local_only: str
    # The create event of `local_only`.
    local_event: str
    # The newest event of `local_only`.
    local_newest: str
    # An invite-only room with only Eltrix users.
    invite_only: str

    def unknown_room(self, eltrix: Homeserver) -> str:
        return f"!{unique('nowhere')}:{eltrix.server_name}"


@pytest.fixture(scope="module")
def rooms(eltrix, synapse) -> Rooms:
    alice = eltrix.register(unique("alice"))
    shared = alice.create_room(preset="public_chat", room_version=ROOM_VERSION)
    for number in range(HISTORY_MESSAGES):
        alice.send_message(shared, f"history {number}")
    member = synapse_user(synapse)
    join_id = join_as_synapse(eltrix, synapse, shared, member)

    local_only = alice.create_room(preset="public_chat", room_version=ROOM_VERSION)
    invite_only = alice.create_room(preset="private_chat", room_version=ROOM_VERSION)
    return Rooms(
        alice=alice,
        shared=shared,
        member=member,
        latest=join_id,
        local_only=local_only,
        local_event=state_event_id(alice, local_only, "m.room.create"),
        local_newest=newest_event_ids(alice, local_only)[0],
        invite_only=invite_only,
    )


# ---------------------------------------------------------------------------
# Requests signed as Synapse


def authorization(
    synapse: SynapsePeer,
    destination: str,
    method: str,
    uri: str,
    content: Any = NO_BODY,
    *,
    origin: str | None = None,
    signing_key: Any = None,
) -> str:
    """Build an X-Matrix header for `method uri` with `content` as the body.

    The request is signed with Synapse's key unless `signing_key` is given,
    and names Synapse as the origin unless `origin` is given.
    """
    origin = origin or synapse.server_name
    signing_key = signing_key or synapse.signing_key
    request = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not NO_BODY:
        request["content"] = content
    signed = sign_json(request, origin, signing_key)
    key_id = f"{signing_key.alg}:{signing_key.version}"
    signature = signed["signatures"][origin][key_id]
    return (
        f'X-Matrix origin="{origin}",destination="{destination}",'
        f'key="{key_id}",sig="{signature}"'
    )


def send_federation(
    eltrix: Homeserver,
    method: str,
    uri: str,
    body: bytes = b"",
    authorization_header: str | None = None,
    timeout: float = RESPONSE_TIMEOUT,
) -> RawResponse:
    """Send one request to Eltrix's federation listener, with `uri` sent byte for byte.

    Eltrix's self-signed certificate is the only one trusted. A response that
    does not arrive within `timeout` seconds fails the test as a hang.
    """
    certificate, _ = tls_pair(eltrix.data_dir.parent)
    context = ssl.create_default_context(cafile=str(certificate))
    connection = http.client.HTTPSConnection(
        eltrix.host, eltrix.federation_port, context=context, timeout=timeout
    )
    headers = {"Content-Type": "application/json"} if body else {}
    if authorization_header is not None:
        headers["Authorization"] = authorization_header
    try:
        connection.request(method, uri, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
    except TimeoutError:
        raise AssertionError(
            f"{method} {uri}: no response within {timeout} s"
        ) from None
    except (ConnectionError, http.client.HTTPException) as error:
        raise AssertionError(
            f"{method} {uri}: the connection failed without a response ({error!r})"
        ) from None
    finally:
        connection.close()
    return RawResponse(method, uri, response.status, response.headers, content)


def signed_request(
    eltrix: Homeserver,
    synapse: SynapsePeer,
    method: str,
    uri: str,
    body: Any = NO_BODY,
) -> RawResponse:
    """Send `method uri` with `body` as its JSON body, signed as Synapse."""
    header = authorization(synapse, eltrix.server_name, method, uri, body)
    data = b"" if body is NO_BODY else json.dumps(body).encode()
    return send_federation(eltrix, method, uri, data, header)


def signed_raw(
    eltrix: Homeserver, synapse: SynapsePeer, method: str, uri: str, data: bytes
) -> RawResponse:
    """Send `data` unparsed, with a header signed as Synapse for no body."""
    header = authorization(synapse, eltrix.server_name, method, uri)
    return send_federation(eltrix, method, uri, data, header)


def send_transaction(
    eltrix: Homeserver, synapse: SynapsePeer, pdus: list, edus: list | None = None
) -> RawResponse:
    body: dict[str, Any] = {
        "origin": synapse.server_name,
        "origin_server_ts": int(time.time() * 1000),
        "pdus": pdus,
    }
    if edus is not None:
        body["edus"] = edus
    return signed_request(
        eltrix, synapse, "PUT", f"{FEDERATION}/v1/send/{unique('txn')}", body
    )


# ---------------------------------------------------------------------------
# Events of room version 10


def redact(event: dict) -> dict:
    """Return the redacted form of a member or message event, which signatures cover."""
    kept = {key: value for key, value in event.items() if key in REDACTION_KEYS}
    content = event.get("content", {})
    if event.get("type") == "m.room.member" and isinstance(content, dict):
        names = ("membership", "join_authorised_via_users_server")
        kept["content"] = {name: content[name] for name in names if name in content}
    else:
        kept["content"] = {}
    return kept


def content_hash(event: dict) -> str:
    unhashed = {
        key: value
        for key, value in event.items()
        if key not in ("unsigned", "signatures", "hashes")
    }
    return encode_base64(hashlib.sha256(encode_canonical_json(unhashed)).digest())


def reference_event_id(event: dict) -> str:
    """Compute the event ID that room versions 4 and later derive from the event."""
    hashed = redact(event)
    hashed.pop("signatures", None)
    digest = hashlib.sha256(encode_canonical_json(hashed)).digest()
    return "$" + encode_base64(digest, urlsafe=True)


def sign_event(event: dict, server_name: str, signing_key: Any) -> dict:
    """Add the content hash and `server_name`'s signature to `event`, and return it."""
    event = {key: value for key, value in event.items() if key != "signatures"}
    event["hashes"] = {"sha256": content_hash(event)}
    signed = sign_json(redact(event), server_name, signing_key)
    event["signatures"] = signed["signatures"]
    return event


def synapse_user(synapse: SynapsePeer) -> str:
    """Return a fresh user ID on Synapse's server. Synapse never hears of it."""
    return f"@{unique('syn')}:{synapse.server_name}"


def join_template(eltrix, synapse, room_id: str, user_id: str) -> dict:
    uri = f"{FEDERATION}/v1/make_join/{q(room_id)}/{q(user_id)}?ver={ROOM_VERSION}"
    return expect_ok(signed_request(eltrix, synapse, "GET", uri))["event"]


def signed_join(eltrix, synapse, room_id: str, user_id: str) -> dict:
    """Return a join of `user_id` from make_join, hashed and signed as Synapse."""
    template = join_template(eltrix, synapse, room_id, user_id)
    return sign_event(template, synapse.server_name, synapse.signing_key)


def send_join(eltrix, synapse, room_id: str, event_id: str, event: Any) -> RawResponse:
    uri = f"{FEDERATION}/v2/send_join/{q(room_id)}/{q(event_id)}"
    return signed_request(eltrix, synapse, "PUT", uri, event)


def join_as_synapse(eltrix, synapse, room_id: str, user_id: str) -> str:
    """Join `user_id` to `room_id` with make_join and send_join, and return its ID."""
    event = signed_join(eltrix, synapse, room_id, user_id)
    event_id = reference_event_id(event)
    expect_ok(send_join(eltrix, synapse, room_id, event_id, event))
    return event_id


def state_event_id(
    account: Account, room_id: str, event_type: str, state_key: str = ""
) -> str:
    state = expect_ok(account.get(f"rooms/{q(room_id)}/state"))
    for event in state:
        if event["type"] == event_type and event.get("state_key") == state_key:
            return event["event_id"]
    raise AssertionError(
        f"{room_id} has no {event_type} event with state key {state_key!r}"
    )


def newest_event_ids(account: Account, room_id: str) -> list[str]:
    resp = account.get(f"rooms/{q(room_id)}/messages", params={"dir": "b", "limit": 10})
    return [event["event_id"] for event in expect_ok(resp)["chunk"]]


def joined_members(account: Account, room_id: str) -> set[str]:
    return set(expect_ok(account.get(f"rooms/{q(room_id)}/joined_members"))["joined"])


def message_event(
    rooms: Rooms, eltrix, synapse, sender: str, auth_events: list[str]
) -> dict:
    """Build an unsigned message from `sender` after the shared room's newest event."""
    return room_message(eltrix, synapse, rooms.alice, rooms.shared, sender, auth_events)


def room_message(
    eltrix, synapse, alice: Account, room_id: str, sender: str, auth_events: list[str]
) -> dict:
    """Build an unsigned message from `sender` after the newest event of `room_id`."""
    newest = newest_event_ids(alice, room_id)[0]
    uri = f"{FEDERATION}/v1/event/{q(newest)}"
    # int() because Eltrix accepts an event whose depth is a string (see the
    # depth-string case below), and that event may be the newest one.
    depth = int(
        expect_ok(signed_request(eltrix, synapse, "GET", uri))["pdus"][0]["depth"]
    )
    return {
        "type": "m.room.message",
        "room_id": room_id,
        "sender": sender,
        "origin": synapse.server_name,
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": unique("federated")},
        "depth": depth + 1,
        "prev_events": [newest],
        "auth_events": auth_events,
    }


def member_auth_events(rooms: Rooms, user_id: str | None) -> list[str]:
    """Return a message's auth events: create, power levels, the sender's membership."""
    alice, room_id = rooms.alice, rooms.shared
    ids = [
        state_event_id(alice, room_id, "m.room.create"),
        state_event_id(alice, room_id, "m.room.power_levels"),
    ]
    if user_id is not None:
        ids.append(state_event_id(alice, room_id, "m.room.member", user_id))
    return ids


def assert_event_unknown(rooms: Rooms, room_id: str, event_id: str) -> None:
    resp = rooms.alice.get(f"rooms/{q(room_id)}/event/{q(event_id)}")
    assert resp.status_code == 404, (
        f"the rejected event {event_id} is stored: {resp.text}"
    )


def pdu_results(resp) -> dict:
    body = expect_ok(resp)
    assert isinstance(body.get("pdus"), dict), f"no pdus map in {body}"
    return body["pdus"]


# ---------------------------------------------------------------------------
# X-Matrix authorization


def auth_endpoints(eltrix: Homeserver) -> dict[str, tuple[str, str, Any]]:
    """Return a method, URI and body for each endpoint that needs X-Matrix, by name."""
    room = q(f"!room:{eltrix.server_name}")
    event = q("$event")
    user = q(f"@user:{UNREACHABLE_SERVER}")
    alias = q(f"#alias:{eltrix.server_name}")
    return {
        "query_directory": (
            "GET",
            f"{FEDERATION}/v1/query/directory?room_alias={alias}",
            NO_BODY,
        ),
        "make_join": (
            "GET",
            f"{FEDERATION}/v1/make_join/{room}/{user}?ver=10",
            NO_BODY,
        ),
        "send_join": ("PUT", f"{FEDERATION}/v2/send_join/{room}/{event}", {}),
        "send": ("PUT", f"{FEDERATION}/v1/send/{unique('txn')}", {"pdus": []}),
        "event": ("GET", f"{FEDERATION}/v1/event/{event}", NO_BODY),
        "get_missing_events": (
            "POST",
            f"{FEDERATION}/v1/get_missing_events/{room}",
            {},
        ),
        "state_ids": (
            "GET",
            f"{FEDERATION}/v1/state_ids/{room}?event_id={event}",
            NO_BODY,
        ),
        "backfill": (
            "GET",
            f"{FEDERATION}/v1/backfill/{room}?v={event}&limit=1",
            NO_BODY,
        ),
    }


AUTH_ENDPOINTS = [
    "query_directory",
    "make_join",
    "send_join",
    "send",
    "event",
    "get_missing_events",
    "state_ids",
    "backfill",
]


def forged_header(synapse: SynapsePeer, eltrix: Homeserver) -> str:
    return (
        f'X-Matrix origin="{synapse.server_name}",destination="{eltrix.server_name}",'
        f'key="{synapse.verify_key_id}",sig="{"A" * 86}"'
    )


@pytest.mark.parametrize("name", AUTH_ENDPOINTS)
@pytest.mark.parametrize("flaw", ["missing", "garbage", "forged", "other-destination"])
def test_endpoint_rejects_bad_authorization(eltrix, synapse, name, flaw):
    method, uri, body = auth_endpoints(eltrix)[name]
    header = {
        "missing": None,
        "garbage": "X-Matrix garbage",
        "forged": forged_header(synapse, eltrix),
        "other-destination": authorization(
            synapse, UNREACHABLE_SERVER, method, uri, body
        ),
    }[flaw]
    data = b"" if body is NO_BODY else json.dumps(body).encode()
    resp = send_federation(eltrix, method, uri, data, header)
    assert_error(resp, 401, "M_UNAUTHORIZED")


def test_version_needs_no_authorization(eltrix):
    body = expect_ok(send_federation(eltrix, "GET", f"{FEDERATION}/v1/version"))
    assert body["server"]["name"] == "Eltrix"


def test_signed_request_is_authorized(eltrix, synapse, rooms):
    """The signing helper's control: a correctly signed request gets through."""
    uri = f"{FEDERATION}/v1/state_ids/{q(rooms.shared)}?event_id={q(rooms.latest)}"
    body = expect_ok(signed_request(eltrix, synapse, "GET", uri))
    assert rooms.latest not in body["pdu_ids"]


def hostile_headers(
    eltrix: Homeserver, synapse: SynapsePeer, uri: str
) -> dict[str, str]:
    """Return Authorization values for `GET uri` that must all be rejected, by name."""
    origin, destination = synapse.server_name, eltrix.server_name
    valid = authorization(synapse, destination, "GET", uri)
    signature = valid.rsplit('sig="', 1)[1].rstrip('"')
    impostor = generate_signing_key(synapse.signing_key.version)
    prefix = f'X-Matrix origin="{origin}",destination="{destination}"'
    return {
        "bearer-scheme": "Bearer syt_not_a_server",
        "no-signature": f'{prefix},key="{synapse.verify_key_id}"',
        "no-key": f'{prefix},sig="{signature}"',
        "unknown-key-id": valid.replace(synapse.verify_key_id, "ed25519:unknown"),
        "signature-not-base64": valid.replace(signature, "!!not base64!!"),
        "signed-for-other-uri": authorization(
            synapse, destination, "GET", uri + "&x=1"
        ),
        "signed-for-other-method": authorization(synapse, destination, "DELETE", uri),
        "signed-by-impostor-key": authorization(
            synapse, destination, "GET", uri, signing_key=impostor
        ),
        "origin-is-eltrix": valid.replace(
            f'origin="{origin}"', f'origin="{destination}"'
        ),
        "origin-unreachable": valid.replace(
            f'origin="{origin}"', f'origin="{UNREACHABLE_SERVER}"'
        ),
        "origin-invalid": valid.replace(f'origin="{origin}"', 'origin="not a server"'),
        "origin-empty": valid.replace(f'origin="{origin}"', 'origin=""'),
    }


HOSTILE_HEADERS = [
    "bearer-scheme",
    "no-signature",
    "no-key",
    "unknown-key-id",
    "signature-not-base64",
    "signed-for-other-uri",
    "signed-for-other-method",
    "signed-by-impostor-key",
    "origin-is-eltrix",
    "origin-unreachable",
    "origin-invalid",
    "origin-empty",
]


@pytest.mark.parametrize("flaw", HOSTILE_HEADERS)
def test_hostile_header_is_unauthorized(eltrix, synapse, rooms, flaw):
    uri = f"{FEDERATION}/v1/state_ids/{q(rooms.shared)}?event_id={q(rooms.latest)}"
    header = hostile_headers(eltrix, synapse, uri)[flaw]
    resp = send_federation(eltrix, "GET", uri, b"", header)
    assert_error(resp, 401, "M_UNAUTHORIZED")


def test_signature_over_other_body_is_unauthorized(eltrix, synapse, rooms):
    uri = f"{FEDERATION}/v1/get_missing_events/{q(rooms.shared)}"
    signed_body = {"latest_events": [rooms.latest], "earliest_events": []}
    sent_body = {"latest_events": [rooms.latest], "earliest_events": [], "limit": 1}
    header = authorization(synapse, eltrix.server_name, "POST", uri, signed_body)
    resp = send_federation(eltrix, "POST", uri, json.dumps(sent_body).encode(), header)
    assert_error(resp, 401, "M_UNAUTHORIZED")


def test_stalled_key_server_blocks_nothing(eltrix, synapse, rooms):
    """A request whose origin accepts the key fetch and never responds must not
    hold up other requests, and gets 401 once that connection closes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(RESPONSE_TIMEOUT)
        origin = f"localhost:{listener.getsockname()[1]}"
        uri = f"{FEDERATION}/v1/event/{q(rooms.latest)}"
        header = (
            f'X-Matrix origin="{origin}",destination="{eltrix.server_name}",'
            f'key="ed25519:stall",sig="{"A" * 86}"'
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            stalled = pool.submit(send_federation, eltrix, "GET", uri, b"", header, 60)
            key_fetch, _ = listener.accept()
            with key_fetch:
                started = time.monotonic()
                other = signed_request(eltrix, synapse, "GET", uri)
                elapsed = time.monotonic() - started
                assert other.status_code == 200, (
                    f"a request from Synapse failed: {other.text}"
                )
                assert elapsed < 5, (
                    f"a request from Synapse took {elapsed:.1f} s during the stall"
                )
                assert not stalled.done(), (
                    "the stalled request finished before its key fetch"
                )
            listener.close()
            resp = stalled.result(timeout=RESPONSE_TIMEOUT)
    assert_error(resp, 401, "M_UNAUTHORIZED")


# ---------------------------------------------------------------------------
# Request bodies


def body_endpoints(rooms: Rooms) -> dict[str, tuple[str, str]]:
    """Return the endpoints that take a JSON body, by name: method and URI."""
    join_id = q("$" + "A" * 43)
    return {
        "send": ("PUT", f"{FEDERATION}/v1/send/{unique('txn')}"),
        "send_join": ("PUT", f"{FEDERATION}/v2/send_join/{q(rooms.shared)}/{join_id}"),
        "get_missing_events": (
            "POST",
            f"{FEDERATION}/v1/get_missing_events/{q(rooms.shared)}",
        ),
    }


BODY_ENDPOINTS = ["send", "send_join", "get_missing_events"]

NOT_JSON = [
    pytest.param(b"not json", id="text"),
    pytest.param(b'{"origin": ', id="truncated"),
    pytest.param(b"{'origin': 'x'}", id="single-quotes"),
    pytest.param(b'{"origin": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("name", BODY_ENDPOINTS)
@pytest.mark.parametrize("data", NOT_JSON)
def test_body_not_json(eltrix, synapse, rooms, name, data):
    method, uri = body_endpoints(rooms)[name]
    assert_error(signed_raw(eltrix, synapse, method, uri, data), 400, "M_NOT_JSON")


@pytest.mark.parametrize("name", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "body",
    [[], ["origin"], "origin", 7, None],
    ids=["empty-array", "array", "string", "number", "null"],
)
def test_body_not_object(eltrix, synapse, rooms, name, body):
    method, uri = body_endpoints(rooms)[name]
    header = authorization(synapse, eltrix.server_name, method, uri, body)
    data = json.dumps(body).encode()
    assert_error(send_federation(eltrix, method, uri, data, header), 400, "M_BAD_JSON")


@pytest.mark.parametrize("name", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"limit": 1.5}', id="float"),
        pytest.param(b'{"limit": 100000000000000000000}', id="above-max-safe-integer"),
    ],
)
def test_body_with_non_canonical_number(eltrix, synapse, rooms, name, data):
    """Valid JSON that canonical JSON cannot hold is malformed, not invalid."""
    method, uri = body_endpoints(rooms)[name]
    assert_error(signed_raw(eltrix, synapse, method, uri, data), 400, "M_BAD_JSON")


@pytest.mark.parametrize("name", BODY_ENDPOINTS)
def test_deeply_nested_body(eltrix, synapse, rooms, name):
    method, uri = body_endpoints(rooms)[name]
    data = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_error(signed_raw(eltrix, synapse, method, uri, data), 400)


SEND_WRONG_TYPES = [
    pytest.param({"pdus": {}}, id="pdus-object"),
    pytest.param({"pdus": "none"}, id="pdus-string"),
    pytest.param({"pdus": [], "edus": "none"}, id="edus-string"),
    pytest.param({"pdus": [], "edus": {}}, id="edus-object"),
]


@pytest.mark.parametrize("fields", SEND_WRONG_TYPES)
def test_send_wrong_field_type(eltrix, synapse, fields):
    body = {
        "origin": synapse.server_name,
        "origin_server_ts": int(time.time() * 1000),
        **fields,
    }
    uri = f"{FEDERATION}/v1/send/{unique('txn')}"
    assert_error(signed_request(eltrix, synapse, "PUT", uri, body), 400, "M_BAD_JSON")


MISSING_EVENTS_WRONG_TYPES = [
    pytest.param({"latest_events": "$event"}, id="latest-string"),
    pytest.param({"latest_events": [7]}, id="latest-number-ids"),
    pytest.param({"latest_events": [], "earliest_events": {}}, id="earliest-object"),
    pytest.param({"latest_events": [], "limit": "ten"}, id="limit-string"),
    pytest.param({"latest_events": [], "min_depth": "deep"}, id="min-depth-string"),
]


@pytest.mark.parametrize("body", MISSING_EVENTS_WRONG_TYPES)
def test_missing_events_wrong_field_type(eltrix, synapse, rooms, body):
    uri = f"{FEDERATION}/v1/get_missing_events/{q(rooms.shared)}"
    assert_error(signed_request(eltrix, synapse, "POST", uri, body), 400, "M_BAD_JSON")


# ---------------------------------------------------------------------------
# PUT /send


def test_send_origin_not_signer(eltrix, synapse):
    body = {
        "origin": UNREACHABLE_SERVER,
        "origin_server_ts": int(time.time() * 1000),
        "pdus": [],
    }
    uri = f"{FEDERATION}/v1/send/{unique('txn')}"
    assert_error(signed_request(eltrix, synapse, "PUT", uri, body), 403, "M_FORBIDDEN")


def test_send_too_many_pdus(eltrix, synapse):
    assert_error(send_transaction(eltrix, synapse, [{}] * (MAX_PDUS + 1)), 400)


def test_send_too_many_edus(eltrix, synapse):
    edus = [{"edu_type": "m.typing", "content": {}}] * (MAX_EDUS + 1)
    assert_error(send_transaction(eltrix, synapse, [], edus), 400)


def test_send_at_both_limits(eltrix, synapse):
    edus = [{"edu_type": "m.typing", "content": {}}] * MAX_EDUS
    assert pdu_results(send_transaction(eltrix, synapse, [{}] * MAX_PDUS, edus)) == {}


def test_send_garbage_pdus_dropped(eltrix, synapse, rooms):
    before = newest_event_ids(rooms.alice, rooms.shared)
    garbage = [7, "pdu", None, [], {}, {"room_id": 7}, {"room_id": "not a room"}]
    assert pdu_results(send_transaction(eltrix, synapse, garbage)) == {}
    assert newest_event_ids(rooms.alice, rooms.shared) == before


@pytest.mark.parametrize("where", ["unknown-local", "other-server"])
def test_send_pdu_for_unknown_room(eltrix, synapse, rooms, where):
    room_id = (
        rooms.unknown_room(eltrix)
        if where == "unknown-local"
        else f"!elsewhere:{UNREACHABLE_SERVER}"
    )
    user_id = synapse_user(synapse)
    event = message_event(rooms, eltrix, synapse, user_id, [])
    event["room_id"] = room_id
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    event_id = reference_event_id(event)

    results = pdu_results(send_transaction(eltrix, synapse, [event]))
    for key, result in results.items():
        assert key.startswith("$"), (
            f"the pdus map has a key that is not an event ID: {results}"
        )
        assert "error" in result, f"the PDU for an unknown room was accepted: {results}"
    assert_event_unknown(rooms, rooms.shared, event_id)


def test_send_signed_message_accepted(eltrix, synapse, rooms):
    """Control for the event helpers: a correct message from the member is accepted."""
    event = message_event(
        rooms, eltrix, synapse, rooms.member, member_auth_events(rooms, rooms.member)
    )
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    event_id = reference_event_id(event)

    results = pdu_results(send_transaction(eltrix, synapse, [event]))
    assert results == {event_id: {}}
    assert newest_event_ids(rooms.alice, rooms.shared)[0] == event_id


def bad_event(rooms: Rooms, eltrix, synapse, flaw: str) -> dict:
    """Build an event for the shared room that must be rejected for `flaw`."""
    auth = member_auth_events(rooms, rooms.member)

    def message(sender=rooms.member, auth_events=auth):
        return message_event(rooms, eltrix, synapse, sender, auth_events)

    def signed(event):
        return sign_event(event, synapse.server_name, synapse.signing_key)

    if flaw == "no-signatures":
        return {**message(), "hashes": {"sha256": "A" * 43}}
    if flaw == "impostor-key":
        impostor = generate_signing_key(synapse.signing_key.version)
        return sign_event(message(), synapse.server_name, impostor)
    if flaw == "signed-field-changed":
        return {**signed(message()), "type": "m.room.topic"}
    if flaw == "sender-not-member":
        return signed(message(sender=synapse_user(synapse), auth_events=auth[:2]))
    if flaw == "sender-on-eltrix":
        return signed(message(sender=rooms.alice.user_id))
    if flaw == "sender-invalid":
        return signed(message(sender="not-a-user"))
    if flaw == "unknown-prev-event":
        return signed({**message(), "prev_events": ["$" + "B" * 43]})
    if flaw == "unknown-auth-event":
        return signed(message(auth_events=[*auth, "$" + "C" * 43]))
    if flaw == "depth-string":
        event = message()
        return signed({**event, "depth": str(event["depth"])})
    if flaw == "timestamp-string":
        return signed({**message(), "origin_server_ts": "now"})
    raise AssertionError(f"no bad event for flaw {flaw!r}")


BAD_EVENTS = [
    "no-signatures",
    "impostor-key",
    "signed-field-changed",
    "sender-not-member",
    "sender-on-eltrix",
    "sender-invalid",
    "unknown-prev-event",
    "unknown-auth-event",
    "depth-string",
    "timestamp-string",
]


@pytest.mark.parametrize("flaw", BAD_EVENTS)
def test_send_bad_event_rejected(eltrix, synapse, rooms, flaw):
    event = bad_event(rooms, eltrix, synapse, flaw)
    event_id = reference_event_id(event)
    before = newest_event_ids(rooms.alice, rooms.shared)

    results = pdu_results(send_transaction(eltrix, synapse, [event]))
    assert "error" in results.get(event_id, {}), f"no error for {event_id} in {results}"
    assert newest_event_ids(rooms.alice, rooms.shared) == before
    assert_event_unknown(rooms, rooms.shared, event_id)


# ---------------------------------------------------------------------------
# GET /make_join


def make_join(
    eltrix, synapse, room_id: str, user_id: str, query: str = f"?ver={ROOM_VERSION}"
):
    uri = f"{FEDERATION}/v1/make_join/{q(room_id)}/{q(user_id)}{query}"
    return signed_request(eltrix, synapse, "GET", uri)


def test_make_join_unknown_room(eltrix, synapse, rooms):
    resp = make_join(eltrix, synapse, rooms.unknown_room(eltrix), synapse_user(synapse))
    assert_error(resp, 404, "M_NOT_FOUND")


def test_make_join_user_of_other_server(eltrix, synapse, rooms):
    resp = make_join(eltrix, synapse, rooms.shared, f"@victim:{UNREACHABLE_SERVER}")
    assert_error(resp, 403, "M_FORBIDDEN")


def test_make_join_local_user(eltrix, synapse, rooms):
    resp = make_join(eltrix, synapse, rooms.shared, rooms.alice.user_id)
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    "query",
    ["?ver=1&ver=2", "", "?ver=", "?ver=100"],
    ids=["old", "none", "empty", "unknown"],
)
def test_make_join_incompatible_version(eltrix, synapse, rooms, query):
    resp = make_join(eltrix, synapse, rooms.shared, synapse_user(synapse), query)
    body = assert_error(resp, 400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert body.get("room_version") == ROOM_VERSION


@pytest.mark.parametrize(
    "room_id", ["not-a-room", "", "#alias:localhost", "@user:localhost"]
)
def test_make_join_invalid_room_id(eltrix, synapse, room_id):
    resp = make_join(eltrix, synapse, room_id, synapse_user(synapse))
    assert_error(resp, 400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    "user_id", ["not-a-user", "@", "@no-server", "!room:localhost"]
)
def test_make_join_invalid_user_id(eltrix, synapse, rooms, user_id):
    resp = make_join(eltrix, synapse, rooms.shared, user_id)
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_make_join_invite_only_room(eltrix, synapse, rooms):
    resp = make_join(eltrix, synapse, rooms.invite_only, synapse_user(synapse))
    assert_error(resp, 403, "M_FORBIDDEN")


# ---------------------------------------------------------------------------
# PUT /send_join


def test_send_join_not_a_join(eltrix, synapse, rooms):
    user_id = synapse_user(synapse)
    event = join_template(eltrix, synapse, rooms.shared, user_id)
    event["type"] = "m.room.message"
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    resp = send_join(eltrix, synapse, rooms.shared, reference_event_id(event), event)
    assert_error(resp, 400, "M_BAD_JSON")
    assert user_id not in joined_members(rooms.alice, rooms.shared)


@pytest.mark.parametrize("membership", ["leave", "invite", "ban", None])
def test_send_join_other_membership(eltrix, synapse, rooms, membership):
    user_id = synapse_user(synapse)
    event = join_template(eltrix, synapse, rooms.shared, user_id)
    event["content"] = {} if membership is None else {"membership": membership}
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    resp = send_join(eltrix, synapse, rooms.shared, reference_event_id(event), event)
    assert_error(resp, 400, "M_BAD_JSON")


def test_send_join_state_key_not_sender(eltrix, synapse, rooms):
    user_id = synapse_user(synapse)
    event = join_template(eltrix, synapse, rooms.shared, user_id)
    event["state_key"] = synapse_user(synapse)
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    resp = send_join(eltrix, synapse, rooms.shared, reference_event_id(event), event)
    assert_error(resp, 400, "M_BAD_JSON")


def test_send_join_user_of_other_server(eltrix, synapse, rooms):
    user_id = f"@victim:{UNREACHABLE_SERVER}"
    event = join_template(eltrix, synapse, rooms.shared, synapse_user(synapse))
    event.update(sender=user_id, state_key=user_id)
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    resp = send_join(eltrix, synapse, rooms.shared, reference_event_id(event), event)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user_id not in joined_members(rooms.alice, rooms.shared)


def test_send_join_event_id_mismatch(eltrix, synapse, rooms):
    """A join sent under another event's ID is rejected, and not applied."""
    user_id = synapse_user(synapse)
    event = signed_join(eltrix, synapse, rooms.shared, user_id)
    resp = send_join(eltrix, synapse, rooms.shared, rooms.latest, event)
    assert_error(resp, 400, "M_BAD_JSON")
    assert user_id not in joined_members(rooms.alice, rooms.shared)


def test_send_join_unknown_room(eltrix, synapse, rooms):
    event = signed_join(eltrix, synapse, rooms.shared, synapse_user(synapse))
    room_id = rooms.unknown_room(eltrix)
    event["room_id"] = room_id
    event = sign_event(event, synapse.server_name, synapse.signing_key)
    resp = send_join(eltrix, synapse, room_id, reference_event_id(event), event)
    assert_error(resp, 404, "M_NOT_FOUND")


def test_send_join_event_of_other_room(eltrix, synapse, rooms):
    """A join for the shared room, sent to the local-only room's endpoint."""
    user_id = synapse_user(synapse)
    event = signed_join(eltrix, synapse, rooms.shared, user_id)
    resp = send_join(
        eltrix, synapse, rooms.local_only, reference_event_id(event), event
    )
    assert_error(resp, 400, "M_BAD_JSON")
    assert user_id not in joined_members(rooms.alice, rooms.local_only)
    assert user_id not in joined_members(rooms.alice, rooms.shared)


def test_send_join_badly_signed(eltrix, synapse, rooms):
    user_id = synapse_user(synapse)
    template = join_template(eltrix, synapse, rooms.shared, user_id)
    impostor = generate_signing_key(synapse.signing_key.version)
    event = sign_event(template, synapse.server_name, impostor)
    resp = send_join(eltrix, synapse, rooms.shared, reference_event_id(event), event)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user_id not in joined_members(rooms.alice, rooms.shared)


def test_send_join_invite_only_room(eltrix, synapse, rooms):
    user_id = synapse_user(synapse)
    template = join_template(eltrix, synapse, rooms.shared, user_id)
    # The shared room's join template, moved to the invite-only room with
    # that room's auth events and newest event.
    alice = rooms.alice
    template.update(
        room_id=rooms.invite_only,
        auth_events=[
            state_event_id(alice, rooms.invite_only, "m.room.create"),
            state_event_id(alice, rooms.invite_only, "m.room.power_levels"),
            state_event_id(alice, rooms.invite_only, "m.room.join_rules"),
        ],
        prev_events=[newest_event_ids(alice, rooms.invite_only)[0]],
    )
    event = sign_event(template, synapse.server_name, synapse.signing_key)
    resp = send_join(
        eltrix, synapse, rooms.invite_only, reference_event_id(event), event
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user_id not in joined_members(alice, rooms.invite_only)


# ---------------------------------------------------------------------------
# Reading events: /event, /state_ids, /backfill, /get_missing_events


def read_event(eltrix, synapse, event_id: str) -> RawResponse:
    return signed_request(
        eltrix, synapse, "GET", f"{FEDERATION}/v1/event/{q(event_id)}"
    )


def state_ids(eltrix, synapse, room_id: str, query: str) -> RawResponse:
    return signed_request(
        eltrix, synapse, "GET", f"{FEDERATION}/v1/state_ids/{q(room_id)}{query}"
    )


def backfill(eltrix, synapse, room_id: str, query: str) -> RawResponse:
    return signed_request(
        eltrix, synapse, "GET", f"{FEDERATION}/v1/backfill/{q(room_id)}{query}"
    )


def missing_events(eltrix, synapse, room_id: str, body: Any) -> RawResponse:
    uri = f"{FEDERATION}/v1/get_missing_events/{q(room_id)}"
    return signed_request(eltrix, synapse, "POST", uri, body)


def test_event_unknown(eltrix, synapse):
    assert_error(read_event(eltrix, synapse, "$" + "D" * 43), 404, "M_NOT_FOUND")


def test_event_of_room_without_peer(eltrix, synapse, rooms):
    assert_error(read_event(eltrix, synapse, rooms.local_event), 403, "M_FORBIDDEN")


def test_state_ids_unknown_room(eltrix, synapse, rooms):
    resp = state_ids(
        eltrix, synapse, rooms.unknown_room(eltrix), f"?event_id={q(rooms.latest)}"
    )
    assert_error(resp, 404, "M_NOT_FOUND")


def test_state_ids_room_without_peer(eltrix, synapse, rooms):
    resp = state_ids(
        eltrix, synapse, rooms.local_only, f"?event_id={q(rooms.local_event)}"
    )
    assert_error(resp, 403, "M_FORBIDDEN")


def test_state_ids_missing_event_id(eltrix, synapse, rooms):
    assert_error(state_ids(eltrix, synapse, rooms.shared, ""), 400, "M_MISSING_PARAM")


def test_state_ids_unknown_event(eltrix, synapse, rooms):
    resp = state_ids(eltrix, synapse, rooms.shared, f"?event_id={q('$' + 'E' * 43)}")
    assert_error(resp, 404, "M_NOT_FOUND")


def test_state_ids_event_of_other_room(eltrix, synapse, rooms):
    resp = state_ids(eltrix, synapse, rooms.shared, f"?event_id={q(rooms.local_event)}")
    assert_error(resp, 404, "M_NOT_FOUND")


@pytest.mark.parametrize("room_id", ["not-a-room", "#alias:localhost"])
def test_state_ids_invalid_room_id(eltrix, synapse, rooms, room_id):
    resp = state_ids(eltrix, synapse, room_id, f"?event_id={q(rooms.latest)}")
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_backfill_unknown_room(eltrix, synapse, rooms):
    resp = backfill(
        eltrix, synapse, rooms.unknown_room(eltrix), f"?v={q(rooms.latest)}&limit=5"
    )
    assert_error(resp, 404, "M_NOT_FOUND")


def test_backfill_room_without_peer(eltrix, synapse, rooms):
    resp = backfill(
        eltrix, synapse, rooms.local_only, f"?v={q(rooms.local_event)}&limit=5"
    )
    assert_error(resp, 403, "M_FORBIDDEN")


def test_backfill_missing_v(eltrix, synapse, rooms):
    assert_error(
        backfill(eltrix, synapse, rooms.shared, "?limit=5"), 400, "M_MISSING_PARAM"
    )


def test_backfill_limit_respected(eltrix, synapse, rooms):
    """The control for the limit cases: a plain limit gives that many events."""
    body = expect_ok(
        backfill(eltrix, synapse, rooms.shared, f"?v={q(rooms.latest)}&limit=5")
    )
    assert len(body["pdus"]) == 5


@pytest.mark.parametrize(
    "limit", ["0", "-1", "abc", "1.5", "99999999999999999999999", str(2**64), "1e9"]
)
def test_backfill_absurd_limit(eltrix, synapse, rooms, limit):
    """A `limit` that is not a sensible count is rejected or gives a bounded page."""
    resp = backfill(
        eltrix, synapse, rooms.shared, f"?v={q(rooms.latest)}&limit={q(limit)}"
    )
    if resp.status_code != 200:
        assert_error(resp, 400, "M_INVALID_PARAM")
        return
    pdus = expect_ok(resp)["pdus"]
    assert len(pdus) <= MAX_PAGE, f"limit={limit} gave {len(pdus)} events"


def test_backfill_unknown_start(eltrix, synapse, rooms):
    body = expect_ok(
        backfill(eltrix, synapse, rooms.shared, f"?v={q('$' + 'F' * 43)}&limit=5")
    )
    assert body["pdus"] == []


def test_backfill_start_of_other_room(eltrix, synapse, rooms):
    """An event of a room the peer may not read must not leak through another room."""
    query = f"?v={q(rooms.local_newest)}&limit=5"
    pdus = expect_ok(backfill(eltrix, synapse, rooms.shared, query))["pdus"]
    leaked = [pdu for pdu in pdus if pdu.get("room_id") != rooms.shared]
    assert leaked == [], f"backfill of {rooms.shared} returned other rooms' events"


def test_missing_events_unknown_room(eltrix, synapse, rooms):
    resp = missing_events(
        eltrix, synapse, rooms.unknown_room(eltrix), {"latest_events": [rooms.latest]}
    )
    assert_error(resp, 404, "M_NOT_FOUND")


def test_missing_events_room_without_peer(eltrix, synapse, rooms):
    resp = missing_events(
        eltrix, synapse, rooms.local_only, {"latest_events": [rooms.local_event]}
    )
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize("limit", [0, 1, 5])
def test_missing_events_limit_respected(eltrix, synapse, rooms, limit):
    body = {"latest_events": [rooms.latest], "earliest_events": [], "limit": limit}
    events = expect_ok(missing_events(eltrix, synapse, rooms.shared, body))["events"]
    assert len(events) <= limit


@pytest.mark.parametrize("limit", [-1, 2**53 - 1, -(2**53) + 1])
def test_missing_events_absurd_limit(eltrix, synapse, rooms, limit):
    body = {"latest_events": [rooms.latest], "earliest_events": [], "limit": limit}
    resp = missing_events(eltrix, synapse, rooms.shared, body)
    if resp.status_code != 200:
        assert_error(resp, 400, "M_BAD_JSON")
        return
    events = expect_ok(resp)["events"]
    assert len(events) <= MAX_PAGE, f"limit={limit} gave {len(events)} events"


def test_missing_events_many_unknown_ids(eltrix, synapse, rooms):
    latest = [f"${unique('unknown')}" for _ in range(5000)]
    body = {"latest_events": latest, "earliest_events": latest, "limit": 10}
    assert (
        expect_ok(missing_events(eltrix, synapse, rooms.shared, body))["events"] == []
    )


def test_missing_events_start_of_other_room(eltrix, synapse, rooms):
    """An event of a room the peer may not read must not lead into that room."""
    body = {"latest_events": [rooms.local_newest], "earliest_events": [], "limit": 10}
    events = expect_ok(missing_events(eltrix, synapse, rooms.shared, body))["events"]
    leaked = [event for event in events if event.get("room_id") != rooms.shared]
    assert leaked == [], f"missing events of {rooms.shared} include other rooms' events"


# ---------------------------------------------------------------------------
# Routing


def test_unknown_federation_path(eltrix, synapse):
    uri = f"{FEDERATION}/v1/no_such_endpoint"
    assert_error(signed_request(eltrix, synapse, "GET", uri), 404, "M_UNRECOGNIZED")


def test_federation_wrong_method(eltrix, synapse, rooms):
    uri = f"{FEDERATION}/v1/state_ids/{q(rooms.shared)}?event_id={q(rooms.latest)}"
    assert_error(signed_request(eltrix, synapse, "DELETE", uri), 405, "M_UNRECOGNIZED")


def test_path_segment_not_utf8(eltrix, synapse):
    assert_error(
        signed_request(eltrix, synapse, "GET", f"{FEDERATION}/v1/event/%FF%FE"),
        400,
        "M_INVALID_PARAM",
    )


# ---------------------------------------------------------------------------
# Server ACLs


def room_with_acl(eltrix, synapse, acl: dict) -> tuple[Account, str, str]:
    """Create a room that a user of Synapse's server joins, then set `acl`.

    Returns the room's creator, the room and the member on Synapse's server.
    """
    alice = eltrix.register(unique("acl"))
    room_id = alice.create_room(preset="public_chat", room_version=ROOM_VERSION)
    member = synapse_user(synapse)
    join_as_synapse(eltrix, synapse, room_id, member)
    expect_ok(alice.put(f"rooms/{q(room_id)}/state/m.room.server_acl/", acl))
    return alice, room_id, member


def member_message(eltrix, synapse, alice: Account, room_id: str, member: str) -> dict:
    auth = [
        state_event_id(alice, room_id, "m.room.create"),
        state_event_id(alice, room_id, "m.room.power_levels"),
        state_event_id(alice, room_id, "m.room.member", member),
    ]
    event = room_message(eltrix, synapse, alice, room_id, member, auth)
    return sign_event(event, synapse.server_name, synapse.signing_key)


# The ACL matches the host without its port, so "localhost" denies Synapse's
# server on loopback. Eltrix never applies an ACL to itself.
DENY_SYNAPSE = {"allow": ["*"], "deny": ["localhost"]}
DENY_OTHERS = {"allow": ["*"], "deny": ["evil.example"]}
ALLOW_NONE = {"allow": []}
# Fields of the wrong type void neither the deny list nor the allow list.
DENY_MALFORMED = {"allow": ["*", 7], "deny": ["localhost", None], "allow_ip_literals": "no"}


@pytest.mark.parametrize(
    "acl", [DENY_SYNAPSE, ALLOW_NONE, DENY_MALFORMED], ids=["deny", "allow-none", "malformed"]
)
def test_acl_denied_pdu_is_rejected(eltrix, synapse, acl):
    alice, room_id, member = room_with_acl(eltrix, synapse, acl)
    event = member_message(eltrix, synapse, alice, room_id, member)
    event_id = reference_event_id(event)
    before = newest_event_ids(alice, room_id)

    results = pdu_results(send_transaction(eltrix, synapse, [event]))
    assert "ACL" in results.get(event_id, {}).get("error", ""), results
    assert newest_event_ids(alice, room_id) == before
    resp = alice.get(f"rooms/{q(room_id)}/event/{q(event_id)}")
    assert resp.status_code == 404, f"the denied event is stored: {resp.text}"


def test_acl_allowing_server_accepts_pdu(eltrix, synapse):
    alice, room_id, member = room_with_acl(eltrix, synapse, DENY_OTHERS)
    event = member_message(eltrix, synapse, alice, room_id, member)
    event_id = reference_event_id(event)

    results = pdu_results(send_transaction(eltrix, synapse, [event]))
    assert results == {event_id: {}}
    assert newest_event_ids(alice, room_id)[0] == event_id


def acl_endpoints(room_id: str, event_id: str, user_id: str) -> dict[str, tuple[str, str, Any]]:
    room, event, user = q(room_id), q(event_id), q(user_id)
    return {
        "make_join": ("GET", f"{FEDERATION}/v1/make_join/{room}/{user}?ver={ROOM_VERSION}", NO_BODY),
        "state_ids": ("GET", f"{FEDERATION}/v1/state_ids/{room}?event_id={event}", NO_BODY),
        "backfill": ("GET", f"{FEDERATION}/v1/backfill/{room}?v={event}&limit=5", NO_BODY),
        "get_missing_events": (
            "POST",
            f"{FEDERATION}/v1/get_missing_events/{room}",
            {"earliest_events": [], "latest_events": [event_id], "limit": 5},
        ),
    }


@pytest.fixture(scope="module")
def denied_room(eltrix, synapse):
    return room_with_acl(eltrix, synapse, DENY_SYNAPSE)


@pytest.mark.parametrize(
    "name", ["make_join", "state_ids", "backfill", "get_missing_events"]
)
def test_acl_denied_server_is_forbidden(eltrix, synapse, denied_room, name):
    alice, room_id, _ = denied_room
    newest = newest_event_ids(alice, room_id)[0]
    method, uri, body = acl_endpoints(room_id, newest, synapse_user(synapse))[name]
    body_args = () if body is NO_BODY else (body,)
    resp = signed_request(eltrix, synapse, method, uri, *body_args)
    assert_error(resp, 403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    "name", ["make_join", "state_ids", "backfill", "get_missing_events"]
)
def test_acl_allowed_server_is_served(eltrix, synapse, name):
    """Control for the case above: the same requests succeed under an ACL
    that allows Synapse's server."""
    alice, room_id, _ = room_with_acl(eltrix, synapse, DENY_OTHERS)
    newest = newest_event_ids(alice, room_id)[0]
    method, uri, body = acl_endpoints(room_id, newest, synapse_user(synapse))[name]
    body_args = () if body is NO_BODY else (body,)
    expect_ok(signed_request(eltrix, synapse, method, uri, *body_args))


def test_acl_denied_send_join_is_forbidden(eltrix, synapse):
    alice = eltrix.register(unique("acl"))
    room_id = alice.create_room(preset="public_chat", room_version=ROOM_VERSION)
    user_id = synapse_user(synapse)
    event = signed_join(eltrix, synapse, room_id, user_id)
    expect_ok(alice.put(f"rooms/{q(room_id)}/state/m.room.server_acl/", DENY_SYNAPSE))

    resp = send_join(eltrix, synapse, room_id, reference_event_id(event), event)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert user_id not in joined_members(alice, room_id)


# ---------------------------------------------------------------------------
# make_join in restricted rooms


def restricted_room(alice: Account, allowed_room: str) -> str:
    rule = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": allowed_room}]}
    state = {"type": "m.room.join_rules", "state_key": "", "content": rule}
    return alice.create_room(preset="private_chat", room_version=ROOM_VERSION, initial_state=[state])


def test_make_join_restricted_names_authoriser(eltrix, synapse, rooms):
    room_id = restricted_room(rooms.alice, rooms.shared)
    resp = make_join(eltrix, synapse, room_id, rooms.member)
    content = expect_ok(resp)["event"]["content"]
    assert content["join_authorised_via_users_server"] == rooms.alice.user_id


def test_make_join_restricted_non_member(eltrix, synapse, rooms):
    room_id = restricted_room(rooms.alice, rooms.shared)
    resp = make_join(eltrix, synapse, room_id, synapse_user(synapse))
    assert_error(resp, 403, "M_FORBIDDEN")


def test_make_join_restricted_unknown_allowed_room(eltrix, synapse, rooms):
    room_id = restricted_room(rooms.alice, rooms.unknown_room(eltrix))
    resp = make_join(eltrix, synapse, room_id, rooms.member)
    assert_error(resp, 400, "M_UNABLE_TO_AUTHORISE_JOIN")


# ---------------------------------------------------------------------------
# Afterwards


def test_server_healthy_afterwards(eltrix):
    """Placed last, so it checks the server after every request above."""
    assert eltrix.process.poll() is None, "the Eltrix process exited"
    assert expect_ok(eltrix.get("/health")) == {"status": "healthy"}
    account = eltrix.register(unique("after"))
    room_id = account.create_room(preset="private_chat")
    event_id = account.send_message(room_id, "still serving")
    event = expect_ok(account.get(f"rooms/{q(room_id)}/event/{q(event_id)}"))
    assert event["content"]["body"] == "still serving"
    assert send_federation(eltrix, "GET", f"{FEDERATION}/v1/version").status_code == 200
