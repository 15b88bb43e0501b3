"""Lambda's Invoke API for the app's plain functions, driven by boto3's ``lambda`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from websockets.sync.client import connect

from streamer_local.testing import GatewayThread
from tests.e2e.conftest import NO_RETRIES, Recorder, connection_id_of


@pytest.fixture
def lambda_client(gateway: GatewayThread) -> Iterator[Any]:
    client = boto3.client("lambda", endpoint_url=gateway.http_url, config=NO_RETRIES)
    yield client
    client.close()


def test_invoke_runs_the_function_and_returns_its_result(
    gateway: GatewayThread, recorder: Recorder, lambda_client: Any
) -> None:
    """Invoking ``publish`` runs it, returns its JSON result, and its push reaches the client."""
    with connect(gateway.url, open_timeout=5) as ws:
        payload = {"connection_id": connection_id_of(recorder), "data": "pushed"}
        response = lambda_client.invoke(FunctionName="publish", Payload=json.dumps(payload))
        assert ws.recv(timeout=5) == "pushed"
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert json.loads(response["Payload"].read()) == {"sent": 1, "function": "publish"}
    assert recorder.events["publish"] == [payload]


def test_function_error_sets_the_function_error_header(
    gateway: GatewayThread, lambda_client: Any
) -> None:
    """A raising function answers 200 with ``X-Amz-Function-Error`` and the error payload."""
    response = lambda_client.invoke(FunctionName="publish", Payload=json.dumps({"fail": True}))
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "publish was asked to fail"
    assert isinstance(error["stackTrace"], list)


def test_unknown_function_raises_resource_not_found(
    gateway: GatewayThread, lambda_client: Any
) -> None:
    """Invoking a name the app does not define raises ResourceNotFoundException."""
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="nope", Payload=b"{}")


def test_websocket_handlers_are_not_invocable(gateway: GatewayThread, lambda_client: Any) -> None:
    """Only ``@app.lambda_function`` handlers are exposed, not the WebSocket handlers."""
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="message", Payload=b"{}")


@pytest.mark.parametrize("name", [
    "arn:aws:lambda:us-east-1:123456789012:function:publish",
    "publish:$LATEST",
    "gatewaytest-dev-publish",
])
def test_deployed_names_resolve(gateway: GatewayThread, recorder: Recorder,
                                lambda_client: Any, name: str) -> None:
    """ARNs, qualified names and Chalice's deployed ``app-stage-name`` all find the function."""
    with connect(gateway.url, open_timeout=5) as ws:
        payload = {"connection_id": connection_id_of(recorder), "data": name}
        lambda_client.invoke(FunctionName=name, Payload=json.dumps(payload))
        assert ws.recv(timeout=5) == name


def test_event_invocation_is_accepted_and_runs(
    gateway: GatewayThread, recorder: Recorder, lambda_client: Any
) -> None:
    """An ``Event`` invocation answers 202 at once and runs the function in the background."""
    with connect(gateway.url, open_timeout=5) as ws:
        payload = {"connection_id": connection_id_of(recorder), "data": "later"}
        response = lambda_client.invoke(FunctionName="publish", InvocationType="Event",
                                        Payload=json.dumps(payload))
        assert response["StatusCode"] == 202
        assert ws.recv(timeout=5) == "later"


def test_invalid_json_payload_is_rejected(gateway: GatewayThread, lambda_client: Any) -> None:
    """A payload that is not JSON is refused as Lambda refuses it."""
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException):
        lambda_client.invoke(FunctionName="publish", Payload=b"{not json")
