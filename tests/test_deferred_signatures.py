"""This server's signature on events of rooms whose members were all local.

Such events are stored without the server's signature, which is added when
an event first leaves the server. Every event that Eltrix serves over
federation, or in the federation format of /sync, must carry an ed25519
signature of the Eltrix server that verifies, on the event's redacted form,
with a key the server publishes at /_matrix/key/v2/server. The tests check
that with signedjson, and check the join and backfill paths with a real
Synapse, which drops pulled events whose signatures do not verify
(synapse/federation/federation_client.py in the pinned 1.163.2).

Each test starts from a fresh room, so each serving path is the first to
sign that room's events.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from canonicaljson import encode_canonical_json
from signedjson.key import (
    decode_verify_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from unpaddedbase64 import encode_base64

from harness import (
    Account,
    Homeserver,
    event_ids,
    expect_ok,
    joined_room,
    joined_state,
    q,
    tls_pair,
    unique,
)
from synapse_peer import SynapsePeer
# `eltrix` and `synapse` are the module-scoped federation fixtures.
from test_federation_bad_input import (  # noqa: F401
    FEDERATION,
    NO_BODY,
    authorization,
    eltrix,
    send_federation,
    signed_request,
    synapse,
)
from test_federation_rooms import SynapseUser, wait_for
from test_server_keys import rotate

# Eltrix's federation certificate is self-signed.
pytestmark = pytest.mark.filterwarnings(
    "ignore::urllib3.exceptions.InsecureRequestWarning"
)

KEY_PATH = "/_matrix/key/v2/server"

# Room version 11 changed the redaction rules: it keeps the whole create
# content, the power levels' `invite` and a redaction's `redacts`, and
# drops the top-level `origin`, `membership` and `prev_state`. Version 12
# redacts as 11 does.
ROOM_VERSIONS = ["10", "12"]

# Top-level keys that redaction keeps in room version 10.
TOP_LEVEL_KEYS_V10 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
    "signatures", "depth", "prev_events", "prev_state", "auth_events", "origin",
    "origin_server_ts", "membership",
}
TOP_LEVEL_KEYS_V11 = TOP_LEVEL_KEYS_V10 - {"prev_state", "origin", "membership"}

# Content keys that redaction keeps in room version 10, by event type.
CONTENT_KEYS_V10: dict[str, set[str] | None] = {
    "m.room.member": {"membership", "join_authorised_via_users_server"},
    "m.room.create": {"creator"},
    "m.room.join_rules": {"join_rule", "allow"},
    "m.room.power_levels": {
        "ban", "events", "events_default", "kick", "redact", "state_default",
        "users", "users_default",
    },
    "m.room.history_visibility": {"history_visibility"},
}

# Content keys that redaction keeps from room version 11 on. `None` keeps
# the whole content.
CONTENT_KEYS_V11: dict[str, set[str] | None] = {
    **CONTENT_KEYS_V10,
    "m.room.create": None,
    "m.room.power_levels": {"invite", *CONTENT_KEYS_V10["m.room.power_levels"]},
    "m.room.redaction": {"redacts"},
}

# A /sync filter for the federation event format with the whole history of
# a test room in its timeline.
FEDERATION_FORMAT = {"event_format": "federation", "room": {"timeline": {"limit": 100}}}

# The PDU size limit of the server-server API, in bytes of canonical JSON.
MAX_PDU_BYTES = 65_536

# Message body lengths, in bytes, between which the size test bisects.
MIN_PROBE_BODY = 60_000
MAX_PROBE_BODY = 66_000

# The transaction test sends messages from RACE_LEAD seconds before a
# peer's join until as long after it, at most RACE_MESSAGES, in up to
# RACE_ATTEMPTS rooms. In five runs on the 2-core development machine, a
# send raced the join within the first five rooms.
RACE_MESSAGES = 2000
RACE_LEAD = 0.05
RACE_ATTEMPTS = 30

# Seconds to let the server store signatures it computed for a response,
# which it does in the background, before the test stops it.
PERSIST_GRACE = 1.0


# ---------------------------------------------------------------------------
# Event checks


def redact(event: dict, room_version: str) -> dict:
    """Return the redacted form of a PDU of room version 10, 11 or 12."""
    modern = int(room_version) >= 11
    top_level = TOP_LEVEL_KEYS_V11 if modern else TOP_LEVEL_KEYS_V10
    pruned = {key: value for key, value in event.items() if key in top_level}
    content_keys = (CONTENT_KEYS_V11 if modern else CONTENT_KEYS_V10).get(
        event.get("type"), set()
    )
    content = event.get("content", {})
    if content_keys is None:
        pruned["content"] = dict(content)
    else:
        pruned["content"] = {
            key: value for key, value in content.items() if key in content_keys
        }
    invite = content.get("third_party_invite")
    if modern and event.get("type") == "m.room.member" and isinstance(invite, dict):
        if "signed" in invite:
            pruned["content"]["third_party_invite"] = {"signed": invite["signed"]}
    return pruned


def content_hash(event: dict) -> str:
    hashed = {
        key: value
        for key, value in event.items()
        if key not in ("unsigned", "signatures", "hashes")
    }
    return encode_base64(hashlib.sha256(encode_canonical_json(hashed)).digest())


def reference_event_id(event: dict, room_version: str) -> str:
    """Return the event ID that room versions 4 and later derive from a PDU."""
    hashed = redact(event, room_version)
    hashed.pop("signatures", None)
    digest = hashlib.sha256(encode_canonical_json(hashed)).digest()
    return "$" + encode_base64(digest, urlsafe=True)


def published_keys(base_url: str) -> dict[str, Any]:
    """Return every key a server publishes, current and old, by key ID."""
    body = expect_ok(requests.get(base_url + KEY_PATH, verify=False, timeout=10))
    keys = {}
    for section in ("verify_keys", "old_verify_keys"):
        for key_id, entry in body.get(section, {}).items():
            algorithm, version = key_id.split(":", 1)
            keys[key_id] = decode_verify_key_base64(algorithm, version, entry["key"])
    return keys


def assert_signed_by(
    server_name: str, pdu: dict, room_version: str, keys: dict[str, Any]
) -> dict[str, str]:
    """Assert that `pdu` carries a valid signature of `server_name`.

    Every signature of that server on the PDU must verify on the PDU's
    redacted form with one of `keys`. Returns those signatures by key ID.
    """
    label = f"{reference_event_id(pdu, room_version)} ({pdu.get('type')})"
    signatures = pdu.get("signatures", {}).get(server_name)
    assert signatures, (
        f"{label} has no signature of {server_name}; its signatures are "
        f"{pdu.get('signatures')}"
    )
    for key_id, signature in signatures.items():
        assert key_id in keys, (
            f"{label} is signed with {key_id}, which {server_name} does not "
            f"publish (published: {sorted(keys)})"
        )
        redacted = redact(pdu, room_version)
        redacted["signatures"] = {server_name: {key_id: signature}}
        try:
            verify_signed_json(redacted, server_name, keys[key_id])
        except SignatureVerifyException as error:
            raise AssertionError(
                f"the {key_id} signature of {label} does not verify on the "
                f"redacted form: {error}"
            ) from None
    return dict(signatures)


def by_event_id(pdus: list[dict], room_version: str) -> dict[str, dict]:
    return {reference_event_id(pdu, room_version): pdu for pdu in pdus}


# ---------------------------------------------------------------------------
# Fixtures and rooms


@pytest.fixture(params=ROOM_VERSIONS)
def room_version(request) -> str:
    return request.param


def redact_event(account: Account, room_id: str, event_id: str) -> str:
    path = f"rooms/{q(room_id)}/redact/{q(event_id)}/{unique('txn')}"
    return expect_ok(account.put(path, {"reason": "test"}))["event_id"]


class LocalHistory:
    """A public room whose members are all on Eltrix, with messages, a
    redacted message, replaced name, topic and power levels, and the join of
    a second local user."""

    def __init__(self, server: Homeserver, room_version: str):
        self.room_version = room_version
        self.alice = server.register(unique("alice"))
        self.bob = server.register(unique("bob"))
        self.room_id = self.alice.create_room(
            preset="public_chat", room_version=room_version, name="before"
        )
        self.alice.send_message(self.room_id, "first message")
        self.redacted_id = self.alice.send_message(self.room_id, "secret message")
        self.alice.set_state(self.room_id, "m.room.topic", "", {"topic": "a topic"})
        self.alice.set_state(self.room_id, "m.room.name", "", {"name": "after"})
        self.bob.join(self.room_id)
        levels = self.alice.state_content(self.room_id, "m.room.power_levels")
        levels["users"][self.bob.user_id] = 50
        self.alice.set_state(self.room_id, "m.room.power_levels", "", levels)
        self.bob.send_message(self.room_id, "from bob")
        self.redaction_id = redact_event(self.alice, self.room_id, self.redacted_id)
        self.last_id = self.alice.send_message(self.room_id, "last local message")

    def event_ids(self) -> list[str]:
        """Return the IDs of every event of the room, oldest first."""
        newest_first = self.alice.paginate(self.room_id, "b", limit=50)
        return list(reversed(event_ids(newest_first)))


def federation_event(eltrix: Homeserver, synapse: SynapsePeer, event_id: str) -> dict:
    """Return the PDU that GET /event serves to Synapse's server."""
    uri = f"{FEDERATION}/v1/event/{q(event_id)}"
    body = expect_ok(signed_request(eltrix, synapse, "GET", uri))
    assert len(body["pdus"]) == 1, f"/event returned {len(body['pdus'])} PDUs"
    return body["pdus"][0]


