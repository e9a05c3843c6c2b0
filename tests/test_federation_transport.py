"""The server-server API transport between two Eltrix servers on loopback:
TLS, X-Matrix request signatures and key fetching, through the alias
directory query."""

from __future__ import annotations

import pytest
import requests

from harness import ServerFactory, assert_error, expect_ok, q, unique

# The servers' certificates are self-signed.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two federating servers, each with a self-signed certificate."""
    factory = ServerFactory(tmp_path_factory)
    first = factory(federation=True)
    second = factory(federation=True)
    yield first, second
    factory.stop_all()


def federation_get(server, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{server.federation_url}{path}", verify=False, timeout=10, **kwargs)


def test_version_over_tls(pair):
    first, _ = pair
    body = expect_ok(federation_get(first, "/_matrix/federation/v1/version"))
    assert body["server"]["name"] == "Eltrix"


def test_keys_over_tls_name_the_server(pair):
    first, _ = pair
    body = expect_ok(federation_get(first, "/_matrix/key/v2/server"))
    assert body["server_name"] == first.server_name
    assert body["signatures"][first.server_name]


def test_remote_alias_resolves_over_federation(pair):
    first, second = pair
    owner = second.register(unique("owner"))
    name = unique("lobby")
    room_id = owner.create_room(room_alias_name=name)
    alias = f"#{name}:{second.server_name}"

    body = expect_ok(first.get(f"directory/room/{q(alias)}"))
    assert body["room_id"] == room_id
    assert body["servers"] == [second.server_name]


def test_unknown_remote_alias_is_not_found(pair):
    first, second = pair
    alias = f"#{unique('missing')}:{second.server_name}"
    assert_error(first.get(f"directory/room/{q(alias)}"), 404, "M_NOT_FOUND")


def test_unreachable_server_is_bad_gateway(pair):
    first, _ = pair
    alias = f"#{unique('nowhere')}:localhost:1"
    assert_error(first.get(f"directory/room/{q(alias)}"), 502, "M_UNKNOWN")


def test_unsigned_query_is_unauthorized(pair):
    _, second = pair
    alias = f"#x:{second.server_name}"
    resp = federation_get(second, "/_matrix/federation/v1/query/directory", params={"room_alias": alias})
    assert_error(resp, 401, "M_UNAUTHORIZED")


def test_forged_signature_is_unauthorized(pair):
    first, second = pair
    alias = f"#x:{second.server_name}"
    key_id = next(iter(expect_ok(federation_get(first, "/_matrix/key/v2/server"))["verify_keys"]))
    forged = (
        f'X-Matrix origin="{first.server_name}",destination="{second.server_name}",'
        f'key="{key_id}",sig="{"A" * 86}"'
    )
    resp = federation_get(
        second,
        "/_matrix/federation/v1/query/directory",
        params={"room_alias": alias},
        headers={"Authorization": forged},
    )
    assert_error(resp, 401, "M_UNAUTHORIZED")


def test_request_for_another_destination_is_unauthorized(pair):
    first, second = pair
    header = (
        f'X-Matrix origin="{first.server_name}",destination="elsewhere.example",'
        'key="ed25519:x",sig="AAAA"'
    )
    resp = federation_get(
        second,
        "/_matrix/federation/v1/query/directory",
        params={"room_alias": f"#x:{second.server_name}"},
        headers={"Authorization": header},
    )
    assert_error(resp, 401, "M_UNAUTHORIZED")
