"""An app that picks a WebSocket subprotocol in $connect, as API Gateway requires:
by answering the Sec-WebSocket-Protocol header (here, the first one it knows)."""

from __future__ import annotations

from typing import Any

import boto3
from chalice.app import Chalice, WebsocketEvent

app = Chalice(app_name="subprotocol")
app.websocket_api.session = boto3.session.Session()
app.experimental_feature_flags.update(["WEBSOCKETS"])
KNOWN = ("chat.v2", "chat.v1")


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> dict[str, Any]:
    headers = event.to_dict().get("headers") or {}
    offered = next((v for k, v in headers.items() if k.lower() == "sec-websocket-protocol"), "")
    chosen = next((p.strip() for p in offered.split(",") if p.strip() in KNOWN), None)
    if chosen is None:
        return {"statusCode": 400}
    return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": chosen}}


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    app.websocket_api.send(event.connection_id, event.body)
