"""Reading one DynamoDB stream shard by shard, for the local stream poller.

:class:`StreamReader` is one event source mapping's view of one stream: it lists the
shards (following ``LastEvaluatedShardId``), takes the starting position on the shards
that exist when it first looks (``LATEST`` iterators are taken at once, so later writes
are seen), reads shards found later from their start, holds a child shard back until
its parent is read to the end, follows ``NextShardIterator`` until a shard closes, and
re-opens an expired iterator after the last record it read. Records read but not yet
handled wait in each shard's ``pending`` queue: :mod:`streamer_local.poller` takes batches from
its head and removes them only once handled, which is what makes delivery at least once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from streamer_local.poller_lambda import lambda_record, record_size

logger = logging.getLogger("streamer_local.poller")

GET_RECORDS_LIMIT = 1000  # the most GetRecords returns in one call


@dataclass
class PendingRecord:
    """A Lambda-shaped record read from a shard and not yet handled."""

    record: dict[str, Any]
    sequence_number: str
    size: int
    fetched_at: float
    redelivery: bool = False


@dataclass
class Shard:
    """One shard's read position and its queue of records read but not yet handled."""

    shard_id: str
    parent_id: str | None
    start_type: str
    iterator: str | None = None
    opened: bool = False
    closed: bool = False  # no more records will come: NextShardIterator was null
    last_fetched: str | None = None
    failing: str | None = None  # sequence number the last failed invocation resumed at
    failures: int = 0  # failed invocations that resumed at ``failing``
    pending: deque[PendingRecord] = field(default_factory=deque)

    @property
    def finished(self) -> bool:
        return self.closed and not self.pending


class StreamReader:
    """One stream's shards, read for one handler (one event source mapping)."""

    def __init__(
        self,
        client: Any,
        stream_arn: str,
        event_source_arn: str,
        starting_position: str,
        batch_size: int,
    ) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self.event_source_arn = event_source_arn
        self.starting_position = starting_position
        self.batch_size = batch_size
        self.shards: dict[str, Shard] = {}
        self.refreshed_at = 0.0
        self.shard_closed = False  # a shard ended: look for its children soon

    def refresh(self, *, initial: bool = False) -> None:
        """Learn the stream's shards; shards new after the first look start at the top."""
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            for listed in description.get("Shards", []):
                shard_id = listed["ShardId"]
                if shard_id in self.shards:
                    continue
                ended = "EndingSequenceNumber" in listed.get("SequenceNumberRange", {})
                start_type = self.starting_position if initial else "TRIM_HORIZON"
                shard = Shard(shard_id, listed.get("ParentShardId"), start_type)
                if start_type == "LATEST" and ended:
                    shard.opened = shard.closed = True  # nothing will come after LATEST
                elif start_type == "LATEST":
                    self._open(shard)  # now, so that records written from now on are seen
                self.shards[shard_id] = shard
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        self.refreshed_at = time.monotonic()
        self.shard_closed = False

    def readable(self) -> list[Shard]:
        """Shards with work left whose parent (if we know it) is read to the end."""
        ready = []
        for shard in self.shards.values():
            parent = self.shards.get(shard.parent_id or "")
            if not shard.finished and (parent is None or parent.finished):
                ready.append(shard)
        return ready

    def fill(self, shard: Shard) -> int:
        """Read ``shard`` until a batch is pending or it has nothing more for now."""
        fetched = 0
        while len(shard.pending) < self.batch_size and not shard.closed:
            if not shard.opened:
                self._open(shard)
            wanted = min(GET_RECORDS_LIMIT, self.batch_size - len(shard.pending))
            try:
                response = self.client.get_records(ShardIterator=shard.iterator, Limit=wanted)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "ExpiredIteratorException":
                    self._open(shard)  # resumes after the last record read
                    continue
                if code == "TrimmedDataAccessException":
                    logger.error("stream poller: records trimmed before they were read")
                    shard.last_fetched, shard.start_type = None, "TRIM_HORIZON"
                    self._open(shard)
                    continue
                raise
            now = time.monotonic()
            records = response.get("Records", [])
            for raw in records:
                record = lambda_record(raw, self.event_source_arn)
                sequence = record["dynamodb"]["SequenceNumber"]
                shard.pending.append(PendingRecord(record, sequence, record_size(record), now))
                shard.last_fetched = sequence
            fetched += len(records)
            shard.iterator = response.get("NextShardIterator")
            if shard.iterator is None:
                shard.closed = self.shard_closed = True
                logger.info("stream poller: shard %s is closed", shard.shard_id)
            if not records:
                break
        return fetched

    def _open(self, shard: Shard) -> None:
        kwargs: dict[str, Any] = {
            "StreamArn": self.stream_arn,
            "ShardId": shard.shard_id,
            "ShardIteratorType": shard.start_type,
        }
        if shard.last_fetched is not None:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["SequenceNumber"] = shard.last_fetched
        shard.iterator = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
        shard.opened = True
