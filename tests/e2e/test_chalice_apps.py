"""Small Chalice apps in the shapes users write, served by the gateway unmodified."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from streamer_local.testing import GatewayThread
from streamer_local.tls import make_local_tls
from tests.apps import noconnect, subprotocol

Serve = Callable[[Any], GatewayThread]


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    """Serve an app as streamer-local does: https @connections, trusted via AWS_CA_BUNDLE."""
    started: list[GatewayThread] = []

    def start(app: Any) -> GatewayThread:
        tls = make_local_tls()
        for name, value in {"AWS_CA_BUNDLE": str(tls.cert_path), "AWS_ACCESS_KEY_ID": "x",
                            "AWS_SECRET_ACCESS_KEY": "x",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        gateway = GatewayThread(app, tls=tls).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def test_an_app_without_connect_accepts_every_handshake(serve: Serve) -> None:
    """No $connect handler: the handshake is accepted and messages reach $default."""
    gateway = serve(noconnect.app)
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "got x"


def test_a_subprotocol_chosen_in_connect_is_negotiated(serve: Serve) -> None:
    """The protocol $connect answers in Sec-WebSocket-Protocol is the one the client
    gets; offering none the app knows is refused with the app's status."""
    gateway = serve(subprotocol.app)
    with connect(gateway.url, open_timeout=5,
                 subprotocols=["chat.v1", "other"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat.v1"
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    with pytest.raises(InvalidStatus) as info:
        connect(gateway.url, open_timeout=5, subprotocols=["nope"])  # type: ignore[list-item]
    assert info.value.response.status_code == 400
