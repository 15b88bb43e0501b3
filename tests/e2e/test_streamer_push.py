"""Backend push: the app's ``publish`` function invoked through the gateway's Lambda API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config

from tests.e2e.streamer_fixtures import StreamerStack

pytest_plugins = ["tests.e2e.streamer_fixtures"]

QUIET = 0.5


@pytest.fixture
def lambda_client(streamer: StreamerStack, boto_client: Callable[..., Any]) -> Any:
    return boto_client("lambda", endpoint_url=streamer.gateway.http_url,
                       config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def _invoke(lambda_client: Any, event: dict[str, Any], **kwargs: Any) -> Any:
    return lambda_client.invoke(FunctionName="publish", Payload=json.dumps(event), **kwargs)


def test_push_to_a_channel_reaches_its_subscribers_in_that_tenant(
        streamer: StreamerStack, lambda_client: Any) -> None:
    """Invoke publish with a channel: the tenant's subscribers get it, other tenants do not."""
    alice = streamer.client("alice", "acme")
    bob = streamer.client("bob", "acme")
    eve = streamer.client("eve", "globex")
    for client in (alice, bob, eve):
        client.subscribe("prices")
    response = _invoke(lambda_client, {"tenant_id": "acme", "channel": "prices",
                                       "data": {"EURUSD": 1.08}})
    assert "FunctionError" not in response
    message_id = json.loads(response["Payload"].read())["message_id"]
    for client in (alice, bob):
        message = client.wait_for(lambda f: f["type"] == "message")
        assert message["message_id"] == message_id
        assert message["channel"] == "prices"
        assert message["data"] == {"EURUSD": 1.08}
        assert message["sender"] == {"user_id": "system"}
    eve.drain(QUIET)
    assert eve.messages() == []


def test_push_to_a_user_reaches_only_that_users_connections(
        streamer: StreamerStack, lambda_client: Any) -> None:
    """Invoke publish with user_id: every connection of that user in that tenant, no other."""
    alice_phone = streamer.client("alice", "acme")
    alice_laptop = streamer.client("alice", "acme")
    bob = streamer.client("bob", "acme")
    other_alice = streamer.client("alice", "globex")
    response = _invoke(lambda_client, {"tenant_id": "acme", "user_id": "alice",
                                       "data": {"notice": "report ready"}})
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"delivered": 2}
    for client in (alice_phone, alice_laptop):
        message = client.wait_for(lambda f: f["type"] == "message")
        assert message["data"] == {"notice": "report ready"}
        assert "channel" not in message
    for client in (bob, other_alice):
        client.drain(QUIET / 2)
        assert client.messages() == []


def test_asynchronous_push_is_delivered(streamer: StreamerStack, lambda_client: Any) -> None:
    """An ``Event`` (asynchronous) invocation answers 202 and is delivered."""
    client = streamer.client("alice", "acme")
    client.subscribe("c")
    response = _invoke(lambda_client, {"tenant_id": "acme", "channel": "c", "data": 7},
                       InvocationType="Event")
    assert response["StatusCode"] == 202
    assert client.wait_for(lambda f: f["type"] == "message")["data"] == 7


@pytest.mark.parametrize("event", [
    {"channel": "c", "data": 1},
    {"tenant_id": "acme", "data": 1},
    {"tenant_id": "acme", "channel": "c", "user_id": "u", "data": 1},
    {"tenant_id": "acme", "channel": "bad channel", "data": 1},
    {"tenant_id": "acme", "channel": "c"},
])
def test_bad_push_events_fail_the_invocation(streamer: StreamerStack, lambda_client: Any,
                                             event: dict[str, Any]) -> None:
    """An event without tenant, target or data, or with a bad channel, is a function error."""
    client = streamer.client("alice", "acme")
    client.subscribe("c")
    response = _invoke(lambda_client, event)
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "BadRequest"
    client.drain(QUIET / 2)
    assert client.messages() == []
