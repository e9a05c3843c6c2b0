"""Rooms shared with a real Synapse over federation: a Synapse user joins an
Eltrix room, both servers see each other's messages, and concurrent state
changes on the two servers fork the room and resolve to the same state."""

from __future__ import annotations

import time

import pytest
import requests
from signedjson.sign import sign_json

from harness import ServerFactory, expect_ok, q, unique
from synapse_peer import synapse_peer

WAIT_SECONDS = 20

# Eltrix's federation certificate is self-signed.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def eltrix(tmp_path_factory):
    factory = ServerFactory(tmp_path_factory)
    yield factory(federation=True)
    factory.stop_all()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory, eltrix):
    with synapse_peer(tmp_path_factory, peer_server_names=[eltrix.server_name]) as peer:
        yield peer


class SynapseUser:
    def __init__(self, synapse):
        self.synapse = synapse
        self.user_id, self.token = synapse.register(unique("syn"), "a-long-password-1")

    def request(self, method: str, path: str, body=None):
        return self.synapse.client_request(method, path, token=self.token, json=body)

    def join(self, room_id: str, via: str) -> None:
        expect_ok(self.request("POST", f"join/{q(room_id)}?server_name={q(via)}", {}))

    def send(self, room_id: str, body: str) -> str:
        txn = unique("txn")
        resp = self.request("PUT", f"rooms/{q(room_id)}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body})
        return expect_ok(resp)["event_id"]

    def state(self, room_id: str, event_type: str, state_key: str = ""):
        return self.request("GET", f"rooms/{q(room_id)}/state/{event_type}/{state_key}")

    def set_state(self, room_id: str, event_type: str, content: dict) -> str:
        resp = self.request("PUT", f"rooms/{q(room_id)}/state/{event_type}/", content)
        return expect_ok(resp)["event_id"]

    def has_event(self, room_id: str, event_id: str) -> bool:
        return self.request("GET", f"rooms/{q(room_id)}/event/{q(event_id)}").status_code == 200

    def messages(self, room_id: str) -> list[str]:
        resp = self.request("GET", f"rooms/{q(room_id)}/messages?dir=b&limit=50")
        return [event["content"].get("body") for event in expect_ok(resp)["chunk"] if event["type"] == "m.room.message"]


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {WAIT_SECONDS} s waiting for {what}")


def federation_event(eltrix, synapse, event_id: str) -> dict:
    """Fetch a PDU from Eltrix over federation, signed as Synapse's server."""
    uri = f"/_matrix/federation/v1/event/{q(event_id)}"
    signed = sign_json(
        {"method": "GET", "uri": uri, "origin": synapse.server_name, "destination": eltrix.server_name},
        synapse.server_name,
        synapse.signing_key,
    )
    signature = signed["signatures"][synapse.server_name][synapse.verify_key_id]
    header = (
        f'X-Matrix origin="{synapse.server_name}",destination="{eltrix.server_name}",'
        f'key="{synapse.verify_key_id}",sig="{signature}"'
    )
    resp = requests.get(
        f"{eltrix.federation_url}{uri}", headers={"Authorization": header}, verify=False, timeout=10
    )
    return expect_ok(resp)["pdus"][0]


@pytest.fixture
def shared_room(eltrix, synapse):
    """A public Eltrix room that a Synapse user has joined."""
    alice = eltrix.register(unique("alice"))
    room_id = alice.create_room(preset="public_chat", room_version="10")
    bob = SynapseUser(synapse)
    bob.join(room_id, eltrix.server_name)
    return alice, bob, room_id


def test_synapse_user_joins_eltrix_room(eltrix, shared_room):
    alice, bob, room_id = shared_room
    members = expect_ok(alice.get(f"rooms/{q(room_id)}/joined_members"))["joined"]
    assert bob.user_id in members
    assert alice.user_id in members


def test_messages_cross_both_ways(eltrix, shared_room):
    alice, bob, room_id = shared_room
    alice.send_message(room_id, "from eltrix")
    wait_for(lambda: "from eltrix" in bob.messages(room_id), "the Eltrix message on Synapse")
    bob.send(room_id, "from synapse")

    def on_eltrix():
        chunk = expect_ok(alice.get(f"rooms/{q(room_id)}/messages", params={"dir": "b", "limit": 50}))["chunk"]
        return "from synapse" in [event["content"].get("body") for event in chunk]

    wait_for(on_eltrix, "the Synapse message on Eltrix")


def test_concurrent_topics_fork_and_converge(eltrix, synapse, shared_room):
    """Each server changes the topic without having seen the other's change,
    so the room forks on both. Both resolve the fork to the same topic, and
    the state after each branch's event stays that branch's."""
    alice, bob, room_id = shared_room
    levels = alice.state_content(room_id, "m.room.power_levels")
    levels["users"][bob.user_id] = 100
    levels_id = alice.set_state(room_id, "m.room.power_levels", "", levels)
    wait_for(lambda: bob.has_event(room_id, levels_id), "the power levels on Synapse")

    # With Eltrix down, Synapse cannot deliver Bob's topic and backs off
    # until Eltrix contacts it again, which Alice's topic does.
    eltrix.stop()
    bob_topic = bob.set_state(room_id, "m.room.topic", {"topic": "from synapse"})
    time.sleep(0.5)
    eltrix.start(keep_ports=True)
    alice_topic = alice.set_state(room_id, "m.room.topic", "", {"topic": "from eltrix"})

    wait_for(lambda: bob.has_event(room_id, alice_topic), "Alice's topic on Synapse")
    wait_for(
        lambda: alice.get(f"rooms/{q(room_id)}/event/{q(bob_topic)}").status_code == 200,
        "Bob's topic on Eltrix",
    )
    # Neither topic names the other as a predecessor: the room forked.
    assert bob_topic not in federation_event(eltrix, synapse, alice_topic)["prev_events"]
    assert alice_topic not in federation_event(eltrix, synapse, bob_topic)["prev_events"]

    # The later topic wins on both servers: both events have the same
    # power levels in their history, so resolution orders them by time.
    def topics():
        on_eltrix = alice.state_content(room_id, "m.room.topic").get("topic")
        on_synapse = expect_ok(bob.state(room_id, "m.room.topic")).get("topic")
        return (on_eltrix, on_synapse) if on_eltrix == on_synapse else None

    assert wait_for(topics, "the same topic on both servers") == ("from eltrix", "from eltrix")

    # Both branches merge in the next events, which both servers accept.
    merge = alice.send_message(room_id, "merged on eltrix")
    assert set(federation_event(eltrix, synapse, merge)["prev_events"]) == {alice_topic, bob_topic}
    bob.send(room_id, "merged on synapse")
    wait_for(lambda: "merged on eltrix" in bob.messages(room_id), "Alice's merge on Synapse")

    def merged_on_eltrix():
        chunk = expect_ok(alice.get(f"rooms/{q(room_id)}/messages", params={"dir": "b", "limit": 50}))["chunk"]
        return "merged on synapse" in [event["content"].get("body") for event in chunk]

    wait_for(merged_on_eltrix, "Bob's merge on Eltrix")
    assert alice.state_content(room_id, "m.room.topic")["topic"] == "from eltrix"

    # The state after Bob's topic, on its own branch, has Bob's topic.
    context = expect_ok(alice.get(f"rooms/{q(room_id)}/context/{q(bob_topic)}", params={"limit": 0}))
    topics_there = [e["content"]["topic"] for e in context["state"] if e["type"] == "m.room.topic"]
    assert topics_there == ["from synapse"]


def restricted_room(alice, allowed_room: str) -> str:
    rule = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": allowed_room}]}
    state = {"type": "m.room.join_rules", "state_key": "", "content": rule}
    return alice.create_room(preset="private_chat", room_version="10", initial_state=[state])


def test_synapse_member_of_allowed_room_joins_restricted_room(eltrix, shared_room):
    """Eltrix names Alice as the authoriser in make_join and signs the join
    in send_join, so a member of the allowed room joins from Synapse."""
    alice, bob, allowed = shared_room
    room_id = restricted_room(alice, allowed)

    bob.join(room_id, eltrix.server_name)

    member = alice.state_content(room_id, "m.room.member", bob.user_id)
    assert member["membership"] == "join"
    assert member["join_authorised_via_users_server"] == alice.user_id
    join_id = next(
        event["event_id"]
        for event in expect_ok(alice.get(f"rooms/{q(room_id)}/state"))
        if event["type"] == "m.room.member" and event["state_key"] == bob.user_id
    )
    signatures = federation_event(eltrix, bob.synapse, join_id)["signatures"]
    assert eltrix.server_name in signatures
    assert bob.synapse.server_name in signatures


def test_synapse_non_member_cannot_join_restricted_room(eltrix, synapse, shared_room):
    alice, _, allowed = shared_room
    room_id = restricted_room(alice, allowed)
    outsider = SynapseUser(synapse)

    resp = outsider.request("POST", f"join/{q(room_id)}?server_name={q(eltrix.server_name)}", {})

    # Synapse returns 502 to its client when no resident server makes a
    # join for it.
    assert resp.status_code >= 400, f"the join was not refused: {resp.status_code} {resp.text}"
    members = expect_ok(alice.get(f"rooms/{q(room_id)}/joined_members"))["joined"]
    assert outsider.user_id not in members
