"""Capacity: 1,000 clients of the real app in 4 tenants, one channel name, one publish each.

The real app.py, gateway, sockets and @connections sender, with in-memory storage:
moto's TransactWriteItems deep-copies whole tables, so 1,000 transactional subscribes
cost O(n^2) (over a minute here) and concurrent ones fail with HTTP 500; see
:func:`tests.e2e.streamer_fixtures.in_memory_streamer`. Clients are opened and
subscribed concurrently with websockets' asyncio client in one thread, in waves.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.streamer_fixtures import StartStreamer, StreamerStack, wait_until

pytest_plugins = ["tests.e2e.streamer_fixtures"]

CLIENTS = 1000
MOTO_CLIENTS = 200  # the same scenario on moto, at a size it serves in seconds
TENANTS = 4
WAVE = 100
STRAGGLERS = 1.0  # seconds to wait after the last expected frame, to catch duplicates
DEADLINE = 45.0  # the whole scenario, from the first connect to the last frame


class Crowd:
    """Many asyncio clients, each with a reader task that keeps every frame it gets."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.clients: list[ClientConnection] = []
        self.tenants: list[str] = []
        self.frames: list[list[dict[str, Any]]] = []
        self.readers: list[asyncio.Task[None]] = []

    async def _read(self, index: int) -> None:
        client = self.clients[index]
        try:
            async for raw in client:
                self.frames[index].append(json.loads(raw))
        except ConnectionClosed:
            return

    async def open(self, stack: StreamerStack) -> None:
        for start in range(0, self.size, WAVE):
            indexes = range(start, min(self.size, start + WAVE))
            tenants = [f"tenant{i % TENANTS}" for i in indexes]
            urls = [stack.ws_url(stack.token(f"user{i}", tenant, ("read", "write")))
                    for i, tenant in zip(indexes, tenants, strict=True)]
            opened = await asyncio.gather(*(connect(url, open_timeout=30) for url in urls))
            for client, tenant in zip(opened, tenants, strict=True):
                self.clients.append(client)
                self.tenants.append(tenant)
                self.frames.append([])
                self.readers.append(asyncio.create_task(self._read(len(self.clients) - 1)))

    async def until(self, predicate: Any, deadline: float, what: str) -> None:
        while not all(predicate(i) for i in range(len(self.clients))):
            if time.monotonic() > deadline:
                missing = sum(not predicate(i) for i in range(len(self.clients)))
                raise AssertionError(f"{missing} clients still waiting for {what}")
            await asyncio.sleep(0.05)

    def has(self, index: int, **fields: Any) -> bool:
        return any(all(f.get(k) == v for k, v in fields.items()) for f in self.frames[index])

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients),
                             return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)


async def _scenario(stack: StreamerStack,
                    size: int) -> tuple[Crowd, dict[str, str], dict[str, float]]:
    crowd = Crowd(size)
    timings: dict[str, float] = {}
    started = time.monotonic()
    deadline = started + DEADLINE
    try:
        await crowd.open(stack)
        timings["connect"] = time.monotonic() - started
        subscribe = json.dumps({"action": "subscribe", "id": "s", "channel": "prices"})
        await asyncio.gather(*(client.send(subscribe) for client in crowd.clients))
        await crowd.until(lambda i: crowd.has(i, type="ack", id="s"), deadline, "their ack")
        timings["subscribe"] = time.monotonic() - started - timings["connect"]
        # One publisher per tenant: the first client of each.
        sent: dict[str, str] = {}
        publishers = {crowd.tenants[i]: i for i in range(TENANTS)}
        for tenant, index in publishers.items():
            await crowd.clients[index].send(json.dumps(
                {"action": "publish", "id": "m", "channel": "prices", "data": tenant}))
        await crowd.until(lambda i: i not in publishers.values()
                          or crowd.has(i, type="ack", id="m"), deadline, "the publish ack")
        for tenant, index in publishers.items():
            ack = next(f for f in crowd.frames[index] if f.get("id") == "m")
            sent[tenant] = ack["message_id"]
        await crowd.until(lambda i: crowd.has(i, type="message"), deadline, "a message")
        timings["deliver"] = (time.monotonic() - started - timings["connect"]
                              - timings["subscribe"])
        await asyncio.sleep(STRAGGLERS)
        return crowd, sent, timings
    finally:
        closing = time.monotonic()
        await crowd.close()
        timings["close"] = time.monotonic() - closing


def _check(crowd: Crowd, sent: dict[str, str], size: int) -> None:
    assert len(sent) == TENANTS and len(set(sent.values())) == TENANTS
    assert Counter(crowd.tenants) == {f"tenant{t}": size // TENANTS for t in range(TENANTS)}
    for index, frames in enumerate(crowd.frames):
        messages = [f for f in frames if f.get("type") == "message"]
        tenant = crowd.tenants[index]
        assert len(messages) == 1, (index, tenant, messages)
        (message,) = messages
        assert message["message_id"] == sent[tenant], (index, tenant, message)
        assert message["data"] == tenant
        assert not any(f.get("type") == "error" for f in frames), (index, frames)


def test_thousand_clients_in_four_tenants_each_get_their_tenants_message_once(
        start_streamer: StartStreamer) -> None:
    """Capacity: 1,000 clients (4 tenants x 250) on one channel name; each of 4 publishes
    (one per tenant) reaches every client of its tenant exactly once and no other."""
    streamer = start_streamer(memory=True)
    crowd, sent, timings = asyncio.run(_scenario(streamer, CLIENTS))
    print(f"capacity timings (s): {timings}")  # shown with -s or on failure
    _check(crowd, sent, CLIENTS)
    # Every close ran the app's $disconnect: nothing is left behind.
    memory = streamer.memory
    assert memory is not None
    wait_until(lambda: not memory.connections, timeout=30,
               what="every connection record to be removed")
    assert not any(memory.subscriptions.values())


def test_crowd_on_dynamodb_each_get_their_tenants_message_once(
        streamer: StreamerStack) -> None:
    """Capacity on moto: 200 clients (4 x 50) subscribe concurrently through DynamoDB; each
    tenant's publish reaches its clients exactly once, and every row is gone after close."""
    crowd, sent, timings = asyncio.run(_scenario(streamer, MOTO_CLIENTS))
    print(f"capacity timings on moto (s): {timings}")
    _check(crowd, sent, MOTO_CLIENTS)
    wait_until(lambda: streamer.connection_rows() == [], timeout=30,
               what="every connection row to be removed")
    # Disconnect deletes the connection row first, then its subscriptions.
    wait_until(lambda: streamer.subscription_rows() == [], timeout=30,
               what="every subscription row to be removed")
