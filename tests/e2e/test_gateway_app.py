"""The real ``app.py`` behind the gateway, on the test's own tables: the contract holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from chalicelib import runtime
from chalicelib.tables import create_tables
from local.cli import make_token
from local.stack import DEFAULT_JWT_SECRET, app_environment, load_app
from streamer_local.testing import GatewayThread


@pytest.fixture
def app_gateway(dynamodb_endpoint: str, table_prefix: str,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayThread]:
    """app.py behind a gateway, configured through its environment like ``python -m local``."""
    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    arns = create_tables(client, table_prefix)  # existing tables: returns their ARNs
    client.close()
    gateway = GatewayThread(load_app("app:app"))
    gateway.start()
    env = app_environment(dynamodb_endpoint_url=dynamodb_endpoint, table_prefix=table_prefix,
                          ws_endpoint_url=gateway.connections_url, secret=DEFAULT_JWT_SECRET,
                          stream_arns=arns)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime.configure(None)  # the app reads its settings at the first invocation
    try:
        yield gateway
    finally:
        gateway.stop()
        runtime.configure(None)


def _token(user: str = "u1", tenant: str = "t1", permissions: str = "read,write") -> str:
    return make_token(DEFAULT_JWT_SECRET, user=user, tenant=tenant,
                      permissions=permissions.split(","))


def _call(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(frame))
    while True:
        reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if reply.get("id") == frame.get("id"):
            return reply


def test_app_refuses_missing_token_with_401(app_gateway: GatewayThread) -> None:
    """The app's ``$connect`` answers 401 without a token and the gateway refuses with it."""
    with pytest.raises(InvalidStatus) as info:
        connect(app_gateway.url, open_timeout=10)
    assert info.value.response.status_code == 401


def test_app_answers_ping_through_connections_api(app_gateway: GatewayThread) -> None:
    """A ping reaches the app and its pong comes back through @connections."""
    with connect(f"{app_gateway.url}/?Authorization={_token()}", open_timeout=10) as ws:
        assert _call(ws, {"action": "ping", "id": "p1"}) == {"type": "pong", "id": "p1"}


def test_backend_push_via_lambda_invoke_reaches_subscriber(app_gateway: GatewayThread) -> None:
    """Invoking the app's ``publish`` function through the Lambda API reaches a subscriber."""
    lambda_client = boto3.client("lambda", endpoint_url=app_gateway.http_url)
    try:
        with connect(f"{app_gateway.url}/?Authorization={_token()}", open_timeout=10) as ws:
            ack = _call(ws, {"action": "subscribe", "id": "s1", "channel": "prices"})
            assert ack["type"] == "ack"
            response = lambda_client.invoke(FunctionName="publish", Payload=json.dumps(
                {"tenant_id": "t1", "channel": "prices", "data": {"p": 1}}))
            assert "FunctionError" not in response, response["Payload"].read()
            message = json.loads(ws.recv(timeout=10))
            assert message["type"] == "message"
            assert message["channel"] == "prices"
            assert message["data"] == {"p": 1}
    finally:
        lambda_client.close()
