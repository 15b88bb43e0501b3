"""Chalice's WebSocket echo tutorial, as written there: replies through websocket_api."""

from __future__ import annotations

import boto3
from chalice.app import Chalice, WebsocketDisconnectedError, WebsocketEvent

app = Chalice(app_name="echo")
app.websocket_api.session = boto3.session.Session()
app.experimental_feature_flags.update(["WEBSOCKETS"])
GONE: list[str] = []


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    try:
        app.websocket_api.send(connection_id=event.connection_id, message=event.body)
    except WebsocketDisconnectedError as exc:
        GONE.append(exc.connection_id)
