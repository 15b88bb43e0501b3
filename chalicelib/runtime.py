"""The process-wide :class:`Streamer`, built on first use from the environment.

``app.py`` imports this module only; settings are read and clients are built at the
first invocation, once, so importing the app needs no AWS and no environment (and
costs no boto3 import at cold start). Tests and the local stack may install their
own instance with :func:`configure`, or drop the cached one with :func:`reset`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.parallel import Invoke
    from chalicelib.service import Streamer
    from chalicelib.settings import Settings

_lock = threading.Lock()
_instance: Streamer | None = None


def streamer() -> Streamer:
    global _instance  # noqa: PLW0603  (the one cached instance, by design)
    with _lock:
        if _instance is None:
            _instance = build()
        return _instance


def build(env: Mapping[str, str] | None = None) -> Streamer:
    """A Streamer wired to DynamoDB and the Management API from ``env``'s settings
    (the process environment by default, looked up now: chalice.test swaps
    ``os.environ`` for a copy during an invocation).

    Only what the first call needs is built here: the DynamoDB client, on one botocore
    session (no boto3 import: its s3transfer costs a cold start tens of ms) whose
    credentials the sender reuses. The Lambda client for fan-out workers and the
    idempotency store, which only large publishes and the workers use, are built when
    first used (bench/cold_start.py measures the difference).
    """
    from botocore.config import Config

    from chalicelib.fast_sender import FastSender
    from chalicelib.request_store import DynamoRequestStore
    from chalicelib.sending import ManagementApiSender, Sender
    from chalicelib.service import Streamer
    from chalicelib.settings import Settings
    from chalicelib.storage import DynamoStorage

    settings = Settings.from_env(os.environ if env is None else env)
    session = _session()
    dynamodb = session.create_client(
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
        # The session's credentials (resolved once, for the DynamoDB client already),
        # not a second session's; None makes FastSender raise its ConfigError.
        return FastSender(endpoint, settings.region, pool_size=settings.fanout_concurrency,
                          credentials=session.get_credentials())

    return Streamer(
        settings,
        storage,
        sender_for,
        requests=DynamoRequestStore(dynamodb, settings.table_prefix),
        invoke=_lambda_invoker(settings, session) if settings.fanout_function_name else None,
        idempotency=_LazyIdempotencyStore(settings, dynamodb),
    )


def _session() -> Any:
    """The botocore session clients are made from: boto3's default session when the
    process set one up (bench/dynamodb_cost.py hooks its events), else a new one."""
    boto3 = sys.modules.get("boto3")
    if boto3 is not None and boto3.DEFAULT_SESSION is not None:
        return boto3.DEFAULT_SESSION._session
    import botocore.session

    return botocore.session.get_session()


def _lambda_invoker(settings: Settings, session: Any) -> Invoke:
    """Asynchronous Lambda invocations (``InvocationType=Event``) for fan-out workers;
    the client (another service model to load) is built at the first invocation."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.errors import InvokeError

    lock = threading.Lock()
    clients: list[Any] = []

    def invoke(function_name: str, payload: dict[str, Any]) -> None:
        try:
            with lock:
                if not clients:
                    clients.append(session.create_client(
                        "lambda", endpoint_url=settings.lambda_endpoint_url,
                        region_name=settings.region))
            clients[0].invoke(FunctionName=function_name, InvocationType="Event",
                              Payload=json.dumps(payload).encode())
        except (BotoCoreError, ClientError) as exc:
            raise InvokeError(f"invoking {function_name} failed: {exc}") from exc

    return invoke


class _LazyIdempotencyStore:
    """Powertools' DynamoDBPersistenceLayer, built at first use (only fan-out workers
    use it, and its module imports boto3). Powertools only calls its methods and reads
    its attributes, so delegating attribute access is all a stand-in needs."""

    def __init__(self, settings: Settings, dynamodb: Any) -> None:
        self._settings = settings
        self._dynamodb = dynamodb
        self._lock = threading.Lock()
        self._store: Any = None

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._store is None:
                self._store = _idempotency_store(self._settings, self._dynamodb)
        return getattr(self._store, name)


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
