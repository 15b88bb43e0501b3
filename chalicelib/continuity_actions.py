"""The continuity actions of docs/protocol.md section 6: ``history`` and ``refresh``
(``subscribe`` with ``since`` is in chalicelib/actions.py, over chalicelib/continuity.py).

:func:`register` adds them to a table.
"""

from __future__ import annotations

from chalicelib import auth, protocol
from chalicelib.dispatch import ActionContext, ActionTable, Reply
from chalicelib.errors import AuthError, BadRequest, Forbidden, Unauthorized
from chalicelib.observability import logger
from chalicelib.protocol import Frame, ack

MAX_TOKEN_CHARS = 8192  # what the gateway's handshake admits, so any connect token fits
DEFAULT_HISTORY_LIMIT = 10


def register(table: ActionTable) -> None:
    table.add("history", history, permission="read")
    table.add("refresh", refresh)


def history(ctx: ActionContext, frame: Frame) -> Reply:
    channel = frame.channel()
    store, size = ctx.services.history, ctx.services.settings.history_size
    if store is None:
        raise BadRequest("history is off on this deployment (HISTORY_SIZE=0)")
    limit = frame.integer("limit", 1, size, min(DEFAULT_HISTORY_LIMIT, size))
    tenant = ctx.connection.tenant_id
    position = store.position(tenant, channel)
    rows = store.read(tenant, channel, position.epoch, max(0, position.offset - limit),
                      position.offset)
    ctx.services.send_raw(ctx.connection.connection_id, protocol.history(
        frame.id, channel, position.offset, position.epoch, [p for _, p in rows]))
    return None


def refresh(ctx: ActionContext, frame: Frame) -> Reply:
    token = frame.string("token", max_chars=MAX_TOKEN_CHARS)
    try:
        identity = auth.verify_token(ctx.services.settings, token)
    except AuthError as exc:
        raise Unauthorized(f"refresh refused: {exc.reason}") from None
    conn = ctx.connection
    if identity.user_id != conn.user_id or identity.tenant_id != conn.tenant_id:
        raise Forbidden("a refresh token must be for the connection's user and tenant")
    updated = ctx.services.storage.refresh(conn, identity.expires_at, identity.permissions)
    if updated is None:
        raise Unauthorized("connection is not registered; reconnect")
    logger.info("token refreshed", extra={"token_expires_at": identity.expires_at})
    return ack(frame.id, "refresh", expires_at=identity.expires_at)
