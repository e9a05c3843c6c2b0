"""Redaction through the HTTP API in every room version: which content keys survive."""

from __future__ import annotations

import pytest

from harness import assert_error, expect_ok, q, unique

VERSIONS = [str(version) for version in range(1, 13)]


def redact(account, room_id: str, event_id: str) -> str:
    path = f"rooms/{q(room_id)}/redact/{q(event_id)}/{q(unique('txn'))}"
    return expect_ok(account.put(path, {"reason": "test"}))["event_id"]


def redacted_content(account, room_id: str, event_id: str) -> dict:
    """Read the event once so the server caches it, redact it, then read it again."""
    expect_ok(account.get(f"rooms/{q(room_id)}/event/{q(event_id)}"))
    redaction_id = redact(account, room_id, event_id)
    event = expect_ok(account.get(f"rooms/{q(room_id)}/event/{q(event_id)}"))
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction_id
    return event["content"]


@pytest.fixture(params=VERSIONS)
def versioned_room(request, alice):
    room_id = alice.create_room(room_version=request.param, preset="public_chat")
    return request.param, room_id


def test_message_content_removed(alice, versioned_room):
    _, room_id = versioned_room
    event_id = alice.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}, v12_id=False)
    assert redacted_content(alice, room_id, event_id) == {}


def test_custom_state_content_removed(alice, versioned_room):
    _, room_id = versioned_room
    event_id = alice.set_state(room_id, "org.example.state", "k", {"a": 1})
    assert redacted_content(alice, room_id, event_id) == {}


def test_join_rules_keep_allow_from_v8(alice, versioned_room):
    version, room_id = versioned_room
    event_id = alice.set_state(room_id, "m.room.join_rules", "", {"join_rule": "public", "allow": []})
    expected = {"join_rule": "public"}
    if int(version) >= 8:
        expected["allow"] = []
    assert redacted_content(alice, room_id, event_id) == expected


def test_member_keeps_membership(alice, versioned_room):
    _, room_id = versioned_room
    content = {"membership": "join", "displayname": "Alice"}
    event_id = alice.set_state(room_id, "m.room.member", alice.user_id, content)
    assert redacted_content(alice, room_id, event_id) == {"membership": "join"}


def test_client_cannot_name_join_authoriser(alice, versioned_room):
    _, room_id = versioned_room
    content = {"membership": "join", "join_authorised_via_users_server": alice.user_id}
    path = f"rooms/{q(room_id)}/state/m.room.member/{q(alice.user_id)}"
    assert_error(alice.put(path, content), 403, "M_FORBIDDEN")


def test_content_redacts_of_a_message_redacts_nothing(alice, bob, versioned_room):
    _, room_id = versioned_room
    bob.join(room_id)
    target = bob.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "keep"}, v12_id=False)
    alice.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "x", "redacts": target}, v12_id=False)
    event = expect_ok(alice.get(f"rooms/{q(room_id)}/event/{q(target)}"))
    assert event["content"]["body"] == "keep"


def test_send_redaction_needs_the_redact_level(alice, bob, versioned_room):
    _, room_id = versioned_room
    bob.join(room_id)
    target = alice.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "keep"}, v12_id=False)
    path = f"rooms/{q(room_id)}/send/m.room.redaction/{q(unique('txn'))}"
    resp = bob.put(path, {"redacts": target})
    assert_error(resp, 403, "M_FORBIDDEN")
    event = expect_ok(alice.get(f"rooms/{q(room_id)}/event/{q(target)}"))
    assert event["content"]["body"] == "keep"


def test_state_redaction_needs_the_redact_level(alice, bob, versioned_room):
    """A redaction sent as a state event takes effect only with the redact
    level, like one sent through /redact, even between users of one server."""
    _, room_id = versioned_room
    bob.join(room_id)
    target = alice.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "keep"}, v12_id=False)
    path = f"rooms/{q(room_id)}/state/m.room.redaction/"
    resp = bob.put(path, {"redacts": target})
    assert resp.status_code in (200, 403), resp.text
    event = expect_ok(alice.get(f"rooms/{q(room_id)}/event/{q(target)}"))
    assert event["content"]["body"] == "keep"
    assert "redacted_because" not in event.get("unsigned", {})


def test_send_redaction_by_version(alice, versioned_room):
    version, room_id = versioned_room
    target = alice.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": "gone"}, v12_id=False)
    redaction_id = alice.send_event(room_id, "m.room.redaction", {"redacts": target}, v12_id=False)
    event = expect_ok(alice.get(f"rooms/{q(room_id)}/event/{q(target)}"))
    assert event["content"] == {}
    redaction = expect_ok(alice.get(f"rooms/{q(room_id)}/event/{q(redaction_id)}"))
    assert redaction["redacts"] == target
    if int(version) >= 11:
        assert redaction["content"]["redacts"] == target
    else:
        assert "redacts" not in redaction["content"]


def test_history_visibility_kept(alice, versioned_room):
    _, room_id = versioned_room
    content = {"history_visibility": "joined", "extra": True}
    event_id = alice.set_state(room_id, "m.room.history_visibility", "", content)
    assert redacted_content(alice, room_id, event_id) == {"history_visibility": "joined"}


def test_power_levels_keep_invite_from_v11(alice, versioned_room):
    version, room_id = versioned_room
    levels = expect_ok(alice.get(f"rooms/{q(room_id)}/state/m.room.power_levels/"))
    levels["notifications"] = {"room": 50}
    levels["invite"] = 10
    old_id = alice.set_state(room_id, "m.room.power_levels", "", levels)
    # Redact an older power levels event, so the room keeps working levels.
    alice.set_state(room_id, "m.room.power_levels", "", levels)
    content = redacted_content(alice, room_id, old_id)
    kept = {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}
    if int(version) >= 11:
        kept.add("invite")
    assert set(content) == kept & set(levels)
    assert "notifications" not in content


def test_create_content_by_version(alice, versioned_room):
    version, room_id = versioned_room
    create_id = None
    for event in alice.messages(room_id, dir="b", limit=50)["chunk"]:
        if event["type"] == "m.room.create":
            create_id = event["event_id"]
    assert create_id is not None
    content = redacted_content(alice, room_id, create_id)
    if int(version) >= 11:
        assert content["room_version"] == version
    else:
        assert content == {"creator": alice.user_id}
