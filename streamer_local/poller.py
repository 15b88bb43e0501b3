"""The local DynamoDB stream poller: Lambda's event source mapping, for the local stack.

:class:`StreamPoller` reads the streams behind a Chalice app's ``@on_dynamodb_record``
handlers from the local DynamoDB server and invokes the handlers with Lambda-shaped
batches (see :mod:`streamer_local.poller_lambda` for the event), the way AWS Lambda does:

- **Matching.** A handler's ARN is a literal from configuration and never equals the
  local server's stream ARN, so a handler is matched to a local table by the table
  name inside its ARN (``describe_table`` -> ``LatestStreamArn``). If no such table
  exists but the name ends in one of ``fallback_tables`` (an app's streamed tables'
  names, such as Streamer's ``requests``), that table under ``table_prefix`` is used.
  Records carry the handler's *configured* ARN as ``eventSourceARN``, as they do on
  AWS where the two are the same.
- **Batches.** Up to ``batch_size`` records (and at most 6 MB), from one shard, in
  stream order; ``starting_position`` ``LATEST`` or ``TRIM_HORIZON`` applies to the
  shards that exist at :meth:`StreamPoller.connect`, shards found later are read from
  their start, and a child shard waits until its parent is read to the end.
  ``maximum_batching_window_in_seconds`` delays a short batch in the background loop;
  :meth:`StreamPoller.drain` never waits.
- **At least once.** Nothing is passed over until the batch that holds it succeeded or
  was given up. A raising handler fails the whole batch; a ``batchItemFailures``
  answer checkpoints before the failed record with the lowest sequence number and
  re-sends from there. Once ``max_retries + 1`` invocations in a row failed at the
  same record, that record and the rest of its batch are given up: logged, and kept
  in :attr:`StreamPoller.dropped` (Lambda's on-failure destination).
- **Redelivery switch.** ``redeliver_fraction`` (0 to 1, ``seed`` for a repeatable
  choice, 1.0 for every record) sends that share of successfully handled records once
  more, in the next batch of their shard, with the same ``eventID`` and sequence
  number, as a retried batch does on AWS. Handlers must be idempotent.

Shard reading lives in :mod:`streamer_local.poller_shards`, the Lambda event and response rules
in :mod:`streamer_local.poller_lambda`. Two ways to drive it: :meth:`StreamPoller.start` and
:meth:`StreamPoller.stop` run a background task in the caller's asyncio loop (blocking
calls and handlers run in worker threads); :meth:`StreamPoller.poll_once` and
:meth:`StreamPoller.drain` are synchronous, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import Chalice, DynamoDBEventConfig

from streamer_local.poller_lambda import (
    LambdaContext,
    first_failed_index,
    lambda_event,
    table_name_from_stream_arn,
)
from streamer_local.poller_shards import PendingRecord, Shard, StreamReader

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's cap on one invocation's payload
SHARD_REFRESH_SECONDS = 10.0

Handler = Callable[[dict[str, Any], Any], Any]


class PollerConfigError(Exception):
    """A handler's stream cannot be found on the local server."""


@dataclass(frozen=True)
class DroppedBatch:
    """Records given up after the last retry (what Lambda sends on-failure)."""

    handler: str
    stream_arn: str
    shard_id: str
    records: tuple[dict[str, Any], ...]
    attempts: int
    reason: str


@dataclass(frozen=True)
class PollStats:
    """What one :meth:`StreamPoller.poll_once` pass did."""

    fetched: int = 0
    invocations: int = 0
    failures: int = 0


@dataclass
class _Subscription:
    config: DynamoDBEventConfig
    handler: Handler
    table_name: str
    reader: StreamReader

    @property
    def name(self) -> str:
        return str(self.config.name)


