"""A real client library, matrix-nio, holding a conversation through the server."""

from __future__ import annotations

import asyncio

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    MessageDirection,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from harness import SHARD_HEADER, expect_ok, localpart_on_shard

MESSAGE_COUNT = 50
CALL_TIMEOUT = 30  # seconds for one client call
SEEN_DEADLINE = 15  # seconds for a message to reach the other side


async def call(awaitable, expected_type):
    """Await one nio call with a timeout and assert that it returned `expected_type`."""
    response = await asyncio.wait_for(awaitable, CALL_TIMEOUT)
    assert isinstance(response, expected_type), (
        f"expected {expected_type.__name__}, got {response!r}"
    )
    return response


async def sync_until_listed(client: AsyncClient, room_id: str, section: str) -> None:
    """Sync until the room shows up under `section` ("invite" or "join") of the response."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SEEN_DEADLINE
    while loop.time() < deadline:
        response = await call(client.sync(timeout=2000), SyncResponse)
        if room_id in getattr(response.rooms, section):
            return
    raise AssertionError(
        f"{room_id} was not in {client.user_id}'s {section} rooms within {SEEN_DEADLINE} s"
    )


async def sync_until_seen(
    client: AsyncClient, room_id: str, body: str, seen: list[tuple[str, str]]
) -> None:
    """Run incremental syncs until `body` arrives, appending every text message to `seen`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SEEN_DEADLINE
    while loop.time() < deadline:
        response = await call(client.sync(timeout=2000), SyncResponse)
        room = response.rooms.join.get(room_id)
        if room is None:
            continue
        assert not room.timeline.limited, (
            f"{client.user_id}'s sync skipped events (limited)"
        )
        for event in room.timeline.events:
            if isinstance(event, RoomMessageText):
                seen.append((event.sender, event.body))
        if any(seen_body == body for _, seen_body in seen):
            return
    raise AssertionError(
        f"{client.user_id} did not receive {body!r} within {SEEN_DEADLINE} s"
    )


async def paginate_back(client: AsyncClient, room_id: str, start: str) -> list[str]:
    """Page back with room_messages from `start` until the server sends no `end` token."""
    bodies: list[str] = []
    token = start
    for _page in range(100):
        response = await call(
            client.room_messages(
                room_id, start=token, direction=MessageDirection.back, limit=7
            ),
            RoomMessagesResponse,
        )
        bodies.extend(
            event.body for event in response.chunk if isinstance(event, RoomMessageText)
        )
        if not response.end:
            return bodies
        token = response.end
    raise AssertionError("room_messages still returned an end token after 100 pages")


async def converse(hs) -> None:
    config = AsyncClientConfig(max_timeouts=2, request_timeout=CALL_TIMEOUT)
    alice = AsyncClient(hs.url, config=config)
    bob = AsyncClient(hs.url, config=config)
    try:
        for client, base, shard in ((alice, "nio-alice", 0), (bob, "nio-bob", 1)):
            localpart = localpart_on_shard(base, shard, hs.shards)
            await call(client.register(localpart, f"pw-{localpart}"), RegisterResponse)
            whoami = hs.get("account/whoami", token=client.access_token)
            assert expect_ok(whoami)["user_id"] == client.user_id
            assert whoami.headers.get(SHARD_HEADER) == str(shard)

        created = await call(
            alice.room_create(name="nio room", invite=[bob.user_id]), RoomCreateResponse
        )
        room_id = created.room_id
        await sync_until_listed(bob, room_id, "invite")
        await call(bob.join(room_id), JoinResponse)
        # The sync that first lists a newly joined room may be limited, so the
        # conversation starts only after both sides have seen the room joined.
        await sync_until_listed(bob, room_id, "join")
        await sync_until_listed(alice, room_id, "join")

        seen: dict[str, list[tuple[str, str]]] = {alice.user_id: [], bob.user_id: []}
        sent: list[tuple[str, str]] = []
        for index in range(MESSAGE_COUNT):
            sender, receiver = (alice, bob) if index % 2 == 0 else (bob, alice)
            body = f"nio message {index}"
            content = {"msgtype": "m.text", "body": body}
            await call(
                sender.room_send(room_id, "m.room.message", content), RoomSendResponse
            )
            sent.append((sender.user_id, body))
            await sync_until_seen(receiver, room_id, body, seen[receiver.user_id])

        # The last sender has not synced since sending, so their own copy is still to come.
        last_sender = alice if sent[-1][0] == alice.user_id else bob
        await sync_until_seen(
            last_sender, room_id, sent[-1][1], seen[last_sender.user_id]
        )

        for client, other in ((alice, bob), (bob, alice)):
            from_other = [
                entry for entry in seen[client.user_id] if entry[0] == other.user_id
            ]
            assert from_other == [entry for entry in sent if entry[0] == other.user_id]
            assert seen[client.user_id] == sent, (
                f"{client.user_id} saw the conversation out of order"
            )

        history = await paginate_back(alice, room_id, alice.next_batch)
        assert history == [body for _, body in reversed(sent)]
    finally:
        await alice.close()
        await bob.close()


def test_nio_conversation_across_shards(hs):
    asyncio.run(converse(hs))
