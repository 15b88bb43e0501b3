"""``$disconnect``: remove the connection and its subscriptions, cancel its requests
(or, with ``REQUEST_RECONNECT_GRACE_SECONDS``, leave them for a reconnect to take over).

Best effort on AWS (it may never come), so nothing depends on it: stale rows expire by
TTL, and a 410 on send removes them sooner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import events
from chalicelib.observability import Unit, add_keys, bind, count, flush_metrics, logger
from chalicelib.services import Services


def handle(services: Services, event: Mapping[str, Any]) -> dict[str, Any]:
    ctx = events.WsContext.from_event(event)
    bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$disconnect")
    removed = services.storage.remove_connection(ctx.connection_id)
    grace = services.settings.request_reconnect_grace_seconds
    requests = services.requests.for_connection(ctx.connection_id)
    if grace > 0:
        # They keep running; a reconnect's status takes them over (docs/protocol.md 6).
        until = services.now() + grace
        detached = [rid for rid in requests
                    if services.requests.detach(rid, ctx.connection_id, until)]
        if detached:
            logger.info("requests detached by disconnect", extra={"requests": detached})
    else:
        cancelled = [rid for rid in requests if services.requests.cancel(rid)[0]]
        if cancelled:
            logger.info("requests cancelled by disconnect", extra={"requests": cancelled})
    if removed is None:
        logger.info("disconnect of an unknown connection")
        return {"statusCode": 200}
    duration = max(0.0, services.now() - removed.connected_at_ms / 1000)
    add_keys(user_id=removed.user_id, tenant_id=removed.tenant_id)
    logger.info("connection closed", extra={
        "duration_seconds": round(duration, 3),
        "disconnect_status": event.get("requestContext", {}).get("disconnectStatusCode"),
    })
    count("ConnectionDisconnected")
    count("ConnectionDuration", duration, Unit.Seconds)
    flush_metrics()
    return {"statusCode": 200}
