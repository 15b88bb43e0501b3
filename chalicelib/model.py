"""Streamer's records and the pure rules for their keys. No AWS here."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chalicelib.auth import Identity


@dataclass(frozen=True)
class Connection:
    """A live WebSocket connection and who it belongs to."""

    connection_id: str
    user_id: str
    tenant_id: str
    permissions: frozenset[str]
    connected_at_ms: int
    token_expires_at: int
    expires_at: int
    subscription_count: int = 0

    @classmethod
    def open(cls, connection_id: str, identity: Identity, now: float,
             ttl_seconds: int) -> Connection:
        return cls(
            connection_id=connection_id,
            user_id=identity.user_id,
            tenant_id=identity.tenant_id,
            permissions=identity.permissions,
            connected_at_ms=int(now * 1000),
            token_expires_at=identity.expires_at,
            expires_at=int(now) + ttl_seconds,
        )

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def subscription_expires_at(self) -> int:
        """Subscriptions end with the token (a refresh extends them) or the row."""
        return min(self.expires_at, self.token_expires_at)


def user_key(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}#{user_id}"


def shard_of(connection_id: str, shards: int) -> int:
    """The subscription shard of a connection: stable, spread evenly by CRC-32."""
    return zlib.crc32(connection_id.encode()) % shards


def channel_key(tenant_id: str, channel: str, shard: int) -> str:
    """The partition key of a channel shard. Tenant and channel names cannot hold
    ``#`` (their charsets exclude it), so no client text can forge another tenant's key."""
    return f"{tenant_id}#{channel}#{shard}"


@dataclass(frozen=True)
class Position:
    """Where a channel is: its last ``offset`` within ``epoch`` (docs/protocol.md 6)."""

    offset: int
    epoch: str


@dataclass(frozen=True)
class Outgoing:
    """A channel message ready to fan out: its encoded frame and where it goes."""

    tenant_id: str
    channel: str
    message_id: str
    payload: bytes
    position: Position | None = None  # None: continuity is off (HISTORY_SIZE=0)


class RequestState(StrEnum):
    """An asynchronous request's state. States move forward only, and every move is one
    conditional update, so concurrent movers (a processor, a duplicate processor, a
    ``cancel``, a disconnect) cannot both win::

        pending ──claim──> running ──finish──> succeeded | failed
           │                  │
           └──── cancel ──────┴──> cancelled

    A str, so it is its own wire and DynamoDB value.
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RequestRecord:
    """One asynchronous request, as stored."""

    request_id: str
    tenant_id: str
    user_id: str
    connection_id: str
    kind: str
    payload: dict[str, Any]
    state: RequestState
    endpoint: str
    created_at_ms: int
    expires_at: int
    progress: float = 0.0
    result: Any = None
    error_code: str | None = None
    error_message: str | None = None
    lease_until: float | None = None
    seq: int = 0  # frames sent for this request so far (progress, then the result)
    detail: dict[str, Any] | None = None  # the last progress frame's detail
    # Set when its connection went away: the time until which a reconnect of the same
    # user may take it over (``status``), after which it is cancelled.
    detached_until: float | None = None

    def owned_by(self, tenant_id: str, user_id: str) -> bool:
        return self.tenant_id == tenant_id and self.user_id == user_id

    def lease_expired(self, now: float) -> bool:
        return (self.state == RequestState.RUNNING and self.lease_until is not None
                and self.lease_until < now)
