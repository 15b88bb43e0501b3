"""The built-in actions of PROTOCOL.md section 2: ping, subscribe, unsubscribe, publish.

:func:`register` adds them to a table; chalicelib/dispatch.py says how actions work.
"""

from __future__ import annotations

from typing import Any

from chalicelib import continuity
from chalicelib.dispatch import ActionContext, ActionTable, Reply
from chalicelib.model import Position
from chalicelib.protocol import Frame, ack, pong


def register(table: ActionTable) -> None:
    table.add("ping", ping)
    table.add("subscribe", subscribe, permission="read")
    table.add("unsubscribe", unsubscribe)
    table.add("publish", publish, permission="write")


def ping(ctx: ActionContext, frame: Frame) -> Reply:
    return pong(frame.id)


def subscribe(ctx: ActionContext, frame: Frame) -> Reply:
    """Subscribe; with ``since``, first replay what was missed (docs/protocol.md 6)."""
    channel = frame.channel()
    since = frame.since()
    services, conn = ctx.services, ctx.connection
    # The row first: every message committed after the position read below then
    # reaches this connection live, and the replay covers the ones before.
    services.storage.subscribe(conn, channel, services.settings.max_subscriptions)
    if services.history is None:
        return ack(frame.id, "subscribe", channel=channel)
    fields: dict[str, Any] = {}
    if since is None:
        position = services.history.position(conn.tenant_id, channel)
    else:
        resumed = continuity.resume(services.history, conn.tenant_id, channel,
                                    Position(*since), services.settings.history_size)
        for payload in resumed.replay:
            services.send_raw(conn.connection_id, payload)
        position, fields["recovered"] = resumed.position, resumed.recovered
    return ack(frame.id, "subscribe", channel=channel, offset=position.offset,
               epoch=position.epoch, **fields)


def unsubscribe(ctx: ActionContext, frame: Frame) -> Reply:
    channel = frame.channel()
    ctx.services.storage.unsubscribe(ctx.connection, channel)
    return ack(frame.id, "unsubscribe", channel=channel)


def publish(ctx: ActionContext, frame: Frame) -> Reply:
    channel = frame.channel()
    data = frame.json_value("data")
    exclude_self = frame.flag("exclude_self")
    conn = ctx.connection
    message = ctx.services.prepare_message(conn.tenant_id, conn.user_id, channel, data)
    # Ack before fanning out: the publisher does not wait for delivery to others,
    # and PROTOCOL.md lets its own copy arrive before or after the ack.
    position = ({} if message.position is None
                else {"offset": message.position.offset, "epoch": message.position.epoch})
    ctx.reply(ack(frame.id, "publish", channel=channel, message_id=message.message_id,
                  **position))
    ctx.services.fan_out(message, exclude=conn.connection_id if exclude_self else None)
    return None
