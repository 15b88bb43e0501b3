"""Streamer: a real-time WebSocket backend as one Chalice app.

A switchboard: each handler makes one call into ``chalicelib``. Importing this
module touches no AWS service and reads no environment; see chalicelib/runtime.py.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, WebsocketEvent

from chalicelib import runtime

# configure_logs=False: logs go through the Powertools JSON logger, whose
# logger name ("streamer") Chalice would otherwise also print in its own format.
app = Chalice(app_name="streamer", configure_logs=False)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> dict[str, Any]:
    return runtime.streamer().connect(event.to_dict())


@app.on_ws_message()
def message(event: WebsocketEvent) -> dict[str, Any]:
    return runtime.streamer().message(event.to_dict())


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> dict[str, Any]:
    return runtime.streamer().disconnect(event.to_dict())


@app.lambda_function(name="publish")
def publish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Backend push: ``{"tenant_id", "channel" or "user_id", "data"}``."""
    return runtime.streamer().push(event)
