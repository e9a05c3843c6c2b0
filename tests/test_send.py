"""Sending events, transaction IDs, GET /event and redaction."""

import base64
import os

import pytest

from harness import (
    EVENT_ID_V12,
    WIDE_TIMELINE,
    assert_client_event,
    assert_error,
    expect_ok,
    joined_timeline,
    message_bodies,
    q,
    shows_event,
    unique,
)


@pytest.fixture
def room(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    return room_id


def send_path(room_id: str, txn_id: str, event_type: str = "m.room.message") -> str:
    return f"rooms/{q(room_id)}/send/{q(event_type)}/{q(txn_id)}"


def random_event_id() -> str:
    digest = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    return f"${digest}"


def test_send_returns_v12_event_id(alice, room):
    resp = alice.put(
        send_path(room, unique("txn")), {"msgtype": "m.text", "body": "hello"}
    )
    event_id = expect_ok(resp)["event_id"]
    assert EVENT_ID_V12.match(event_id), f"not a room version 12 event ID: {event_id!r}"


def test_event_fields(alice, bob, room):
    content = {
        "msgtype": "m.text",
        "body": "fields",
        "org.example.extra": [1, "two", None],
    }
    event_id = alice.send_event(room, "m.room.message", content)

    event = bob.event(room, event_id)
    assert_client_event(event, room)
    assert event["event_id"] == event_id
    assert event["sender"] == alice.user_id
    assert event["type"] == "m.room.message"
    assert event["content"] == content
    assert "state_key" not in event


def test_custom_event_type(alice, bob, room):
    event_id = alice.send_event(
        room, "org.example.ping", {"seq": 1, "nested": {"ok": True}}
    )
    event = bob.event(room, event_id)
    assert event["type"] == "org.example.ping"
    assert event["content"] == {"seq": 1, "nested": {"ok": True}}


def test_send_is_idempotent_per_txn(alice, room):
    txn_id = unique("txn")
    body = unique("once")
    first = alice.send_message(room, body, txn_id)
    second = alice.send_message(room, body, txn_id)
    assert first == second

    events = alice.paginate(room, "b", limit=50)
    assert message_bodies(events).count(body) == 1


def test_txn_scoped_to_device(alice, room):
    other_device = alice.hs.login(alice.localpart, alice.password)
    txn_id = unique("txn")
    body = unique("twice")
    first = alice.send_message(room, body, txn_id)
    second = other_device.send_message(room, body, txn_id)
    assert first != second

    events = alice.paginate(room, "b", limit=50)
    assert message_bodies(events).count(body) == 2


def test_txn_scoped_to_room(alice, bob, room):
    other_room = alice.create_room(preset="public_chat")
    txn_id = unique("txn")
    first = alice.send_message(room, "room one", txn_id)
    second = alice.send_message(other_room, "room two", txn_id)
    assert first != second
    assert bob.event(room, first)["content"]["body"] == "room one"
    assert alice.event(other_room, second)["content"]["body"] == "room two"


def test_sync_echoes_transaction_id(alice, bob, room):
    txn_id = unique("txn")
    event_id = alice.send_message(room, "echo", txn_id)

    own = alice.initial_sync_until(shows_event(room, event_id), filter=WIDE_TIMELINE)
    mine = next(e for e in joined_timeline(own, room) if e["event_id"] == event_id)
    assert mine.get("unsigned", {}).get("transaction_id") == txn_id

    theirs = bob.initial_sync_until(shows_event(room, event_id), filter=WIDE_TIMELINE)
    seen = next(e for e in joined_timeline(theirs, room) if e["event_id"] == event_id)
    assert "transaction_id" not in seen.get("unsigned", {})


def test_non_member_cannot_send(hs, alice, room):
    outsider = hs.register_on_shard("outsider", 1)
    resp = outsider.put(
        send_path(room, unique("txn")), {"msgtype": "m.text", "body": "let me in"}
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    assert "let me in" not in message_bodies(alice.paginate(room, "b", limit=50))


def test_left_member_cannot_send(alice, bob, room):
    bob.leave(room)
    resp = bob.put(
        send_path(room, unique("txn")), {"msgtype": "m.text", "body": "after leaving"}
    )
    assert_error(resp, 403, "M_FORBIDDEN")


def test_invited_user_cannot_send(hs, alice):
    invitee = hs.register_on_shard("invitee", 1)
    room_id = alice.create_room(invite=[invitee.user_id])
    resp = invitee.put(
        send_path(room_id, unique("txn")), {"msgtype": "m.text", "body": "early"}
    )
    assert_error(resp, 403, "M_FORBIDDEN")


def test_event_unknown_id(alice, room):
    resp = alice.get(f"rooms/{q(room)}/event/{q(random_event_id())}")
    assert_error(resp, 404, "M_NOT_FOUND")


def test_event_from_other_room(alice, room):
    other_room = alice.create_room()
    event_id = alice.send_message(other_room, "elsewhere")
    resp = alice.get(f"rooms/{q(room)}/event/{q(event_id)}")
    assert_error(resp, 404, "M_NOT_FOUND")


def test_event_hidden_from_non_member(hs, alice, room):
    event_id = alice.send_message(room, "members only")
    outsider = hs.register_on_shard("outsider", 0)
    resp = outsider.get(f"rooms/{q(room)}/event/{q(event_id)}")
    body = assert_error(resp, {403, 404}, {"M_FORBIDDEN", "M_NOT_FOUND"})
    assert "members only" not in str(body)


def test_redact_empties_content(alice, bob, room):
    event_id = alice.send_message(room, "regret")
    path = f"rooms/{q(room)}/redact/{q(event_id)}/{q(unique('txn'))}"
    redaction_id = expect_ok(alice.put(path, {"reason": "typo"}))["event_id"]
    assert EVENT_ID_V12.match(redaction_id)

    redacted = bob.event(room, event_id)
    assert_client_event(redacted, room)
    assert redacted["content"] == {}
    assert redacted["type"] == "m.room.message"
    assert redacted["sender"] == alice.user_id
    because = redacted.get("unsigned", {}).get("redacted_because", {})
    assert because.get("event_id") == redaction_id

    redaction = bob.event(room, redaction_id)
    assert redaction["type"] == "m.room.redaction"
    assert redaction["content"]["redacts"] == event_id
    assert redaction["content"]["reason"] == "typo"


def test_redact_is_idempotent_per_txn(alice, room):
    event_id = alice.send_message(room, "twice redacted")
    path = f"rooms/{q(room)}/redact/{q(event_id)}/{q(unique('txn'))}"
    first = expect_ok(alice.put(path, {}))["event_id"]
    second = expect_ok(alice.put(path, {}))["event_id"]
    assert first == second


def test_redact_in_messages(alice, bob, room):
    event_id = alice.send_message(room, "hidden later")
    path = f"rooms/{q(room)}/redact/{q(event_id)}/{q(unique('txn'))}"
    expect_ok(alice.put(path, {}))

    events = bob.paginate(room, "b", limit=50)
    original = next(event for event in events if event["event_id"] == event_id)
    assert original["content"] == {}
    assert "hidden later" not in message_bodies(events)


def test_redact_via_send_endpoint(alice, bob, room):
    """Servers must accept m.room.redaction through /send in every room version."""
    event_id = alice.send_message(room, "via send")
    alice.send_event(room, "m.room.redaction", {"redacts": event_id})
    assert bob.event(room, event_id)["content"] == {}


def test_member_cannot_redact_others(alice, bob, room):
    """Without the redact power level a redaction of another user's event has no effect.

    The client-server spec lets the server either reject the request or accept
    the redaction event without applying it.
    """
    event_id = alice.send_message(room, "keep me")
    path = f"rooms/{q(room)}/redact/{q(event_id)}/{q(unique('txn'))}"
    resp = bob.put(path, {})
    if resp.status_code != 200:
        assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.event(room, event_id)["content"]["body"] == "keep me"
    assert bob.event(room, event_id)["content"]["body"] == "keep me"


def test_member_can_redact_own(alice, bob, room):
    event_id = bob.send_message(room, "my own")
    path = f"rooms/{q(room)}/redact/{q(event_id)}/{q(unique('txn'))}"
    expect_ok(bob.put(path, {}))
    assert alice.event(room, event_id)["content"] == {}


def test_redaction_reaches_every_shard_that_served_the_event(hs, alice, room):
    """Each shard keeps formatted events for /sync; a redaction replaces them all."""
    readers = [hs.register_on_shard(unique("reader"), shard) for shard in (0, 1)]
    for reader in readers:
        reader.join(room)
    tokens = [reader.sync()["next_batch"] for reader in readers]
    event_id = alice.send_message(room, "seen before redaction")
    for reader, since in zip(readers, tokens):
        events, _ = reader.sync_timeline(room, since, event_id)
        seen = next(event for event in events if event["event_id"] == event_id)
        assert seen["content"]["body"] == "seen before redaction"

    path = f"rooms/{q(room)}/redact/{q(event_id)}/{q(unique('txn'))}"
    redaction_id = expect_ok(alice.put(path, {}))["event_id"]
    for reader, since in zip(readers, tokens):
        events, _ = reader.sync_timeline(room, since, redaction_id)
        redacted = next(event for event in events if event["event_id"] == event_id)
        assert redacted["content"] == {}
        because = redacted["unsigned"]["redacted_because"]
        assert because["event_id"] == redaction_id
