"""The boto3 :class:`~chalicelib.interfaces.Sender`: ``post_to_connection`` (``SENDER=boto3``).

The rollback switch to the default FastSender, and the choice behind an HTTPS proxy.
Its botocore errors, and FastSender's (which reuses :func:`translate_client_error`),
become :class:`~chalicelib.errors.SendError` subclasses here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import (
    ForbiddenSend,
    GoneError,
    PayloadTooLarge,
    SendError,
    ServerError,
    ThrottledError,
)

_ERRORS_BY_CODE: dict[str, type[SendError]] = {
    "GoneException": GoneError,
    "LimitExceededException": ThrottledError,
    "TooManyRequestsException": ThrottledError,
    "PayloadTooLargeException": PayloadTooLarge,
    "ForbiddenException": ForbiddenSend,
}
_ERRORS_BY_STATUS: dict[int, type[SendError]] = {
    410: GoneError, 429: ThrottledError, 413: PayloadTooLarge, 403: ForbiddenSend,
}


class ManagementApiSender:
    """:class:`~chalicelib.interfaces.Sender` through boto3's ``apigatewaymanagementapi`` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def for_endpoint(cls, endpoint_url: str, region: str | None,
                     pool_size: int) -> ManagementApiSender:
        import boto3  # deferred: keeps app.py's import (cold start) free of boto3

        config = Config(
            # Streamer retries 429/5xx itself (Fanout), counted and bounded, so
            # botocore's own retries are off.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=pool_size,
            connect_timeout=3,
            read_timeout=5,
        )
        client = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url,
                              region_name=region, config=config)
        return cls(client)

    def close(self) -> None:
        self._client.close()

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            raise translate_client_error(connection_id, exc) from exc
        except BotoCoreError as exc:
            raise ServerError(connection_id, type(exc).__name__) from exc


    def delete(self, connection_id: str) -> None:
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            error = translate_client_error(connection_id, exc)
            if not isinstance(error, GoneError):
                raise error from exc
        except BotoCoreError as exc:
            raise ServerError(connection_id, type(exc).__name__) from exc


def translate_client_error(connection_id: str, exc: ClientError) -> SendError:
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    kind = _ERRORS_BY_CODE.get(str(error.get("Code", ""))) or _ERRORS_BY_STATUS.get(status)
    if kind is None:
        kind = ServerError if status >= 500 else SendError
    return kind(connection_id, f"{status} {error.get('Code', '')}".strip())
