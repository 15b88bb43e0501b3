"""In-memory stores: the :class:`Storage` and :class:`RequestStore` contracts without DynamoDB.

For unit tests of the pure core, and for load tests and benchmarks that measure the
gateway and fan-out rather than moto (whose transactions slow down with table size).
Never deployed. The contract tests (tests/functional/test_*_contract.py) run the same
cases against these and against DynamoDB, so they cannot drift apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

from chalicelib.errors import LimitExceeded, StorageError
from chalicelib.history_store import history_key, new_epoch
from chalicelib.model import (
    Connection,
    Position,
    RequestRecord,
    RequestState,
    channel_key,
    shard_of,
)


class MemoryStorage:
    def __init__(self, shards: int = 4, clock: Callable[[], float] = time.time) -> None:
        self.shards = shards
        self.clock = clock
        self.connections: dict[str, Connection] = {}
        # channel_key -> {connection_id: expires_at}
        self.subscriptions: dict[str, dict[str, int]] = {}
        self.active_requests: dict[str, int] = {}
        self._lock = threading.Lock()

    def put_connection(self, connection: Connection) -> None:
        with self._lock:
            self.connections[connection.connection_id] = connection

    def get_connection(self, connection_id: str) -> Connection | None:
        connection = self.connections.get(connection_id)
        if connection is None or connection.expires_at <= self.clock():
            return None
        return connection

    def user_connections(self, tenant_id: str, user_id: str) -> list[str]:
        now = self.clock()
        return sorted(
            c.connection_id for c in self.connections.values()
            if c.tenant_id == tenant_id and c.user_id == user_id and c.expires_at > now
            and c.token_expires_at > now
        )

    def _key(self, connection: Connection, channel: str) -> str:
        return channel_key(connection.tenant_id, channel,
                           shard_of(connection.connection_id, self.shards))

    def subscribe(self, connection: Connection, channel: str, limit: int) -> bool:
        with self._lock:
            stored = self.connections.get(connection.connection_id)
            if stored is None:
                raise LimitExceeded("connection is gone")
            rows = self.subscriptions.setdefault(self._key(connection, channel), {})
            if connection.connection_id in rows:
                return False
            if stored.subscription_count >= limit:
                raise LimitExceeded(f"at most {limit} subscriptions per connection")
            rows[connection.connection_id] = connection.subscription_expires_at
            self.connections[connection.connection_id] = _with_count(
                stored, stored.subscription_count + 1)
            return True

    def unsubscribe(self, connection: Connection, channel: str) -> bool:
        with self._lock:
            rows = self.subscriptions.get(self._key(connection, channel), {})
            if rows.pop(connection.connection_id, None) is None:
                return False
            stored = self.connections.get(connection.connection_id)
            if stored is not None:
                self.connections[connection.connection_id] = _with_count(
                    stored, max(0, stored.subscription_count - 1))
            return True

    def subscribers(self, tenant_id: str, channel: str,
                    shards: list[int] | None = None) -> list[str]:
        now = self.clock()
        ids: list[str] = []
        for shard in range(self.shards) if shards is None else shards:
            rows = self.subscriptions.get(channel_key(tenant_id, channel, shard), {})
            ids.extend(cid for cid, expires in rows.items() if expires > now)
        return ids

    def refresh(self, connection: Connection, token_expires_at: int,
                permissions: frozenset[str]) -> Connection | None:
        with self._lock:
            stored = self.connections.get(connection.connection_id)
            if stored is None:
                return None
            updated = replace(stored, token_expires_at=token_expires_at,
                              permissions=permissions)
            self.connections[connection.connection_id] = updated
            for rows in self.subscriptions.values():
                if connection.connection_id in rows:
                    rows[connection.connection_id] = updated.subscription_expires_at
            return updated

    def reserve_request(self, connection_id: str, limit: int) -> bool:
        with self._lock:
            if connection_id not in self.connections:
                return False
            if self.active_requests.get(connection_id, 0) >= limit:
                return False
            self.active_requests[connection_id] = self.active_requests.get(connection_id, 0) + 1
            return True

    def release_request(self, connection_id: str) -> None:
        with self._lock:
            if self.active_requests.get(connection_id, 0) > 0 and connection_id in self.connections:
                self.active_requests[connection_id] -= 1

    def remove_connection(self, connection_id: str) -> Connection | None:
        with self._lock:
            for rows in self.subscriptions.values():
                rows.pop(connection_id, None)
            self.active_requests.pop(connection_id, None)
            return self.connections.pop(connection_id, None)


def _with_count(connection: Connection, count: int) -> Connection:
    return Connection(
        connection_id=connection.connection_id, user_id=connection.user_id,
        tenant_id=connection.tenant_id, permissions=connection.permissions,
        connected_at_ms=connection.connected_at_ms,
        token_expires_at=connection.token_expires_at, expires_at=connection.expires_at,
        subscription_count=count,
    )


_LIVE = {RequestState.PENDING, RequestState.RUNNING}


class MemoryRequestStore:
    """In-memory :class:`chalicelib.request_store.RequestStore` with the same rules."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.rows: dict[str, RequestRecord] = {}
        self._lock = threading.Lock()

    def create(self, record: RequestRecord) -> None:
        with self._lock:
            if record.request_id in self.rows:
                raise StorageError("request exists")
            self.rows[record.request_id] = record

    def get(self, request_id: str) -> RequestRecord | None:
        record = self.rows.get(request_id)
        return record if record is not None and record.expires_at > self.clock() else None

    def _move(self, request_id: str, allowed: set[RequestState], **changes: Any) -> bool:
        with self._lock:
            record = self.rows.get(request_id)
            if record is None or record.state not in allowed:
                return False
            self.rows[request_id] = replace(record, **changes)
            return True

    def claim(self, request_id: str, lease_until: float) -> bool:
        return self._move(request_id, {RequestState.PENDING}, state=RequestState.RUNNING,
                          lease_until=lease_until)

    def set_progress(self, request_id: str, progress: float, *, seq: int = 0,
                     detail: dict[str, Any] | None = None) -> RequestRecord | None:
        if not self._move(request_id, {RequestState.RUNNING}, progress=progress, seq=seq,
                          detail=detail or {}):
            return None
        return self.rows[request_id]

    def detach(self, request_id: str, connection_id: str, until: float) -> bool:
        with self._lock:
            record = self.rows.get(request_id)
            if record is None or record.state not in _LIVE \
                    or record.connection_id != connection_id:
                return False
            self.rows[request_id] = replace(record, detached_until=until)
            return True

    def adopt(self, request_id: str, connection_id: str,
              endpoint: str) -> RequestRecord | None:
        if not self._move(request_id, _LIVE, connection_id=connection_id, endpoint=endpoint,
                          detached_until=None):
            return None
        return self.rows[request_id]

    def finish(self, request_id: str, state: RequestState, *, result: Any = None,
               error: tuple[str, str] | None = None, expires_at: int,
               only_if_lease_before: float | None = None, seq: int | None = None) -> bool:
        record = self.rows.get(request_id)
        if (only_if_lease_before is not None and record is not None
                and (record.lease_until or 0) >= only_if_lease_before):
            return False
        changes: dict[str, Any] = {"state": state, "expires_at": expires_at}
        if seq is not None:
            changes["seq"] = seq
        if state == RequestState.SUCCEEDED:
            changes.update(progress=1.0, result=result)
        if error is not None:
            changes.update(error_code=error[0], error_message=error[1])
        return self._move(request_id, {RequestState.RUNNING}, **changes)

    def cancel(self, request_id: str) -> tuple[bool, RequestState | None]:
        if self._move(request_id, _LIVE, state=RequestState.CANCELLED):
            return True, RequestState.CANCELLED
        record = self.get(request_id)
        return False, None if record is None else record.state

    def abandon(self, request_id: str, message: str, expires_at: int) -> bool:
        return self._move(request_id, _LIVE, state=RequestState.FAILED, payload={},
                          error_code="failed", error_message=message, expires_at=expires_at)

    def for_connection(self, connection_id: str) -> list[str]:
        return [r.request_id for r in self.rows.values() if r.connection_id == connection_id]


