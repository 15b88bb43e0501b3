"""bench.shared_storage: one MemoryStorage served over a unix socket to other processes."""

from __future__ import annotations

import multiprocessing

import pytest

from bench.shared_storage import SHARDS, StorageClient, connect, serve
from chalicelib.errors import LimitExceeded, StorageError
from chalicelib.model import Connection
from local.memory import MemoryStorage

FAR = 2**40  # an expiry far in the future


def _connection(cid: str) -> Connection:
    return Connection(cid, f"user-{cid}", "tenant", frozenset({"read"}), 0, FAR, FAR)


def test_the_client_reads_and_writes_the_served_store_itself() -> None:
    store = MemoryStorage(shards=4)
    env = serve(store)
    assert env[SHARDS] == "4"
    client = connect(env)
    assert client.shards == 4
    for i in range(40):
        client.put_connection(_connection(f"c{i}"))
        assert client.subscribe(_connection(f"c{i}"), "room", limit=2) is True
    assert client.subscribe(_connection("c0"), "room", limit=2) is False  # already there
    for shard in range(4):
        assert client.subscribers("tenant", "room", [shard]) == \
            store.subscribers("tenant", "room", [shard])
    assert sorted(client.subscribers("tenant", "room")) == sorted(f"c{i}" for i in range(40))
    client.subscribe(_connection("c1"), "other", limit=2)
    with pytest.raises(LimitExceeded):
        client.subscribe(_connection("c1"), "third", limit=2)
    assert client.get_connection("c1") == store.connections["c1"]
    assert client.user_connections("tenant", "user-c1") == ["c1"]
    assert client.reserve_request("c1", limit=1) is True
    assert client.reserve_request("c1", limit=1) is False
    client.release_request("c1")
    assert client.unsubscribe(_connection("c1"), "other") is True
    removed = client.remove_connection("c2")
    assert removed is not None and removed.connection_id == "c2"
    assert "c2" not in store.connections
    assert client.remove_connection("c2") is None
    assert client.get_connection("c2") is None


def _remove_from_another_process(env: dict[str, str], connection_id: str) -> None:
    client = connect(env)
    ids = client.subscribers("tenant", "room")
    if connection_id not in ids or client.remove_connection(connection_id) is None:
        raise SystemExit(1)


def test_another_process_changes_the_one_store() -> None:
    store = MemoryStorage(shards=2)
    for cid in ("a", "b"):
        store.put_connection(_connection(cid))
        store.subscribe(_connection(cid), "room", limit=5)
    env = serve(store)
    child = multiprocessing.get_context("spawn").Process(
        target=_remove_from_another_process, args=(env, "a"))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store.subscribers("tenant", "room") == ["b"]
    assert "a" not in store.connections


def test_a_wrong_answer_or_a_broken_socket_is_a_storage_error() -> None:
    class Liar:
        def _callmethod(self, method: str, args: tuple[object, ...]) -> object:
            return {"not": "a list"}

    class Broken:
        def _callmethod(self, method: str, args: tuple[object, ...]) -> object:
            raise ConnectionResetError("gone")

    with pytest.raises(StorageError, match="not list"):
        StorageClient(Liar(), shards=1).subscribers("tenant", "room")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="not Connection"):
        StorageClient(Liar(), shards=1).get_connection("c")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="unreachable"):
        StorageClient(Broken(), shards=1).remove_connection("c")  # type: ignore[arg-type]
