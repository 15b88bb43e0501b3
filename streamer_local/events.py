"""API Gateway WebSocket events, built the way AWS builds them for a Lambda proxy integration.

Pure functions and values only (no I/O), so the shapes can be read in one place and
tested without sockets. The field set follows the events AWS delivers to Lambda for the
``$connect``, ``$default`` and ``$disconnect`` routes:

- every event: ``requestContext`` with ``routeKey``, ``eventType``, ``connectionId``,
  ``connectedAt``, ``requestTime``, ``requestTimeEpoch``, ``requestId``,
  ``extendedRequestId``, ``messageDirection`` (``IN``), ``domainName``, ``stage``,
  ``apiId`` and ``identity`` (``sourceIp``, ``userAgent``), plus ``isBase64Encoded``;
- ``$connect``: the handshake's ``headers`` / ``multiValueHeaders`` and, when the URL
  has a query string, ``queryStringParameters`` / ``multiValueQueryStringParameters``;
- ``$default``: ``messageId`` and the frame as ``body`` (base64 for binary frames);
- ``$disconnect``: ``disconnectStatusCode`` and ``disconnectReason``.

Why hand-written: no library builds API Gateway *WebSocket* events (``chalice local``
and ``chalice.test`` cover REST only; the aws-lambda-powertools event classes parse
these events but do not create them).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Headers the client sends for the upgrade that API Gateway does not pass on.
_HOP_BY_HOP = frozenset({"connection", "upgrade"})


def new_id() -> str:
    """An id in AWS's connection / request id shape: 16 characters ending in ``=``.

    AWS ids are 11 random bytes in URL-safe base64 (for example ``L0SM9cOFvHcCIhw=``):
    never ``+`` or ``/``, so an id can sit in a URL path (``@connections/{id}``) as is.
    """
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode("ascii")


def now_ms() -> int:
    return int(time.time() * 1000)


def request_time(epoch_ms: int) -> str:
    """``requestTime`` in API Gateway's CLF-like format, e.g. ``09/Feb/2024:18:11:43 +0000``."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def iso8601(epoch_ms: int) -> str:
    """A timestamp as the @connections GET API returns it: ``2024-02-09T18:11:43.419Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class ApiIdentity:
    """Where the WebSocket API lives, as the events name it."""

    api_id: str
    stage: str
    domain_name: str


@dataclass(frozen=True)
class ClientInfo:
    """What the gateway knows about one connection from its handshake."""

    connection_id: str
    connected_at: int
    source_ip: str
    user_agent: str | None


def identity(client: ClientInfo) -> dict[str, str]:
    """``identity`` as events and ``GET @connections`` give it: API Gateway omits
    ``userAgent`` when the handshake had no User-Agent header."""
    found = {"sourceIp": client.source_ip}
    if client.user_agent:
        found["userAgent"] = client.user_agent
    return found


def _request_context(
    api: ApiIdentity, client: ClientInfo, route_key: str, event_type: str
) -> dict[str, Any]:
    epoch_ms = now_ms()
    request_id = new_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(epoch_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": client.connected_at,
        "requestTimeEpoch": epoch_ms,
        "identity": identity(client),
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": client.connection_id,
        "apiId": api.api_id,
    }


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(name, []).append(value)
    return single, multi


def connect_event(
    api: ApiIdentity,
    client: ClientInfo,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
    *,
    server_port: int,
) -> dict[str, Any]:
    """The ``$connect`` event for a handshake with these headers and query parameters."""
    passed = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
    passed += [
        ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"),
        ("X-Forwarded-For", client.source_ip),
        ("X-Forwarded-Port", str(server_port)),
        ("X-Forwarded-Proto", "http"),
    ]
    single_headers, multi_headers = _single_and_multi(passed)
    event: dict[str, Any] = {
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "requestContext": _request_context(api, client, "$connect", "CONNECT"),
        "isBase64Encoded": False,
    }
    query_pairs = list(query)
    if query_pairs:
        single_query, multi_query = _single_and_multi(query_pairs)
        event["queryStringParameters"] = single_query
        event["multiValueQueryStringParameters"] = multi_query
    return event


def message_event(api: ApiIdentity, client: ClientInfo, data: str | bytes) -> dict[str, Any]:
    """The ``$default`` event for one message (text as is, binary base64-encoded)."""
    context = _request_context(api, client, "$default", "MESSAGE")
    context["messageId"] = new_id()
    if isinstance(data, bytes):
        return {
            "requestContext": context,
            "body": base64.b64encode(data).decode("ascii"),
            "isBase64Encoded": True,
        }
    return {"requestContext": context, "body": data, "isBase64Encoded": False}


def disconnect_event(
    api: ApiIdentity, client: ClientInfo, status_code: int, reason: str
) -> dict[str, Any]:
    """The ``$disconnect`` event, with the close code and reason API Gateway reports."""
    context = _request_context(api, client, "$disconnect", "DISCONNECT")
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    headers = [
        ("Host", api.domain_name),
        ("x-api-key", ""),
        ("X-Forwarded-For", ""),
        ("x-restapi", ""),
    ]
    single, multi = _single_and_multi(headers)
    return {
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": context,
        "isBase64Encoded": False,
    }


def internal_error_frame(connection_id: str, request_id: str) -> dict[str, str]:
    """The frame API Gateway sends a client when the route's integration fails."""
    return {
        "message": "Internal server error",
        "connectionId": connection_id,
        "requestId": request_id,
    }


def header_value(response_headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header from a handler's response, matched case-insensitively."""
    if not response_headers:
        return None
    for key, value in response_headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None
