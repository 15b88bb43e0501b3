"""Channel offsets and history: :class:`DynamoHistory`, the adapter of
:class:`chalicelib.interfaces.History` (docs/protocol.md section 6).

A publish reads the channel's row (``channels``: ``offset``, ``epoch``), then writes, in
one transaction, the row moved to the next offset (conditional on the offset it read)
and the message's ``history`` row, and deletes the row that falls out of the last
``HISTORY_SIZE``. The transaction is why offsets stay right with concurrent publishers
and parallel fan-out workers: two publishes that read the same offset cannot both
commit (the loser re-reads and takes the next one), and an offset is never visible
without its message, so a resume that finds a hole knows the message is gone rather
than still being written. A plain ``ADD`` counter would be one write cheaper but
leaves exactly that window open.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.dynamodb import call, cancellation_codes, conditional, error_code, query
from chalicelib.errors import StorageError
from chalicelib.model import Position
from chalicelib.tables import CHANNELS, HISTORY

POSITION_DIGITS = 20  # zero-padded, so the sort key's string order is offset order
APPEND_ATTEMPTS = 12
_RETRYABLE = {"ConditionalCheckFailed", "TransactionConflict"}


def new_epoch() -> str:
    return secrets.token_hex(6)


def position_key(offset: int) -> str:
    return str(offset).zfill(POSITION_DIGITS)


def history_key(tenant_id: str, channel: str) -> str:
    """Tenant and channel names cannot hold ``#``, so no client text forges a key."""
    return f"{tenant_id}#{channel}"


class DynamoHistory:
    """:class:`chalicelib.interfaces.History` on DynamoDB (a boto3 low-level client)."""

    def __init__(self, client: Any, prefix: str, *, size: int, ttl_seconds: int,
                 state_ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._db = client
        self._channels = CHANNELS.physical_name(prefix)
        self._history = HISTORY.physical_name(prefix)
        self._size = size
        self._ttl = ttl_seconds
        self._state_ttl = state_ttl_seconds
        self._clock = clock

    def _current(self, key: str, now: int) -> Position | None:
        item = call(self._db, "get_item", TableName=self._channels,
                    Key={"channel_key": {"S": key}}, ConsistentRead=True).get("Item")
        if item is None or int(item["expires_at"]["N"]) <= now:
            return None  # never published to, or forgotten (TTL deletes late)
        return Position(int(item["offset"]["N"]), item["epoch"]["S"])

    def _channel_put(self, key: str, position: Position, now: int,
                     previous: Position | None) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self._channels,
            "Item": {"channel_key": {"S": key}, "offset": {"N": str(position.offset)},
                     "epoch": {"S": position.epoch},
                     "expires_at": {"N": str(now + self._state_ttl)}},
        }
        if previous is None:
            put["ConditionExpression"] = "attribute_not_exists(channel_key) OR expires_at <= :now"
            put["ExpressionAttributeValues"] = {":now": {"N": str(now)}}
        else:
            put["ConditionExpression"] = "#o = :o AND epoch = :e"
            put["ExpressionAttributeNames"] = {"#o": "offset"}
            put["ExpressionAttributeValues"] = {":o": {"N": str(previous.offset)},
                                                ":e": {"S": previous.epoch}}
        return put

    def position(self, tenant_id: str, channel: str) -> Position:
        key = history_key(tenant_id, channel)
        for _ in range(APPEND_ATTEMPTS):
            now = int(self._clock())
            current = self._current(key, now)
            if current is not None:
                return current
            # A channel needs its epoch before its first message, so that a subscriber
            # told "offset 0" can resume from it.
            start = Position(0, new_epoch())
            if conditional(self._db, "put_item", **self._channel_put(key, start, now, None)):
                return start
            # Another request started it: read theirs.
        raise StorageError("channel position contended")

    def append(self, tenant_id: str, channel: str,
               encode: Callable[[Position], bytes]) -> tuple[Position, bytes]:
        key = history_key(tenant_id, channel)
        for attempt in range(APPEND_ATTEMPTS):
            now = int(self._clock())
            current = self._current(key, now)
            position = (Position(1, new_epoch()) if current is None
                        else Position(current.offset + 1, current.epoch))
            payload = encode(position)
            items: list[dict[str, Any]] = [
                {"Put": self._channel_put(key, position, now, current)},
                {"Put": {"TableName": self._history, "Item": {
                    "channel_key": {"S": key}, "position": {"S": position_key(position.offset)},
                    "epoch": {"S": position.epoch}, "payload": {"S": payload.decode()},
                    "expires_at": {"N": str(now + self._ttl)}}}},
            ]
            if position.offset > self._size:
                items.append({"Delete": {"TableName": self._history, "Key": {
                    "channel_key": {"S": key},
                    "position": {"S": position_key(position.offset - self._size)}}}})
            try:
                self._db.transact_write_items(TransactItems=items)
            except ClientError as exc:
                reasons = cancellation_codes(exc)
                if reasons is None or not _RETRYABLE & set(reasons):
                    raise StorageError(f"append failed: {error_code(exc)} {reasons}") from exc
                # Another publish took this offset: back off a little (jittered, so
                # contenders spread out) and take the next one.
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            except BotoCoreError as exc:
                raise StorageError(f"append failed: {type(exc).__name__}") from exc
            return position, payload
        raise StorageError(f"publish to {channel!r} contended {APPEND_ATTEMPTS} times")

    def read(self, tenant_id: str, channel: str, epoch: str, after: int,
             upto: int) -> list[tuple[int, bytes]]:
        if upto <= after:
            return []
        rows = query(self._db,
            TableName=self._history, ConsistentRead=True,
            KeyConditionExpression="channel_key = :k AND #p BETWEEN :lo AND :hi",
            FilterExpression="expires_at > :now AND epoch = :e",
            ExpressionAttributeNames={"#p": "position"},
            ExpressionAttributeValues={
                ":k": {"S": history_key(tenant_id, channel)},
                ":lo": {"S": position_key(after + 1)}, ":hi": {"S": position_key(upto)},
                ":now": {"N": str(int(self._clock()))}, ":e": {"S": epoch},
            },
        )
        return [(int(row["position"]["S"]), row["payload"]["S"].encode()) for row in rows]
