"""Messages go to ``$default`` as AWS sends them; closes produce ``$disconnect`` events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from streamer_local.settings import GatewaySettings
from streamer_local.testing import GatewayThread
from tests.e2e.conftest import RawClient, Recorder, StartGateway, connection_id_of


def test_text_message_event_has_aws_shape(gateway: GatewayThread, recorder: Recorder) -> None:
    """A text frame becomes a MESSAGE event for ``$default`` with the frame as ``body``."""
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send("event")
        event = json.loads(ws.recv(timeout=5))
        connection_id = connection_id_of(recorder)
    context = event["requestContext"]
    assert context["routeKey"] == "$default"
    assert context["eventType"] == "MESSAGE"
    assert context["connectionId"] == connection_id
    assert context["messageDirection"] == "IN"
    assert len(context["messageId"]) == 16 and context["messageId"].endswith("=")
    assert context["messageId"] != context["requestId"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert event["body"] == "event"
    assert event["isBase64Encoded"] is False
    connect_context = recorder.events["$connect"][0]["requestContext"]
    assert context["connectedAt"] == connect_context["connectedAt"]


def test_binary_frame_closes_with_1003_and_never_reaches_the_app(
        gateway: GatewayThread, recorder: Recorder) -> None:
    """A binary frame closes the connection with 1003, as API Gateway does; ``$default``
    is not invoked, and ``$disconnect`` reports 1003."""
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send(bytes(range(256)))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1003
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1003
    assert recorder.events["$default"] == []


def test_messages_are_dispatched_in_arrival_order(start_gateway: StartGateway,
                                                  recorder: Recorder) -> None:
    """With one handler at a time, ``$default`` sees a connection's messages in order."""
    gateway = start_gateway(GatewaySettings(max_concurrency=1))
    with connect(gateway.url, open_timeout=5) as ws:
        for n in range(30):
            ws.send(f"n{n}")
        ws.send("echo:done")
        assert ws.recv(timeout=5) == "done"
    bodies = [e["body"] for e in recorder.events["$default"]]
    assert bodies == [f"n{n}" for n in range(30)] + ["echo:done"]


def test_crashing_handler_sends_internal_error_frame(gateway: GatewayThread,
                                                     recorder: Recorder) -> None:
    """A raising ``$default`` handler gives the client API Gateway's error frame."""
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send("crash")
        frame = json.loads(ws.recv(timeout=5))
        event = recorder.wait_for("$default")
        assert frame == {
            "message": "Internal server error",
            "connectionId": event["requestContext"]["connectionId"],
            "requestId": event["requestContext"]["requestId"],
        }
        ws.send("echo:still here")
        assert ws.recv(timeout=5) == "still here"


def test_crash_does_not_disturb_other_connections(gateway: GatewayThread,
                                                  recorder: Recorder) -> None:
    """One connection's crashing handler leaves everyone else served."""
    with connect(gateway.url, open_timeout=5) as bad, \
            connect(gateway.url, open_timeout=5) as good:
        for _ in range(5):
            bad.send("crash")
        good.send("echo:fine")
        assert good.recv(timeout=5) == "fine"
        for _ in range(5):
            assert json.loads(bad.recv(timeout=5))["message"] == "Internal server error"


def test_client_close_reports_its_code_and_reason(gateway: GatewayThread,
                                                  recorder: Recorder) -> None:
    """A client close produces ``$disconnect`` with the client's close code and reason."""
    with connect(gateway.url, open_timeout=5) as ws:
        connection_id = connection_id_of(recorder)
        ws.close(code=4001, reason="bye now")
    event = recorder.wait_for("$disconnect")
    context = event["requestContext"]
    assert context["connectionId"] == connection_id
    assert context["routeKey"] == "$disconnect"
    assert context["eventType"] == "DISCONNECT"
    assert context["disconnectStatusCode"] == 4001
    assert context["disconnectReason"] == "bye now"
    assert event["headers"]["Host"] == f"127.0.0.1:{gateway.gateway.port}"


def test_close_without_status_reports_1005(gateway: GatewayThread, recorder: Recorder) -> None:
    """A close frame without a status code is reported as 1005, as AWS does."""
    client = RawClient(gateway.url)
    try:
        client.send_frame(0x8, b"")  # a close frame with no payload
        assert client.recv_frame()[0] == 0x8
    finally:
        client.close()
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1005
    assert event["requestContext"]["disconnectReason"] == "Client-side close frame status not set"


def test_dropped_socket_reports_abnormal_closure(gateway: GatewayThread,
                                                 recorder: Recorder) -> None:
    """A TCP connection lost without a close frame is reported as 1006."""
    client = RawClient(gateway.url)
    assert client.status == 101
    client.close()
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1006


def test_disconnect_follows_in_flight_messages(gateway: GatewayThread,
                                               recorder: Recorder) -> None:
    """``$disconnect`` runs after the connection's in-flight messages were handled."""
    with connect(gateway.url, open_timeout=5) as ws:
        for n in range(10):
            ws.send(f"m{n}")
    recorder.wait_for("$disconnect")
    assert len(recorder.events["$default"]) == 10


def test_post_after_close_answers_gone(gateway: GatewayThread, recorder: Recorder,
                                       management: Any) -> None:
    """Once a client has closed, the connection is gone for @connections."""
    with connect(gateway.url, open_timeout=5):
        connection_id = connection_id_of(recorder)
    recorder.wait_for("$disconnect")
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"x")
