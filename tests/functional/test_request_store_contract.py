"""The request state machine's contract, run against FakeRequestStore and the DynamoDB
adapter on moto, so the fake used in unit tests cannot drift from the real one."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chalicelib.errors import StorageError
from chalicelib.interfaces import RequestStore
from chalicelib.model import RequestRecord
from chalicelib.model import RequestState as State
from chalicelib.request_store import DynamoRequestStore
from tests.support.fakes import FakeRequestStore

NOW = 1_800_000_000.0


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> RequestStore:
    if request.param == "fake":
        return FakeRequestStore(clock=lambda: NOW)
    endpoint: str = request.getfixturevalue("dynamodb_endpoint")
    prefix: str = request.getfixturevalue("table_prefix")
    client: Any = boto3.client("dynamodb", endpoint_url=endpoint)
    return DynamoRequestStore(client, prefix, clock=lambda: NOW)


def record(request_id: str = "r1", connection_id: str = "c1") -> RequestRecord:
    return RequestRecord(
        request_id=request_id, tenant_id="t", user_id="u", connection_id=connection_id,
        kind="echo", payload={"a": [1, "b"]}, state=State.PENDING, endpoint="https://x/dev",
        created_at_ms=int(NOW * 1000), expires_at=int(NOW) + 3600,
    )


def test_create_get_round_trip_and_no_overwrite(store: RequestStore) -> None:
    """A created request reads back equal, and creating the same id again is refused."""
    store.create(record())
    assert store.get("r1") == record()
    assert store.get("missing") is None
    with pytest.raises(StorageError):
        store.create(record())


def test_claim_happens_once(store: RequestStore) -> None:
    """Only the first claim of a pending request succeeds."""
    store.create(record())
    assert store.claim("r1", lease_until=NOW + 60) is True
    assert store.claim("r1", lease_until=NOW + 60) is False
    current = store.get("r1")
    assert current is not None
    assert (current.state, current.lease_until) == (State.RUNNING, NOW + 60)


def test_progress_and_finish_only_while_running(store: RequestStore) -> None:
    """Progress and finish need a running request; after finish neither applies."""
    store.create(record())
    assert store.set_progress("r1", 0.5) is None
    store.claim("r1", lease_until=NOW + 60)
    after = store.set_progress("r1", 0.5, seq=1, detail={"step": 1})
    assert after is not None
    assert (after.progress, after.seq, after.detail) == (0.5, 1, {"step": 1})
    later = int(NOW) + 99
    assert store.finish("r1", State.SUCCEEDED, result={"ok": True}, expires_at=later) is True
    assert store.finish("r1", State.FAILED, error=("failed", "x"), expires_at=later) is False
    assert store.set_progress("r1", 0.9) is None
    done = store.get("r1")
    assert done is not None
    assert (done.state, done.progress, done.result) == (State.SUCCEEDED, 1.0, {"ok": True})


def test_detach_and_adopt_move_live_requests_between_connections(
        store: RequestStore) -> None:
    """detach marks a live request of that connection; adopt moves it to another and
    clears the mark; neither touches a final request or another connection's."""
    store.create(record())
    assert store.detach("r1", "someone-else", NOW + 30) is False
    assert store.detach("r1", "c1", NOW + 30) is True
    detached = store.get("r1")
    assert detached is not None and detached.detached_until == NOW + 30
    adopted = store.adopt("r1", "c2", "https://new.example/stage")
    assert adopted is not None
    assert (adopted.connection_id, adopted.endpoint, adopted.detached_until) == (
        "c2", "https://new.example/stage", None)
    assert store.for_connection("c2") == ["r1"] and store.for_connection("c1") == []
    assert store.detach("r1", "c1", NOW + 30) is False  # c1 no longer holds it
    store.cancel("r1")
    assert store.adopt("r1", "c3", "https://new.example/stage") is None
    assert store.detach("r1", "c2", NOW + 30) is False


def test_cancel_moves_live_requests_only(store: RequestStore) -> None:
    """cancel moves pending and running requests to cancelled and leaves final ones alone."""
    for rid in ("p", "r", "f"):
        store.create(record(rid))
    store.claim("r", lease_until=NOW + 60)
    store.claim("f", lease_until=NOW + 60)
    store.finish("f", State.FAILED, error=("failed", "boom"), expires_at=int(NOW) + 99)
    assert [store.cancel(rid) for rid in ("p", "r", "f", "none")] == [
        (True, State.CANCELLED), (True, State.CANCELLED), (False, State.FAILED), (False, None)]
    assert store.cancel("p") == (False, State.CANCELLED)  # a second cancel moves nothing
    assert store.claim("p", lease_until=NOW + 60) is False
    failed = store.get("f")
    assert failed is not None and (failed.error_code, failed.error_message) == ("failed", "boom")


def test_finish_if_lease_expired(store: RequestStore) -> None:
    """The lease condition fails a running request only once its lease has passed."""
    store.create(record())
    store.claim("r1", lease_until=NOW + 60)
    assert store.finish("r1", State.FAILED, error=("failed", "late"), expires_at=int(NOW) + 9,
                        only_if_lease_before=NOW) is False
    assert store.finish("r1", State.FAILED, error=("failed", "late"), expires_at=int(NOW) + 9,
                        only_if_lease_before=NOW + 61) is True


def test_for_connection_lists_its_requests(store: RequestStore) -> None:
    """for_connection finds a connection's requests and no other's."""
    store.create(record("a", "c1"))
    store.create(record("b", "c1"))
    store.create(record("c", "c2"))
    assert sorted(store.for_connection("c1")) == ["a", "b"]
    assert store.for_connection("c3") == []


def test_abandon_fails_live_requests_and_drops_their_payload(store: RequestStore) -> None:
    """abandon fails a pending or running request with its message and an empty payload;
    a final or unknown request is left alone."""
    for rid in ("p", "r", "s"):
        store.create(record(rid))
    store.claim("r", lease_until=NOW + 60)
    store.claim("s", lease_until=NOW + 60)
    store.finish("s", State.SUCCEEDED, result=1, expires_at=int(NOW) + 99)
    assert [store.abandon(rid, "unreadable", int(NOW) + 50)
            for rid in ("p", "r", "s", "none")] == [True, True, False, False]
    for rid in ("p", "r"):
        failed = store.get(rid)
        assert failed is not None
        assert (failed.state, failed.error_code, failed.error_message, failed.payload,
                failed.expires_at) == (State.FAILED, "failed", "unreadable", {}, int(NOW) + 50)
    assert store.abandon("p", "again", int(NOW) + 50) is False
    done = store.get("s")
    assert done is not None and done.state == State.SUCCEEDED and done.payload == {"a": [1, "b"]}
