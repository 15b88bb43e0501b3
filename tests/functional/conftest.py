"""Functional fixtures: the real app through ``chalice.test.Client``, DynamoDB served
by moto over HTTP, and replies captured by a recording @connections sink."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import runtime
from chalicelib.observability import logger
from chalicelib.storage import DynamoStorage
from chalicelib.streamer import Streamer
from chalicelib.tasks import TaskTable
from local import testkit
from local.sink import ConnectionsSink

Output = Callable[[], list[dict[str, Any]]]
SECRET = "functional-test-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def sink() -> Iterator[ConnectionsSink]:
    server = ConnectionsSink().start()
    yield server
    server.stop()


def base_env(dynamodb_endpoint: str, table_prefix: str, sink: ConnectionsSink) -> dict[str, str]:
    return {
        "JWT_SECRET": SECRET,
        "TABLE_PREFIX": table_prefix,
        "DYNAMODB_ENDPOINT_URL": dynamodb_endpoint,
        "WS_ENDPOINT_URL": sink.endpoint_url,
        "AWS_REGION": "us-east-1",
        "SEND_BACKOFF_SECONDS": "0.001",
        "SUBSCRIPTION_SHARDS": "4",
    }


@dataclass
class Clock:
    """The app's clock: real time plus ``offset`` seconds, which a test may move."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Harness:
    """The app under test, with helpers that speak in frames."""

    client: Client
    sink: ConnectionsSink
    streamer: Streamer
    storage: DynamoStorage
    dynamodb: Any
    prefix: str
    env: dict[str, str]
    clock: Clock
    counter: int = field(default=0)

    def token(self, user_id: str = "u1", tenant_id: str = "t1",
              permissions: tuple[str, ...] = ("read", "write"), **claims: Any) -> str:
        return testkit.make_token(SECRET, user_id=user_id, tenant_id=tenant_id,
                                  permissions=permissions, **claims)

    def connect(self, user_id: str = "u1", tenant_id: str = "t1",
                permissions: tuple[str, ...] = ("read", "write"), **kwargs: Any) -> str:
        """Connect a new client and return its connection id (asserting 200)."""
        connection_id = testkit.connection_id()
        token = self.token(user_id, tenant_id, permissions)
        status = self.invoke_connect(connection_id, token=token, **kwargs)
        assert status == 200
        return connection_id

    def invoke_connect(self, connection_id: str, **kwargs: Any) -> int:
        event = testkit.connect_event(connection_id, **kwargs)
        result = self.client.lambda_.invoke("connect", event)
        return int(result.payload["statusCode"])

    def send(self, connection_id: str, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
        """Send one frame and return the newest frame the connection received."""
        self.client.lambda_.invoke("message", testkit.message_event(connection_id, frame))
        return self.sink.last(connection_id)

    def disconnect(self, connection_id: str) -> None:
        self.client.lambda_.invoke("disconnect", testkit.disconnect_event(connection_id))

    def push(self, payload: dict[str, Any]) -> Any:
        return self.client.lambda_.invoke("publish", payload)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table: a Scan, fine in a test, never in the app."""
        return list(self.dynamodb.scan(TableName=f"{self.prefix}{table}")["Items"])


def make_harness(env: dict[str, str], sink: ConnectionsSink, dynamodb_client: Any,
                 table_prefix: str, *, tasks: TaskTable | None = None) -> Harness:
    clock = Clock()
    streamer = runtime.build({**os.environ, **env}, tasks=tasks, clock=clock)
    runtime.configure(streamer)
    storage = streamer.services.storage
    assert isinstance(storage, DynamoStorage)
    return Harness(Client(app), sink, streamer, storage, dynamodb_client, table_prefix, env,
                   clock)


@pytest.fixture
def env(dynamodb_endpoint: str, table_prefix: str, sink: ConnectionsSink) -> dict[str, str]:
    """The settings of the app under test; tests may change them before ``harness``."""
    return base_env(dynamodb_endpoint, table_prefix, sink)


@pytest.fixture
def tasks() -> TaskTable | None:
    """The app's kinds of work: the default ones unless a test module overrides this."""
    return None


@pytest.fixture
def harness(env: dict[str, str], sink: ConnectionsSink, dynamodb_client: Any,
            table_prefix: str, tasks: TaskTable | None) -> Iterator[Harness]:
    sink.reset()
    h = make_harness(env, sink, dynamodb_client, table_prefix, tasks=tasks)
    yield h
    runtime.reset()


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str]) -> Iterator[Output]:
    """Read the JSON lines (logs and EMF metrics) the app printed during the test.

    The Powertools handler keeps the stdout it saw at import; for the test's duration
    it writes to whatever ``sys.stdout`` is at each write (pytest swaps it per phase).
    """
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(_CurrentStdout())

    def read() -> list[dict[str, Any]]:
        lines = (raw.strip() for raw in capsys.readouterr().out.splitlines())
        return [json.loads(line) for line in lines if line.startswith("{")]

    yield read
    handler.setStream(previous)


@pytest.fixture
def harness_factory(env: dict[str, str], sink: ConnectionsSink, dynamodb_client: Any,
                    table_prefix: str,
                    tasks: TaskTable | None) -> Iterator[Callable[[], Harness]]:
    """Build the harness after the test has adjusted ``env``."""
    sink.reset()
    yield lambda: make_harness(env, sink, dynamodb_client, table_prefix, tasks=tasks)
    runtime.reset()