def join_as_synapse_server(
    eltrix: Homeserver, synapse: SynapsePeer, room_id: str, room_version: str
) -> tuple[str, dict]:
    """Join a user of Synapse's server name with make_join and send_join.

    The join is signed with Synapse's key, so Eltrix accepts it, but Synapse
    itself never hears of it. Returns the join's event ID and the send_join
    response.
    """
    return join_as(eltrix, synapse.server_name, synapse.signing_key, room_id, room_version)


def join_as(
    eltrix: Homeserver, server_name: str, signing_key: Any, room_id: str, room_version: str
) -> tuple[str, dict]:
    """Join a new user of `server_name` with make_join and send_join, signed
    with `signing_key`. Returns the join's event ID and the send_join response."""

    def request(method: str, uri: str, body: Any = NO_BODY) -> dict:
        header = authorization(
            None,
            eltrix.server_name,
            method,
            uri,
            body,
            origin=server_name,
            signing_key=signing_key,
        )
        data = b"" if body is NO_BODY else json.dumps(body).encode()
        return expect_ok(send_federation(eltrix, method, uri, data, header))

    user_id = f"@{unique('remote')}:{server_name}"
    versions = "&".join(f"ver={version}" for version in range(1, 13))
    uri = f"{FEDERATION}/v1/make_join/{q(room_id)}/{q(user_id)}?{versions}"
    event = dict(request("GET", uri)["event"])
    event.pop("signatures", None)
    event["hashes"] = {"sha256": content_hash(event)}
    signed = sign_json(redact(event, room_version), server_name, signing_key)
    event["signatures"] = signed["signatures"]
    event_id = reference_event_id(event, room_version)
    uri = f"{FEDERATION}/v2/send_join/{q(room_id)}/{q(event_id)}"
    return event_id, request("PUT", uri, event)


