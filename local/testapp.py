"""The app in a test: Chalice's test client over a real DynamoDB and @connections.

:class:`TestApp` runs ``app.py`` in-process through ``chalice.test.Client``, with its
tables on moto's DynamoDB server (over HTTP, one server per test process, started on
first use) and its replies recorded by a :class:`~local.sink.ConnectionsSink`; so a
test of a new action is a few lines and needs no fixture::

    from local.testapp import TestApp

    def test_greet_answers_with_the_user_id() -> None:
        with TestApp() as app:
            conn = app.connect(user_id="u1", tenant_id="acme", permissions=["read"])
            assert app.send(conn, {"action": "greet", "id": "g"})["hello"] == "u1"

Each ``TestApp`` has tables of its own (a fresh ``TABLE_PREFIX``), dropped on exit.
boto3 gets dummy credentials and a region (set in ``os.environ`` when unset), so no
AWS account or configuration is read.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import boto3
from chalice.test import Client

from chalicelib import runtime
from chalicelib.dispatch import ActionTable
from chalicelib.streamer import Streamer
from chalicelib.tables import TABLES, create_tables
from chalicelib.tasks import TaskTable
from local import testkit
from local.sink import ConnectionsSink
from streamer_local.dynamodb_server import DynamoDBServer

_DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
_server_lock = threading.Lock()
_server: DynamoDBServer | None = None


def dynamodb_endpoint() -> str:
    """The process's moto DynamoDB server, started on first use, stopped at exit."""
    global _server  # noqa: PLW0603  (one server per test process, by design)
    with _server_lock:
        if _server is None:
            server = DynamoDBServer()
            server.start()
            atexit.register(server.stop)
            _server = server
        return _server.endpoint_url


class TestApp:
    """``app.py`` (or ``app``) under test, with a DynamoDB and a recording @connections."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, app: Any = None, *, env: Mapping[str, str] | None = None,
                 actions: ActionTable | None = None, tasks: TaskTable | None = None) -> None:
        for name, value in _DUMMY_AWS.items():
            os.environ.setdefault(name, value)
        os.environ.pop("AWS_PROFILE", None)
        if app is None:
            from app import app as project_app  # the project's own app.py
            app = project_app
        self.app = app
        self.secret = secrets.token_hex(32)
        self.prefix = f"t{secrets.token_hex(5)}_"
        self.sink = ConnectionsSink()
        self.dynamodb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint())
        self.env = {**os.environ, "JWT_SECRET": self.secret, "TABLE_PREFIX": self.prefix,
                    "DYNAMODB_ENDPOINT_URL": dynamodb_endpoint(),
                    "WS_ENDPOINT_URL": self.sink.endpoint_url, **(env or {})}
        self._actions, self._tasks = actions, tasks
        self._client: Client | None = None
        self.streamer: Streamer | None = None

    def __enter__(self) -> TestApp:
        self.sink.start()
        create_tables(self.dynamodb, self.prefix)
        self.streamer = runtime.build(self.env, actions=self._actions, tasks=self._tasks)
        runtime.configure(self.streamer)
        self._client = Client(self.app)
        self._client.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._client is not None:
            self._client.__exit__(kind, error, trace)
        runtime.reset()
        self.sink.stop()
        for table in TABLES:
            self.dynamodb.delete_table(TableName=table.physical_name(self.prefix))

    @property
    def client(self) -> Client:
        """Chalice's test client, for invoking any handler of the app directly."""
        assert self._client is not None, "use TestApp in a with block"
        return self._client

    def token(self, user_id: str = "u1", tenant_id: str = "t1",
              permissions: Sequence[str] = ("read", "write"), **claims: Any) -> str:
        """A valid token for this app's secret; ``claims`` add or override any claim."""
        return testkit.make_token(self.secret, user_id=user_id, tenant_id=tenant_id,
                                  permissions=tuple(permissions), **claims)

    def connect(self, user_id: str = "u1", tenant_id: str = "t1",
                permissions: Sequence[str] = ("read", "write")) -> str:
        """Connect a client (the ``$connect`` handler, asserting 200); its connection id."""
        connection_id = testkit.connection_id()
        event = testkit.connect_event(connection_id,
                                      token=self.token(user_id, tenant_id, permissions))
        status = self.client.lambda_.invoke("connect", event).payload["statusCode"]
        assert status == 200, f"$connect answered {status}"
        return connection_id

    def send(self, connection_id: str, frame: dict[str, Any] | str) -> dict[str, Any]:
        """Send one frame (the ``$default`` handler); the newest frame the client got."""
        self.client.lambda_.invoke("message", testkit.message_event(connection_id, frame))
        return self.sink.last(connection_id)

    def frames(self, connection_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        """Every frame the client got so far, or those of one ``type``."""
        return self.sink.received(connection_id, type_)

    def disconnect(self, connection_id: str) -> None:
        self.client.lambda_.invoke("disconnect", testkit.disconnect_event(connection_id))
