"""Federation between Eltrix and a real Synapse on loopback: each resolves
the other's room aliases with signed requests over TLS, which checks the
TLS listener and client, X-Matrix signing and verification, and key
fetching in both directions."""

from __future__ import annotations

import pytest

from harness import ServerFactory, assert_error, expect_ok, q, unique
from synapse_peer import synapse_peer


@pytest.fixture(scope="module")
def eltrix(tmp_path_factory):
    factory = ServerFactory(tmp_path_factory)
    yield factory(federation=True)
    factory.stop_all()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory, eltrix):
    with synapse_peer(tmp_path_factory, peer_server_names=[eltrix.server_name]) as peer:
        yield peer


def synapse_user(synapse) -> str:
    _, token = synapse.register(unique("syn"), "a-long-password-1")
    return token


def test_synapse_resolves_an_eltrix_alias(eltrix, synapse):
    owner = eltrix.register(unique("owner"))
    name = unique("eltrix-lobby")
    room_id = owner.create_room(room_alias_name=name)
    alias = f"#{name}:{eltrix.server_name}"

    resp = synapse.client_request("GET", f"directory/room/{q(alias)}", token=synapse_user(synapse))
    body = expect_ok(resp)
    assert body["room_id"] == room_id
    assert eltrix.server_name in body["servers"]


def test_eltrix_resolves_a_synapse_alias(eltrix, synapse):
    token = synapse_user(synapse)
    name = unique("synapse-lobby")
    created = expect_ok(
        synapse.client_request("POST", "createRoom", token=token, json={"room_alias_name": name})
    )
    alias = f"#{name}:{synapse.server_name}"

    body = expect_ok(eltrix.get(f"directory/room/{q(alias)}"))
    assert body["room_id"] == created["room_id"]
    assert synapse.server_name in body["servers"]


def test_unknown_aliases_are_not_found_both_ways(eltrix, synapse):
    on_synapse = f"#{unique('missing')}:{synapse.server_name}"
    assert_error(eltrix.get(f"directory/room/{q(on_synapse)}"), 404, "M_NOT_FOUND")
    on_eltrix = f"#{unique('missing')}:{eltrix.server_name}"
    resp = synapse.client_request("GET", f"directory/room/{q(on_eltrix)}", token=synapse_user(synapse))
    assert_error(resp, 404, "M_NOT_FOUND")