class StreamPoller:
    """Feeds a Chalice app's ``on_dynamodb_record`` handlers from the local streams."""

    def __init__(
        self,
        app: Chalice,
        dynamodb_endpoint_url: str,
        table_prefix: str,
        *,
        redeliver_fraction: float = 0.0,
        seed: int | None = None,
        poll_interval: float = 0.2,
        max_retries: int = 3,
        report_batch_item_failures: bool = True,
        function_timeout: float = 60.0,
        region_name: str | None = None,
        fallback_tables: tuple[str, ...] = (),
    ) -> None:
        if not 0.0 <= redeliver_fraction <= 1.0:
            raise ValueError(f"redeliver_fraction must be in [0, 1], not {redeliver_fraction}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        self.app = app
        self.endpoint_url = dynamodb_endpoint_url
        self.table_prefix = table_prefix
        self.fallback_tables = fallback_tables
        self.redeliver_fraction = redeliver_fraction
        self.poll_interval = poll_interval
        self.max_retries = max_retries
        self.report_batch_item_failures = report_batch_item_failures
        self.function_timeout = function_timeout
        #: Batches given up after their last retry, oldest first.
        self.dropped: list[DroppedBatch] = []
        #: ``(handler name, sequence number)`` of every record sent a second time.
        self.redelivered: list[tuple[str, str]] = []
        self._random = random.Random(seed)
        config = Config(
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
        )
        self._dynamodb: Any = boto3.client(
            "dynamodb", endpoint_url=dynamodb_endpoint_url, region_name=region_name, config=config
        )
        self._streams: Any = boto3.client(
            "dynamodbstreams",
            endpoint_url=dynamodb_endpoint_url,
            region_name=region_name,
            config=config,
        )
        self._subscriptions: list[_Subscription] | None = None
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    # -- synchronous driving -------------------------------------------------------

    def connect(self) -> None:
        """Find each handler's stream and take ``starting_position`` on its shards.

        Idempotent; :meth:`poll_once` calls it too. Call it before writing records a
        ``LATEST`` handler is meant to see.
        """
        with self._lock:
            self._connect()

    def poll_once(self, *, flush: bool = False) -> PollStats:
        """One pass: per handler and readable shard, fetch and deliver at most one batch.

        ``flush`` sends short batches without waiting out a batching window.
        """
        with self._lock:
            subscriptions = self._connect()
            now = time.monotonic()
            totals = [0, 0, 0]
            for subscription in subscriptions:
                reader = subscription.reader
                if reader.shard_closed or now - reader.refreshed_at >= SHARD_REFRESH_SECONDS:
                    reader.refresh()
                for shard in reader.readable():
                    fetched, invoked, failed = self._poll_shard(subscription, shard, flush)
                    totals[0] += fetched
                    totals[1] += invoked
                    totals[2] += failed
            return PollStats(fetched=totals[0], invocations=totals[1], failures=totals[2])

    def drain(self, max_invocations: int = 1000) -> int:
        """Poll until a pass finds nothing to do; return how many invocations it made.

        Failed batches are retried at once (no backoff) until they succeed or are
        given up, so with a bounded ``max_retries`` this ends once the streams are
        quiet. ``RuntimeError`` if it takes more than ``max_invocations``.
        """
        total = 0
        while True:
            stats = self.poll_once(flush=True)
            total += stats.invocations
            if stats.invocations == 0 and stats.fetched == 0:
                return total
            if total > max_invocations:
                raise RuntimeError(f"stream poller still busy after {total} invocations")

    def close(self) -> None:
        """Release the HTTP connections."""
        self._dynamodb.close()
        self._streams.close()

    # -- asyncio driving -----------------------------------------------------------

    async def start(self) -> None:
        """Connect (in a worker thread), then poll in a background task of this loop."""
        if self._task is not None:
            return
        await asyncio.to_thread(self.connect)
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._stopping), name="stream-poller")

    async def stop(self) -> None:
        """Stop polling; an invocation under way is let finish, as Lambda would."""
        if self._task is None or self._stopping is None:
            return
        self._stopping.set()
        task, self._task = self._task, None
        await task

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                stats = await asyncio.to_thread(self.poll_once)
            except (BotoCoreError, ClientError):
                logger.exception("stream poller: reading the streams failed; retrying")
                stats = PollStats(failures=1)
            except Exception:  # a dead poller would silently stop the stack
                logger.exception("stream poller: unexpected error; retrying")
                stats = PollStats(failures=1)
            busy = stats.invocations > 0 and stats.failures == 0
            if not busy:  # idle, or back off before retrying a failed batch
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.poll_interval)

    # -- internals -----------------------------------------------------------------

    def _connect(self) -> list[_Subscription]:
        if self._subscriptions is None:
            subscriptions = [
                self._subscribe(config)
                for config in self.app.event_sources
                if isinstance(config, DynamoDBEventConfig)
            ]
            for subscription in subscriptions:
                subscription.reader.refresh(initial=True)
            if not subscriptions:
                logger.info("stream poller: the app has no on_dynamodb_record handlers")
            self._subscriptions = subscriptions
        return self._subscriptions

    def replace_app(self, app: Chalice) -> None:
        """Serve a reloaded ``app``: its handlers of the same names take over the streams
        (their positions are kept; a handler added by the reload is not picked up)."""
        self.app = app
        for subscription in self._subscriptions or []:
            handler = app.handler_map.get(subscription.name)
            if handler is not None:
                subscription.handler = handler

    def _subscribe(self, config: DynamoDBEventConfig) -> _Subscription:
        try:
            wanted = table_name_from_stream_arn(config.stream_arn)
        except ValueError as exc:
            raise PollerConfigError(f"handler {config.name!r}: {exc}") from exc
        candidates = [wanted] + [
            f"{self.table_prefix}{name}"
            for name in self.fallback_tables
            if wanted.endswith(name) and f"{self.table_prefix}{name}" != wanted
        ]
        for table_name in candidates:
            stream_arn = self._latest_stream_arn(table_name)
            if stream_arn is None:
                continue
            if table_name != wanted:
                logger.warning(
                    "stream poller: no table %s; handler %s reads %s instead",
                    wanted, config.name, table_name,
                )
            logger.info(
                "stream poller: %s <- %s (batch %s, %s)",
                config.name, stream_arn, config.batch_size, config.starting_position,
            )
            reader = StreamReader(
                self._streams,
                stream_arn,
                event_source_arn=str(config.stream_arn),
                starting_position=str(config.starting_position),
                batch_size=int(config.batch_size),
            )
            return _Subscription(config, self.app.handler_map[config.name], table_name, reader)
        raise PollerConfigError(
            f"handler {config.name!r}: no table with a stream named "
            f"{' or '.join(candidates)} on {self.endpoint_url}"
        )

    def _latest_stream_arn(self, table_name: str) -> str | None:
        try:
            table = self._dynamodb.describe_table(TableName=table_name)["Table"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        arn = table.get("LatestStreamArn")
        enabled = table.get("StreamSpecification", {}).get("StreamEnabled", arn is not None)
        return str(arn) if arn and enabled else None

    def _poll_shard(
        self, subscription: _Subscription, shard: Shard, flush: bool
    ) -> tuple[int, int, int]:
        fetched = subscription.reader.fill(shard)
        if not shard.pending:
            return fetched, 0, 0
        window = float(subscription.config.maximum_batching_window_in_seconds or 0)
        short = len(shard.pending) < subscription.config.batch_size and not shard.closed
        if not flush and short and time.monotonic() - shard.pending[0].fetched_at < window:
            return fetched, 0, 0
        failed = not self._deliver(subscription, shard)
        return fetched, 1, int(failed)

    def _take_batch(self, subscription: _Subscription, shard: Shard) -> list[PendingRecord]:
        batch: list[PendingRecord] = []
        size = 0
        for pending in shard.pending:
            if len(batch) >= subscription.config.batch_size:
                break
            if batch and size + pending.size > MAX_PAYLOAD_BYTES:
                break
            batch.append(pending)
            size += pending.size
        return batch

    def _deliver(self, subscription: _Subscription, shard: Shard) -> bool:
        """Invoke the handler with the shard's next batch; ``True`` if all of it succeeded."""
        batch = self._take_batch(subscription, shard)
        sequences = [pending.sequence_number for pending in batch]
        failed_at = self._invoke(subscription, batch, sequences)
        succeeded = batch if failed_at is None else batch[:failed_at]
        for _ in succeeded:
            shard.pending.popleft()
        if failed_at is None:
            if shard.failing in sequences:
                shard.failing, shard.failures = None, 0
        else:
            # Retries are counted per checkpoint record, so progress before it (or
            # redelivered copies ahead of it) never resets the count.
            head = sequences[failed_at]
            shard.failures = shard.failures + 1 if shard.failing == head else 1
            shard.failing = head
            if shard.failures > self.max_retries:
                self._give_up(subscription, shard, batch[failed_at:])
        self._schedule_redelivery(subscription, shard, succeeded)
        return failed_at is None

    def _invoke(
        self, subscription: _Subscription, batch: list[PendingRecord], sequences: list[str]
    ) -> int | None:
        config = subscription.config
        region, account = str(config.stream_arn).split(":")[3:5]
        function_name = f"{self.app.app_name}-local-{subscription.name}"
        context = LambdaContext(
            function_name=function_name,
            invoked_function_arn=f"arn:aws:lambda:{region}:{account}:function:{function_name}",
            timeout_seconds=self.function_timeout,
        )
        event = lambda_event([pending.record for pending in batch])
        try:
            response = subscription.handler(event, context)
        except Exception:  # any error fails the batch, as on Lambda
            logger.exception(
                "stream poller: %s failed a batch of %d from %s",
                subscription.name, len(batch), sequences[0],
            )
            return 0
        if not self.report_batch_item_failures:
            return None
        failed_at = first_failed_index(response, sequences)
        if failed_at is not None:
            logger.warning(
                "stream poller: %s reported failures; retrying from %s",
                subscription.name, sequences[failed_at],
            )
        return failed_at

    def _give_up(
        self, subscription: _Subscription, shard: Shard, batch: list[PendingRecord]
    ) -> None:
        for _ in batch:
            shard.pending.popleft()
        dropped = DroppedBatch(
            handler=subscription.name,
            stream_arn=subscription.reader.stream_arn,
            shard_id=shard.shard_id,
            records=tuple(pending.record for pending in batch),
            attempts=shard.failures,
            reason="retries exhausted",
        )
        shard.failing, shard.failures = None, 0
        self.dropped.append(dropped)
        logger.error(
            "stream poller: %s gave up %d records (%s..%s) after %d attempts",
            subscription.name, len(batch), batch[0].sequence_number,
            batch[-1].sequence_number, dropped.attempts,
        )

    def _schedule_redelivery(
        self, subscription: _Subscription, shard: Shard, succeeded: list[PendingRecord]
    ) -> None:
        """Queue chosen records again, ahead of the rest, so they keep stream order."""
        if self.redeliver_fraction <= 0.0:
            return
        again = [
            PendingRecord(p.record, p.sequence_number, p.size, p.fetched_at, redelivery=True)
            for p in succeeded
            if not p.redelivery and self._random.random() < self.redeliver_fraction
        ]
        shard.pending.extendleft(reversed(again))
        self.redelivered.extend((subscription.name, p.sequence_number) for p in again)
