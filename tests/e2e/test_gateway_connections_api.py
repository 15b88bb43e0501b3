"""The @connections management API, driven by boto3's ``apigatewaymanagementapi`` client."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from streamer_local.testing import GatewayThread
from tests.e2e.conftest import NO_RETRIES, Recorder, connection_id_of

KB = 1024


def test_post_delivers_utf8_as_text_frame(gateway: GatewayThread, recorder: Recorder,
                                          management: Any) -> None:
    """A POST whose body is valid UTF-8 arrives as a text frame."""
    with connect(gateway.url, open_timeout=5) as ws:
        management.post_to_connection(ConnectionId=connection_id_of(recorder),
                                      Data="héllo".encode())
        assert ws.recv(timeout=5) == "héllo"


def test_post_delivers_other_bytes_as_binary_frame(gateway: GatewayThread, recorder: Recorder,
                                                   management: Any) -> None:
    """A POST whose body is not UTF-8 arrives as a binary frame."""
    with connect(gateway.url, open_timeout=5) as ws:
        management.post_to_connection(ConnectionId=connection_id_of(recorder),
                                      Data=b"\xff\x00\xfe")
        assert ws.recv(timeout=5) == b"\xff\x00\xfe"


def test_post_to_unknown_connection_raises_gone(gateway: GatewayThread,
                                                management: Any) -> None:
    """A POST to a connection id the gateway never issued raises GoneException."""
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")


def test_post_of_128kb_is_delivered(gateway: GatewayThread, recorder: Recorder,
                                    management: Any) -> None:
    """A POST of exactly 128 KB is within the limit and delivered."""
    with connect(gateway.url, open_timeout=5, max_size=None) as ws:
        management.post_to_connection(ConnectionId=connection_id_of(recorder),
                                      Data=b"a" * (128 * KB))
        assert len(ws.recv(timeout=5)) == 128 * KB


def test_post_over_128kb_raises_payload_too_large(gateway: GatewayThread, recorder: Recorder,
                                                  management: Any) -> None:
    """A POST over 128 KB raises PayloadTooLargeException and sends nothing."""
    with connect(gateway.url, open_timeout=5, max_size=None) as ws:
        with pytest.raises(management.exceptions.PayloadTooLargeException):
            management.post_to_connection(ConnectionId=connection_id_of(recorder),
                                          Data=b"a" * (128 * KB + 1))
        ws.send("echo:next")
        assert ws.recv(timeout=5) == "next"


def test_get_connection_reports_identity_and_times(gateway: GatewayThread, recorder: Recorder,
                                                   management: Any) -> None:
    """GET returns connectedAt, identity and lastActiveAt as AWS does."""
    with connect(gateway.url, open_timeout=5, user_agent_header="agent/2") as ws:
        ws.send("echo:x")
        ws.recv(timeout=5)
        info = management.get_connection(ConnectionId=connection_id_of(recorder))
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "agent/2"}
    connected, last_active = info["ConnectedAt"], info["LastActiveAt"]
    assert isinstance(connected, datetime.datetime)
    assert connected.tzinfo is not None
    assert last_active >= connected
    assert abs((datetime.datetime.now(datetime.UTC) - connected).total_seconds()) < 60


def test_get_unknown_connection_raises_gone(gateway: GatewayThread, management: Any) -> None:
    """GET for an unknown connection raises GoneException."""
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId="AAAAAAAAAAAAAAA=")


def test_delete_closes_the_connection(gateway: GatewayThread, recorder: Recorder,
                                      management: Any) -> None:
    """DELETE closes the client's connection and reports it in ``$disconnect``."""
    with connect(gateway.url, open_timeout=5) as ws:
        connection_id = connection_id_of(recorder)
        management.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=5)
        assert ws.close_code == 1000
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["connectionId"] == connection_id
    assert event["requestContext"]["disconnectStatusCode"] == 1000
    assert "DELETE" in event["requestContext"]["disconnectReason"]
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"late")


def test_delete_unknown_connection_raises_gone(gateway: GatewayThread,
                                               management: Any) -> None:
    """DELETE for an unknown connection raises GoneException."""
    with pytest.raises(management.exceptions.GoneException):
        management.delete_connection(ConnectionId="AAAAAAAAAAAAAAA=")


def test_other_stage_is_forbidden(gateway: GatewayThread, recorder: Recorder) -> None:
    """The management API of a stage the gateway does not serve answers 403."""
    client = boto3.client("apigatewaymanagementapi",
                          endpoint_url=f"{gateway.http_url}/prod", config=NO_RETRIES)
    try:
        with connect(gateway.url, open_timeout=5), \
                pytest.raises(client.exceptions.ForbiddenException):
            client.post_to_connection(ConnectionId=connection_id_of(recorder), Data=b"x")
    finally:
        client.close()
