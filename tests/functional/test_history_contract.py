"""One contract, two implementations: MemoryHistory (unit tests, the in-memory stack) and
DynamoHistory (moto over HTTP) must keep offsets, epochs and the window the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from chalicelib.history_store import DynamoHistory
from chalicelib.interfaces import History
from chalicelib.model import Position
from local.memory import MemoryHistory

NOW = 1_800_000_000.0
SIZE, TTL, STATE_TTL = 5, 300, 3600


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


Store = tuple[History, Clock]


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Store:
    clock = Clock()
    if request.param == "memory":
        return MemoryHistory(SIZE, TTL, clock, state_ttl_seconds=STATE_TTL), clock
    endpoint: str = request.getfixturevalue("dynamodb_endpoint")
    prefix: str = request.getfixturevalue("table_prefix")
    client: Any = boto3.client("dynamodb", endpoint_url=endpoint)
    return DynamoHistory(client, prefix, size=SIZE, ttl_seconds=TTL,
                         state_ttl_seconds=STATE_TTL, clock=clock), clock


def body(n: int) -> Callable[[Position], bytes]:
    return lambda p: f'{{"n":{n},"offset":{p.offset},"epoch":"{p.epoch}"}}'.encode()


def publish(history: History, count: int, tenant: str = "t", channel: str = "c",
            start: int = 0) -> list[Position]:
    return [history.append(tenant, channel, body(n))[0] for n in range(start, start + count)]


def test_a_new_channel_starts_at_zero_with_a_stable_epoch(store: Store) -> None:
    """position() of an unknown channel is offset 0 and an epoch that stays."""
    history, _ = store
    first = history.position("t", "c")
    assert first.offset == 0 and first.epoch
    assert history.position("t", "c") == first


def test_appends_take_consecutive_offsets_in_the_epoch(store: Store) -> None:
    """Each append takes the next offset in the channel's epoch; encode sees it."""
    history, _ = store
    start = history.position("t", "c")
    position, payload = history.append("t", "c", body(0))
    assert position == Position(1, start.epoch)
    assert payload == f'{{"n":0,"offset":1,"epoch":"{start.epoch}"}}'.encode()
    assert [p.offset for p in publish(history, 3, start=1)] == [2, 3, 4]
    assert history.position("t", "c") == Position(4, start.epoch)


def test_read_returns_the_range_in_order(store: Store) -> None:
    """read(after, upto) returns after < offset <= upto, oldest first."""
    history, _ = store
    epoch = publish(history, 4)[0].epoch
    assert [o for o, _ in history.read("t", "c", epoch, 1, 3)] == [2, 3]
    assert history.read("t", "c", epoch, 3, 3) == []
    assert history.read("t", "c", "other-epoch", 0, 4) == []


def test_only_the_last_size_messages_are_kept(store: Store) -> None:
    """Past HISTORY_SIZE, the oldest rows fall out of the window."""
    history, _ = store
    epoch = publish(history, SIZE + 3)[0].epoch
    kept = history.read("t", "c", epoch, 0, SIZE + 3)
    assert [o for o, _ in kept] == list(range(4, SIZE + 4))


def test_rows_expire_but_the_position_stays(store: Store) -> None:
    """After HISTORY_TTL_SECONDS the rows are gone; the offset and epoch are not."""
    history, clock = store
    epoch = publish(history, 2)[0].epoch
    clock.now += TTL + 1
    assert history.read("t", "c", epoch, 0, 2) == []
    assert history.position("t", "c") == Position(2, epoch)
    assert history.append("t", "c", body(9))[0] == Position(3, epoch)


def test_forgotten_channel_state_starts_a_new_epoch(store: Store) -> None:
    """After CHANNEL_STATE_TTL_SECONDS without a publish the channel restarts: a new
    epoch, so a client holding the old one is told its window is lost."""
    history, clock = store
    old = publish(history, 2)[-1]
    clock.now += STATE_TTL + 1
    fresh = history.position("t", "c")
    assert fresh.offset == 0 and fresh.epoch != old.epoch
    assert history.append("t", "c", body(0))[0] == Position(1, fresh.epoch)
    clock.now += STATE_TTL + 1
    assert history.append("t", "c", body(1))[0].epoch not in (old.epoch, fresh.epoch)


def test_tenants_and_channels_are_separate(store: Store) -> None:
    """The same channel name in two tenants has its own offsets and rows."""
    history, _ = store
    a = publish(history, 3, tenant="acme")
    b = publish(history, 1, tenant="globex")
    assert a[-1].offset == 3 and b[-1].offset == 1 and a[0].epoch != b[0].epoch
    assert history.read("globex", "c", a[0].epoch, 0, 3) == []
    assert publish(history, 1, channel="d")[0].offset == 1


def test_concurrent_appends_never_share_an_offset(store: Store) -> None:
    """Publishers in parallel get distinct, consecutive offsets (the conditional write
    on DynamoDB; the lock in memory)."""
    history, _ = store
    taken: list[int] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for n in range(4):
            offset = history.append("t", "busy", body(w * 10 + n))[0].offset
            with lock:
                taken.append(offset)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(taken) == list(range(1, 17))