class FakePeer:
    """A federation peer on 127.0.0.1 that serves its signing key and records
    the PDUs of the transactions Eltrix sends it, and nothing else."""

    def __init__(self, directory):
        self.signing_key = generate_signing_key(unique("fake").replace("-", "_"))
        self.pdus: list[dict] = []
        self.lock = threading.Lock()
        certificate, private_key = tls_pair(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, private_key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server_name = f"localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def key_response(self) -> dict:
        key_id = f"{self.signing_key.alg}:{self.signing_key.version}"
        verify_key = encode_verify_key_base64(get_verify_key(self.signing_key))
        body = {
            "server_name": self.server_name,
            "valid_until_ts": int(time.time() * 1000) + 3_600_000,
            "verify_keys": {key_id: {"key": verify_key}},
            "old_verify_keys": {},
        }
        return sign_json(body, self.server_name, self.signing_key)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith(KEY_PATH):
                    self.reply(200, peer.key_response())
                else:
                    self.reply(404, {"errcode": "M_NOT_FOUND", "error": "Not served"})

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.startswith(f"{FEDERATION}/v1/send/"):
                    self.reply(404, {"errcode": "M_NOT_FOUND", "error": "Not served"})
                    return
                with peer.lock:
                    peer.pdus.extend(body.get("pdus", []))
                self.reply(200, {"pdus": {}})

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def received(self) -> list[dict]:
        with self.lock:
            return list(self.pdus)


def federation_format_sync(account: Account, room_id: str) -> list[dict]:
    """Return the room's timeline and state events from an initial /sync in
    the federation format."""
    body = account.sync(filter=FEDERATION_FORMAT)
    room = joined_room(body, room_id)
    return room["timeline"]["events"] + joined_state(body, room_id)


# ---------------------------------------------------------------------------
# Federation endpoints, each the first to serve the room's events


def test_send_join_response_signed(eltrix, synapse, room_version):
    history = LocalHistory(eltrix, room_version)
    keys = published_keys(eltrix.federation_url)

    _, response = join_as_synapse_server(eltrix, synapse, history.room_id, room_version)

    served = response["state"] + response["auth_chain"]
    assert served, "send_join returned no state and no auth chain"
    for pdu in served:
        assert_signed_by(eltrix.server_name, pdu, room_version, keys)
    state_types = {(pdu["type"], pdu.get("state_key")) for pdu in response["state"]}
    assert ("m.room.create", "") in state_types
    assert ("m.room.power_levels", "") in state_types
    assert ("m.room.member", history.bob.user_id) in state_types


def test_event_endpoint_signs_every_event(eltrix, synapse, room_version):
    history = LocalHistory(eltrix, room_version)
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)

    local_ids = history.event_ids()[:-1]  # the newest is the Synapse join
    assert history.redacted_id in local_ids
    assert history.redaction_id in local_ids
    for event_id in local_ids:
        pdu = federation_event(eltrix, synapse, event_id)
        assert reference_event_id(pdu, room_version) == event_id
        first = assert_signed_by(eltrix.server_name, pdu, room_version, keys)
        again = federation_event(eltrix, synapse, event_id)
        assert again["signatures"][eltrix.server_name] == first, (
            f"{event_id} was served with another signature the second time"
        )


