"""GET /metrics: Prometheus text with HTTP series summed over shards and per-shard series."""

from __future__ import annotations

import re
import threading
import time


def metric_value(text: str, name: str, labels: str) -> float:
    """Return the sample of `name{labels}`, failing if it is absent."""
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", re.MULTILINE)
    match = pattern.search(text)
    assert match, f"{name}{{{labels}}} missing from /metrics"
    return float(match.group(1))


def test_metrics_content_type(hs):
    response = hs.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE eltrix_http_requests_total counter" in response.text
    assert "# TYPE eltrix_http_request_duration_seconds histogram" in response.text


def test_sends_counted_by_route_template(hs):
    alice = hs.register_on_shard("metrics-alice", 0)
    room_id = alice.create_room()
    before = hs.get("/metrics").text
    path = "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
    labels = f'method="PUT",path="{path}",status="200"'
    sent_before = metric_value(before, "eltrix_http_requests_total", labels) if labels in before else 0
    for _ in range(3):
        alice.send_message(room_id, "counted")
    after = hs.get("/metrics").text
    assert metric_value(after, "eltrix_http_requests_total", labels) == sent_before + 3
    assert room_id not in after, "raw room IDs leak into metric labels"


def test_events_persisted_per_shard(hs):
    alice = hs.register_on_shard("metrics-events", 1)
    room_id = alice.create_room()
    text = hs.get("/metrics").text
    persisted = [metric_value(text, "eltrix_shard_events_persisted_total", f'shard="{shard}"') for shard in (0, 1)]
    assert sum(persisted) >= 6, "createRoom writes at least six events"
    assert room_id.startswith("!")
    for shard in (0, 1):
        metric_value(text, "eltrix_shard_sync_waiters", f'shard="{shard}"')
        metric_value(text, "eltrix_shard_queue_depth", f'shard="{shard}"')
        metric_value(text, "eltrix_shard_commit_duration_seconds_count", f'shard="{shard}"')
    assert room_id


def test_sync_waiter_gauge_counts_long_polls(hs):
    bob = hs.register_on_shard("metrics-waiter", 1)
    since = bob.sync()["next_batch"]
    poll = threading.Thread(target=lambda: bob.sync(since=since, timeout=3000))
    poll.start()
    try:
        deadline = time.monotonic() + 2
        waiting = 0.0
        while time.monotonic() < deadline and waiting < 1:
            text = hs.get("/metrics").text
            waiting = metric_value(text, "eltrix_shard_sync_waiters", 'shard="1"')
            time.sleep(0.05)
        assert waiting >= 1, "a long-polling /sync is not counted on its user's shard"
    finally:
        poll.join()
