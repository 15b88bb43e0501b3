"""What every handler shares: the adapters, and sending through them.

One :class:`Services` per process (``chalicelib/runtime.py`` builds it). It holds the
settings, the :class:`~chalicelib.interfaces.Storage` and
:class:`~chalicelib.interfaces.RequestStore`, the action and task tables, and one
:class:`~chalicelib.sending.Fanout` per @connections endpoint; it is the
:class:`chalicelib.dispatch.Services` the actions see.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from chalicelib import events, protocol
from chalicelib.dispatch import ActionTable
from chalicelib.errors import BadRequest, ConfigError, TooLarge
from chalicelib.interfaces import Disconnects, History, Invoke, RequestStore, Sender, Storage
from chalicelib.model import Outgoing
from chalicelib.observability import logger
from chalicelib.parallel import ParallelFanout
from chalicelib.sending import DeliveryReport, Fanout
from chalicelib.settings import Settings
from chalicelib.tasks import TaskTable

SenderFactory = Callable[[str], Sender]


class Services:
    def __init__(self, settings: Settings, storage: Storage, requests: RequestStore,
                 sender_factory: SenderFactory, *, actions: ActionTable, tasks: TaskTable,
                 history: History | None = None,
                 invoke: Invoke | None = None, idempotency: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.storage = storage
        self.requests = requests
        # None: continuity off (HISTORY_SIZE=0): no offsets, no history.
        self.history = history if settings.history_size > 0 else None
        self.actions = actions
        self.tasks = tasks
        self.parallel = ParallelFanout(
            storage, threshold=settings.fanout_worker_threshold,
            shards_per_worker=settings.fanout_shards_per_worker,
            function_name=settings.fanout_function_name, invoke=invoke,
            idempotency=idempotency,
        )
        self._sender_factory = sender_factory
        self._fanouts: dict[str, Fanout] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._endpoint: str | None = settings.ws_endpoint_url

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        """Release every sender's connections and threads (tests, local restarts)."""
        with self._lock:
            fanouts, self._fanouts = list(self._fanouts.values()), {}
        for fanout in fanouts:
            fanout.close()

    # -- the @connections endpoint -------------------------------------------

    def remember_endpoint(self, ctx: events.WsContext) -> None:
        """Learn the endpoint from a WebSocket event, unless WS_ENDPOINT_URL set it."""
        if self._endpoint is None and ctx.domain_name:
            self._endpoint = ctx.endpoint_url()

    def endpoint(self) -> str:
        if self._endpoint is None:
            raise ConfigError("WS_ENDPOINT_URL is not set and no WebSocket event gave one")
        return self._endpoint

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

    # -- sending ---------------------------------------------------------------

    def reply(self, connection_id: str, frame: dict[str, Any]) -> None:
        self.send_raw(connection_id, protocol.encode(frame))

    def send_raw(self, connection_id: str, payload: bytes) -> None:
        """Send an encoded frame to one connection (a reply, a replayed message)."""
        report = DeliveryReport()
        self.fanout_for(self.endpoint()).send(connection_id, payload, report)
        if report.failed:
            logger.warning("reply not delivered", extra={"to": connection_id})

    def disconnect(self, connection_id: str) -> None:
        """Close a client's connection (@connections DELETE), e.g. once its token expired."""
        sender = self.fanout_for(self.endpoint()).sender
        if isinstance(sender, Disconnects):
            sender.delete(connection_id)

    def prepare_message(self, tenant_id: str, user_id: str, channel: str,
                        data: Any) -> Outgoing:
        """Build a channel message; with continuity on, take its offset and keep it in
        the channel's history (chalicelib/history_store.py) before anyone gets it."""
        message_id = uuid.uuid4().hex
        frame = protocol.message(channel, message_id, data, user_id, int(self.now() * 1000))
        if self.history is None:
            return Outgoing(tenant_id, channel, message_id, _encode_bounded(frame))
        # Checked before an offset is taken: a refused message must leave no hole.
        _encode_bounded(frame, room=protocol.POSITION_BYTES)
        position, payload = self.history.append(
            tenant_id, channel,
            lambda p: protocol.encode(protocol.with_position(frame, p.offset, p.epoch)))
        return Outgoing(tenant_id, channel, message_id, payload, position)

    def fan_out(self, message: Outgoing, exclude: str | None = None) -> None:
        endpoint = self.endpoint()
        outcome = self.parallel.publish(message, exclude, endpoint, self.fanout_for(endpoint))
        logger.info("published", extra={
            "channel": message.channel, "message_id": message.message_id,
            **outcome.as_log(),
        })

    def send_to_user(self, tenant_id: str, user_id: str, data: Any) -> DeliveryReport:
        """Send ``data`` (as a ``message`` frame with no channel) to every connection
        of one user in one tenant."""
        connections = self.storage.user_connections(tenant_id, user_id)
        frame = protocol.message(None, uuid.uuid4().hex, data, "system",
                                 int(self.now() * 1000))
        report = self.fanout_for(self.endpoint()).deliver(connections, _encode_bounded(frame))
        logger.info("sent to user", extra={"user": user_id, **report.as_log()})
        return report

    def _forget(self, connection_id: str) -> None:
        """A 410 from @connections: the client is gone; drop its rows."""
        removed = self.storage.remove_connection(connection_id)
        logger.info("stale connection removed", extra={
            "stale_connection_id": connection_id, "found": removed is not None})


def _encode_bounded(frame: dict[str, Any], room: int = 0) -> bytes:
    """The frame's bytes, or BadRequest / TooLarge for data that cannot be sent."""
    try:
        payload = protocol.encode(frame)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"data is not JSON-serialisable: {exc}") from None
    except RecursionError:
        # Client frames are bounded at parse time; this is a backend push's data.
        raise BadRequest("data nests too deeply to be sent") from None
    if len(payload) + room > protocol.MAX_MESSAGE_BYTES:
        raise TooLarge(f"message exceeds {protocol.MAX_MESSAGE_BYTES} bytes")
    return payload
