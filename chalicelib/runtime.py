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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.dispatch import ActionTable
    from chalicelib.interfaces import History, Invoke, RequestStore, Sender, Storage
    from chalicelib.services import SenderFactory
    from chalicelib.settings import Settings
    from chalicelib.streamer import Streamer
    from chalicelib.tasks import TaskTable

_lock = threading.Lock()
_instance: Streamer | None = None


def streamer() -> Streamer:
    global _instance  # noqa: PLW0603  (the one cached instance, by design)
    with _lock:
        if _instance is None:
            _instance = build()
        return _instance


def build(env: Mapping[str, str] | None = None, *, settings: Settings | None = None,
          dynamodb: Any = None, storage: Storage | None = None,
          requests: RequestStore | None = None, history: History | None = None,
          sender_factory: SenderFactory | None = None,
          invoke: Invoke | None = None, idempotency: Any = None,
          actions: ActionTable | None = None, tasks: TaskTable | None = None,
          clock: Callable[[], float] | None = None) -> Streamer:
    """The one place the app is assembled. Every collaborator may be given; what is not
    is built from ``settings`` (read from ``env``, the process environment by default,
    looked up now: chalice.test swaps ``os.environ`` for a copy during an invocation):

    - ``dynamodb``: a botocore DynamoDB client, for the default ``storage``,
      ``requests`` and ``idempotency`` (built only if one of them needs it);
    - ``history``: channel offsets and history (DynamoHistory; unused with
      HISTORY_SIZE=0);
    - ``sender_factory``: endpoint -> Sender (FastSender, or boto3's with SENDER=boto3);
    - ``invoke``: Lambda's asynchronous Invoke for fan-out workers, when
      FANOUT_FUNCTION_NAME is set;
    - ``idempotency``: Powertools' persistence layer for the workers' shards (the
      ``idempotency`` table);
    - ``actions``/``tasks``: chalicelib/registry.py's defaults (built-ins, custom.py).
    """
    import time

    from chalicelib.registry import default_actions, default_tasks
    from chalicelib.services import Services
    from chalicelib.settings import Settings
    from chalicelib.streamer import Streamer

    if settings is None:
        settings = Settings.from_env(os.environ if env is None else env)
    config = settings
    # One botocore session for every client (no boto3 import: its s3transfer costs a
    # cold start tens of ms), whose credentials the sender reuses.
    session = _session()

    def db() -> Any:
        nonlocal dynamodb
        if dynamodb is None:
            dynamodb = _dynamodb_client(config, session)
        return dynamodb

    if storage is None:
        from chalicelib.storage import DynamoStorage

        storage = DynamoStorage(db(), settings.table_prefix, settings.subscription_shards)
    if requests is None:
        from chalicelib.request_store import DynamoRequestStore

        requests = DynamoRequestStore(db(), settings.table_prefix)
    if history is None and settings.history_size > 0:
        from chalicelib.history_store import DynamoHistory

        history = DynamoHistory(db(), settings.table_prefix, size=settings.history_size,
                                ttl_seconds=settings.history_ttl_seconds,
                                state_ttl_seconds=settings.channel_state_ttl_seconds,
                                **({"clock": clock} if clock is not None else {}))
    if idempotency is None:
        idempotency = _LazyIdempotencyStore(settings, db)
    if invoke is None and settings.fanout_function_name:
        invoke = _lambda_invoker(settings, session)
    services = Services(
        settings, storage, requests,
        sender_factory if sender_factory is not None
        else default_sender_factory(settings, session),
        actions=actions if actions is not None else default_actions(),
        tasks=tasks if tasks is not None else default_tasks(),
        history=history, invoke=invoke, idempotency=idempotency,
        clock=clock if clock is not None else time.time,
    )
    return Streamer(services)


def default_sender_factory(settings: Settings, session: Any = None) -> SenderFactory:
    """The @connections sender the settings choose: FastSender, or with SENDER=boto3
    boto3's (the rollback switch, and the choice behind an HTTPS proxy: FastSender does
    not read HTTPS_PROXY). FastSender takes ``session``'s credentials (resolved once,
    for the DynamoDB client already), not a second session's."""
    from chalicelib.fast_sender import FastSender
    from chalicelib.management_api import ManagementApiSender

    def sender_for(endpoint: str) -> Sender:
        if settings.sender == "boto3":
            return ManagementApiSender.for_endpoint(
                endpoint, settings.region, settings.fanout_concurrency)
        credentials = None if session is None else session.get_credentials()
        # None makes FastSender resolve its own (or raise its ConfigError).
        return FastSender(endpoint, settings.region, pool_size=settings.fanout_concurrency,
                          credentials=credentials)

    return sender_for


def _session() -> Any:
    """The botocore session clients are made from: boto3's default session when the
    process set one up (bench/dynamodb_cost.py hooks its events), else a new one."""
    boto3 = sys.modules.get("boto3")
    if boto3 is not None and boto3.DEFAULT_SESSION is not None:
        return boto3.DEFAULT_SESSION._session
    import botocore.session

    return botocore.session.get_session()


def _dynamodb_client(settings: Settings, session: Any) -> Any:
    from botocore.config import Config

    return session.create_client(
        "dynamodb",
        endpoint_url=settings.dynamodb_endpoint_url,
        region_name=settings.region,
        config=Config(max_pool_connections=settings.fanout_concurrency + 4,
                      retries={"mode": "standard", "max_attempts": 4}),
    )


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
    """Powertools' DynamoDBPersistenceLayer, built at first use: only fan-out workers
    use it, and a process that never runs one (or runs on fakes) needs no client for
    it. Powertools only calls its methods and reads its attributes, so delegating
    attribute access is all a stand-in needs."""

    def __init__(self, settings: Settings, dynamodb: Callable[[], Any]) -> None:
        self._settings = settings
        self._dynamodb = dynamodb
        self._lock = threading.Lock()
        self._store: Any = None

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._store is None:
                self._store = _idempotency_store(self._settings, self._dynamodb())
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
