"""The Streamer service: what each Lambda entry point does, over injected adapters.

:class:`Streamer` owns the settings, the :class:`Storage`, and a sender factory (one
:class:`Fanout` per @connections endpoint). ``app.py`` calls exactly one method of it
per handler. It implements :class:`chalicelib.dispatch.Services` for the actions.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib import auth, events, protocol
from chalicelib.dispatch import ActionContext, ActionTable, run
from chalicelib.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    FrameError,
    SendError,
    StorageError,
    TooLarge,
    Unauthorized,
)
from chalicelib.interfaces import Invoke, RequestStore, Sender, Storage
from chalicelib.model import Connection, Outgoing
from chalicelib.observability import Unit, add_keys, bind, count, flush_metrics, logger
from chalicelib.parallel import Job, ParallelFanout
from chalicelib.processor import Processor
from chalicelib.registry import default_actions, default_tasks
from chalicelib.sending import DeliveryReport, Fanout
from chalicelib.settings import Settings
from chalicelib.tasks import TaskTable

SenderFactory = Callable[[str], Sender]
OK = {"statusCode": 200}


class Streamer:
    def __init__(self, settings: Settings, storage: Storage, sender_factory: SenderFactory,
                 *, requests: RequestStore, invoke: Invoke | None = None,
                 idempotency: Any = None, clock: Callable[[], float] = time.time,
                 actions: ActionTable | None = None,
                 tasks: TaskTable | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.requests = requests
        self.parallel = ParallelFanout(
            storage, threshold=settings.fanout_worker_threshold,
            shards_per_worker=settings.fanout_shards_per_worker,
            function_name=settings.fanout_function_name, invoke=invoke,
            idempotency=idempotency,
        )
        self._processor: Processor | None = None
        self._sender_factory = sender_factory
        self._fanouts: dict[str, Fanout] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._actions = actions if actions is not None else default_actions()
        self.tasks = tasks if tasks is not None else default_tasks()
        self._endpoint: str | None = settings.ws_endpoint_url

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        """Release every sender's connections and threads (tests, local restarts)."""
        with self._lock:
            fanouts, self._fanouts = list(self._fanouts.values()), {}
        for fanout in fanouts:
            fanout.close()

    # -- $connect ------------------------------------------------------------

    def connect(self, event: Mapping[str, Any]) -> dict[str, Any]:
        ctx = events.WsContext.from_event(event)
        bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$connect")
        try:
            identity = auth.authenticate(
                self.settings, events.query_values(event), events.header_values(event)
            )
        except AuthError as exc:
            logger.info("handshake refused", extra={"status": exc.status, "reason": exc.reason})
            count("ConnectionRefused")
            flush_metrics()
            return {"statusCode": exc.status}
        connection = Connection.open(ctx.connection_id, identity, self.now(),
                                     self.settings.connection_ttl_seconds)
        self.storage.put_connection(connection)
        add_keys(user_id=identity.user_id, tenant_id=identity.tenant_id)
        logger.info("connection established")
        count("ConnectionEstablished")
        flush_metrics()
        return dict(OK)

    # -- $disconnect ---------------------------------------------------------

    def disconnect(self, event: Mapping[str, Any]) -> dict[str, Any]:
        ctx = events.WsContext.from_event(event)
        bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$disconnect")
        removed = self.storage.remove_connection(ctx.connection_id)
        cancelled = [rid for rid in self.requests.for_connection(ctx.connection_id)
                     if self.requests.cancel(rid)[0]]
        if cancelled:
            logger.info("requests cancelled by disconnect", extra={"requests": cancelled})
        if removed is None:
            logger.info("disconnect of an unknown connection")
            return dict(OK)
        duration = max(0.0, self.now() - removed.connected_at_ms / 1000)
        add_keys(user_id=removed.user_id, tenant_id=removed.tenant_id)
        logger.info("connection closed", extra={
            "duration_seconds": round(duration, 3),
            "disconnect_status": event.get("requestContext", {}).get("disconnectStatusCode"),
        })
        count("ConnectionDisconnected")
        count("ConnectionDuration", duration, Unit.Seconds)
        flush_metrics()
        return dict(OK)

    # -- $default ------------------------------------------------------------

    def message(self, event: Mapping[str, Any]) -> dict[str, Any]:
        ctx = events.WsContext.from_event(event)
        bind(request_id=ctx.request_id, connection_id=ctx.connection_id, route="$default")
        self._remember_endpoint(ctx)
        frame: protocol.Frame | None = None
        try:
            raw = events.body(event)
            if isinstance(raw, bytes):
                raise BadRequest("binary frames are not supported; send JSON text")
            frame = protocol.parse_frame(raw)
            action = self._actions.get(frame)
            connection = self.storage.get_connection(ctx.connection_id)
            if connection is None:
                raise Unauthorized("connection is not registered; reconnect", frame.id)
            add_keys(user_id=connection.user_id, tenant_id=connection.tenant_id,
                               action=frame.action)
            if frame.action != "ping" and connection.token_expires_at <= self.now():
                raise Unauthorized("token expired; reconnect with a new token", frame.id)
            reply = run(action, ActionContext(connection, self, ctx.request_id), frame)
        except FrameError as exc:
            logger.info("frame refused", extra={"code": exc.code, "detail": exc.message})
            self.reply(ctx.connection_id, protocol.error(exc.code, exc.message, exc.frame_id))
            return dict(OK)
        except (StorageError, SendError) as exc:
            logger.exception("action failed", extra={"error": type(exc).__name__})
            self.reply(ctx.connection_id, protocol.error(
                "internal", "internal error", frame.id if frame else None))
            return dict(OK)
        if reply is not None:
            self.reply(ctx.connection_id, reply)
        return dict(OK)

    # -- the processor (DynamoDB stream of the requests table) ---------------

    def process(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        bind(route="processor")
        with self._lock:
            if self._processor is None:
                self._processor = Processor(
                    self.requests, self.fanout_for,
                    result_ttl_seconds=self.settings.result_ttl_seconds,
                    safety_seconds=self.settings.processor_safety_seconds, tasks=self.tasks,
                    clock=self._clock,
                    on_final=self.storage.release_request,
                )
        return self._processor.handle_batch(event, context)

    # -- Services: replies, messages, fan-out --------------------------------

    def endpoint(self) -> str:
        if self._endpoint is None:
            raise ConfigError("WS_ENDPOINT_URL is not set and no WebSocket event gave one")
        return self._endpoint

    def reply(self, connection_id: str, frame: dict[str, Any]) -> None:
        report = DeliveryReport()
        self._fanout().send(connection_id, protocol.encode(frame), report)
        if report.failed:
            logger.warning("reply not delivered", extra={"to": connection_id})

    def prepare_message(self, tenant_id: str, user_id: str, channel: str,
                        data: Any) -> Outgoing:
        message_id = uuid.uuid4().hex
        frame = protocol.message(channel, message_id, data, user_id, int(self.now() * 1000))
        try:
            payload = protocol.encode(frame)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"data is not JSON-serialisable: {exc}") from None
        except RecursionError:
            # Client frames are bounded at parse time; this is a backend push's data.
            raise BadRequest("data nests too deeply to be sent") from None
        if len(payload) > protocol.MAX_MESSAGE_BYTES:
            raise TooLarge(f"message exceeds {protocol.MAX_MESSAGE_BYTES} bytes")
        return Outgoing(tenant_id, channel, message_id, payload)

    def fan_out(self, message: Outgoing, exclude: str | None = None) -> None:
        endpoint = self.endpoint()
        outcome = self.parallel.publish(message, exclude, endpoint, self.fanout_for(endpoint))
        logger.info("published", extra={
            "channel": message.channel, "message_id": message.message_id,
            **outcome.as_log(),
        })

    def fan_out_worker(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """The ``fanout`` Lambda function: deliver one job's shards (see parallel.py)."""
        bind(route="fanout")
        job = Job.from_event(dict(event))
        counts = self.parallel.work(job, self.fanout_for(job.endpoint), context)
        logger.info("fan-out shards delivered", extra={
            "channel": job.channel, "message_id": job.message_id,
            "shards": list(job.shards), **counts})
        return counts

    # -- backend push --------------------------------------------------------

    def push(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The ``publish`` Lambda function: ``{"tenant_id", "channel"|"user_id", "data"}``."""
        bind(route="publish")
        tenant_id = event.get("tenant_id")
        if not auth.valid_id(tenant_id) or "data" not in event:
            raise BadRequest("event needs tenant_id (an ID) and data")
        assert isinstance(tenant_id, str)
        channel, user_id = event.get("channel"), event.get("user_id")
        if (channel is None) == (user_id is None):
            raise BadRequest("event needs exactly one of channel or user_id")
        if channel is not None:
            if not isinstance(channel, str) or not protocol.CHANNEL_PATTERN.fullmatch(channel):
                raise BadRequest("channel must be 1-128 characters of [A-Za-z0-9_.:-]")
            message = self.prepare_message(tenant_id, "system", channel, event["data"])
            self.fan_out(message)
            return {"message_id": message.message_id}
        if not auth.valid_id(user_id):
            raise BadRequest("user_id must be an ID")
        assert isinstance(user_id, str)
        report = self.send_to_user(tenant_id, user_id, event["data"])
        return {"delivered": report.delivered}

    def send_to_user(self, tenant_id: str, user_id: str, data: Any) -> DeliveryReport:
        """Send ``data`` (as a ``message`` frame with no channel) to every connection
        of one user in one tenant."""
        connections = self.storage.user_connections(tenant_id, user_id)
        frame = protocol.message(None, uuid.uuid4().hex, data, "system",
                                 int(self.now() * 1000))
        payload = protocol.encode(frame)
        if len(payload) > protocol.MAX_MESSAGE_BYTES:
            raise TooLarge(f"message exceeds {protocol.MAX_MESSAGE_BYTES} bytes")
        report = self._fanout().deliver(connections, payload)
        logger.info("sent to user", extra={"user": user_id, **report.as_log()})
        return report

    # -- plumbing ------------------------------------------------------------

    def _remember_endpoint(self, ctx: events.WsContext) -> None:
        if self._endpoint is None and ctx.domain_name:
            self._endpoint = ctx.endpoint_url()

    def _fanout(self) -> Fanout:
        return self.fanout_for(self.endpoint())

    def fanout_for(self, endpoint: str) -> Fanout:
        # Locked: the local gateway runs invocations in threads, and two Fanouts for
        # one endpoint would leave one's connections unclosed.
        with self._lock:
            fanout = self._fanouts.get(endpoint)
            if fanout is None:
                fanout = Fanout(
                    self._sender_factory(endpoint),
                    concurrency=self.settings.fanout_concurrency,
                    max_attempts=self.settings.send_max_attempts,
                    backoff_seconds=self.settings.send_backoff_seconds,
                    on_gone=self._forget,
                )
                self._fanouts[endpoint] = fanout
            return fanout

    def _forget(self, connection_id: str) -> None:
        """A 410 from @connections: the client is gone; drop its rows."""
        removed = self.storage.remove_connection(connection_id)
        logger.info("stale connection removed", extra={
            "stale_connection_id": connection_id, "found": removed is not None})

