"""Chalice's own app.websocket_api reaches the local @connections API, unmodified."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from streamer_local.testing import GatewayThread
from streamer_local.tls import make_local_tls
from tests.apps import echo


@pytest.fixture
def echo_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayThread]:
    tls = make_local_tls()
    # What the local stack sets for the app: botocore's public CA-bundle setting.
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls.cert_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    echo.GONE.clear()
    with GatewayThread(echo.app, tls=tls) as gateway:
        yield gateway


def test_websocket_api_send_echoes_over_https(echo_gateway: GatewayThread) -> None:
    """The echo tutorial's app.websocket_api.send posts to the gateway's https
    @connections endpoint, and the client gets its message back."""
    with connect(echo_gateway.url, open_timeout=5) as ws:
        for text in ("hello", "ünïcode", "x" * 20_000):
            ws.send(text)
            assert ws.recv(timeout=10) == text
    assert echo_gateway.gateway.tls_connections_url is not None
    assert echo.app.websocket_api._endpoint == echo_gateway.gateway.tls_connections_url


def test_websocket_api_raises_disconnected_for_a_gone_connection(
        echo_gateway: GatewayThread) -> None:
    """A 410 from the local API is Chalice's WebsocketDisconnectedError, as on AWS."""
    with connect(echo_gateway.url, open_timeout=5) as ws:
        ws.send("first")
        assert ws.recv(timeout=10) == "first"
        (connection_id,) = echo_gateway.gateway.connection_ids()
        echo_gateway.faults.gone_connections.add(connection_id)
        ws.send("second")
        deadline = time.monotonic() + 10
        while not echo.GONE and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [connection_id] == echo.GONE


def test_websocket_api_info_and_close_reach_the_local_api(echo_gateway: GatewayThread) -> None:
    """app.websocket_api.info answers the connection's identity and close closes it,
    as GET and DELETE on @connections do on AWS."""
    from websockets.exceptions import ConnectionClosed

    with connect(echo_gateway.url, open_timeout=5, user_agent_header="agent/7") as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
        (connection_id,) = echo_gateway.gateway.connection_ids()
        info = echo.app.websocket_api.info(connection_id)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "agent/7"}
        echo.app.websocket_api.close(connection_id)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1000
