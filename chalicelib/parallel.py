"""Fan-out to large channels in parallel workers, one per group of subscription shards.

A channel's subscribers are spread over ``SUBSCRIPTION_SHARDS`` partition keys. The
publisher reads shard 0 (it needs it anyway) and estimates the channel's size as
``len(shard 0) x shards``. Below ``FANOUT_WORKER_THRESHOLD`` it reads the other shards
and delivers itself. At or above it, it hands the message to workers, one
asynchronous invocation of the ``fanout`` function per ``FANOUT_SHARDS_PER_WORKER``
shards, and returns: the publisher's ack never waits for a large fan-out.

Workers read their shards and deliver. Each shard is one Powertools idempotent unit
keyed by (message id, shard): a worker that Lambda retries after an error skips the
shards it already delivered, and a shard whose read failed had delivered nothing, so
nothing is delivered twice and nothing is dropped. The limit: a worker killed in the
middle of sending one shard (a Lambda timeout) may repeat that shard's deliveries on
retry; size shard groups so a worker finishes well inside its timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import BadRequest, InvokeError
from chalicelib.interfaces import Invoke, Storage
from chalicelib.model import Outgoing
from chalicelib.observability import logger
from chalicelib.sending import DeliveryReport, Fanout


@dataclass(frozen=True)
class Job:
    """One worker's share of a message: where to send it and which shards to read."""

    tenant_id: str
    channel: str
    message_id: str
    payload: bytes
    shards: tuple[int, ...]
    exclude: str | None
    endpoint: str

    def to_event(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "channel": self.channel,
                "message_id": self.message_id, "payload": self.payload.decode(),
                "shards": list(self.shards), "exclude": self.exclude,
                "endpoint": self.endpoint}

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Job:
        try:
            shards = tuple(int(s) for s in event["shards"])
            return cls(str(event["tenant_id"]), str(event["channel"]),
                       str(event["message_id"]), str(event["payload"]).encode(), shards,
                       None if event.get("exclude") is None else str(event["exclude"]),
                       str(event["endpoint"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"malformed fan-out job: {exc!r}") from None


@dataclass
class Outcome:
    """What a publish did: delivered inline (with a report) or handed to workers."""

    recipients: int
    report: DeliveryReport | None
    workers: int = 0

    def as_log(self) -> dict[str, Any]:
        log: dict[str, Any] = {"recipients": self.recipients, "workers": self.workers}
        if self.report is not None:
            log.update(self.report.as_log())
        return log


class ParallelFanout:
    def __init__(self, storage: Storage, *, threshold: int, shards_per_worker: int,
                 function_name: str | None, invoke: Invoke | None,
                 idempotency: Any = None) -> None:
        self._storage = storage
        self._threshold = threshold
        self._per_worker = shards_per_worker
        self._function = function_name
        self._invoke = invoke
        self._idempotency = idempotency

    def publish(self, message: Outgoing, exclude: str | None, endpoint: str,
                fanout: Fanout) -> Outcome:
        shards = self._storage.shards
        tenant, channel = message.tenant_id, message.channel
        if self._function is None or self._invoke is None or shards == 1:
            return self._inline(self._storage.subscribers(tenant, channel), exclude,
                                message, fanout)
        first = self._storage.subscribers(tenant, channel, [0])
        if len(first) * shards < self._threshold:
            rest = self._storage.subscribers(tenant, channel, list(range(1, shards)))
            return self._inline(first + rest, exclude, message, fanout)
        groups = [tuple(range(start, min(start + self._per_worker, shards)))
                  for start in range(0, shards, self._per_worker)]
        invoked, report = 0, None
        for group in groups:
            job = Job(tenant, channel, message.message_id, message.payload, group, exclude,
                      endpoint)
            try:
                self._invoke(self._function, job.to_event())
                invoked += 1
            except InvokeError:
                # Nothing may be dropped: deliver this group here, more slowly.
                logger.exception("fan-out worker not invoked; delivering inline",
                                 extra={"shards": list(group)})
                ids = self._storage.subscribers(tenant, channel, list(group))
                part = fanout.deliver([c for c in ids if c != exclude], message.payload)
                report = part if report is None else _merge(report, part)
        return Outcome(recipients=len(first) * shards, report=report, workers=invoked)

    def _inline(self, ids: list[str], exclude: str | None, message: Outgoing,
                fanout: Fanout) -> Outcome:
        recipients = [cid for cid in ids if cid != exclude]
        return Outcome(len(recipients), fanout.deliver(recipients, message.payload))

    # -- the worker ------------------------------------------------------------

    def work(self, job: Job, fanout: Fanout, context: Any) -> dict[str, int]:
        """Deliver ``job``'s shards, each at most once; the summed report."""
        deliver = self._deliver_shard
        if self._idempotency is not None:
            # Deferred: Powertools' idempotency package imports boto3 (~100 ms of every
            # cold start), and only workers need it.
            from aws_lambda_powertools.utilities.idempotency import (
                IdempotencyConfig,
                idempotent_function,
            )

            config = IdempotencyConfig(expires_after_seconds=3600)
            if context is not None and hasattr(context, "get_remaining_time_in_millis"):
                config.register_lambda_context(context)
            deliver = idempotent_function(
                self._deliver_shard, data_keyword_argument="unit",
                persistence_store=self._idempotency, config=config,
                key_prefix="streamer-fanout",
            )
        totals: dict[str, int] = {}
        for shard in job.shards:
            counts = deliver(unit={"message_id": job.message_id, "shard": shard}, job=job,
                             fanout=fanout)
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def _deliver_shard(self, unit: dict[str, Any], job: Job, fanout: Fanout) -> dict[str, int]:
        ids = self._storage.subscribers(job.tenant_id, job.channel, [int(unit["shard"])])
        recipients = [cid for cid in ids if cid != job.exclude]
        return fanout.deliver(recipients, job.payload).as_log()


def _merge(a: DeliveryReport, b: DeliveryReport) -> DeliveryReport:
    return DeliveryReport(a.delivered + b.delivered, a.gone + b.gone, a.failed + b.failed,
                          a.retries + b.retries)
