"""``$connect``: authenticate the handshake and write the connection (PROTOCOL.md 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import auth, events
from chalicelib.errors import AuthError
from chalicelib.model import Connection
from chalicelib.observability import add_keys, bind, count, flush_metrics, logger
from chalicelib.services import Services

SUBPROTOCOL = "streamer.v1"


def offered_subprotocols(headers: Mapping[str, list[str]]) -> list[str]:
    """The subprotocols a handshake offers, in order: ``Sec-WebSocket-Protocol`` is a
    comma-separated list and may be sent as several header lines (RFC 6455 4.1)."""
    return [token.strip() for value in headers.get("sec-websocket-protocol", [])
            for token in value.split(",") if token.strip()]


def handle(services: Services, event: Mapping[str, Any]) -> dict[str, Any]:
    ctx = events.WsContext.from_event(event)
    bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$connect")
    headers = events.header_values(event)
    offered = offered_subprotocols(headers)
    if offered and SUBPROTOCOL not in offered:
        # A browser aborts a handshake answered without one of its offers, so an
        # answer without a subprotocol would only fail later and less clearly.
        logger.info("handshake refused", extra={"status": 400,
                                                "reason": "unsupported subprotocol"})
        count("ConnectionRefused")
        flush_metrics()
        return {"statusCode": 400}
    try:
        identity = auth.authenticate(
            services.settings, events.query_values(event), headers)
    except AuthError as exc:
        logger.info("handshake refused", extra={"status": exc.status, "reason": exc.reason})
        count("ConnectionRefused")
        flush_metrics()
        return {"statusCode": exc.status}
    connection = Connection.open(ctx.connection_id, identity, services.now(),
                                 services.settings.connection_ttl_seconds)
    services.storage.put_connection(connection)
    add_keys(user_id=identity.user_id, tenant_id=identity.tenant_id)
    logger.info("connection established")
    count("ConnectionEstablished")
    flush_metrics()
    if offered:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": SUBPROTOCOL}}
    return {"statusCode": 200}