def test_unredacted_event_keeps_content_hash(eltrix, synapse, room_version):
    history = LocalHistory(eltrix, room_version)
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)

    pdu = federation_event(eltrix, synapse, history.last_id)
    assert pdu["content"]["body"] == "last local message"
    assert pdu["hashes"]["sha256"] == content_hash(pdu)


def test_backfill_signs_every_event(eltrix, synapse, room_version):
    history = LocalHistory(eltrix, room_version)
    join_id, _ = join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)

    uri = f"{FEDERATION}/v1/backfill/{q(history.room_id)}?v={q(join_id)}&limit=100"
    pdus = expect_ok(signed_request(eltrix, synapse, "GET", uri))["pdus"]

    served = by_event_id(pdus, room_version)
    assert set(served) == set(history.event_ids()), "backfill skipped events"
    for event_id, pdu in served.items():
        if event_id == join_id:
            continue  # Synapse's server signed the join.
        signatures = assert_signed_by(eltrix.server_name, pdu, room_version, keys)
        again = federation_event(eltrix, synapse, event_id)
        assert again["signatures"][eltrix.server_name] == signatures, (
            f"/event served {event_id} with another signature than backfill"
        )


def test_get_missing_events_signs_every_event(eltrix, synapse, room_version):
    history = LocalHistory(eltrix, room_version)
    join_id, _ = join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)

    uri = f"{FEDERATION}/v1/get_missing_events/{q(history.room_id)}"
    body = {"latest_events": [join_id], "earliest_events": [], "limit": 100}
    pdus = expect_ok(signed_request(eltrix, synapse, "POST", uri, body))["events"]

    served = by_event_id(pdus, room_version)
    assert set(served) == set(history.event_ids()) - {join_id}
    for pdu in pdus:
        assert_signed_by(eltrix.server_name, pdu, room_version, keys)


