"""Backend push from any Python Lambda (or script) with Streamer's configuration.

    from chalicelib.push import publish, send_to_user
    publish("acme", "prices", {"EURUSD": 1.08})
    send_to_user("acme", "u42", {"notice": "report ready"})

Both use the process-wide Streamer (settings from the environment, including
``WS_ENDPOINT_URL``, which a function outside the WebSocket API needs).
"""

from __future__ import annotations

from typing import Any

from chalicelib import runtime


def publish(tenant_id: str, channel: str, data: Any) -> str:
    """Publish ``data`` to a tenant's channel; returns the message id."""
    result = runtime.streamer().push({"tenant_id": tenant_id, "channel": channel, "data": data})
    return str(result["message_id"])


def send_to_user(tenant_id: str, user_id: str, data: Any) -> int:
    """Send ``data`` to every connection of one user; returns how many got it."""
    result = runtime.streamer().push({"tenant_id": tenant_id, "user_id": user_id, "data": data})
    return int(result["delivered"])
