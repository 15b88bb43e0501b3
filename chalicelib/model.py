"""Streamer's records and the pure rules for their keys. No AWS here."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

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
class Outgoing:
    """A channel message ready to fan out: its encoded frame and where it goes."""

    tenant_id: str
    channel: str
    message_id: str
    payload: bytes
