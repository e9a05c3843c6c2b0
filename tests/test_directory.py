"""Room aliases: PUT, GET and DELETE /directory/room/{roomAlias} and /rooms/{roomId}/aliases."""

import pytest

from harness import assert_error, expect_ok, q, unique


def new_alias() -> str:
    return f"#{unique('alias')}:localhost"


def alias_path(alias: str) -> str:
    return f"directory/room/{q(alias)}"


def test_alias_lifecycle(hs, alice):
    room_id = alice.create_room(preset="public_chat")
    alias = new_alias()
    assert expect_ok(alice.put(alias_path(alias), {"room_id": room_id})) == {}

    resolved = expect_ok(hs.get(alias_path(alias)))
    assert resolved["room_id"] == room_id
    assert "localhost" in resolved["servers"]

    assert expect_ok(alice.delete(alias_path(alias))) == {}
    assert_error(hs.get(alias_path(alias)), 404, "M_NOT_FOUND")


def test_alias_resolves_rooms_on_both_shards(hs, alice):
    for shard in (0, 1):
        room_id = alice.create_room_on_shard(shard, preset="public_chat")
        alias = new_alias()
        expect_ok(alice.put(alias_path(alias), {"room_id": room_id}))
        assert expect_ok(hs.get(alias_path(alias)))["room_id"] == room_id


def test_alias_already_exists(alice, bob):
    first = alice.create_room()
    second = bob.create_room()
    alias = new_alias()
    expect_ok(alice.put(alias_path(alias), {"room_id": first}))

    assert_error(bob.put(alias_path(alias), {"room_id": second}), 409)
    assert expect_ok(bob.get(alias_path(alias)))["room_id"] == first


def test_alias_unknown(hs):
    assert_error(hs.get(alias_path(new_alias())), 404, "M_NOT_FOUND")


def test_delete_unknown_alias(alice):
    assert_error(alice.delete(alias_path(new_alias())), 404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    "alias", ["no-sigil:localhost", "#no-server-part", "#" + "a" * 300 + ":localhost"]
)
def test_put_invalid_alias(alice, alias):
    room_id = alice.create_room()
    assert_error(alice.put(alias_path(alias), {"room_id": room_id}), 400)


def test_put_alias_of_other_server(alice):
    room_id = alice.create_room()
    alias = f"#{unique('remote')}:127.0.0.1:1"
    assert_error(alice.put(alias_path(alias), {"room_id": room_id}), {400, 403})


def test_alias_put_needs_token(hs, alice):
    room_id = alice.create_room()
    resp = hs.put(alias_path(new_alias()), {"room_id": room_id})
    assert_error(resp, 401, "M_MISSING_TOKEN")


def test_alias_delete_needs_token(hs, alice):
    room_id = alice.create_room()
    alias = new_alias()
    expect_ok(alice.put(alias_path(alias), {"room_id": room_id}))
    assert_error(hs.delete(alias_path(alias)), 401, "M_MISSING_TOKEN")
    assert expect_ok(hs.get(alias_path(alias)))["room_id"] == room_id


def test_join_through_alias(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    alias = new_alias()
    expect_ok(alice.put(alias_path(alias), {"room_id": room_id}))
    assert bob.join(alias) == room_id
    assert alice.joined_members(room_id) == {alice.user_id, bob.user_id}


def test_room_aliases_listed(alice):
    room_id = alice.create_room()
    aliases = {new_alias(), new_alias()}
    for alias in aliases:
        expect_ok(alice.put(alias_path(alias), {"room_id": room_id}))
    listed = expect_ok(alice.get(f"rooms/{q(room_id)}/aliases"))["aliases"]
    assert set(listed) == aliases


def test_room_aliases_non_member(alice, bob):
    room_id = alice.create_room(preset="public_chat")
    expect_ok(alice.put(alias_path(new_alias()), {"room_id": room_id}))
    assert_error(bob.get(f"rooms/{q(room_id)}/aliases"), 403, "M_FORBIDDEN")
