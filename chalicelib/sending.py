"""Sending frames to clients: :class:`Fanout`, over any :class:`~chalicelib.interfaces.Sender`.

:class:`Fanout` delivers one payload to many connections with a bounded thread pool,
retries 429 and 5xx with bounded, jittered backoff, reports 410 Gone connections to a
cleanup callback, and never lets one recipient fail the others. The senders (the
adapters that post to the Management API) are in chalicelib/fast_sender.py and
chalicelib/management_api.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chalicelib.errors import GoneError, SendError, StreamerError
from chalicelib.interfaces import Sender
from chalicelib.observability import logger


@dataclass
class DeliveryReport:
    """What a fan-out did: counts for the publish log line."""

    delivered: int = 0
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retries: int = 0

    def as_log(self) -> dict[str, int]:
        return {"delivered": self.delivered, "gone": len(self.gone),
                "failed": len(self.failed), "retries": self.retries}


class Fanout:
    """Deliver one payload to many connections, concurrently and safely."""

    def __init__(self, sender: Sender, *, concurrency: int, max_attempts: int,
                 backoff_seconds: float, on_gone: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._sender = sender
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._on_gone = on_gone
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def send(self, connection_id: str, data: bytes, report: DeliveryReport) -> None:
        """Deliver to one connection, retrying what is worth retrying. ``report`` is
        this caller's own: each pool thread fills a report of its own."""
        for attempt in range(self._max_attempts):
            try:
                self._sender.post(connection_id, data)
            except GoneError:
                report.gone.append(connection_id)
                self._cleanup(connection_id)
                return
            except SendError as exc:
                if not exc.retryable or attempt + 1 == self._max_attempts:
                    report.failed.append(connection_id)
                    return
                report.retries += 1
                # Full jitter spreads retries of a throttled burst apart.
                self._sleep(random.uniform(0, self._backoff * 2 ** attempt))
            else:
                report.delivered += 1
                return

    def _cleanup(self, connection_id: str) -> None:
        try:
            self._on_gone(connection_id)
        except StreamerError:
            # The stale rows stay until their TTL or the next 410; the fan-out goes on.
            logger.exception("stale connection cleanup failed",
                             extra={"stale_connection_id": connection_id})

    def deliver(self, connection_ids: Iterable[str], data: bytes) -> DeliveryReport:
        targets = list(dict.fromkeys(connection_ids))  # each connection once
        if len(targets) <= 1 or self._concurrency == 1:
            report = DeliveryReport()
            for connection_id in targets:
                self.send(connection_id, data, report)
            return report
        # One strided slice of the recipients per thread, each with its own report:
        # no per-recipient future and no shared counter (both measurable at 10,000
        # recipients); a slow recipient holds up only its own slice.
        lanes = min(self._concurrency, len(targets))
        slices = [targets[lane::lanes] for lane in range(lanes)]
        # list() waits for all and re-raises anything unexpected from a worker.
        reports = list(self._executor().map(lambda ids: self._send_all(ids, data), slices))
        return DeliveryReport(
            delivered=sum(r.delivered for r in reports),
            gone=[cid for r in reports for cid in r.gone],
            failed=[cid for r in reports for cid in r.failed],
            retries=sum(r.retries for r in reports),
        )

    def _send_all(self, connection_ids: list[str], data: bytes) -> DeliveryReport:
        report = DeliveryReport()
        for connection_id in connection_ids:
            self.send(connection_id, data, report)
        return report

    def close(self) -> None:
        """Stop the worker threads and close the sender's connections."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._sender.close()

    @property
    def sender(self) -> Sender:
        return self._sender

    def _executor(self) -> ThreadPoolExecutor:
        # Kept for the life of the (warm) Lambda container rather than per publish.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._concurrency,
                                                thread_name_prefix="fanout")
            return self._pool
