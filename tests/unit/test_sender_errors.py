"""Unit tests for translating @connections failures into SendError subclasses."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from chalicelib.errors import (
    ForbiddenSend,
    GoneError,
    PayloadTooLarge,
    SendError,
    ServerError,
    ThrottledError,
)
from chalicelib.management_api import ManagementApiSender, translate_client_error


def client_error(code: str, status: int | None, message: str = "x") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "PostToConnection")


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("GoneException", 410, GoneError),
    ("LimitExceededException", 429, ThrottledError),
    ("TooManyRequestsException", 429, ThrottledError),
    ("PayloadTooLargeException", 413, PayloadTooLarge),
    ("ForbiddenException", 403, ForbiddenSend),
    ("InternalServerErrorException", 500, ServerError),
    ("BadGatewayException", 502, ServerError),
    ("ServiceUnavailable", 503, ServerError),
    ("BadRequestException", 400, SendError),
])
def test_translation_by_code_and_status(code: str, status: int,
                                        kind: type[SendError]) -> None:
    """Each @connections failure maps to exactly its SendError subclass."""
    err = translate_client_error("c1=", client_error(code, status))
    assert type(err) is kind
    assert err.connection_id == "c1="
    assert str(status) in str(err)
    assert code in str(err)


@pytest.mark.parametrize(("status", "kind"), [
    (410, GoneError), (429, ThrottledError), (413, PayloadTooLarge), (403, ForbiddenSend),
    (500, ServerError), (504, ServerError), (400, SendError), (0, SendError),
])
def test_translation_by_status_when_code_unknown(status: int, kind: type[SendError]) -> None:
    """An unfamiliar error code is still classified by its HTTP status."""
    assert type(translate_client_error("c", client_error("Mystery", status))) is kind


@pytest.mark.parametrize(("code", "kind"), [
    ("GoneException", GoneError), ("LimitExceededException", ThrottledError)])
def test_translation_by_code_without_status(code: str, kind: type[SendError]) -> None:
    """A known code is enough when the response carries no status."""
    assert type(translate_client_error("c", client_error(code, None))) is kind


def test_unknown_error_without_anything_is_plain_send_error() -> None:
    """A ClientError with no code and no status is a non-retryable SendError."""
    err = translate_client_error("c", ClientError({}, "PostToConnection"))
    assert type(err) is SendError
    assert not err.retryable


@pytest.mark.parametrize(("kind", "retryable"), [
    (GoneError, False), (ThrottledError, True), (PayloadTooLarge, False),
    (ForbiddenSend, False), (ServerError, True), (SendError, False)])
def test_only_throttling_and_server_errors_are_retryable(kind: type[SendError],
                                                         retryable: bool) -> None:
    """429 and 5xx are retryable; 410, 413, 403 and unknown errors are not."""
    assert kind("c").retryable is retryable


def test_translated_error_never_carries_the_aws_message() -> None:
    """The translated error names status and code, not AWS's free-text message."""
    err = translate_client_error("c", client_error("GoneException", 410, "secret detail"))
    assert "secret detail" not in str(err)


class FakeClient:
    """An apigatewaymanagementapi client that records posts or raises a set error."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def post_to_connection(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error


def test_sender_posts_data_to_connection() -> None:
    """ManagementApiSender.post passes the connection id and bytes to the client."""
    client = FakeClient()
    ManagementApiSender(client).post("c1=", b"{}")
    assert client.calls == [{"ConnectionId": "c1=", "Data": b"{}"}]


def test_sender_translates_client_errors() -> None:
    """A ClientError from the client becomes its SendError, chained to the original."""
    original = client_error("GoneException", 410)
    with pytest.raises(GoneError) as info:
        ManagementApiSender(FakeClient(original)).post("c1=", b"{}")
    assert info.value.connection_id == "c1="
    assert info.value.__cause__ is original


@pytest.mark.parametrize("error", [
    EndpointConnectionError(endpoint_url="https://x.example"),
    ReadTimeoutError(endpoint_url="https://x.example"),
])
def test_sender_turns_transport_failures_into_server_errors(error: Exception) -> None:
    """Connection and timeout failures are retryable ServerErrors naming the failure."""
    with pytest.raises(ServerError) as info:
        ManagementApiSender(FakeClient(error)).post("c1=", b"{}")
    assert type(error).__name__ in str(info.value)
    assert info.value.retryable


def test_sender_lets_other_exceptions_through() -> None:
    """Only botocore errors are translated; a programming error is not disguised."""
    with pytest.raises(TypeError):
        ManagementApiSender(FakeClient(TypeError("bad arg"))).post("c1=", b"{}")
