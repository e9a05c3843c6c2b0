"""Server discovery: /versions, /.well-known/matrix/client and /capabilities."""

import re

from harness import SHARD_HEADER, assert_error, expect_ok, json_body

VERSION_FORMAT = re.compile(r"^(v\d+\.\d+|r\d+\.\d+\.\d+)$")


def test_health_reports_healthy(hs):
    resp = hs.get("/health")
    assert expect_ok(resp) == {"status": "healthy"}
    assert resp.headers.get(SHARD_HEADER) in {"0", "1"}


def test_versions_without_auth(hs):
    body = expect_ok(hs.get("/_matrix/client/versions"))
    versions = body["versions"]
    assert isinstance(versions, list)
    assert versions, "the server advertises no spec version"
    for version in versions:
        assert VERSION_FORMAT.match(version), f"malformed version {version!r}"
    assert any(version.startswith("v1.") for version in versions)
    if "unstable_features" in body:
        assert all(
            isinstance(flag, bool) for flag in body["unstable_features"].values()
        )


def test_versions_with_auth(hs):
    alice = hs.register()
    anonymous = expect_ok(hs.get("/_matrix/client/versions"))
    authed = expect_ok(alice.get("/_matrix/client/versions"))
    assert authed["versions"] == anonymous["versions"]


def test_well_known_client(hs):
    """The discovery file is optional: either 200 with a base_url, or a 404."""
    resp = hs.get("/.well-known/matrix/client")
    assert resp.status_code in {200, 404}, resp.text
    if resp.status_code == 200:
        body = json_body(resp)
        base_url = body["m.homeserver"]["base_url"]
        assert base_url.startswith(("http://", "https://")), base_url
    else:
        assert_error(resp, 404)


def test_capabilities_room_versions(hs):
    alice = hs.register()
    capabilities = expect_ok(alice.get("capabilities"))["capabilities"]
    room_versions = capabilities["m.room_versions"]
    assert room_versions["default"] == "12"
    assert room_versions["available"].get("12") == "stable"
    for version, stability in room_versions["available"].items():
        assert stability in {"stable", "unstable"}, (
            f"room version {version}: {stability!r}"
        )


def test_capabilities_needs_token(hs):
    assert_error(hs.get("capabilities"), 401, "M_MISSING_TOKEN")
