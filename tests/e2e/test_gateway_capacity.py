"""Capacity: a thousand live connections on one gateway, all reached by one broadcast."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import ClientConnection, connect

from streamer_local.testing import GatewayThread
from tests.e2e.conftest import Recorder

CLIENTS = 1000


async def _open_many(url: str, count: int) -> list[ClientConnection]:
    opened: list[ClientConnection] = []
    for start in range(0, count, 100):  # in waves, as a real crowd arrives
        batch = await asyncio.gather(*(connect(url, open_timeout=20)
                                       for _ in range(start, min(count, start + 100))))
        opened.extend(batch)
    return opened


async def _broadcast_reaches_all(url: str) -> tuple[int, float]:
    clients = await _open_many(url, CLIENTS)
    try:
        started = time.monotonic()
        await clients[0].send("broadcast:hello all")
        frames = await asyncio.wait_for(
            asyncio.gather(*(client.recv() for client in clients)), timeout=60)
        return sum(frame == "hello all" for frame in frames), time.monotonic() - started
    finally:
        await asyncio.gather(*(client.close() for client in clients))


def test_thousand_clients_all_receive_one_broadcast(gateway: GatewayThread,
                                                    recorder: Recorder) -> None:
    """1,000 connections stay open and each gets a broadcast posted via @connections."""
    delivered, _elapsed = asyncio.run(_broadcast_reaches_all(gateway.url))
    assert delivered == CLIENTS
    assert len(recorder.events["$connect"]) == CLIENTS
    recorder.wait_for("$disconnect", lambda e: len(recorder.events["$disconnect"]) == CLIENTS,
                      timeout=30)
    assert gateway.gateway.connection_ids() == []
