"""An app with no $connect handler: every handshake is accepted, as on API Gateway."""

from __future__ import annotations

import boto3
from chalice.app import Chalice, WebsocketEvent

app = Chalice(app_name="noconnect")
app.websocket_api.session = boto3.session.Session()
app.experimental_feature_flags.update(["WEBSOCKETS"])


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    app.websocket_api.send(event.connection_id, f"got {event.body}")
