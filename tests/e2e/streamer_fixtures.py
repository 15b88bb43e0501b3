"""Fixtures for end-to-end tests of the real ``app.py`` behind the local gateway.

A pytest plugin: test modules load it with ``pytest_plugins = ["tests.e2e.streamer_fixtures"]``.
``start_streamer(settings=..., faults=..., **env)`` starts a
:class:`~streamer_local.testing.GatewayThread` for ``app.py`` on a free port and installs a
Streamer built from the environment the local stack gives the app
(:func:`local.stack.app_environment`) on the test's own tables on moto's server, plus
any extra variables (``MAX_SUBSCRIPTIONS="2"``...); with ``memory=True`` the storage is
in memory instead (see :func:`in_memory_streamer`). Clients are websockets' sync client
wrapped in :class:`WsClient`, which keeps every frame it receives so tests correlate
replies by ``id`` / ``type`` and never by order (PROTOCOL.md section 2).

The test modules also import helpers from here, so it is imported before pytest could
rewrite its asserts; PYTEST_DONT_REWRITE says so (its asserts carry their own messages).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chalicelib import runtime
from chalicelib.settings import Settings
from chalicelib.streamer import Streamer
from chalicelib.tables import CONNECTIONS, SUBSCRIPTIONS
from local.memory import MemoryHistory
from local.stack import app_environment, load_app
from local.testkit import make_token
from streamer_local.settings import Faults, GatewaySettings
from streamer_local.testing import GatewayThread
from tests.support.fakes import FakeRequestStore, FakeStorage

SECRET = "streamer-e2e-test-secret-of-at-least-32-bytes"
Frame = dict[str, Any]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
               what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class WsClient:
    """A sync WebSocket client that buffers received frames for correlation."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self._taken: set[int] = set()

    def send(self, frame: Frame | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def _pump(self, timeout: float) -> bool:
        """Receive one frame into the buffer; False if none came within ``timeout``."""
        try:
            raw = self.ws.recv(timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        self.frames.append(json.loads(raw))
        return True

    def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 10.0) -> Frame:
        """The first not yet taken frame matching ``predicate`` (received before or now)."""
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            while index < len(self.frames):
                if index not in self._taken and predicate(self.frames[index]):
                    self._taken.add(index)
                    return self.frames[index]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; got {self.frames}")
            self._pump(remaining)

    def call(self, frame: Frame, timeout: float = 10.0) -> Frame:
        """Send a frame with an ``id`` and return the reply carrying that ``id``."""
        frame_id = frame["id"]
        self.send(frame)
        return self.wait_for(lambda f: f.get("id") == frame_id, timeout)

    def subscribe(self, channel: str, frame_id: str | None = None) -> Frame:
        reply = self.call({"action": "subscribe", "id": frame_id or f"sub-{channel}",
                           "channel": channel})
        assert reply["type"] == "ack", reply
        return reply

    def drain(self, seconds: float) -> list[Frame]:
        """Collect everything that arrives within ``seconds``; the whole buffer."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._pump(remaining)
        return self.frames

    def messages(self, channel: str | None = None) -> list[Frame]:
        return [f for f in self.frames if f.get("type") == "message"
                and (channel is None or f.get("channel") == channel)]

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Wait for the server to close the connection; its close code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._pump(deadline - time.monotonic())
            except ConnectionClosed as closed:
                return None if closed.rcvd is None else closed.rcvd.code
        raise AssertionError(f"connection still open after {timeout}s")

    def close(self) -> None:
        self.ws.close()


class StreamerStack:
    """``app.py`` behind a gateway on the test's tables, and helpers to look at them."""

    def __init__(self, gateway: GatewayThread, table_prefix: str, db: Any) -> None:
        self.gateway = gateway
        self.table_prefix = table_prefix
        self.db = db
        self.clients: list[WsClient] = []
        self.memory: FakeStorage | None = None  # set for an in-memory app

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def faults(self) -> Faults:
        return self.gateway.faults

    @staticmethod
    def token(user: str = "u1", tenant: str = "t1",
              permissions: tuple[str, ...] = ("read", "write"), *,
              ttl_seconds: int = 3600, secret: str = SECRET, **claims: Any) -> str:
        return make_token(secret, user_id=user, tenant_id=tenant, permissions=permissions,
                          ttl_seconds=ttl_seconds, **claims)

    def ws_url(self, token: str | None) -> str:
        if token is None:
            return f"{self.url}/"
        return f"{self.url}/?{urllib.parse.urlencode({'Authorization': token})}"

    def open(self, token: str | None = None, *, query_token: bool = True,
             headers: dict[str, str] | None = None,
             subprotocols: list[str] | None = None) -> WsClient:
        """Connect (token in the query string unless ``query_token`` is False)."""
        ws = connect(self.ws_url(token if query_token else None),
                     additional_headers=headers, open_timeout=10, close_timeout=5,
                     subprotocols=[Subprotocol(p) for p in subprotocols or ()] or None,
                     legacy=True)
        client = WsClient(ws)
        self.clients.append(client)
        return client

    def client(self, user: str = "u1", tenant: str = "t1",
               permissions: tuple[str, ...] = ("read", "write")) -> WsClient:
        return self.open(self.token(user, tenant, permissions))

    # -- the tables ------------------------------------------------------------

    def _scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = self.db.scan(**kwargs)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def connection_rows(self) -> list[dict[str, Any]]:
        return self._scan(CONNECTIONS.physical_name(self.table_prefix))

    def subscription_rows(self) -> list[dict[str, Any]]:
        return self._scan(SUBSCRIPTIONS.physical_name(self.table_prefix))

    def connection_ids(self, user: str | None = None) -> list[str]:
        return [row["connection_id"]["S"] for row in self.connection_rows()
                if user is None or row["user_id"]["S"] == user]

    def connection_id(self, user: str) -> str:
        """The one connection id the app stored for ``user``."""
        ids = self.connection_ids(user)
        assert len(ids) == 1, f"expected one connection for {user}, found {ids}"
        return ids[0]

    def subscribed_ids(self) -> set[str]:
        return {row["connection_id"]["S"] for row in self.subscription_rows()}

    def close_all(self) -> None:
        for client in self.clients:
            client.close()  # idempotent; never raises for an already closed connection
        self.clients.clear()


StartStreamer = Callable[..., StreamerStack]


def in_memory_streamer(env: dict[str, str], storage: FakeStorage) -> Streamer:
    """The app's Streamer with the real @connections sender but in-memory storage.

    For load beyond what moto can serve: its TransactWriteItems deep-copies every table
    in the transaction (O(rows) per subscribe, so O(n^2) for n subscribers) and races
    with concurrent writes (HTTP 500 "dictionary changed size during iteration").
    FakeStorage keeps DynamoStorage's contract (tests/functional/test_storage_contract.py).
    """
    return runtime.build(settings=Settings.from_env({**env, "SENDER": "boto3"}),
                         storage=storage, requests=FakeRequestStore(),
                         history=MemoryHistory())


@pytest.fixture
def start_streamer(dynamodb_endpoint: str, dynamodb_client: Any,
                   table_prefix: str) -> Iterator[StartStreamer]:
    """Start ``app.py`` behind a gateway with the given gateway settings, faults and env."""
    started: list[StreamerStack] = []

    def start(settings: GatewaySettings | None = None, faults: Faults | None = None,
              *, memory: bool = False, **env: str) -> StreamerStack:
        assert not started, "one app per test: the Streamer instance is process-wide"
        gateway = GatewayThread(load_app("app:app"), settings=settings, faults=faults)
        gateway.start()
        stack = StreamerStack(gateway, table_prefix, dynamodb_client)
        started.append(stack)
        values = app_environment(
            dynamodb_endpoint_url=dynamodb_endpoint, table_prefix=table_prefix,
            ws_endpoint_url=gateway.connections_url, secret=SECRET, stream_arns={},
        )
        app_env = {**values, "SEND_BACKOFF_SECONDS": "0.01", **env}
        if memory:
            stack.memory = FakeStorage(int(app_env.get("SUBSCRIPTION_SHARDS", "4")))
            runtime.configure(in_memory_streamer(app_env, stack.memory))
        else:
            runtime.configure(runtime.build(app_env))
        return stack

    try:
        yield start
    finally:
        for stack in started:
            stack.close_all()
            stack.gateway.stop()
        runtime.reset()


@pytest.fixture
def streamer(start_streamer: StartStreamer) -> StreamerStack:
    """``app.py`` behind a gateway with AWS's default limits and no faults."""
    return start_streamer()


@pytest.fixture
def boto_client() -> Iterator[Callable[..., Any]]:
    """Make boto3 clients that are closed at teardown."""
    made: list[Any] = []

    def make(service: str, **kwargs: Any) -> Any:
        client = boto3.client(service, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
