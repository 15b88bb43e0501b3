"""A testing kit for Streamer apps: API Gateway WebSocket events and tokens.

Build the events API Gateway sends and hand them to Chalice's test client::

    from chalice.test import Client
    from local import testkit
    from app import app

    token = testkit.make_token(secret, user_id="u1", tenant_id="acme",
                               permissions=["read", "write"])
    with Client(app) as client:
        client.lambda_.invoke("connect", testkit.connect_event("c1", token=token))
        client.lambda_.invoke("message", testkit.message_event("c1", {"action": "ping"}))
        client.lambda_.invoke("disconnect", testkit.disconnect_event("c1"))

Handler names are the function names in ``app.py``. The shapes follow API Gateway's
WebSocket Lambda proxy events (``requestContext`` with ``routeKey``, ``eventType``,
``connectionId`` and the rest); only the fields vary that tests need to vary.

The processor takes DynamoDB stream events, built the same way from typed images
(attribute maps, as ``GetItem`` returns them or as :func:`typed` makes them)::

    row = dynamodb.get_item(TableName="streamer_requests", Key=key)["Item"]
    client.lambda_.invoke("process", testkit.stream_event(testkit.insert_record(row)))
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

DEFAULT_DOMAIN = "abcdef1234.execute-api.us-east-1.amazonaws.com"
DEFAULT_STAGE = "dev"
DEFAULT_API_ID = "abcdef1234"


def make_token(secret: str, *, user_id: str, tenant_id: str,
               permissions: list[str] | tuple[str, ...] = ("read", "write"),
               ttl_seconds: int = 3600, algorithm: str = "HS256",
               **extra_claims: Any) -> str:
    """An HS256 JWT with Streamer's claims; ``extra_claims`` may add or override any."""
    import jwt

    now = int(time.time())
    claims: dict[str, Any] = {
        "user_id": user_id,
        "tenant_id": tenant_id,
        "permissions": list(permissions),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    claims.update(extra_claims)
    return jwt.encode(claims, secret, algorithm=algorithm)


def connection_id() -> str:
    """A connection id in API Gateway's shape (12 random bytes, base64)."""
    return base64.b64encode(uuid.uuid4().bytes[:12]).decode()


def _request_context(connection: str, route_key: str, event_type: str,
                     domain: str, stage: str, api_id: str,
                     source_ip: str) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": uuid.uuid4().hex[:16] + "=",
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": now_ms,
        "requestTimeEpoch": now_ms,
        "identity": {"sourceIp": source_ip},
        "requestId": uuid.uuid4().hex[:16] + "=",
        "domainName": domain,
        "connectionId": connection,
        "apiId": api_id,
    }


def connect_event(connection: str, *, token: str | None = None,
                  query: dict[str, str] | None = None,
                  headers: dict[str, str] | None = None,
                  domain: str = DEFAULT_DOMAIN, stage: str = DEFAULT_STAGE,
                  api_id: str = DEFAULT_API_ID,
                  source_ip: str = "203.0.113.7") -> dict[str, Any]:
    """A ``$connect`` event; ``token`` goes in the ``Authorization`` query parameter."""
    params = dict(query or {})
    if token is not None:
        params["Authorization"] = token
    all_headers = {
        "Host": domain,
        "Sec-WebSocket-Key": base64.b64encode(uuid.uuid4().bytes).decode(),
        "Sec-WebSocket-Version": "13",
        "X-Forwarded-For": source_ip,
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    return {
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": params or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in params.items()} or None,
        "requestContext": _request_context(connection, "$connect", "CONNECT",
                                           domain, stage, api_id, source_ip),
        "isBase64Encoded": False,
    }


def message_event(connection: str, body: dict[str, Any] | str | bytes, *,
                  domain: str = DEFAULT_DOMAIN, stage: str = DEFAULT_STAGE,
                  api_id: str = DEFAULT_API_ID,
                  source_ip: str = "203.0.113.7") -> dict[str, Any]:
    """A ``$default`` message: a dict is sent as JSON text, bytes as a binary frame."""
    context = _request_context(connection, "$default", "MESSAGE", domain, stage, api_id,
                               source_ip)
    context["messageId"] = uuid.uuid4().hex[:16] + "="
    if isinstance(body, bytes):
        return {"requestContext": context, "body": base64.b64encode(body).decode(),
                "isBase64Encoded": True}
    text = body if isinstance(body, str) else json.dumps(body)
    return {"requestContext": context, "body": text, "isBase64Encoded": False}


def disconnect_event(connection: str, *, status_code: int = 1000,
                     reason: str = "Client-side close frame status code",
                     domain: str = DEFAULT_DOMAIN, stage: str = DEFAULT_STAGE,
                     api_id: str = DEFAULT_API_ID,
                     source_ip: str = "203.0.113.7") -> dict[str, Any]:
    """A ``$disconnect`` event with API Gateway's status code and reason."""
    context = _request_context(connection, "$disconnect", "DISCONNECT", domain, stage,
                               api_id, source_ip)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {"headers": {"Host": domain}, "multiValueHeaders": {"Host": [domain]},
            "requestContext": context, "isBase64Encoded": False}


# -- DynamoDB stream events (for the processor) --------------------------------

DEFAULT_STREAM_ARN = ("arn:aws:dynamodb:us-east-1:123456789012:table/streamer_requests/"
                      "stream/2026-01-01T00:00:00.000")
_sequence = iter(range(10**20, 10**21))


def typed(item: dict[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB attribute map (``{"a": 1}`` -> ``{"a": {"N": "1"}}``)."""
    return {key: _attribute(value) for key, value in item.items()}


def _attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return {"L": [_attribute(v) for v in value]}
    if isinstance(value, dict):
        return {"M": typed(value)}
    raise TypeError(f"cannot type {type(value).__name__}")


def stream_record(event_name: str, *, keys: dict[str, Any],
                  new_image: dict[str, Any] | None = None,
                  old_image: dict[str, Any] | None = None,
                  sequence_number: str | None = None,
                  stream_arn: str = DEFAULT_STREAM_ARN) -> dict[str, Any]:
    """One stream record as Lambda delivers it; images and keys are attribute maps."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(time.time()),
        "Keys": keys,
        "SequenceNumber": sequence_number or str(next(_sequence)),
        "SizeBytes": len(json.dumps([keys, new_image, old_image])),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        dynamodb["NewImage"] = new_image
    if old_image is not None:
        dynamodb["OldImage"] = old_image
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def _keys_of(image: dict[str, Any], key_names: tuple[str, ...]) -> dict[str, Any]:
    return {name: image[name] for name in key_names}


def insert_record(new_image: dict[str, Any], *, key_names: tuple[str, ...] = ("request_id",),
                  **kwargs: Any) -> dict[str, Any]:
    return stream_record("INSERT", keys=_keys_of(new_image, key_names), new_image=new_image,
                         **kwargs)


def modify_record(old_image: dict[str, Any], new_image: dict[str, Any], *,
                  key_names: tuple[str, ...] = ("request_id",), **kwargs: Any) -> dict[str, Any]:
    return stream_record("MODIFY", keys=_keys_of(new_image, key_names), new_image=new_image,
                         old_image=old_image, **kwargs)


def remove_record(old_image: dict[str, Any], *, key_names: tuple[str, ...] = ("request_id",),
                  **kwargs: Any) -> dict[str, Any]:
    return stream_record("REMOVE", keys=_keys_of(old_image, key_names), old_image=old_image,
                         **kwargs)


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream event for ``client.lambda_.invoke("process", ...)``."""
    return {"Records": list(records)}
