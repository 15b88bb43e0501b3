"""``LocalStack`` in-process: settings checked first, and the stream poller's time budget."""

from __future__ import annotations

import asyncio
import queue
import uuid
from typing import Any

import boto3
import pytest
from chalice.app import Chalice

from chalicelib.errors import ConfigError
from local.stack import LocalStack, StackOptions
from streamer_local.settings import GatewaySettings

# Matched by the poller to ``<table_prefix>requests`` (the table name ends in it).
STREAM_ARN = ("arn:aws:dynamodb:us-east-1:000000000000:table/streamer_requests/stream/"
              "2024-01-01T00:00:00.000")

remaining_ms: queue.Queue[int] = queue.Queue()
timeout_app = Chalice(app_name="stacktimeout", configure_logs=False)


@timeout_app.on_dynamodb_record(stream_arn=STREAM_ARN, starting_position="TRIM_HORIZON")
def record_budget(event: Any) -> None:
    remaining_ms.put(event.context.get_remaining_time_in_millis())


def test_start_refuses_a_secret_the_app_would_refuse() -> None:
    """``start`` raises the app's ConfigError before it starts a DynamoDB server."""
    stack = LocalStack(StackOptions(port=0, secret="short"), env={})

    async def run() -> None:
        try:
            with pytest.raises(ConfigError, match="JWT_SECRET"):
                await stack.start()
            assert stack.dynamodb is None and stack.gateway is None and stack.poller is None
        finally:
            await stack.stop()

    asyncio.run(run())


def test_stream_handler_budget_follows_lambda_timeout(
    dynamodb_endpoint: str, table_prefix: str
) -> None:
    """A stream handler's remaining time starts at the gateway's ``lambda_timeout``."""
    options = StackOptions(
        port=0, app_spec=f"{__name__}:timeout_app", table_prefix=table_prefix,
        dynamodb_endpoint_url=dynamodb_endpoint, settings=GatewaySettings(lambda_timeout=7.0),
    )
    env: dict[str, str] = {}

    async def run() -> int:
        stack = LocalStack(options, env=env)
        try:
            await stack.start()
            client: Any = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
            try:
                await asyncio.to_thread(
                    client.put_item, TableName=f"{table_prefix}requests",
                    Item={"request_id": {"S": uuid.uuid4().hex},
                          "connection_id": {"S": "c1"}},
                )
            finally:
                client.close()
            return await asyncio.to_thread(remaining_ms.get, timeout=15)
        finally:
            await stack.stop()

    remaining = asyncio.run(run())
    assert 5_000 < remaining <= 7_000
    assert env["LAMBDA_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["FANOUT_FUNCTION_NAME"] == "fanout"
