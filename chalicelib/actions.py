"""The built-in actions of PROTOCOL.md section 2: ping, subscribe, unsubscribe, publish.

:func:`register` adds them to a table; chalicelib/dispatch.py says how actions work.
"""

from __future__ import annotations

from chalicelib.dispatch import ActionContext, ActionTable, Reply
from chalicelib.protocol import Frame, ack, pong


def register(table: ActionTable) -> None:
    table.add("ping", ping)
    table.add("subscribe", subscribe, permission="read")
    table.add("unsubscribe", unsubscribe)
    table.add("publish", publish, permission="write")


def ping(ctx: ActionContext, frame: Frame) -> Reply:
    return pong(frame.id)


def subscribe(ctx: ActionContext, frame: Frame) -> Reply:
    channel = frame.channel()
    ctx.services.storage.subscribe(
        ctx.connection, channel, ctx.services.settings.max_subscriptions
    )
    return ack(frame.id, "subscribe", channel=channel)


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
    ctx.reply(ack(frame.id, "publish", channel=channel, message_id=message.message_id))
    ctx.services.fan_out(message, exclude=conn.connection_id if exclude_self else None)
    return None
