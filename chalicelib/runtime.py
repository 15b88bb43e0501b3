"""The process-wide :class:`Streamer`, built on first use from the environment.

``app.py`` imports this module only; settings are read and clients are built at the
first invocation, once, so importing the app needs no AWS and no environment (and
costs no boto3 import at cold start). Tests and the local stack may install their
own instance with :func:`configure`, or drop the cached one with :func:`reset`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.dispatch import ActionTable
    from chalicelib.interfaces import Invoke
    from chalicelib.service import Streamer
    from chalicelib.settings import Settings
    from chalicelib.tasks import TaskTable

_lock = threading.Lock()
_instance: Streamer | None = None


def streamer() -> Streamer:
    global _instance  # noqa: PLW0603  (the one cached instance, by design)
    with _lock:
        if _instance is None:
            _instance = build()
        return _instance


def build(env: Mapping[str, str] | None = None, *, actions: ActionTable | None = None,
          tasks: TaskTable | None = None) -> Streamer:
    """A Streamer wired to DynamoDB and the Management API from ``env``'s settings
    (the process environment by default, looked up now: chalice.test swaps
    ``os.environ`` for a copy during an invocation)."""
    import boto3
    from botocore.config import Config

    from chalicelib.fast_sender import FastSender
    from chalicelib.interfaces import Sender
    from chalicelib.management_api import ManagementApiSender
    from chalicelib.request_store import DynamoRequestStore
    from chalicelib.service import Streamer
    from chalicelib.settings import Settings
    from chalicelib.storage import DynamoStorage

    settings = Settings.from_env(os.environ if env is None else env)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=settings.dynamodb_endpoint_url,
        region_name=settings.region,
        config=Config(max_pool_connections=settings.fanout_concurrency + 4,
                      retries={"mode": "standard", "max_attempts": 4}),
    )
    storage = DynamoStorage(dynamodb, settings.table_prefix, settings.subscription_shards)

    def sender_for(endpoint: str) -> Sender:
        # SENDER=boto3 is the rollback switch, and the choice behind an HTTPS proxy
        # (FastSender does not read HTTPS_PROXY).
        if settings.sender == "boto3":
            return ManagementApiSender.for_endpoint(
                endpoint, settings.region, settings.fanout_concurrency)
        return FastSender(endpoint, settings.region, pool_size=settings.fanout_concurrency)

    return Streamer(
        settings,
        storage,
        sender_for,
        requests=DynamoRequestStore(dynamodb, settings.table_prefix),
        invoke=_lambda_invoker(settings) if settings.fanout_function_name else None,
        idempotency=_idempotency_store(settings, dynamodb),
        actions=actions, tasks=tasks,
    )


def _lambda_invoker(settings: Settings) -> Invoke:
    """Asynchronous Lambda invocations (``InvocationType=Event``) for fan-out workers."""
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.errors import InvokeError

    client = boto3.client("lambda", endpoint_url=settings.lambda_endpoint_url,
                          region_name=settings.region)

    def invoke(function_name: str, payload: dict[str, Any]) -> None:
        try:
            client.invoke(FunctionName=function_name, InvocationType="Event",
                          Payload=json.dumps(payload).encode())
        except (BotoCoreError, ClientError) as exc:
            raise InvokeError(f"invoking {function_name} failed: {exc}") from exc

    return invoke


def _idempotency_store(settings: Settings, dynamodb: Any) -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from chalicelib.tables import IDEMPOTENCY

    return DynamoDBPersistenceLayer(
        table_name=IDEMPOTENCY.physical_name(settings.table_prefix), boto3_client=dynamodb)


def configure(instance: Streamer | None) -> None:
    """Install ``instance`` (or, with None, forget the cached one), closing the one
    it replaces."""
    global _instance
    with _lock:
        previous, _instance = _instance, instance
    if previous is not None and previous is not instance:
        previous.close()


def reset() -> None:
    configure(None)
