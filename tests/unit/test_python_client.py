"""streamer_client's pure parts, without a socket: backoff, and the per-channel ordering
and de-duplication by offset that makes delivery exactly-once across resumes."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer_client import Client, Request, Subscription
from streamer_client.client import backoff_delay

Frame = dict[str, Any]


@given(st.integers(min_value=0, max_value=200))
def test_backoff_is_full_jitter_within_its_cap(attempt: int) -> None:
    """Each delay is in [0, min(20 s, 0.5 s * 2**attempt)]."""
    random.seed(attempt)
    delay = backoff_delay(attempt, 0.5, 20.0)
    assert 0.0 <= delay <= min(20.0, 0.5 * 2 ** min(attempt, 32))


def message(offset: int, epoch: str = "e1") -> Frame:
    return {"type": "message", "channel": "room", "offset": offset, "epoch": epoch,
            "data": offset}


def with_subscription(scenario: Callable[[Client, Subscription, list[Frame]],
                                         Awaitable[None]]) -> None:
    async def run() -> None:
        client = Client("ws://127.0.0.1:9/", None)
        client._deliveries = asyncio.Queue()
        dispatcher = asyncio.create_task(client._dispatch())
        got: list[Frame] = []
        sub = Subscription(client, "room", got.append)
        sub.offset, sub.epoch = 5, "e1"
        client._subs["room"] = sub
        try:
            await scenario(client, sub, got)
        finally:
            sub._cancel_gap()
            dispatcher.cancel()
    asyncio.run(run())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_out_of_order_and_duplicate_frames_are_delivered_once_in_order() -> None:
    """6, 7, 8 arriving as 7, 6, 6, 8, 5 are delivered as 6, 7, 8."""
    async def scenario(client: Client, sub: Subscription, got: list[Frame]) -> None:
        for offset in (7, 6, 6, 8, 5):
            client._on_frame(json.dumps(message(offset)))
        await settle()
        assert [f["offset"] for f in got] == [6, 7, 8]
        assert sub.offset == 8
    with_subscription(scenario)


def test_a_gap_holds_later_messages_back() -> None:
    """With 6 missing, 7 and 8 wait; when 6 comes (a resume's replay), all three go."""
    async def scenario(client: Client, sub: Subscription, got: list[Frame]) -> None:
        client._on_message(message(7))
        client._on_message(message(8))
        await settle()
        assert got == []
        client._on_message(message(6))
        await settle()
        assert [f["offset"] for f in got] == [6, 7, 8]
    with_subscription(scenario)


def test_a_lost_window_moves_to_the_acks_position() -> None:
    """recovered: false (or a new epoch) skips to the ack's offset: only newer messages
    are delivered, and the app is told it was not recovered."""
    async def scenario(client: Client, sub: Subscription, got: list[Frame]) -> None:
        told: list[tuple[str, bool]] = []
        client.on_recovery(lambda channel, recovered, *_: told.append((channel, recovered)))
        client._on_subscribe_ack(sub, {"type": "ack", "offset": 40, "epoch": "e2",
                                       "recovered": False}, True)
        client._on_message(message(40, "e2"))
        client._on_message(message(41, "e2"))
        await settle()
        assert [f["offset"] for f in got] == [41]
        assert told == [("room", False)]
        assert (sub.offset, sub.epoch, sub.recovered) == (41, "e2", False)
    with_subscription(scenario)


def test_a_recovered_resume_keeps_the_replayed_position() -> None:
    """recovered: true after a replay keeps the offset the replay reached."""
    async def scenario(client: Client, sub: Subscription, got: list[Frame]) -> None:
        for offset in (6, 7):
            client._on_message(message(offset))
        client._on_subscribe_ack(sub, {"type": "ack", "offset": 7, "epoch": "e1",
                                       "recovered": True}, True)
        client._on_message(message(8))
        await settle()
        assert [f["offset"] for f in got] == [6, 7, 8]
        assert sub.recovered is True
    with_subscription(scenario)


@pytest.mark.parametrize("seqs", [[1, 2, 2, 3], [2, 1, 3]])
def test_request_frames_are_taken_once_by_seq(seqs: list[int]) -> None:
    """A progress frame with a seq already seen (e.g. caught up by status) is dropped."""
    async def run() -> None:
        client = Client("ws://127.0.0.1:9/", None)
        client._deliveries = asyncio.Queue()
        dispatcher = asyncio.create_task(client._dispatch())
        seen: list[int] = []
        req = Request(client, "r1", lambda f: seen.append(f["seq"]))
        client._requests["r1"] = req
        for seq in seqs:
            client._on_request_frame(req, {"type": "progress", "request_id": "r1",
                                           "seq": seq})
        await settle()
        dispatcher.cancel()
        assert seen == sorted(set(seen)) and seen[-1] == 3
    asyncio.run(run())