def test_state_endpoint_matches_state_ids(eltrix, synapse, room_version):
    """GET /state serves, as signed PDUs, the events that /state_ids names."""
    history = LocalHistory(eltrix, room_version)
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)
    query = f"{q(history.room_id)}?event_id={q(history.last_id)}"

    ids = expect_ok(
        signed_request(eltrix, synapse, "GET", f"{FEDERATION}/v1/state_ids/{query}")
    )
    full = expect_ok(
        signed_request(eltrix, synapse, "GET", f"{FEDERATION}/v1/state/{query}")
    )

    state = by_event_id(full["pdus"], room_version)
    chain = by_event_id(full["auth_chain"], room_version)
    assert set(state) == set(ids["pdu_ids"])
    assert set(chain) == set(ids["auth_chain_ids"])
    keys_in_state = {(pdu["type"], pdu["state_key"]) for pdu in state.values()}
    assert ("m.room.topic", "") in keys_in_state
    for pdu in full["pdus"] + full["auth_chain"]:
        assert_signed_by(eltrix.server_name, pdu, room_version, keys)


def test_event_auth_serves_auth_chain(eltrix, synapse, room_version):
    """GET /event_auth serves every event reachable through auth_events."""
    history = LocalHistory(eltrix, room_version)
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)

    uri = f"{FEDERATION}/v1/event_auth/{q(history.room_id)}/{q(history.last_id)}"
    response = expect_ok(signed_request(eltrix, synapse, "GET", uri))
    chain = by_event_id(response["auth_chain"], room_version)

    expected: set[str] = set()
    pending = list(federation_event(eltrix, synapse, history.last_id)["auth_events"])
    while pending:
        event_id = pending.pop()
        if event_id not in expected:
            expected.add(event_id)
            pending.extend(federation_event(eltrix, synapse, event_id)["auth_events"])
    assert set(chain) == expected
    assert history.last_id not in chain
    for pdu in chain.values():
        assert_signed_by(eltrix.server_name, pdu, room_version, keys)

    other = f"{FEDERATION}/v1/event_auth/{q(history.room_id)}/{q('$unknown')}"
    response = signed_request(eltrix, synapse, "GET", other)
    assert response.status_code == 404, response.text
    assert response.json()["errcode"] == "M_NOT_FOUND"


def test_redaction_keeps_stored_signature(eltrix, synapse, room_version):
    """A signature stored before a redaction still verifies after it, because
    signatures cover the redacted form."""
    history = LocalHistory(eltrix, room_version)
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)
    target = history.alice.send_message(history.room_id, "redacted after serving")
    before = federation_event(eltrix, synapse, target)
    signatures = assert_signed_by(eltrix.server_name, before, room_version, keys)

    redact_event(history.alice, history.room_id, target)

    after = federation_event(eltrix, synapse, target)
    assert after["signatures"][eltrix.server_name] == signatures
    assert_signed_by(eltrix.server_name, after, room_version, keys)
    assert_signed_by(eltrix.server_name, redact(after, room_version), room_version, keys)


