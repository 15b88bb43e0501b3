"""The ``publish`` function: backend push, ``{"tenant_id", "channel"|"user_id", "data"}``.

Invoked by other services (SQS, SNS, EventBridge, a script) or through
:mod:`chalicelib.push`; a bad event raises :class:`~chalicelib.errors.BadRequest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import auth, protocol
from chalicelib.errors import BadRequest
from chalicelib.observability import bind
from chalicelib.services import Services


def handle(services: Services, event: Mapping[str, Any]) -> dict[str, Any]:
    bind(route="publish")
    tenant_id = event.get("tenant_id")
    if not isinstance(tenant_id, str) or not auth.valid_id(tenant_id) or "data" not in event:
        raise BadRequest("event needs tenant_id (an ID) and data")
    channel, user_id = event.get("channel"), event.get("user_id")
    if (channel is None) == (user_id is None):
        raise BadRequest("event needs exactly one of channel or user_id")
    if channel is not None:
        if not isinstance(channel, str) or not protocol.CHANNEL_PATTERN.fullmatch(channel):
            raise BadRequest("channel must be 1-128 characters of [A-Za-z0-9_.:-]")
        message = services.prepare_message(tenant_id, "system", channel, event["data"])
        services.fan_out(message)
        return {"message_id": message.message_id}
    if not isinstance(user_id, str) or not auth.valid_id(user_id):
        raise BadRequest("user_id must be an ID")
    report = services.send_to_user(tenant_id, user_id, event["data"])
    return {"delivered": report.delivered}
