"""A chat room in the shape of Chalice's WebSocket chat tutorial: its own chalicelib/,
a DynamoDB table from its resources.json, replies through app.websocket_api."""

import os

import boto3
from chalice import Chalice, WebsocketDisconnectedError
from chalice.app import WebsocketEvent
from chalicelib.members import Members

app = Chalice(app_name="chat")
app.websocket_api.session = boto3.session.Session()
app.experimental_feature_flags.update(["WEBSOCKETS"])
_members = None


def members() -> Members:
    global _members  # noqa: PLW0603  (the tutorial's lazily built client)
    if _members is None:
        _members = Members(boto3.client("dynamodb"), os.environ["MEMBERS_TABLE"])
    return _members


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> None:
    members().join(event.connection_id)


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    for other in members().everyone():
        try:
            app.websocket_api.send(other, f"{event.connection_id[:4]}: {event.body}")
        except WebsocketDisconnectedError:
            members().leave(other)


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    members().leave(event.connection_id)
