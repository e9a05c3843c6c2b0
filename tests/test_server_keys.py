"""The server's signing keys at /_matrix/key/v2/server, checked with signedjson."""

from __future__ import annotations

import subprocess
import time

import requests
import signedjson.key
import signedjson.sign

from harness import SERVER_NAME, default_binary

KEY_PATH = "/_matrix/key/v2/server"


def fetch_keys(server) -> dict:
    resp = requests.get(server.url + KEY_PATH, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def verify_self_signed(body: dict) -> None:
    """Check the response's signature with the key it publishes, as a remote server would."""
    (key_id, entry), = body["verify_keys"].items()
    algorithm, version = key_id.split(":", 1)
    verify_key = signedjson.key.decode_verify_key_base64(algorithm, version, entry["key"])
    signedjson.sign.verify_signed_json(body, body["server_name"], verify_key)


def rotate(data_dir) -> str:
    result = subprocess.run(
        [str(default_binary()), "--data-dir", str(data_dir), "--rotate-signing-key"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_keys_are_self_signed(hs):
    body = fetch_keys(hs)
    assert body["server_name"] == SERVER_NAME
    assert len(body["verify_keys"]) == 1
    key_id = next(iter(body["verify_keys"]))
    assert key_id.startswith("ed25519:")
    assert body["old_verify_keys"] == {}
    assert list(body["signatures"]) == [SERVER_NAME]
    assert list(body["signatures"][SERVER_NAME]) == [key_id]
    verify_self_signed(body)


def test_valid_until_is_in_the_future(hs):
    now_ms = time.time() * 1000
    valid_until = fetch_keys(hs)["valid_until_ts"]
    assert isinstance(valid_until, int)
    assert valid_until > now_ms + 60 * 60 * 1000


def test_tampered_response_fails_verification(hs):
    body = fetch_keys(hs)
    body["valid_until_ts"] += 1
    try:
        verify_self_signed(body)
    except signedjson.sign.SignatureVerifyException:
        return
    raise AssertionError("a changed response still verified")


def test_deprecated_key_id_path(hs):
    key_id = next(iter(fetch_keys(hs)["verify_keys"]))
    resp = requests.get(f"{hs.url}{KEY_PATH}/{key_id}", timeout=10)
    assert resp.status_code == 200
    assert key_id in resp.json()["verify_keys"]


def test_post_is_not_allowed(hs):
    resp = requests.post(hs.url + KEY_PATH, json={}, timeout=10)
    assert resp.status_code == 405
    assert resp.json()["errcode"] == "M_UNRECOGNIZED"


def test_key_kept_across_restart(start_server):
    first = start_server(shards=2)
    before = fetch_keys(first)["verify_keys"]
    first.stop()
    second = start_server(shards=3, data_dir=first.data_dir)
    assert fetch_keys(second)["verify_keys"] == before


def test_rotation_moves_key_to_old_keys(start_server):
    first = start_server(shards=2)
    (old_id, old_entry), = fetch_keys(first)["verify_keys"].items()
    first.stop()

    before_rotation_ms = time.time() * 1000
    output = rotate(first.data_dir)
    assert old_id in output

    second = start_server(shards=2, data_dir=first.data_dir)
    body = fetch_keys(second)
    (new_id, new_entry), = body["verify_keys"].items()
    assert new_id != old_id
    assert new_entry["key"] != old_entry["key"]
    assert body["old_verify_keys"][old_id]["key"] == old_entry["key"]
    expired = body["old_verify_keys"][old_id]["expired_ts"]
    assert before_rotation_ms - 1000 <= expired <= time.time() * 1000
    assert list(body["signatures"][SERVER_NAME]) == [new_id]
    verify_self_signed(body)

    second.stop()
    rotate(first.data_dir)
    third = start_server(shards=2, data_dir=first.data_dir)
    assert set(fetch_keys(third)["old_verify_keys"]) == {old_id, new_id}


def test_rotation_needs_an_existing_key(tmp_path):
    result = subprocess.run(
        [str(default_binary()), "--data-dir", str(tmp_path / "empty"), "--rotate-signing-key"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no signing key" in result.stderr


def test_rotation_refused_while_server_runs(hs):
    result = subprocess.run(
        [str(default_binary()), "--data-dir", str(hs.data_dir), "--rotate-signing-key"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "in use" in result.stderr
