"""Unit tests for chalicelib.model: connection records and the key rules."""

from __future__ import annotations

import itertools
import string
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.auth import Identity
from chalicelib.model import Connection, channel_key, shard_of, user_key

ID_CHARS = string.ascii_letters + string.digits + "_.@-"
CHANNEL_CHARS = string.ascii_letters + string.digits + "_.:-"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=128)
channels = st.text(alphabet=CHANNEL_CHARS, min_size=1, max_size=128)
shard_numbers = st.integers(min_value=0, max_value=999)

IDENTITY = Identity(user_id="u1", tenant_id="acme", permissions=frozenset({"read"}),
                    expires_at=2_000_000_000, issued_at=1_999_999_000)


def test_open_copies_identity_and_times() -> None:
    """Connection.open fills the record from the identity, the clock and the TTL."""
    conn = Connection.open("c1", IDENTITY, now=1_700_000_000.1234, ttl_seconds=86_400)
    assert conn == Connection(
        connection_id="c1", user_id="u1", tenant_id="acme",
        permissions=frozenset({"read"}), connected_at_ms=1_700_000_000_123,
        token_expires_at=2_000_000_000, expires_at=1_700_086_400, subscription_count=0)


def test_can_checks_permissions() -> None:
    """can() is true only for permissions the connection holds."""
    conn = Connection.open("c1", IDENTITY, now=0.0, ttl_seconds=60)
    assert conn.can("read")
    assert not conn.can("write")
    assert not conn.can("")


def test_user_key_joins_tenant_and_user() -> None:
    """user_key is 'tenant#user'."""
    assert user_key("acme", "u1") == "acme#u1"


def test_channel_key_shape() -> None:
    """channel_key is 'tenant#channel#shard'."""
    assert channel_key("acme", "prices", 3) == "acme#prices#3"


def test_same_channel_in_two_tenants_has_different_keys() -> None:
    """'prices' in tenant A and in tenant B are different channels."""
    assert channel_key("A", "prices", 0) != channel_key("B", "prices", 0)


def _strings(alphabet: str, max_len: int) -> list[str]:
    return ["".join(p) for n in range(1, max_len + 1)
            for p in itertools.product(alphabet, repeat=n)]


def test_channel_key_never_collides_exhaustively() -> None:
    """No two (tenant, channel, shard) triples share a key, over every short name built
    from the characters most likely to act as separators."""
    tenants = _strings("a1.@-", 3)
    names = _strings("a1.:-", 3)
    keys = {channel_key(t, c, s) for t in tenants for c in names for s in range(12)}
    assert len(keys) == len(tenants) * len(names) * 12


@given(ids, channels, shard_numbers, ids, channels, shard_numbers)
def test_channel_key_never_collides(t1: str, c1: str, s1: int,
                                    t2: str, c2: str, s2: int) -> None:
    """Distinct (tenant, channel, shard) triples over the valid charsets give distinct keys."""
    if (t1, c1, s1) != (t2, c2, s2):
        assert channel_key(t1, c1, s1) != channel_key(t2, c2, s2)


@given(ids, channels, shard_numbers)
def test_channel_key_parses_back(tenant: str, channel: str, shard: int) -> None:
    """A channel key splits back into exactly its tenant, channel and shard."""
    assert channel_key(tenant, channel, shard).split("#") == [tenant, channel, str(shard)]


@given(ids, ids, ids, ids)
def test_user_key_never_collides(t1: str, u1: str, t2: str, u2: str) -> None:
    """Distinct (tenant, user) pairs give distinct user keys."""
    if (t1, u1) != (t2, u2):
        assert user_key(t1, u1) != user_key(t2, u2)


@given(st.text(), st.integers(min_value=1, max_value=1000))
def test_shard_of_stays_in_range(connection_id: str, shards: int) -> None:
    """shard_of is always in 0..shards-1."""
    assert 0 <= shard_of(connection_id, shards) < shards


@given(st.text(max_size=40))
def test_shard_of_is_stable(connection_id: str) -> None:
    """The same connection always lands in the same shard."""
    assert shard_of(connection_id, 7) == shard_of(connection_id, 7)


def test_shard_of_is_crc32_based() -> None:
    """shard_of uses CRC-32 (stable across processes, unlike hash())."""
    assert shard_of("abc=", 1000) == zlib.crc32(b"abc=") % 1000
    assert shard_of("anything", 1) == 0


def test_shard_of_spreads_connections() -> None:
    """Many connection ids spread over every shard, none holding more than twice its share."""
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"conn{i}=", 4)] += 1
    assert min(counts) > 500
    assert max(counts) < 2000


def test_connection_is_frozen() -> None:
    """Connection records are immutable."""
    conn = Connection.open("c1", IDENTITY, now=0.0, ttl_seconds=60)
    with pytest.raises(AttributeError):
        conn.user_id = "other"  # type: ignore[misc]


def test_property_tests_have_no_deadline() -> None:
    """The suite's Hypothesis profile has no per-example deadline, so a busy machine
    cannot fail a property test (tests/conftest.py says why)."""
    from hypothesis import HealthCheck, settings

    assert settings().deadline is None
    assert HealthCheck.too_slow in settings().suppress_health_check
