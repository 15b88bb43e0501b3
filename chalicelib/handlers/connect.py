"""``$connect``: authenticate the handshake and write the connection (PROTOCOL.md 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import auth, events
from chalicelib.errors import AuthError
from chalicelib.model import Connection
from chalicelib.observability import add_keys, bind, count, flush_metrics, logger
from chalicelib.services import Services


def handle(services: Services, event: Mapping[str, Any]) -> dict[str, Any]:
    ctx = events.WsContext.from_event(event)
    bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$connect")
    try:
        identity = auth.authenticate(
            services.settings, events.query_values(event), events.header_values(event))
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
    return {"statusCode": 200}