def test_redacted_event_served_redacted(eltrix, synapse, room_version):
    """Federation and the federation format of /sync serve a redacted event
    without its original content, still signed."""
    history = LocalHistory(eltrix, room_version)
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    keys = published_keys(eltrix.federation_url)

    pdu = federation_event(eltrix, synapse, history.redacted_id)
    assert pdu["content"] == {}, f"/event served redacted content: {pdu['content']}"
    assert_signed_by(eltrix.server_name, pdu, room_version, keys)

    synced = by_event_id(federation_format_sync(history.bob, history.room_id), room_version)
    assert synced[history.redacted_id]["content"] == {}, (
        "the federation format of /sync served redacted content"
    )


def race_join_with_sends(eltrix: Homeserver, peer: FakePeer) -> dict[str, dict]:
    """Join a user of `peer` to a new local-only room while its creator sends
    messages, and return the room's PDUs that reached the peer, by event ID,
    with the join's ID under the key "join"."""
    alice = eltrix.register(unique("alice"))
    room_id = alice.create_room(preset="public_chat", room_version="12")
    sent: list[str] = []
    stop = threading.Event()

    def send_until_stopped() -> None:
        while not stop.is_set() and len(sent) < RACE_MESSAGES:
            sent.append(alice.send_message(room_id, "racing"))

    # Two senders keep a commit in flight most of the time.
    senders = [threading.Thread(target=send_until_stopped) for _ in range(2)]
    for sender in senders:
        sender.start()
    try:
        time.sleep(RACE_LEAD)
        join_id, _ = join_as(eltrix, peer.server_name, peer.signing_key, room_id, "12")
        time.sleep(RACE_LEAD)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=30)
    last = alice.send_message(room_id, "after the join")

    def delivered() -> dict[str, dict] | None:
        received = by_event_id(peer.received(), "12")
        return received if last in received else None

    received = wait_for(delivered, "the last message at the fake peer")
    return {
        "join": join_id,
        **{key: pdu for key, pdu in received.items() if pdu["room_id"] == room_id},
    }


def test_outgoing_transactions_carry_signatures(eltrix, tmp_path):
    """Every PDU that Eltrix sends in a transaction verifies, including a
    local event built unsigned just before the peer's join was applied and
    committed after it, which then leaves in a transaction.

    Whether a send races the join depends on timing, so the test tries up to
    RACE_ATTEMPTS rooms until one does."""
    keys = published_keys(eltrix.federation_url)
    peer = FakePeer(tmp_path)
    raced = 0
    try:
        for _attempt in range(RACE_ATTEMPTS):
            received = race_join_with_sends(eltrix, peer)
            join_id = received.pop("join")
            for pdu in received.values():
                assert_signed_by(eltrix.server_name, pdu, "12", keys)
            # An event that does not descend from the join was built before
            # the join was applied, while the room had only local members.
            after_join = {join_id}
            for event_id, pdu in received.items():
                if set(pdu["prev_events"]) & after_join:
                    after_join.add(event_id)
            raced += len(set(received) - after_join)
            if raced:
                break
    finally:
        peer.stop()
    if not raced:
        pytest.skip(f"no send raced the join in {RACE_ATTEMPTS} rooms")


def largest_message(account: Account, room_id: str) -> tuple[int, str]:
    """Find the longest message body the room accepts, by bisection, and
    return its length and the ID of the event that has it."""
    low, high = MIN_PROBE_BODY, MAX_PROBE_BODY
    best: tuple[int, str] | None = None
    while low <= high:
        length = (low + high) // 2
        path = f"rooms/{q(room_id)}/send/m.room.message/{unique('txn')}"
        resp = account.put(path, {"msgtype": "m.text", "body": "a" * length})
        if resp.status_code == 200:
            best = (length, resp.json()["event_id"])
            low = length + 1
        else:
            assert resp.status_code == 413, f"{resp.status_code}: {resp.text[:300]}"
            high = length - 1
    assert best is not None, f"no body of {MIN_PROBE_BODY} bytes or more was accepted"
    return best


