"""GET /rooms/{roomId}/context/{eventId}: the events around an event and the state there."""

from __future__ import annotations

import json

import pytest

from harness import assert_error, expect_ok, q

MESSAGES_ONLY = json.dumps({"types": ["m.room.message"]})


@pytest.fixture
def room(alice):
    room_id = alice.create_room(preset="public_chat", name="Before")
    return room_id


def context(account, room_id: str, event_id: str, **params):
    return account.get(f"rooms/{q(room_id)}/context/{q(event_id)}", params=params)


def bodies(events: list[dict]) -> list[str]:
    return [event["content"].get("body") for event in events]


def test_events_around_the_event(alice, room):
    ids = [alice.send_message(room, f"m{index}") for index in range(7)]
    body = expect_ok(context(alice, room, ids[3], limit=4, filter=MESSAGES_ONLY))
    assert body["event"]["event_id"] == ids[3]
    assert bodies(body["events_before"]) == ["m2", "m1"]
    assert bodies(body["events_after"]) == ["m4", "m5"]


def test_odd_limit_gives_the_extra_event_after(alice, room):
    ids = [alice.send_message(room, f"m{index}") for index in range(5)]
    body = expect_ok(context(alice, room, ids[2], limit=3, filter=MESSAGES_ONLY))
    assert bodies(body["events_before"]) == ["m1"]
    assert bodies(body["events_after"]) == ["m3", "m4"]


def test_tokens_continue_with_messages(alice, room):
    ids = [alice.send_message(room, f"m{index}") for index in range(7)]
    body = expect_ok(context(alice, room, ids[3], limit=2, filter=MESSAGES_ONLY))
    older = alice.messages(room, dir="b", **{"from": body["start"]}, limit=1, filter=MESSAGES_ONLY)
    assert bodies(older["chunk"]) == ["m1"]
    newer = alice.messages(room, dir="f", **{"from": body["end"]}, limit=1, filter=MESSAGES_ONLY)
    assert bodies(newer["chunk"]) == ["m5"]


def test_state_at_last_event_returned(alice, room):
    ids = [alice.send_message(room, f"m{index}") for index in range(3)]
    alice.set_state(room, "m.room.name", "", {"name": "After"})
    state_types = ["m.room.message", "m.room.name", "m.room.create", "m.room.member", "m.room.power_levels"]
    body = expect_ok(context(alice, room, ids[0], limit=2, filter=json.dumps({"types": state_types})))
    names = [
        event["content"]["name"] for event in body["state"] if event["type"] == "m.room.name"
    ]
    assert names == ["Before"]
    types = {event["type"] for event in body["state"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= types



def test_state_across_many_state_changes(alice, room):
    """Over 50 state changes, so the state after later events comes from a
    newer full snapshot than the state after earlier ones."""
    marks = {}
    for index in range(60):
        alice.set_state(room, "m.room.topic", "", {"topic": f"t{index}"})
        if index in (2, 49, 50, 59):
            marks[index] = alice.send_message(room, f"after t{index}")
    for index, event_id in marks.items():
        body = expect_ok(context(alice, room, event_id, limit=0))
        topics = [
            event["content"]["topic"] for event in body["state"] if event["type"] == "m.room.topic"
        ]
        assert topics == [f"t{index}"], f"state after the message that follows t{index}"

def test_zero_limit_returns_only_the_event(alice, room):
    event_id = alice.send_message(room, "alone")
    body = expect_ok(context(alice, room, event_id, limit=0))
    assert body["event"]["content"]["body"] == "alone"
    assert body["events_before"] == []
    assert body["events_after"] == []


def test_unknown_event(alice, room):
    resp = context(alice, room, "$unknownunknownunknownunknownunknownunknown0")
    assert_error(resp, 404, "M_NOT_FOUND")


def test_event_of_another_room(alice, room):
    other = alice.create_room()
    event_id = alice.send_message(other, "elsewhere")
    assert_error(context(alice, room, event_id), 404, "M_NOT_FOUND")


def test_non_member_is_forbidden(alice, bob):
    room_id = alice.create_room(preset="private_chat")
    event_id = alice.send_message(room_id, "private")
    assert_error(context(bob, room_id, event_id), 403, "M_FORBIDDEN")


def test_history_hidden_before_join(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    alice.set_state(room_id, "m.room.history_visibility", "", {"history_visibility": "joined"})
    hidden = alice.send_message(room_id, "before bob")
    bob.join(room_id)
    seen = alice.send_message(room_id, "after bob")
    assert_error(context(bob, room_id, hidden), 404, "M_NOT_FOUND")
    body = expect_ok(context(bob, room_id, seen, limit=10, filter=MESSAGES_ONLY))
    assert "before bob" not in bodies(body["events_before"])


@pytest.mark.parametrize("limit", ["-1", "ten", "1.5"])
def test_invalid_limit(alice, room, limit):
    event_id = alice.send_message(room, "x")
    assert_error(context(alice, room, event_id, limit=limit), 400, "M_INVALID_PARAM")


def test_invalid_filter(alice, room):
    event_id = alice.send_message(room, "x")
    assert_error(context(alice, room, event_id, filter="{nope"), 400, {"M_BAD_JSON", "M_NOT_JSON"})


def test_filter_applies_to_state(alice, room):
    event_id = alice.send_message(room, "x")
    body = expect_ok(context(alice, room, event_id, limit=2, filter=json.dumps({"types": ["m.room.name"]})))
    assert [event["type"] for event in body["state"]] == ["m.room.name"]
