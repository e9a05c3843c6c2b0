"""POST /rooms/{roomId}/upgrade: the replacement room, the tombstone and what moves."""

from __future__ import annotations

import pytest

from harness import assert_error, expect_ok, q, unique

VERSIONS = [str(version) for version in range(1, 13)]
PRIVILEGED_CREATORS = {"12"}


def upgrade(account, room_id: str, version: str, **extra):
    return account.post(f"rooms/{q(room_id)}/upgrade", {"new_version": version, **extra})


def upgraded(account, room_id: str, version: str, **extra) -> str:
    return expect_ok(upgrade(account, room_id, version, **extra))["replacement_room"]


@pytest.mark.parametrize("old_version", VERSIONS)
@pytest.mark.parametrize("new_version", VERSIONS)
def test_upgrade_between_versions(alice, old_version, new_version):
    room_id = alice.create_room(
        room_version=old_version, preset="public_chat", name="Before", topic="Kept"
    )
    alice.set_state(room_id, "m.room.history_visibility", "", {"history_visibility": "joined"})
    last = alice.send_event(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "last words"}, v12_id=False
    )

    new_room = upgraded(alice, room_id, new_version)
    assert new_room != room_id

    create = alice.state_content(new_room, "m.room.create")
    assert create["room_version"] == new_version
    assert create["predecessor"]["room_id"] == room_id
    assert create["predecessor"]["event_id"] == last
    assert alice.state_content(new_room, "m.room.name") == {"name": "Before"}
    assert alice.state_content(new_room, "m.room.topic") == {"topic": "Kept"}
    assert alice.state_content(new_room, "m.room.join_rules") == {"join_rule": "public"}
    assert alice.state_content(new_room, "m.room.history_visibility") == {
        "history_visibility": "joined"
    }
    assert new_room in alice.joined_rooms()

    tombstone = alice.state_content(room_id, "m.room.tombstone")
    assert tombstone["replacement_room"] == new_room
    old_levels = alice.state_content(room_id, "m.room.power_levels")
    assert old_levels["events_default"] >= 50
    assert old_levels["invite"] >= 50

    levels = alice.state_content(new_room, "m.room.power_levels")
    if new_version in PRIVILEGED_CREATORS:
        assert alice.user_id not in levels.get("users", {})
    elif old_version in PRIVILEGED_CREATORS:
        # A creator's unlimited power becomes the highest level in use:
        # version 12 rooms require 150 for the tombstone by default.
        assert levels["users"][alice.user_id] == max(100, levels["events"]["m.room.tombstone"])
    else:
        assert levels["users"][alice.user_id] == 100


def test_predecessor_points_at_last_event(alice):
    room_id = alice.create_room(room_version="11")
    last = alice.send_message(room_id, "final message")
    new_room = upgraded(alice, room_id, "11")
    assert alice.state_content(new_room, "m.room.create")["predecessor"]["event_id"] == last


def test_room_type_is_copied(alice):
    room_id = alice.create_room(creation_content={"type": "m.space"})
    new_room = upgraded(alice, room_id, "12")
    assert alice.state_content(new_room, "m.room.create")["type"] == "m.space"


def test_untyped_room_stays_untyped(alice):
    new_room = upgraded(alice, alice.create_room(), "12")
    assert "type" not in alice.state_content(new_room, "m.room.create")


