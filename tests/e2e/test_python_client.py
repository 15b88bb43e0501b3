"""The Python client (streamer_client) against app.py behind the local gateway, with
DynamoDB over HTTP (moto's server) and the stream poller: real sockets end to end.

The continuity test is the one PROTOCOL.md section 6 promises: a connection closed by
the gateway (a DELETE on ``@connections``, or the gateway's max age) while a publisher
keeps sending; the client reconnects, resubscribes with ``since`` and ends with every
message exactly once, in offset order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib import runtime
from chalicelib.tables import CONNECTIONS, create_tables
from local.cli import make_token
from local.stack import DEFAULT_JWT_SECRET, app_environment, load_app
from streamer_client import Client, StreamerError
from streamer_local.poller import StreamPoller
from streamer_local.settings import GatewaySettings
from streamer_local.testing import GatewayThread

Frame = dict[str, Any]


@dataclass
class Stack:
    gateway: GatewayThread
    db: Any
    table_prefix: str
    _lambda: Any = field(default=None, repr=False)

    def token(self, user: str = "u1", tenant: str = "t1",
              permissions: tuple[str, ...] = ("read", "write"), ttl: int = 3600) -> str:
        return make_token(DEFAULT_JWT_SECRET, user=user, tenant=tenant,
                          permissions=list(permissions), ttl=ttl)

    def client(self, user: str = "u1", tenant: str = "t1",
               permissions: tuple[str, ...] = ("read", "write"), **kwargs: Any) -> Client:
        token = self.token(user, tenant, permissions)
        kwargs.setdefault("backoff", (0.05, 0.2))
        return Client(self.gateway.url, lambda: token, **kwargs)

    def connection_ids(self, user: str) -> list[str]:
        rows = self.db.scan(TableName=CONNECTIONS.physical_name(self.table_prefix),
                            ConsistentRead=True)["Items"]
        return [r["connection_id"]["S"] for r in rows if r["user_id"]["S"] == user]

    def push(self, tenant: str, channel: str, data: Any) -> Frame:
        """A backend publish: app.py's ``publish`` Lambda, invoked over the gateway's
        Lambda API as another service would."""
        if self._lambda is None:
            self._lambda = boto3.client(
                "lambda", endpoint_url=self.gateway.http_url,
                config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        response = self._lambda.invoke(FunctionName="publish", Payload=json.dumps(
            {"tenant_id": tenant, "channel": channel, "data": data}))
        assert "FunctionError" not in response, response
        result: Frame = json.loads(response["Payload"].read())
        return result

    def force_disconnect(self, user: str) -> None:
        """What API Gateway's DeleteConnection does: the gateway closes the socket."""
        management = boto3.client("apigatewaymanagementapi",
                                  endpoint_url=self.gateway.connections_url)
        for connection_id in self.connection_ids(user):
            management.delete_connection(ConnectionId=connection_id)


