"""One contract, two implementations: FakeStorage (unit tests) and DynamoStorage (moto
over HTTP) must behave the same, so the fake cannot drift from the real adapter."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chalicelib.auth import Identity
from chalicelib.errors import LimitExceeded
from chalicelib.interfaces import Storage
from chalicelib.model import Connection
from chalicelib.storage import DynamoStorage
from tests.support.fakes import FakeStorage

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> tuple[Storage, Clock]:
    clock = Clock()
    if request.param == "fake":
        return FakeStorage(shards=4, clock=clock), clock
    endpoint: str = request.getfixturevalue("dynamodb_endpoint")
    prefix: str = request.getfixturevalue("table_prefix")
    client: Any = boto3.client("dynamodb", endpoint_url=endpoint)
    return DynamoStorage(client, prefix, shards=4, clock=clock), clock


def conn(cid: str, user: str = "u", tenant: str = "t", ttl: int = 3600) -> Connection:
    identity = Identity(user, tenant, frozenset({"read"}), int(NOW) + ttl, int(NOW))
    return Connection.open(cid, identity, NOW, ttl)


Store = tuple[Storage, Clock]


def test_put_then_get_round_trips(store: Store) -> None:
    """A stored connection reads back equal."""
    storage, _ = store
    record = conn("c1")
    storage.put_connection(record)
    assert storage.get_connection("c1") == record
    assert storage.get_connection("nope") is None


def test_expired_rows_are_ignored_on_read(store: Store) -> None:
    """Connections and subscriptions past expires_at are invisible even before TTL deletes them."""
    storage, clock = store
    c = conn("c1", ttl=100)
    storage.put_connection(c)
    storage.subscribe(c, "ch", 10)
    storage.put_connection(conn("c2", ttl=1000))
    clock.now = NOW + 200
    assert storage.get_connection("c1") is None
    assert storage.subscribers("t", "ch") == []
    assert storage.user_connections("t", "u") == ["c2"]


def test_refresh_extends_the_token_and_its_subscriptions(store: Store) -> None:
    """refresh() stores the new expiry and permissions and keeps the connection's
    subscriptions alive past the old token's expiry; without it they lapse with the
    token; a removed connection is not brought back."""
    storage, clock = store
    short = Identity("u", "t", frozenset({"read"}), int(NOW) + 100, int(NOW))
    refreshed, lapsed = (Connection.open(cid, short, NOW, 3600) for cid in ("c1", "c2"))
    for c in (refreshed, lapsed):
        storage.put_connection(c)
        storage.subscribe(c, "ch", 10)
    updated = storage.refresh(refreshed, int(NOW) + 1000, frozenset({"read", "write"}))
    assert updated is not None
    assert (updated.token_expires_at, updated.permissions) == (
        int(NOW) + 1000, frozenset({"read", "write"}))
    clock.now = NOW + 500
    assert storage.subscribers("t", "ch") == ["c1"]
    assert storage.user_connections("t", "u") == ["c1"]
    stored = storage.get_connection("c1")
    assert stored is not None and stored.permissions == frozenset({"read", "write"})
    storage.remove_connection("c1")
    assert storage.refresh(refreshed, int(NOW) + 2000, frozenset({"read"})) is None
    assert storage.get_connection("c1") is None


def test_subscribe_is_idempotent_and_limited(store: Store) -> None:
    """A repeat subscribe returns False and is not counted; the limit raises LimitExceeded."""
    storage, _ = store
    c = conn("c1")
    storage.put_connection(c)
    assert storage.subscribe(c, "a", 2) is True
    assert storage.subscribe(c, "a", 2) is False
    assert storage.subscribe(c, "b", 2) is True
    with pytest.raises(LimitExceeded):
        storage.subscribe(c, "c", 2)
    assert storage.unsubscribe(c, "a") is True
    assert storage.unsubscribe(c, "a") is False
    assert storage.subscribe(c, "c", 2) is True
    record = storage.get_connection("c1")
    assert record is not None and record.subscription_count == 2


def test_subscribers_span_shards_and_stay_in_their_tenant(store: Store) -> None:
    """subscribers() returns every subscriber of the tenant's channel over all shards, no other."""
    storage, _ = store
    mine = [conn(f"c{n}") for n in range(12)]
    theirs = conn("x1", tenant="other")
    for c in [*mine, theirs]:
        storage.put_connection(c)
        storage.subscribe(c, "ch", 10)
    assert sorted(storage.subscribers("t", "ch")) == sorted(c.connection_id for c in mine)
    assert storage.subscribers("other", "ch") == ["x1"]
    assert storage.subscribers("t", "elsewhere") == []


def test_remove_connection_deletes_it_and_its_subscriptions(store: Store) -> None:
    """remove_connection returns the record and leaves no subscription behind."""
    storage, _ = store
    c, keep = conn("c1"), conn("c2")
    for record in (c, keep):
        storage.put_connection(record)
    for n in range(30):
        storage.subscribe(c, f"ch{n}", 100)
    storage.subscribe(keep, "ch0", 100)
    removed = storage.remove_connection("c1")
    assert removed is not None and removed.connection_id == "c1"
    assert storage.get_connection("c1") is None
    assert storage.subscribers("t", "ch0") == ["c2"]
    assert all(storage.subscribers("t", f"ch{n}") == [] for n in range(1, 30))
    assert storage.remove_connection("c1") is None


def test_user_connections_are_scoped_by_tenant(store: Store) -> None:
    """user_connections finds a user's connections in one tenant only."""
    storage, _ = store
    for record in (conn("a1", "ann", "t1"), conn("a2", "ann", "t1"), conn("a3", "ann", "t2"),
                   conn("b1", "bob", "t1")):
        storage.put_connection(record)
    assert sorted(storage.user_connections("t1", "ann")) == ["a1", "a2"]
    assert storage.user_connections("t3", "ann") == []


def test_subscribe_for_a_removed_connection_is_refused(store: Store) -> None:
    """A subscription cannot be added for a connection whose row is gone."""
    storage, _ = store
    c = conn("c1")
    storage.put_connection(c)
    storage.remove_connection("c1")
    with pytest.raises(LimitExceeded):
        storage.subscribe(c, "ch", 10)
    assert storage.subscribers("t", "ch") == []


def test_unfinished_requests_are_counted_per_connection(store: Store) -> None:
    """reserve_request counts up to the limit, release_request frees, a gone connection
    reserves nothing."""
    storage, _ = store
    storage.put_connection(conn("c1"))
    assert [storage.reserve_request("c1", 2) for _ in range(3)] == [True, True, False]
    storage.release_request("c1")
    assert storage.reserve_request("c1", 2) is True
    storage.remove_connection("c1")
    assert storage.reserve_request("c1", 2) is False
    storage.release_request("c1")  # harmless once the connection is gone


def test_create_tables_sees_existing_tables_past_the_first_page(dynamodb_client: Any) -> None:
    """create_tables leaves existing tables alone even when ListTables needs several pages."""
    import uuid

    from chalicelib.tables import TABLES, create_tables

    prefix = f"p{uuid.uuid4().hex[:8]}_"
    for n in range(100 // len(TABLES) + 1):  # push the server past one ListTables page
        create_tables(dynamodb_client, f"{prefix}{n}_")
    arns = create_tables(dynamodb_client, f"{prefix}0_")  # exists: must not CreateTable
    assert set(arns) == {"requests"}
    for n in range(100 // len(TABLES) + 1):
        for table in TABLES:
            dynamodb_client.delete_table(TableName=table.physical_name(f"{prefix}{n}_"))
