"""Asynchronous requests end to end: real sockets, the local gateway, moto's stream and
the stream poller driving app.py's processor."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from chalicelib import runtime
from chalicelib.tables import create_tables
from local.cli import make_token
from local.stack import DEFAULT_JWT_SECRET, app_environment, load_app
from streamer_local.poller import StreamPoller
from streamer_local.testing import GatewayThread


@pytest.fixture(params=[0.0, 1.0], ids=["once", "redelivered"])
def stack(request: pytest.FixtureRequest, dynamodb_endpoint: str, table_prefix: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """app.py behind a gateway with a stream poller; every record delivered once, or twice."""
    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    arns = create_tables(client, table_prefix)
    app = load_app("app:app")
    gateway = GatewayThread(app).start()
    env = app_environment(dynamodb_endpoint_url=dynamodb_endpoint, table_prefix=table_prefix,
                          ws_endpoint_url=gateway.connections_url, secret=DEFAULT_JWT_SECRET,
                          stream_arns=arns)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime.configure(None)
    poller = StreamPoller(app, dynamodb_endpoint, table_prefix, redeliver_fraction=request.param,
                          seed=7, poll_interval=0.05, fallback_tables=("requests",))
    poller.connect()
    gateway.run(poller.start())
    try:
        yield Stack(gateway, poller, request.param)
    finally:
        gateway.run(poller.stop())
        poller.close()
        gateway.stop()
        runtime.configure(None)


@dataclass
class Stack:
    gateway: GatewayThread
    poller: StreamPoller
    redeliver_fraction: float


def client(stack: Stack, user: str = "u1") -> ClientConnection:
    token = make_token(DEFAULT_JWT_SECRET, user=user, tenant="t1", permissions=["read", "write"])
    return connect(f"{stack.gateway.url}/?Authorization={token}", open_timeout=10)


def until(ws: ClientConnection, done: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Collect frames until ``done(frame)`` holds for one; fail after ``timeout``."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        frames.append(frame)
        if done(frame):
            return frames
    raise AssertionError(f"no final frame within {timeout}s: {frames}")


def quiet(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives within ``seconds``."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
        except ConnectionClosed:
            break
    return frames


def test_count_progress_then_result_exactly_once(stack: Stack) -> None:
    """A count request gets its ack, each progress frame once in order, then one result, even
    when the poller delivers every stream record twice."""
    with client(stack) as ws:
        ws.send(json.dumps({"action": "request", "kind": "count", "id": "r",
                            "payload": {"steps": 3, "interval_ms": 50}}))
        frames = until(ws, lambda f: f["type"] == "result")
        frames += quiet(ws, 1.0)  # duplicates would arrive here
        ack = next(f for f in frames if f["type"] == "ack")
        rid = ack["request_id"]
        progress = [f for f in frames if f["type"] == "progress"]
        assert [p["detail"]["step"] for p in progress] == [1, 2, 3]
        assert all(p["request_id"] == rid for p in progress)
        assert [f for f in frames if f["type"] == "result"] == [
            {"type": "result", "request_id": rid, "data": {"count": 3}, "seq": 4}]
        ws.send(json.dumps({"action": "status", "request_id": rid, "id": "q"}))
        status = until(ws, lambda f: f.get("id") == "q")[-1]
        assert (status["state"], status["result"]) == ("succeeded", {"count": 3})
    if stack.redeliver_fraction:
        assert any(seq for _, seq in stack.poller.redelivered)  # the switch did redeliver


def test_second_client_cancels_mid_way(stack: Stack) -> None:
    """A client cancelling its request mid-way gets cancelled and no result; others finish."""
    with client(stack, "ann") as first, client(stack, "bob") as second:
        first.send(json.dumps({"action": "request", "kind": "count", "id": "a",
                               "payload": {"steps": 2, "interval_ms": 50}}))
        second.send(json.dumps({"action": "request", "kind": "count", "id": "b",
                                "payload": {"steps": 50, "interval_ms": 100}}))
        seen = until(second, lambda f: f["type"] == "progress")
        rid = next(f for f in seen if f["type"] == "ack")["request_id"]
        second.send(json.dumps({"action": "cancel", "request_id": rid, "id": "c"}))
        after = until(second, lambda f: f.get("code") == "cancelled")
        after += quiet(second, 1.5)
        acks = [f for f in after if f.get("id") == "c"]
        assert acks == [{"type": "ack", "id": "c", "action": "cancel", "request_id": rid,
                         "state": "cancelled"}]
        assert not [f for f in after if f["type"] == "result"]
        assert len([f for f in seen + after if f["type"] == "progress"]) < 50
        done = until(first, lambda f: f["type"] == "result")
        assert done[-1]["data"] == {"count": 2}
