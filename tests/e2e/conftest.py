"""Fixtures for the gateway's end-to-end tests: a throwaway Chalice app behind a real gateway.

The gateway must work with any Chalice app, so these tests drive it with a small app
defined here, whose handlers record every event they get and act on plain-text
commands (``echo:...``, ``crash``, ``broadcast:...``, ``event``). Every gateway runs in
its own thread (:class:`streamer_local.testing.GatewayThread`) on 127.0.0.1 and a free port;
tests talk to it with websockets' synchronous client and boto3.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from chalice.app import Chalice, WebsocketEvent

from streamer_local.settings import Faults, GatewaySettings
from streamer_local.testing import GatewayThread

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


class Recorder:
    """What the throwaway app's handlers saw, and a management client for them to send."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {
            "$connect": [], "$default": [], "$disconnect": [], "publish": [],
        }
        self.alive: list[str] = []
        self.endpoint = ""
        self._cond = threading.Condition()
        self._client: Any = None

    def record(self, route: str, event: dict[str, Any]) -> None:
        with self._cond:
            self.events[route].append(event)
            connection_id = event.get("requestContext", {}).get("connectionId")
            if route == "$disconnect" and connection_id in self.alive:
                self.alive.remove(connection_id)
            self._cond.notify_all()

    def wait_for(
        self, route: str, predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The first recorded ``route`` event matching ``predicate``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[route]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching {route} event within {timeout}s")
                self._cond.wait(remaining)

    def for_connection(self, route: str, connection_id: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events[route]
                    if e["requestContext"]["connectionId"] == connection_id]

    def client(self) -> Any:
        with self._cond:
            if self._client is None:
                # Under ``python -m local`` the endpoint comes from the environment,
                # as it does for the real app.
                endpoint = self.endpoint or os.environ["WS_ENDPOINT_URL"]
                self._client = boto3.client(
                    "apigatewaymanagementapi", endpoint_url=endpoint,
                    config=Config(max_pool_connections=20),
                )
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def make_app(recorder: Recorder) -> Chalice:
    """A Chalice app using every handler kind the gateway serves."""
    app = Chalice(app_name="gatewaytest", configure_logs=False)

    @app.on_ws_connect()
    def connect(event: WebsocketEvent) -> dict[str, Any]:
        raw = event.to_dict()
        recorder.record("$connect", raw)
        query = raw.get("queryStringParameters") or {}
        if "crash" in query:
            raise RuntimeError("connect handler crashed")
        response: dict[str, Any] = {"statusCode": int(query.get("status", "200"))}
        if "subprotocol" in query:
            response["headers"] = {"Sec-WebSocket-Protocol": query["subprotocol"]}
        if response["statusCode"] == 200:
            with recorder._cond:
                recorder.alive.append(event.connection_id)
        return response

    @app.on_ws_message()
    def message(event: WebsocketEvent) -> dict[str, Any]:
        raw = event.to_dict()
        recorder.record("$default", raw)
        body = raw.get("body") or ""
        send = recorder.client().post_to_connection
        if body == "crash":
            raise RuntimeError("message handler crashed")
        if body.startswith("echo:"):
            send(ConnectionId=event.connection_id, Data=body[5:].encode())
        elif body == "event":
            send(ConnectionId=event.connection_id, Data=json.dumps(raw).encode())
        elif body.startswith("broadcast:"):
            with recorder._cond:
                targets = list(recorder.alive)
            for target in targets:
                send(ConnectionId=target, Data=body[10:].encode())
        return {"statusCode": 200}

    @app.on_ws_disconnect()
    def disconnect(event: WebsocketEvent) -> dict[str, Any]:
        recorder.record("$disconnect", event.to_dict())
        return {"statusCode": 200}

    @app.lambda_function(name="publish")
    def publish(event: dict[str, Any], context: Any) -> dict[str, Any]:
        recorder.events["publish"].append(event)
        if event.get("fail"):
            raise ValueError("publish was asked to fail")
        recorder.client().post_to_connection(
            ConnectionId=event["connection_id"], Data=event["data"].encode()
        )
        return {"sent": 1, "function": context.function_name}

    return app


StartGateway = Callable[..., GatewayThread]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def start_gateway(recorder: Recorder) -> Iterator[StartGateway]:
    """Start a gateway for the throwaway app with the given settings and faults."""
    started: list[GatewayThread] = []

    def start(settings: GatewaySettings | None = None,
              faults: Faults | None = None) -> GatewayThread:
        thread = GatewayThread(make_app(recorder), settings=settings, faults=faults)
        started.append(thread)
        thread.start()
        recorder.endpoint = thread.connections_url
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def gateway(start_gateway: StartGateway) -> GatewayThread:
    return start_gateway()


@pytest.fixture
def management(gateway: GatewayThread) -> Iterator[Any]:
    """boto3's apigatewaymanagementapi client on the gateway, retries off."""
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.connections_url,
                          config=NO_RETRIES)
    yield client
    client.close()


def connection_id_of(recorder: Recorder, nth: int = -1) -> str:
    """The connection id the ``$connect`` handler saw last (or ``nth``)."""
    recorder.wait_for("$connect")
    return str(recorder.events["$connect"][nth]["requestContext"]["connectionId"])


class RawClient:
    """A minimal WebSocket client on a plain socket, for frames no library would send.

    Hand-written because client libraries (rightly) refuse to send malformed or
    unusual frames, such as a close frame without a status code.
    """

    def __init__(self, url: str, path: str = "/") -> None:
        host, port = url.removeprefix("ws://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        self._buffer = head.split(b"\r\n\r\n", 1)[1]

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        mask = os.urandom(4)
        header = bytearray([(0x80 if fin else 0) | opcode])
        length = len(payload)
        if length < 126:
            header.append(0x80 | length)
        elif length < 1 << 16:
            header.append(0x80 | 126)
            header += length.to_bytes(2, "big")
        else:
            header.append(0x80 | 127)
            header += length.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def recv_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked): opcode and payload."""
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return first & 0x0F, self._read(length)

    def close(self) -> None:
        self.sock.close()


# A module-level app for tests that load an app by ``module:attr`` spec, as
# ``python -m local --app`` does.
stack_recorder = Recorder()
stack_app = make_app(stack_recorder)
