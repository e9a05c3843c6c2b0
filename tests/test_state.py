"""Room state: GET /state, GET and PUT /state/{eventType}/{stateKey}, and power levels."""

import pytest

from harness import EVENT_ID_V12, assert_client_event, assert_error, expect_ok, q


@pytest.fixture
def room(alice, bob):
    """A public room created by alice that bob has joined."""
    room_id = alice.create_room(preset="public_chat", name="State room")
    bob.join(room_id)
    return room_id


def state_path(room_id: str, event_type: str, state_key: str) -> str:
    return f"rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}"


def test_state_lists_room_state(alice, room):
    events = expect_ok(alice.get(f"rooms/{q(room)}/state"))
    for event in events:
        assert_client_event(event, room)
        assert isinstance(event.get("state_key"), str), (
            f"state event without state_key: {event}"
        )
    keys = {(event["type"], event["state_key"]) for event in events}
    for expected in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
        ("m.room.member", alice.user_id),
    ]:
        assert expected in keys, f"{expected} missing from /state"
    assert len(keys) == len(events), "/state returned one state key twice"


def test_state_create_event(alice, room):
    events = expect_ok(alice.get(f"rooms/{q(room)}/state"))
    create = next(event for event in events if event["type"] == "m.room.create")
    assert create["sender"] == alice.user_id
    assert create["content"]["room_version"] == "12"


def test_put_state_returns_event_id(alice, bob, room):
    event_id = alice.set_state(room, "org.example.setting", "volume", {"level": 7})
    assert EVENT_ID_V12.match(event_id), event_id

    assert bob.state_content(room, "org.example.setting", "volume") == {"level": 7}
    event = bob.event(room, event_id)
    assert_client_event(event, room)
    assert event["type"] == "org.example.setting"
    assert event["state_key"] == "volume"
    assert event["content"] == {"level": 7}

    listed = expect_ok(bob.get(f"rooms/{q(room)}/state"))
    assert event_id in [event["event_id"] for event in listed]


def test_put_state_replaces(alice, room):
    first = alice.set_state(room, "org.example.setting", "mode", {"v": 1})
    second = alice.set_state(room, "org.example.setting", "mode", {"v": 2})
    assert first != second
    assert alice.state_content(room, "org.example.setting", "mode") == {"v": 2}

    listed = expect_ok(alice.get(f"rooms/{q(room)}/state"))
    matching = [
        e
        for e in listed
        if (e["type"], e["state_key"]) == ("org.example.setting", "mode")
    ]
    assert [event["event_id"] for event in matching] == [second]


def test_state_keys_are_distinct(alice, room):
    alice.set_state(room, "org.example.pair", "left", {"side": "l"})
    alice.set_state(room, "org.example.pair", "right", {"side": "r"})
    assert alice.state_content(room, "org.example.pair", "left") == {"side": "l"}
    assert alice.state_content(room, "org.example.pair", "right") == {"side": "r"}


def test_state_key_with_slash(alice, room):
    alice.set_state(room, "org.example.path", "a/b", {"ok": True})
    assert alice.state_content(room, "org.example.path", "a/b") == {"ok": True}
    assert_error(
        alice.get(state_path(room, "org.example.path", "a")), 404, "M_NOT_FOUND"
    )


def test_empty_state_key_without_slash(alice, room):
    """For an empty state key the trailing slash is optional."""
    with_slash = expect_ok(alice.get(f"rooms/{q(room)}/state/m.room.name/"))
    without_slash = expect_ok(alice.get(f"rooms/{q(room)}/state/m.room.name"))
    assert with_slash == without_slash == {"name": "State room"}


def test_put_state_without_slash(alice, room):
    resp = alice.put(f"rooms/{q(room)}/state/m.room.topic", {"topic": "no slash"})
    assert EVENT_ID_V12.match(expect_ok(resp)["event_id"])
    assert alice.state_content(room, "m.room.topic")["topic"] == "no slash"


def test_state_format_event(alice, room):
    event = expect_ok(
        alice.get(f"rooms/{q(room)}/state/m.room.name/", params={"format": "event"})
    )
    assert_client_event(event, room)
    assert event["type"] == "m.room.name"
    assert event["state_key"] == ""
    assert event["content"] == {"name": "State room"}
    assert event["sender"] == alice.user_id


def test_state_missing_key(alice, room):
    resp = alice.get(state_path(room, "org.example.absent", ""))
    assert_error(resp, 404, "M_NOT_FOUND")


def test_state_non_member(hs, alice):
    room_id = alice.create_room(preset="public_chat")
    outsider = hs.register_on_shard("outsider", 1)
    assert_error(outsider.get(f"rooms/{q(room_id)}/state"), 403, "M_FORBIDDEN")
    assert_error(
        outsider.get(state_path(room_id, "m.room.create", "")), 403, "M_FORBIDDEN"
    )


def test_state_after_leave(alice, bob, room):
    """A user who left reads the state as it was when they left."""
    alice.set_state(room, "m.room.topic", "", {"topic": "before"})
    bob.leave(room)
    alice.set_state(room, "m.room.topic", "", {"topic": "after"})

    assert bob.state_content(room, "m.room.topic")["topic"] == "before"
    listed = expect_ok(bob.get(f"rooms/{q(room)}/state"))
    topics = [
        event["content"]["topic"] for event in listed if event["type"] == "m.room.topic"
    ]
    assert topics == ["before"]


def test_member_cannot_change_power_levels(alice, bob, room):
    levels = alice.state_content(room, "m.room.power_levels")
    raised = {**levels, "users": {**levels.get("users", {}), bob.user_id: 100}}
    resp = bob.put(state_path(room, "m.room.power_levels", ""), raised)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.state_content(room, "m.room.power_levels") == levels


def test_member_cannot_rename(alice, bob, room):
    resp = bob.put(state_path(room, "m.room.name", ""), {"name": "taken over"})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.state_content(room, "m.room.name") == {"name": "State room"}


def test_non_member_cannot_set_state(hs, alice, room):
    outsider = hs.register_on_shard("outsider", 0)
    resp = outsider.put(state_path(room, "org.example.setting", ""), {"v": 1})
    assert_error(resp, 403, "M_FORBIDDEN")


def test_state_key_of_other_user(alice, bob, room):
    """A state key that is a user ID may only be set by that user, even by a creator."""
    resp = alice.put(state_path(room, "org.example.owned", bob.user_id), {"v": 1})
    assert_error(resp, 403, "M_FORBIDDEN")

    alice.set_state(room, "org.example.owned", alice.user_id, {"v": 3})
    assert bob.state_content(room, "org.example.owned", alice.user_id) == {"v": 3}


def test_power_levels_raise_grants_state(alice, bob, room):
    levels = alice.state_content(room, "m.room.power_levels")
    levels.setdefault("users", {})[bob.user_id] = 50
    alice.set_state(room, "m.room.power_levels", "", levels)

    bob.set_state(room, "m.room.name", "", {"name": "renamed by bob"})
    assert alice.state_content(room, "m.room.name") == {"name": "renamed by bob"}


def test_malformed_power_levels_are_bad_json(hs):
    alice = hs.register_on_shard("bad-levels", 0)
    room_id = alice.create_room()
    path = f"rooms/{room_id}/state/m.room.power_levels/"
    for content in ({"users": {alice.user_id: "100"}}, {"users": []}, {"ban": 1.5}, {"kick": "x"}):
        response = alice.put(path, content)
        assert_error(response, 400, "M_BAD_JSON")
    levels = alice.get(path)
    assert levels.status_code == 200
    assert levels.json()["users"] != [], "a rejected change must leave the power levels untouched"
