"""The built-in actions of PROTOCOL.md section 2: ping, subscribe, unsubscribe, publish.

Each is one function registered in :data:`chalicelib.dispatch.actions`; see that
module for how to add another.
"""

from __future__ import annotations

from chalicelib.dispatch import ActionContext, Reply, actions
from chalicelib.protocol import Frame, ack, pong


@actions.action("ping")
def ping(ctx: ActionContext, frame: Frame) -> Reply:
    return pong(frame.id)


@actions.action("subscribe", permission="read")
def subscribe(ctx: ActionContext, frame: Frame) -> Reply:
    channel = frame.channel()
    ctx.services.storage.subscribe(
        ctx.connection, channel, ctx.services.settings.max_subscriptions
    )
    return ack(frame.id, "subscribe", channel=channel)


@actions.action("unsubscribe")
def unsubscribe(ctx: ActionContext, frame: Frame) -> Reply:
    channel = frame.channel()
    ctx.services.storage.unsubscribe(ctx.connection, channel)
    return ack(frame.id, "unsubscribe", channel=channel)


@actions.action("publish", permission="write")
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