def test_members_are_not_transferred(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    new_room = upgraded(alice, room_id, "12")
    assert alice.joined_members(new_room) == {alice.user_id}
    assert bob.state_content(room_id, "m.room.tombstone")["replacement_room"] == new_room
    bob.join(new_room)
    assert alice.joined_members(new_room) == {alice.user_id, bob.user_id}


def test_old_room_stops_ordinary_members(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    upgraded(alice, room_id, "12")
    resp = bob.put(
        f"rooms/{q(room_id)}/send/m.room.message/{q(unique('txn'))}",
        {"msgtype": "m.text", "body": "still here"},
    )
    assert_error(resp, 403, "M_FORBIDDEN")


def test_aliases_move_to_new_room(alice):
    name = unique("upgraded")
    room_id = alice.create_room(room_alias_name=name)
    alias = f"#{name}:localhost"
    new_room = upgraded(alice, room_id, "12")

    assert expect_ok(alice.get(f"directory/room/{q(alias)}"))["room_id"] == new_room
    assert expect_ok(alice.get(f"rooms/{q(new_room)}/aliases"))["aliases"] == [alias]
    assert expect_ok(alice.get(f"rooms/{q(room_id)}/aliases"))["aliases"] == []
    assert alice.state_content(new_room, "m.room.canonical_alias")["alias"] == alias
    assert alice.state_content(room_id, "m.room.canonical_alias") == {}


def test_additional_creators_in_v12(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    new_room = upgraded(alice, room_id, "12", additional_creators=[bob.user_id])
    create = alice.state_content(new_room, "m.room.create")
    assert create["additional_creators"] == [bob.user_id]
    assert bob.user_id not in alice.state_content(new_room, "m.room.power_levels").get(
        "users", {}
    )


def test_additional_creators_ignored_before_v12(alice, bob):
    new_room = upgraded(alice, alice.create_room(), "11", additional_creators=[bob.user_id])
    assert "additional_creators" not in alice.state_content(new_room, "m.room.create")


def test_string_power_levels_become_integers(alice):
    room_id = alice.create_room(room_version="9")
    levels = alice.state_content(room_id, "m.room.power_levels")
    levels["ban"] = "40"
    alice.set_state(room_id, "m.room.power_levels", "", levels)
    new_room = upgraded(alice, room_id, "10")
    assert alice.state_content(new_room, "m.room.power_levels")["ban"] == 40


def test_member_without_power_is_forbidden(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    assert_error(upgrade(bob, room_id, "12"), 403, "M_FORBIDDEN")
    assert alice.joined_rooms() == {room_id}
    resp = alice.get(f"rooms/{q(room_id)}/state/m.room.tombstone/")
    assert_error(resp, 404, "M_NOT_FOUND")


def test_non_member_is_forbidden(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    assert_error(upgrade(bob, room_id, "12"), 403, "M_FORBIDDEN")


def test_unsupported_version(alice):
    room_id = alice.create_room()
    assert_error(upgrade(alice, room_id, "999"), 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert alice.joined_rooms() == {room_id}


@pytest.mark.parametrize(
    "body, errcode",
    [
        ({}, "M_BAD_JSON"),
        ({"new_version": 12}, "M_BAD_JSON"),
        ({"new_version": "12", "additional_creators": ["not-a-user"]}, "M_INVALID_PARAM"),
        ({"new_version": "12", "additional_creators": "@a:localhost"}, "M_BAD_JSON"),
    ],
)
def test_invalid_body(alice, body, errcode):
    room_id = alice.create_room()
    resp = alice.post(f"rooms/{q(room_id)}/upgrade", body)
    assert_error(resp, 400, errcode)


def test_not_json(hs, alice):
    room_id = alice.create_room()
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    resp = hs.raw("POST", f"rooms/{q(room_id)}/upgrade", b"{nope", headers)
    assert_error(resp, 400, "M_NOT_JSON")


def test_get_is_not_allowed(alice):
    room_id = alice.create_room()
    resp = alice.get(f"rooms/{q(room_id)}/upgrade")
    assert_error(resp, 405, "M_UNRECOGNIZED")


def test_upgrade_chain_through_v12_and_back(alice):
    room_id = alice.create_room(room_version="12")
    older = upgraded(alice, room_id, "11")
    newer = upgraded(alice, older, "12")
    assert alice.state_content(newer, "m.room.create")["predecessor"]["room_id"] == older


def test_concurrent_upgrades_make_one_room(alice):
    import threading

    room_id = alice.create_room(room_alias_name=unique("racing"))
    results: list = []

    def attempt() -> None:
        results.append(upgrade(alice, room_id, "12"))

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    succeeded = [resp for resp in results if resp.status_code == 200]
    for resp in results:
        if resp.status_code != 200:
            assert_error(resp, 409, "M_UNKNOWN")
    tombstone = alice.state_content(room_id, "m.room.tombstone")["replacement_room"]
    replacements = {resp.json()["replacement_room"] for resp in succeeded}
    assert tombstone in replacements
    assert len(succeeded) >= 1


def test_invalid_additional_creators_ignored_before_v12(alice):
    room_id = alice.create_room()
    new_room = upgraded(alice, room_id, "11", additional_creators=["junk"])
    assert "additional_creators" not in alice.state_content(new_room, "m.room.create")
