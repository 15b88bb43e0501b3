"""The processor: runs asynchronous requests from the requests table's stream.

Each stream record whose new image is a freshly ``pending`` request is one unit of
work. Exactly-once effects from at-least-once delivery come from the claim: the move
``pending -> running`` is a conditional update, so a redelivered or duplicated record
finds the request no longer pending and does nothing. The final move (``running ->
succeeded | failed``) is conditional too, so a request cancelled meanwhile never gets
a ``result``.

Time budget (the documented rule): a claimed request is leased until the end of the
invocation. The task must finish ``PROCESSOR_SAFETY_SECONDS`` (at most a fifth of the
time left) before that; past it,
its next ``progress`` or ``sleep`` raises :class:`Stop`, and the request is failed with
the message "did not finish within the processor's time budget". If the invocation
dies instead, the lease runs out and whoever looks next (a redelivered record or a
``status`` frame) fails it the same way. A request is never ``running`` for ever.

Failures: a task that raises fails its request (``error`` frame, code ``failed``). An
infrastructure error (DynamoDB, @connections, Lambda) fails only that record, reported
in ``batchItemFailures`` through Powertools' ``BatchProcessor``, so only it is retried.
Anything else is a poison record: retrying it would fail the same way and hold up the
shard behind it, so its request is abandoned at once (``failed``, with the reason
:data:`UNHANDLED_MESSAGE`), its slot under ``MAX_ACTIVE_REQUESTS`` is freed, and the
requester gets the ``error`` frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib import protocol
from chalicelib.errors import InvokeError, SendError, StorageError
from chalicelib.interfaces import RequestStore
from chalicelib.leases import TIME_BUDGET_MESSAGE, expire_abandoned
from chalicelib.model import RequestRecord, RequestState
from chalicelib.observability import add_keys, logger
from chalicelib.request_store import record_from_item
from chalicelib.sending import DeliveryReport, Fanout
from chalicelib.tasks import Requester, Stop, TaskTable

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )

UNHANDLED_MESSAGE = "the processor could not handle this request"
# Worth a retry: the next attempt may succeed. Everything else a record raises is poison.
RETRYABLE = (StorageError, SendError, InvokeError)
DEFAULT_REMAINING_SECONDS = 900.0  # Lambda's maximum, when a context gives none


class _Context:
    """The :class:`chalicelib.tasks.TaskContext` given to one running task."""

    def __init__(self, processor: Processor, record: RequestRecord, deadline: float) -> None:
        self.request_id = record.request_id
        self._processor = processor
        self._record = record
        self._deadline = deadline
        self.seq = record.seq  # frames sent for this request so far

    @property
    def latest(self) -> RequestRecord:
        """The record as last read (its connection follows a takeover)."""
        return self._record

    def time_left(self) -> float:
        return self._deadline - self._processor.clock()

    def cancelled(self) -> bool:
        current = self._processor.store.get(self.request_id)
        if current is None or current.state == RequestState.CANCELLED:
            return True
        self._record = current
        return self._processor.grace_over(current)

    def progress(self, fraction: float, detail: dict[str, Any] | None = None) -> None:
        if self.time_left() <= 0:
            raise Stop("timeout")
        fraction = min(1.0, max(0.0, float(fraction)))
        # The update's condition (state = running) is also the cancellation check.
        detail = detail if detail is not None else {}
        current = self._processor.store.set_progress(self.request_id, fraction,
                                                     seq=self.seq + 1, detail=detail)
        if current is None:
            raise Stop("cancelled")
        self._record = current  # a reconnect may have taken it over: frames follow it
        self.seq += 1
        if self._processor.grace_over(current):
            raise Stop("gone")
        if current.detached_until is not None:
            return  # no connection until a reconnect takes it over; status catches up
        frame = protocol.progress(self.request_id, fraction, detail, self.seq)
        # Gone (410): kept running without a connection within the grace, else stopped.
        if not self._processor.send(current, frame) and not self._processor.detach(current):
            raise Stop("gone")

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if seconds > self.time_left():
            raise Stop("timeout")
        # Sleep in slices so a cancel is noticed within a second even in long waits.
        end = self._processor.clock() + seconds
        while (left := end - self._processor.clock()) > 0:
            self._processor.sleep(min(left, 1.0))
            if left > 1.0 and self.cancelled():
                raise Stop("cancelled")


class Processor:
    def __init__(self, store: RequestStore, fanout_for: Callable[[str], Fanout], *,
                 result_ttl_seconds: int, safety_seconds: float,
                 tasks: TaskTable, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 on_final: Callable[[str], None] = lambda connection_id: None,
                 reconnect_grace_seconds: float = 0.0) -> None:
        self.store = store
        self._grace = reconnect_grace_seconds
        self.on_final = on_final  # a request of that connection reached a final state
        self._fanout_for = fanout_for
        self._result_ttl = result_ttl_seconds
        self._safety = safety_seconds
        self._tasks = tasks
        self.clock = clock
        self.sleep = sleep

    # -- the Lambda entry point ----------------------------------------------

    def handle_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Deferred: only the stream handler needs Powertools' batch utilities (about
        # 38 ms of a cold start, measured by bench/cold_start.py), not every handler.
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        def handle(record: DynamoDBRecord) -> None:
            try:
                self.handle_record(record.raw_event, context)
            except RETRYABLE:
                raise
            except Exception as exc:  # noqa: BLE001  (a poison record must not block others)
                logger.exception("stream record could not be handled",
                                 extra={"event_id": record.raw_event.get("eventID"),
                                        "error": type(exc).__name__})
                self.abandon(record.raw_event)

        response: dict[str, Any] = dict(process_partial_response(
            event=event, record_handler=handle,
            processor=BatchProcessor(event_type=EventType.DynamoDBStreams), context=context,
        ))
        return response

    def handle_record(self, raw: dict[str, Any], context: Any) -> None:
        """Run the request a record announces; raise only for infrastructure errors."""
        images = raw.get("dynamodb") or {}
        new_item, old_item = images.get("NewImage"), images.get("OldImage")
        if new_item is None:
            return  # a REMOVE (TTL expiry): nothing to run
        record = record_from_item(new_item)  # ValueError: poison, see handle_batch
        old_state = (old_item or {}).get("state", {}).get("S")
        if record.state != RequestState.PENDING or old_state == RequestState.PENDING:
            return  # progress updates, final states, cancels: nothing to start
        self.run(record, _remaining_seconds(context))

    # -- running one request -------------------------------------------------

    def run(self, record: RequestRecord, remaining_seconds: float) -> None:
        now = self.clock()
        add_keys(request=record.request_id, kind=record.kind,
                           user_id=record.user_id, tenant_id=record.tenant_id)
        if not self.store.claim(record.request_id, lease_until=now + remaining_seconds):
            self._expire_if_abandoned(record.request_id)
            logger.info("request already claimed or cancelled; not run again")
            return
        task = self._tasks.get(record.kind)
        if task is None:
            self._fail(record, f"unknown kind '{record.kind}'")
            return
        # The margin is at most a fifth of what is left, so short invocations still work.
        margin = min(self._safety, remaining_seconds / 5)
        context = _Context(self, record, deadline=now + remaining_seconds - margin)
        try:
            result = task.run(record.payload, Requester(record.user_id, record.tenant_id),
                              context)
        except Stop as stop:
            if stop.reason == "timeout":
                self._fail(context.latest, TIME_BUDGET_MESSAGE)
            logger.info("request stopped", extra={"reason": stop.reason})
            return
        except Exception as exc:  # noqa: BLE001  (a task's error is its request's failure)
            logger.warning("task raised", extra={"error": type(exc).__name__})
            self._fail(context.latest, f"task raised {type(exc).__name__}")
            return
        frame = protocol.result(record.request_id, result, context.seq + 1)
        try:
            if len(protocol.encode(frame)) > protocol.MAX_MESSAGE_BYTES:
                self._fail(record, "result exceeds the 128 KB message limit")
                return
        except (TypeError, ValueError, RecursionError):
            self._fail(record, "result is not JSON-serialisable")
            return
        if self.store.finish(record.request_id, RequestState.SUCCEEDED, result=result,
                             expires_at=self._expiry(), seq=context.seq + 1):
            # Read again: a reconnect may have taken it over since the last progress.
            final = self.store.get(record.request_id) or context.latest
            self.on_final(final.connection_id)
            if final.detached_until is None:
                self.send(final, frame)
            logger.info("request succeeded")
        else:
            logger.info("request cancelled while running; no result sent")

    def detach(self, record: RequestRecord) -> bool:
        """The requester's connection is gone (410). Within the reconnect grace the
        request keeps running without one (True); without a grace it is cancelled."""
        if self._grace > 0 and self.store.detach(record.request_id, record.connection_id,
                                                 self.clock() + self._grace):
            return True
        if self.store.cancel(record.request_id)[0]:
            self.on_final(record.connection_id)
        return False

    def grace_over(self, record: RequestRecord) -> bool:
        """A detached request nobody took over in time is cancelled (True)."""
        if record.detached_until is None or record.detached_until >= self.clock():
            return False
        if self.store.cancel(record.request_id)[0]:
            logger.info("request cancelled: no reconnect took it over in time")
            self.on_final(record.connection_id)
        return True

    def send(self, record: RequestRecord, frame: dict[str, Any]) -> bool:
        """Send a frame to the requester's connection; False if it is gone (410)."""
        report = DeliveryReport()
        self._fanout_for(record.endpoint).send(record.connection_id, protocol.encode(frame),
                                               report)
        return not report.gone

    def _fail(self, record: RequestRecord, message: str) -> None:
        if self.store.finish(record.request_id, RequestState.FAILED, error=("failed", message),
                             expires_at=self._expiry()):
            self.on_final(record.connection_id)
            if record.detached_until is None:
                self.send(record, protocol.error("failed", message,
                                                 request_id=record.request_id))

    def abandon(self, raw: dict[str, Any]) -> None:
        """Fail the request a poison record names, from the few plain strings its image
        needs (the rest may be what could not be read); free its slot; tell the client."""
        item = (raw.get("dynamodb") or {}).get("NewImage") or {}

        def text(name: str) -> str | None:
            value = item.get(name)
            text = value.get("S") if isinstance(value, dict) else None
            return text if isinstance(text, str) and text else None

        request_id, connection_id = text("request_id"), text("connection_id")
        if request_id is None or not self.store.abandon(request_id, UNHANDLED_MESSAGE,
                                                        self._expiry()):
            return  # nothing names a request, or it is final already: nothing to free
        if connection_id is None:
            return
        self.on_final(connection_id)
        endpoint = text("endpoint")
        if endpoint is not None:
            report = DeliveryReport()
            self._fanout_for(endpoint).send(connection_id, protocol.encode(protocol.error(
                "failed", UNHANDLED_MESSAGE, request_id=request_id)), report)

    def _expire_if_abandoned(self, request_id: str) -> None:
        current = self.store.get(request_id)
        if current is not None and current.lease_expired(self.clock()) and expire_abandoned(
                self.store, current, self.clock(), self._expiry()):
            self.on_final(current.connection_id)

    def _expiry(self) -> int:
        return int(self.clock()) + self._result_ttl


def _remaining_seconds(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return float(remaining()) / 1000 if callable(remaining) else DEFAULT_REMAINING_SECONDS
