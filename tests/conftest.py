"""Fixtures that run the real Eltrix binary for the black-box tests."""

from __future__ import annotations

import pytest

from harness import ALL_SERVERS, Homeserver, ServerFactory, default_binary

LOG_OFFSETS = pytest.StashKey[dict]()


@pytest.fixture(scope="module")
def hs(tmp_path_factory: pytest.TempPathFactory):
    """A two-shard server with open registration, shared by the tests of one module.

    Tests keep out of each other's way by registering fresh users.
    """
    root = tmp_path_factory.mktemp("hs")
    server = Homeserver(
        binary=default_binary(), data_dir=root / "data", log_path=root / "eltrix.log"
    ).start()
    yield server
    server.stop()


@pytest.fixture
def alice(hs):
    """A fresh user owned by shard 0."""
    return hs.register_on_shard("alice", 0)


@pytest.fixture
def bob(hs):
    """A fresh user owned by shard 1, so alice and bob live on different shards."""
    return hs.register_on_shard("bob", 1)


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory):
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.stop_all()


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[LOG_OFFSETS] = {id(server): server.log_size() for server in ALL_SERVERS}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach what each server wrote to stderr during a failing test to its report."""
    report = yield
    if report.failed:
        offsets = item.stash.get(LOG_OFFSETS, {})
        for server in ALL_SERVERS:
            text = server.log_tail(start=offsets.get(id(server), 0))
            if text.strip():
                report.sections.append((f"eltrix stderr (port {server.port})", text))
    return report