def test_size_limit_counts_signature(eltrix, synapse):
    """An event stored without its signature may use only the bytes left
    for the signature that is added later. So the largest event of a
    local-only room is as large as that of a federated room, and neither
    exceeds the PDU limit once signed."""
    history = LocalHistory(eltrix, "12")
    local_length, local_id = largest_message(history.alice, history.room_id)
    join_as_synapse_server(eltrix, synapse, history.room_id, "12")
    federated_length, federated_id = largest_message(history.alice, history.room_id)
    keys = published_keys(eltrix.federation_url)

    assert local_length == federated_length
    for event_id in (local_id, federated_id):
        pdu = federation_event(eltrix, synapse, event_id)
        assert_signed_by(eltrix.server_name, pdu, "12", keys)
        assert len(encode_canonical_json(pdu)) <= MAX_PDU_BYTES


# ---------------------------------------------------------------------------
# The federation format of /sync


def test_sync_federation_format_signed(eltrix, synapse, room_version):
    history = LocalHistory(eltrix, room_version)
    keys = published_keys(eltrix.federation_url)

    served = federation_format_sync(history.alice, history.room_id)
    assert set(by_event_id(served, room_version)) == set(history.event_ids())
    first = {}
    for pdu in served:
        event_id = reference_event_id(pdu, room_version)
        first[event_id] = assert_signed_by(eltrix.server_name, pdu, room_version, keys)

    for pdu in federation_format_sync(history.bob, history.room_id):
        event_id = reference_event_id(pdu, room_version)
        assert pdu["signatures"][eltrix.server_name] == first[event_id], (
            f"a second /sync served {event_id} with another signature"
        )
    join_as_synapse_server(eltrix, synapse, history.room_id, room_version)
    for event_id, signatures in first.items():
        pdu = federation_event(eltrix, synapse, event_id)
        assert pdu["signatures"][eltrix.server_name] == signatures, (
            f"/event served {event_id} with another signature than /sync"
        )


def test_signatures_survive_key_rotation(start_server):
    """Signatures computed before a key rotation are kept under the old key,
    which the server still publishes, and events first served after it are
    signed with the new key."""
    server = start_server()
    history = LocalHistory(server, "12")
    served = federation_format_sync(history.alice, history.room_id)
    old_keys = published_keys(server.url)
    before = {
        reference_event_id(pdu, "12"): assert_signed_by(server.server_name, pdu, "12", old_keys)
        for pdu in served
    }
    time.sleep(PERSIST_GRACE)
    server.stop()
    rotate(server.data_dir)
    server.start()
    keys = published_keys(server.url)
    assert set(keys) > set(old_keys), "the rotated key is not published"

    new_id = history.alice.send_message(history.room_id, "after rotation")
    served = by_event_id(federation_format_sync(history.alice, history.room_id), "12")
    for event_id, signatures in before.items():
        assert served[event_id]["signatures"][server.server_name] == signatures, (
            f"{event_id} lost the signature it was served with before the rotation"
        )
    new_signatures = assert_signed_by(server.server_name, served[new_id], "12", keys)
    assert not set(new_signatures) & set(old_keys), (
        "an event sent after the rotation is signed with the old key"
    )


# ---------------------------------------------------------------------------
# A real Synapse joins and reads the history


def synapse_history(user: SynapseUser, room_id: str) -> list[dict]:
    resp = user.request("GET", f"rooms/{q(room_id)}/messages?dir=b&limit=100")
    return expect_ok(resp)["chunk"]


def test_synapse_backfills_local_history(eltrix, synapse, room_version):
    """Synapse checks the signatures of the send_join state and auth chain
    and of backfilled events, and drops events whose signatures fail."""
    history = LocalHistory(eltrix, room_version)
    user = SynapseUser(synapse)

    user.join(history.room_id, eltrix.server_name)

    name = expect_ok(user.state(history.room_id, "m.room.name"))
    assert name == {"name": "after"}
    topic = expect_ok(user.state(history.room_id, "m.room.topic"))
    assert topic == {"topic": "a topic"}

    def backfilled() -> list[dict] | None:
        chunk = synapse_history(user, history.room_id)
        ids = {event["event_id"] for event in chunk}
        return chunk if history.last_id in ids and history.redacted_id in ids else None

    chunk = wait_for(backfilled, "the local history on Synapse")
    by_id = {event["event_id"]: event for event in chunk}
    assert by_id[history.last_id]["content"]["body"] == "last local message"
    assert by_id[history.redacted_id]["content"] == {}, (
        "Synapse shows the redacted message with content"
    )
    bodies = [event["content"].get("body") for event in chunk]
    assert "first message" in bodies
    assert "from bob" in bodies