class MemoryIdempotencyStore(BasePersistenceLayer):
    """Powertools' idempotency persistence in a dict, with its DynamoDB layer's rule
    for a put: refused while a record of the key is live (not expired, or in progress
    within its in-progress expiry). For benchmarks whose storage is in memory: the
    fan-out workers then run the idempotency path that ships, without a database.

    Hand-written because Powertools ships only DynamoDB, Redis and cache layers.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._records: dict[str, DataRecord] = {}
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with self._lock:
            record = self._records.get(idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return record

    def _put_record(self, data_record: DataRecord) -> None:
        now = time.time()
        with self._lock:
            old = self._records.get(data_record.idempotency_key)
            if old is not None and old.expiry_timestamp is not None \
                    and old.expiry_timestamp >= now and not _in_progress_expired(old, now):
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self._records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records.pop(data_record.idempotency_key, None)


def _in_progress_expired(record: DataRecord, now: float) -> bool:
    return (record.status == STATUS_CONSTANTS["INPROGRESS"]
            and record.in_progress_expiry_timestamp is not None
            and record.in_progress_expiry_timestamp < now * 1000)


class MemoryHistory:
    """In-memory :class:`chalicelib.interfaces.History` with the same rules: one lock
    plays the part of DynamoDB's transaction."""

    def __init__(self, size: int = 100, ttl_seconds: int = 300,
                 clock: Callable[[], float] = time.time, *,
                 state_ttl_seconds: int = 86_400) -> None:
        self.size = size
        self.ttl = ttl_seconds
        self.state_ttl = state_ttl_seconds
        self.clock = clock
        # key -> (position, expires_at): a channel's state is forgotten after
        # state_ttl_seconds without a publish, as the channels table's TTL does.
        self.positions: dict[str, tuple[Position, float]] = {}
        # key -> offset -> (epoch, payload, expires_at)
        self.rows: dict[str, dict[int, tuple[str, bytes, float]]] = {}
        self._lock = threading.Lock()

    def _current(self, key: str) -> Position | None:
        entry = self.positions.get(key)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def position(self, tenant_id: str, channel: str) -> Position:
        key = history_key(tenant_id, channel)
        with self._lock:
            current = self._current(key)
            if current is None:
                current = Position(0, new_epoch())
                self.positions[key] = (current, self.clock() + self.state_ttl)
            return current

    def append(self, tenant_id: str, channel: str,
               encode: Callable[[Position], bytes]) -> tuple[Position, bytes]:
        key = history_key(tenant_id, channel)
        with self._lock:
            current = self._current(key)
            position = (Position(1, new_epoch()) if current is None
                        else Position(current.offset + 1, current.epoch))
            payload = encode(position)
            now = self.clock()
            self.positions[key] = (position, now + self.state_ttl)
            rows = self.rows.setdefault(key, {})
            rows[position.offset] = (position.epoch, payload, now + self.ttl)
            rows.pop(position.offset - self.size, None)
            return position, payload

    def read(self, tenant_id: str, channel: str, epoch: str, after: int,
             upto: int) -> list[tuple[int, bytes]]:
        now = self.clock()
        rows = self.rows.get(history_key(tenant_id, channel), {})
        return [(offset, row[1]) for offset, row in sorted(rows.items())
                if after < offset <= upto and row[0] == epoch and row[2] > now]
