"""Smoke tests of the Synapse federation peer that synapse_peer.py runs.

One Synapse serves the module. The stop and port-conflict tests start their own.
"""

from __future__ import annotations

import socket
import time

import pytest
from signedjson.key import encode_verify_key_base64, get_verify_key
from signedjson.sign import verify_signed_json

from harness import assert_error, expect_ok, unique
from synapse_peer import (
    PORT_IN_USE,
    RUNNING_PEERS,
    SYNAPSE_VERSION,
    SynapsePeer,
    SynapseStartError,
    start_synapse,
    synapse_peer,
)


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory):
    with synapse_peer(tmp_path_factory, peer_server_names=["localhost"]) as peer:
        yield peer


def test_server_keys_name_the_peer(synapse: SynapsePeer):
    body = expect_ok(synapse.request("GET", "/_matrix/key/v2/server"))

    assert body["server_name"] == f"localhost:{synapse.port}"
    ed25519_key_ids = [
        key_id for key_id in body["verify_keys"] if key_id.startswith("ed25519:")
    ]
    assert ed25519_key_ids, f"no ed25519 key in {body['verify_keys']}"
    assert synapse.verify_key_id in body["verify_keys"], (
        f"signing key {synapse.verify_key_id} is not published: {body}"
    )
    published = body["verify_keys"][synapse.verify_key_id]["key"]
    assert published == encode_verify_key_base64(synapse.signing_key.verify_key)
    assert body["valid_until_ts"] > time.time() * 1000

    # Raises SignatureVerifyException unless the peer signed the body with that key.
    verify_signed_json(body, synapse.server_name, get_verify_key(synapse.signing_key))


def test_federation_version_is_synapse(synapse: SynapsePeer):
    body = expect_ok(synapse.request("GET", "/_matrix/federation/v1/version"))

    assert body["server"]["name"] == "Synapse"
    assert body["server"]["version"] == SYNAPSE_VERSION


def test_registered_token_passes_whoami(synapse: SynapsePeer):
    localpart = unique("peer")
    user_id, token = synapse.register(localpart, "correct horse battery staple")

    assert user_id == f"@{localpart}:localhost:{synapse.port}"
    assert isinstance(token, str) and token
    whoami = expect_ok(synapse.client_request("GET", "account/whoami", token))
    assert whoami["user_id"] == user_id


def test_whoami_rejects_unknown_token(synapse: SynapsePeer):
    response = synapse.client_request("GET", "account/whoami", "syt_not_a_real_token")

    assert_error(response, 401, "M_UNKNOWN_TOKEN")


def test_stop_ends_process_and_repeats_safely(tmp_path_factory: pytest.TempPathFactory):
    with synapse_peer(tmp_path_factory) as peer:
        status = peer.stop()

        assert peer.process.poll() is not None, "Synapse still runs after stop()"
        assert status == 0, f"Synapse exited with {status} after SIGTERM"
        assert peer.stop() == status
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((peer.host, peer.port), timeout=2).close()


def test_start_on_taken_port_reports_log(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("synapse-taken-port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(SynapseStartError) as raised:
            start_synapse(workdir, port, [])

    assert "exited with status" in str(raised.value)
    assert PORT_IN_USE in raised.value.log_tail
    assert str(workdir / "homeserver.log") in str(raised.value)
    assert all(peer.port != port for peer in RUNNING_PEERS), (
        "start_synapse left the failed Synapse registered as running"
    )
