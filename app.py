"""Streamer: a real-time WebSocket backend as one Chalice app.

A switchboard: each handler makes one call into ``chalicelib``. Importing this
module touches no AWS service; the one setting read here is the requests table's
stream ARN, which Chalice needs at import time (with a placeholder when unset, so
``chalice package`` and the tests import it bare). Everything else is read at the
first invocation; see chalicelib/runtime.py.
"""

from __future__ import annotations

import os
from typing import Any

from chalice.app import Chalice, DynamoDBEvent, WebsocketEvent

from chalicelib import runtime

# configure_logs=False: logs go through the Powertools JSON logger, whose
# logger name ("streamer") Chalice would otherwise also print in its own format.
app = Chalice(app_name="streamer", configure_logs=False)
# Chalice still gates packaging and deploying WebSocket handlers behind this flag.
app.experimental_feature_flags.update(["WEBSOCKETS"])

# The local stream poller matches this ARN to its table by the table name in it.
REQUESTS_STREAM_ARN = os.environ.get(
    "REQUESTS_STREAM_ARN",
    "arn:aws:dynamodb:us-east-1:000000000000:table/streamer_requests/stream/unset",
)


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


@app.lambda_function(name="fanout")
def fanout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A fan-out worker: delivers one large publish to a group of subscription shards."""
    return runtime.streamer().fan_out_worker(event, context)


@app.on_dynamodb_record(stream_arn=REQUESTS_STREAM_ARN, batch_size=10,
                        starting_position="TRIM_HORIZON")
def process(event: DynamoDBEvent) -> dict[str, Any]:
    """The processor: runs asynchronous requests announced on the requests stream."""
    return runtime.streamer().process(event.to_dict(), event.context)