def _stack(dynamodb_endpoint: str, table_prefix: str, monkeypatch: pytest.MonkeyPatch,
           settings: GatewaySettings | None = None,
           extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    db = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    arns = create_tables(db, table_prefix)
    app = load_app("app:app")
    gateway = GatewayThread(app, settings=settings).start()
    env = app_environment(dynamodb_endpoint_url=dynamodb_endpoint, table_prefix=table_prefix,
                          ws_endpoint_url=gateway.connections_url, secret=DEFAULT_JWT_SECRET,
                          stream_arns=arns)
    for key, value in {**env, **(extra_env or {})}.items():
        monkeypatch.setenv(key, value)
    runtime.configure(None)
    poller = StreamPoller(app, dynamodb_endpoint, table_prefix, poll_interval=0.05,
                          fallback_tables=("requests",))
    poller.connect()
    gateway.run(poller.start())
    try:
        yield Stack(gateway, db, table_prefix)
    finally:
        gateway.run(poller.stop())
        poller.close()
        gateway.stop()
        runtime.configure(None)


@pytest.fixture
def stack(dynamodb_endpoint: str, table_prefix: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield from _stack(dynamodb_endpoint, table_prefix, monkeypatch)


@pytest.fixture
def short_lived(dynamodb_endpoint: str, table_prefix: str,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The gateway closes every connection after 1.5 s (API Gateway's 2 h, scaled down)."""
    yield from _stack(dynamodb_endpoint, table_prefix, monkeypatch,
                      GatewaySettings(max_age=1.5))


@pytest.fixture
def graced(dynamodb_endpoint: str, table_prefix: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Requests outlive their connection by 30 s, for a reconnect to take them over."""
    yield from _stack(dynamodb_endpoint, table_prefix, monkeypatch,
                      extra_env={"REQUEST_RECONNECT_GRACE_SECONDS": "30"})


def run(coro: Callable[[], Awaitable[None]], timeout: float = 60.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro(), timeout)
    asyncio.run(bounded())


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def publish_numbers(publish: Callable[[Frame], Awaitable[Frame]], count: int,
                          pause: float) -> None:
    for n in range(count):
        await publish({"n": n})
        await asyncio.sleep(pause)


def assert_exactly_once_in_order(frames: list[Frame], count: int) -> None:
    assert [f["data"]["n"] for f in frames] == list(range(count))
    offsets = [f["offset"] for f in frames]
    assert offsets == list(range(offsets[0], offsets[0] + count))
    assert len({f["epoch"] for f in frames}) == 1


def test_subprotocol_publish_subscribe_round_trip(stack: Stack) -> None:
    """The client offers streamer.v1, gets it, and a publish reaches a subscriber with
    its offset and epoch; the publish ack carries the same position."""
    async def scenario() -> None:
        got: list[Frame] = []
        async with stack.client("sub") as sub, stack.client("pub") as pub:
            assert sub._ws is not None and sub._ws.subprotocol == "streamer.v1"
            subscription = await sub.subscribe("room", got.append)
            assert subscription.offset == 0 and subscription.epoch
            ack = await pub.publish("room", {"hello": 1})
            await eventually(lambda: len(got) == 1)
            assert got[0]["data"] == {"hello": 1}
            assert (got[0]["offset"], got[0]["epoch"]) == (ack["offset"], ack["epoch"]) == (
                1, subscription.epoch)
    run(scenario)


@pytest.mark.parametrize("how", ["delete", "max_age"])
def test_forced_disconnect_while_publishing_loses_nothing(
        request: pytest.FixtureRequest, how: str) -> None:
    """A publisher keeps sending while the subscriber's connection is closed by the
    gateway; after the automatic reconnect and resume, the subscriber has every message
    exactly once, in order, and was told each time that the window was recovered.

    ``delete``: a WebSocket publisher, and two DELETEs on the subscriber's connection.
    ``max_age``: the gateway closes every connection after 1.5 s, so the publisher is a
    backend (the ``publish`` Lambda), which no connection limit touches."""
    stack: Stack = request.getfixturevalue("stack" if how == "delete" else "short_lived")
    count = 60

    async def scenario() -> None:
        got: list[Frame] = []
        recoveries: list[tuple[str, bool]] = []
        sub = stack.client("sub")
        sub.on_recovery(lambda channel, recovered, *_: recoveries.append((channel, recovered)))
        pub = stack.client("pub", ping_interval=None)
        await sub.connect()
        try:
            await sub.subscribe("room", got.append)
            if how == "delete":
                await pub.connect()
                sending = asyncio.create_task(publish_numbers(
                    lambda data: pub.publish("room", data), count, 0.05))
                for forced in range(2):  # a resume after a resume is covered too
                    least = len(got) + 10
                    await eventually(lambda: len(got) >= least)  # noqa: B023 (awaited here)
                    await asyncio.to_thread(stack.force_disconnect, "sub")
                    await eventually(lambda: sub.connections >= forced + 2)  # noqa: B023
            else:
                sending = asyncio.create_task(publish_numbers(
                    lambda data: asyncio.to_thread(stack.push, "t1", "room", data),
                    count, 0.05))
            await sending
            await eventually(lambda: len(got) >= count)
            await asyncio.sleep(0.3)  # a duplicate would arrive here
            assert sub.connections >= 3 if how == "delete" else sub.connections >= 2
            assert len(recoveries) == sub.connections - 1
            assert all(r == ("room", True) for r in recoveries), recoveries
            assert_exactly_once_in_order(got, count)
        finally:
            await sub.close()
            await pub.close()
    run(scenario, timeout=90)


def test_history_reads_the_last_messages(stack: Stack) -> None:
    """``history`` answers the last K messages of a channel, oldest first."""
    async def scenario() -> None:
        async with stack.client() as client:
            for n in range(5):
                await client.publish("log", {"n": n})
            frame = await client.history("log", limit=3)
            assert [m["data"]["n"] for m in frame["messages"]] == [2, 3, 4]
    run(scenario)


def test_errors_are_typed(stack: Stack) -> None:
    """An error frame rejects the call with its code."""
    async def scenario() -> None:
        async with stack.client(permissions=("read",)) as reader:
            with pytest.raises(StreamerError) as info:
                await reader.publish("room", {"x": 1})
            assert info.value.code == "forbidden"
            with pytest.raises(StreamerError) as info:
                await reader.subscribe("bad channel!", lambda _: None)
            assert info.value.code == "bad_request"
    run(scenario)


def test_request_progress_result_and_cancel(stack: Stack) -> None:
    """Progress arrives in seq order and the result resolves; a cancelled request
    resolves with ``cancelled`` and never a result."""
    async def scenario() -> None:
        async with stack.client() as client:
            progress: list[Frame] = []
            req = await client.request("count", {"steps": 3, "interval_ms": 50},
                                       on_progress=progress.append)
            assert await req.result(timeout=20) == {"count": 3}
            await eventually(lambda: len(progress) == 3)
            assert [p["seq"] for p in progress] == [1, 2, 3]
            slow = await client.request("count", {"steps": 50, "interval_ms": 100})
            await asyncio.sleep(0.3)
            ack = await slow.cancel()
            assert ack["state"] == "cancelled"
            with pytest.raises(StreamerError) as info:
                await slow.result(timeout=10)
            assert info.value.code == "cancelled"
    run(scenario)


def test_refresh_extends_and_refuses_another_user(stack: Stack) -> None:
    """``refresh`` with a newer token for the same user is acked with its expiry; a token
    for another user is refused and the connection stays usable."""
    async def scenario() -> None:
        tokens = [stack.token("u1", ttl=120)]
        client = Client(stack.gateway.url, lambda: tokens[-1])
        async with client:
            tokens.append(stack.token("u1", ttl=7200))
            ack = await client.refresh()
            assert ack["type"] == "ack" and ack["expires_at"] > 0
            tokens.append(stack.token("intruder"))
            with pytest.raises(StreamerError) as info:
                await client.refresh()
            assert info.value.code == "forbidden"
            assert (await client.ping())["type"] == "pong"
    run(scenario)


def test_offline_queue_is_bounded() -> None:
    """Frames sent while disconnected wait in a bounded queue; past it, ``queue_full``."""
    async def scenario() -> None:
        client = Client("ws://127.0.0.1:9/", None, offline_queue=1, ack_timeout=0.2)
        waiting = asyncio.create_task(client.publish("room", 1))
        await asyncio.sleep(0)
        with pytest.raises(StreamerError) as info:
            await client.publish("room", 2)
        assert info.value.code == "queue_full"
        with pytest.raises(StreamerError) as info:
            await waiting
        assert info.value.code == "timeout"
    run(scenario)


def test_a_reconnect_mid_job_takes_the_request_over(graced: Stack) -> None:
    """With REQUEST_RECONNECT_GRACE_SECONDS, a job outlives a forced disconnect: the
    client's status after the reconnect takes it over, progress goes on (seq only
    grows) and the result arrives on the new connection."""
    async def scenario() -> None:
        progress: list[Frame] = []
        async with graced.client("worker") as client:
            req = await client.request("count", {"steps": 30, "interval_ms": 100},
                                       on_progress=progress.append)
            await eventually(lambda: len(progress) >= 5)
            await asyncio.to_thread(graced.force_disconnect, "worker")
            assert await req.result(timeout=30) == {"count": 30}
            assert client.connections >= 2
            seqs = [p["seq"] for p in progress]
            assert seqs == sorted(set(seqs)) and seqs[-1] == 30
            assert len(progress) > 5
    run(scenario)


def test_a_request_keeps_running_across_a_refresh(stack: Stack) -> None:
    """A token refresh mid-job changes nothing for the job: every progress frame and the
    result arrive on the same connection."""
    async def scenario() -> None:
        tokens = [stack.token("u1", ttl=600)]
        progress: list[Frame] = []
        async with Client(stack.gateway.url, lambda: tokens[-1]) as client:
            req = await client.request("count", {"steps": 10, "interval_ms": 100},
                                       on_progress=progress.append)
            await eventually(lambda: len(progress) >= 2)
            tokens.append(stack.token("u1", ttl=7200))
            assert (await client.refresh())["type"] == "ack"
            assert await req.result(timeout=20) == {"count": 10}
            assert [p["seq"] for p in progress] == list(range(1, 11))
            assert client.connections == 1
    run(scenario)
