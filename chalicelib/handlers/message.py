"""``$default``: parse the frame, route it on ``action`` and reply (PROTOCOL.md 2, 3).

Every refusal is an ``error`` frame and the connection stays usable; an outage of
DynamoDB or @connections answers ``internal`` without details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import events, protocol
from chalicelib.dispatch import ActionContext, run
from chalicelib.errors import (
    BadRequest,
    FrameError,
    SendError,
    StorageError,
    TokenExpired,
    Unauthorized,
)
from chalicelib.observability import add_keys, bind, logger
from chalicelib.services import Services


def handle(services: Services, event: Mapping[str, Any]) -> dict[str, Any]:
    ctx = events.WsContext.from_event(event)
    bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$default")
    services.remember_endpoint(ctx)
    frame: protocol.Frame | None = None
    try:
        raw = events.body(event)
        if isinstance(raw, bytes):
            raise BadRequest("binary frames are not supported; send JSON text")
        frame = protocol.parse_frame(raw)
        action = services.actions.get(frame)
        connection = services.storage.get_connection(ctx.connection_id)
        if connection is None:
            raise Unauthorized("connection is not registered; reconnect", frame.id)
        add_keys(user_id=connection.user_id, tenant_id=connection.tenant_id,
                 action=frame.action)
        now = services.now()
        if connection.token_expires_at <= now:
            raise TokenExpired("token expired; reconnect with a new token", frame.id)
        reply = run(action, ActionContext(connection, services, ctx.request_id), frame)
        if (connection.token_expires_at - now <= services.settings.token_expiry_warning_seconds
                and frame.action != "refresh"):
            services.reply(ctx.connection_id,
                           protocol.token_expiring(connection.token_expires_at, now))
    except FrameError as exc:
        logger.info("frame refused", extra={"code": exc.code, "detail": exc.message})
        services.reply(ctx.connection_id, protocol.error(exc.code, exc.message, exc.frame_id))
        if isinstance(exc, TokenExpired):
            # docs/protocol.md 6: the typed error, then the connection is closed.
            try:
                services.disconnect(ctx.connection_id)
            except SendError as error:
                logger.warning("expired connection not closed",
                               extra={"error": type(error).__name__})
        return {"statusCode": 200}
    except (StorageError, SendError) as exc:
        logger.exception("action failed", extra={"error": type(exc).__name__})
        services.reply(ctx.connection_id, protocol.error(
            "internal", "internal error", frame.id if frame else None))
        return {"statusCode": 200}
    if reply is not None:
        services.reply(ctx.connection_id, reply)
    return {"statusCode": 200}
