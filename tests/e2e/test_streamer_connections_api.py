"""The @connections management API from boto3, against the gateway serving the real app."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.config import Config

from tests.e2e.streamer_fixtures import StreamerStack, wait_until

pytest_plugins = ["tests.e2e.streamer_fixtures"]

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def management(streamer: StreamerStack, boto_client: Callable[..., Any]) -> Any:
    return boto_client("apigatewaymanagementapi", endpoint_url=streamer.gateway.connections_url,
                       config=NO_RETRIES)


def test_get_describes_a_live_connection(streamer: StreamerStack, management: Any) -> None:
    """GET @connections/{id} returns connectedAt and identity for a connection the app stored."""
    before = datetime.now(UTC)
    client = streamer.client("alice")
    connection_id = streamer.connection_id("alice")
    client.call({"action": "ping", "id": "p"})
    info = management.get_connection(ConnectionId=connection_id)
    connected_at = info["ConnectedAt"]
    assert abs((connected_at - before).total_seconds()) < 5
    (row,) = streamer.connection_rows()
    assert abs(connected_at.timestamp() * 1000 - int(row["connected_at"]["N"])) < 5000
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert info["Identity"]["UserAgent"]
    assert info["LastActiveAt"] >= connected_at


def test_delete_closes_the_client_and_the_app_removes_its_rows(
        streamer: StreamerStack, management: Any) -> None:
    """DELETE @connections/{id} closes the client; the app's $disconnect deletes its rows."""
    alice = streamer.client("alice")
    bob = streamer.client("bob")
    alice.subscribe("c")
    bob.subscribe("c")
    alice_id = streamer.connection_id("alice")
    management.delete_connection(ConnectionId=alice_id)
    assert alice.close_code() == 1000
    wait_until(lambda: alice_id not in streamer.connection_ids()
               and alice_id not in streamer.subscribed_ids(), what="alice's rows to go")
    assert streamer.connection_ids() == [streamer.connection_id("bob")]
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=alice_id, Data=b"{}")


def test_post_reaches_a_live_connection_and_unknown_ids_are_gone(
        streamer: StreamerStack, management: Any) -> None:
    """POST delivers to a live connection; to an unknown id it raises GoneException."""
    client = streamer.client("alice")
    frame = {"type": "message", "data": "from the management API"}
    management.post_to_connection(ConnectionId=streamer.connection_id("alice"),
                                  Data=json.dumps(frame).encode())
    assert client.wait_for(lambda f: f["type"] == "message") == frame
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"{}")
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId="AAAAAAAAAAAAAAA=")
    assert client.call({"action": "ping", "id": "p"})["type"] == "pong"