def test_synapse_backfills_long_history(eltrix, synapse):
    """Synapse fills a gap of more than one backfill page, which makes it
    ask for the full state at an earlier event."""
    history = LocalHistory(eltrix, "12")
    sent = [history.alice.send_message(history.room_id, f"old {i}") for i in range(150)]
    user = SynapseUser(synapse)
    user.join(history.room_id, eltrix.server_name)

    def paged() -> list[str] | None:
        ids: list[str] = []
        token = None
        for _ in range(5):
            path = f"rooms/{q(history.room_id)}/messages?dir=b&limit=100"
            if token:
                path += f"&from={q(token)}"
            page = expect_ok(user.request("GET", path))
            ids += [event["event_id"] for event in page["chunk"]]
            token = page.get("end")
            if not token:
                break
        return ids if set(sent) <= set(ids) else None

    ids = wait_for(paged, "150 older messages on Synapse")
    assert set(sent) <= set(ids)


def test_synapse_rejoin_fetches_missed_messages(eltrix, synapse, room_version):
    """Events sent while the room was local-only again are stored unsigned,
    and Synapse fetches them after its user rejoins."""
    history = LocalHistory(eltrix, room_version)
    user = SynapseUser(synapse)
    user.join(history.room_id, eltrix.server_name)
    expect_ok(user.request("POST", f"rooms/{q(history.room_id)}/leave", {}))
    wait_for(
        lambda: history.alice.membership(history.room_id, user.user_id) == "leave",
        "the Synapse user's leave on Eltrix",
    )

    away = [history.alice.send_message(history.room_id, f"away {n}") for n in range(3)]
    user.join(history.room_id, eltrix.server_name)
    back = history.alice.send_message(history.room_id, "after the rejoin")

    def fetched() -> list[str] | None:
        chunk = synapse_history(user, history.room_id)
        ids = {event["event_id"] for event in chunk}
        return None if {back, *away} - ids else ids

    wait_for(fetched, "the messages sent while away on Synapse")
    for event_id in away:
        event = expect_ok(
            user.request("GET", f"rooms/{q(history.room_id)}/event/{q(event_id)}")
        )
        assert event["content"]["body"].startswith("away "), event


@pytest.mark.parametrize("other_version", ["1", "2", "3", "4", "5", "6", "7", "8", "9", "11"])
def test_synapse_reads_other_room_versions(eltrix, synapse, other_version):
    """Room versions 1 to 9 and 11 redact, hash and name events differently,
    and Synapse checks their signatures by each version's rules."""
    alice = eltrix.register(unique("alice"))
    room_id = alice.create_room(preset="public_chat", room_version=other_version)
    content = {"msgtype": "m.text", "body": "redacted"}
    redacted_id = alice.send_event(room_id, "m.room.message", content, v12_id=False)
    alice.set_state(room_id, "m.room.topic", "", {"topic": "a topic"})
    redact_event(alice, room_id, redacted_id)
    content = {"msgtype": "m.text", "body": "last"}
    last_id = alice.send_event(room_id, "m.room.message", content, v12_id=False)
    user = SynapseUser(synapse)

    user.join(room_id, eltrix.server_name)

    def backfilled() -> dict[str, dict] | None:
        events = {event["event_id"]: event for event in synapse_history(user, room_id)}
        return events if {last_id, redacted_id} <= set(events) else None

    events = wait_for(backfilled, "the local history on Synapse")
    assert events[last_id]["content"]["body"] == "last"
    assert events[redacted_id]["content"] == {}
