"""Large channels fan out in parallel workers invoked through Lambda's Invoke API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from chalice.local import LambdaContext

from chalicelib.errors import StorageError
from chalicelib.parallel import Job, ParallelFanout
from chalicelib.storage import DynamoStorage
from chalicelib.tables import IDEMPOTENCY
from local.sink import ConnectionsSink
from tests.functional.conftest import Harness, Output


@pytest.fixture
def parallel(env: dict[str, str], sink: ConnectionsSink,
             harness_factory: Callable[[], Harness]) -> Harness:
    """The app with workers on: 4 shards, 2 per worker, a threshold of 8 subscribers;
    the sink's Lambda Invoke API runs each worker through chalice.test."""
    env.update({"FANOUT_FUNCTION_NAME": "fanout", "FANOUT_WORKER_THRESHOLD": "8",
                "FANOUT_SHARDS_PER_WORKER": "2", "SUBSCRIPTION_SHARDS": "4",
                "LAMBDA_ENDPOINT_URL": sink.lambda_url})
    h = harness_factory()

    def run_worker(name: str, payload: dict[str, Any]) -> None:
        h.client.lambda_.invoke(name, payload)

    h.sink.on_invoke = run_worker
    return h


def subscribers(h: Harness, n: int, channel: str = "big") -> list[str]:
    conns = [h.connect(f"u{k}") for k in range(n)]
    for conn in conns:
        h.send(conn, {"action": "subscribe", "channel": channel})
    return conns


def test_large_channel_goes_to_workers_each_subscriber_once(parallel: Harness,
                                                           output: Output) -> None:
    """A publish above the threshold is acked, handed to 2 workers, and delivered once each."""
    h = parallel
    # 40 subscribers: shard 0 holds fewer than 2 (an estimate under 8) once in ~7,000 runs.
    conns = subscribers(h, 40)
    h.sink.frames.clear()
    h.send(conns[0], {"action": "publish", "channel": "big", "data": "hi", "id": "m"})
    h.sink.join_workers()
    assert sorted(name for name, _ in h.sink.invocations) == ["fanout", "fanout"]
    assert sorted(tuple(p["shards"]) for _, p in h.sink.invocations) == [(0, 1), (2, 3)]
    for conn in conns:
        assert [f["data"] for f in h.sink.received(conn, "message")] == ["hi"]
    published = [line for line in output() if line.get("message") == "published"]
    assert published and published[0]["workers"] == 2


def test_small_channel_is_delivered_inline(parallel: Harness) -> None:
    """Below the threshold the publisher delivers itself and invokes no worker."""
    h = parallel
    conns = subscribers(h, 1, "small")  # an estimate of at most 1 x 4 shards < 8
    h.send(conns[0], {"action": "publish", "channel": "small", "data": 1})
    assert h.sink.invocations == []
    assert all(len(h.sink.received(c, "message")) == 1 for c in conns)


def test_exclude_self_holds_in_workers(parallel: Harness) -> None:
    """exclude_self keeps the publisher's copy out of a worker fan-out too."""
    h = parallel
    conns = subscribers(h, 16)
    h.send(conns[0], {"action": "publish", "channel": "big", "data": 2, "exclude_self": True})
    h.sink.join_workers()
    assert h.sink.received(conns[0], "message") == []
    assert all(len(h.sink.received(c, "message")) == 1 for c in conns[1:])


class FlakyStorage(DynamoStorage):
    """Real DynamoDB storage whose read of one shard fails the first time."""

    def __init__(self, inner: DynamoStorage, fail_shard: int) -> None:
        self.__dict__.update(inner.__dict__)
        self.fail_shard: int | None = fail_shard

    def subscribers(self, tenant_id: str, channel: str,
                    shards: list[int] | None = None) -> list[str]:
        if shards == [self.fail_shard]:
            self.fail_shard = None
            raise StorageError("injected: shard read failed")
        return super().subscribers(tenant_id, channel, shards)


def test_retried_worker_delivers_nothing_twice_and_drops_nothing(
        harness: Harness, dynamodb_endpoint: str) -> None:
    """A worker that fails on its second shard and is retried delivers each subscriber once."""
    conns = subscribers(harness, 30)
    harness.sink.frames.clear()
    storage = FlakyStorage(harness.storage, fail_shard=2)
    client: Any = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    persistence = DynamoDBPersistenceLayer(
        table_name=IDEMPOTENCY.physical_name(harness.prefix), boto3_client=client)
    workers = ParallelFanout(storage, threshold=1, shards_per_worker=4, function_name=None,
                             invoke=None, idempotency=persistence)
    job = Job("t1", "big", "msg-1", b'{"type":"message","data":1}', (0, 1, 2, 3), None,
              harness.sink.endpoint_url)
    fanout = harness.streamer.services.fanout_for(harness.sink.endpoint_url)
    context = LambdaContext("fanout", memory_size=128, max_runtime_ms=60_000)
    with pytest.raises(StorageError):
        workers.work(job, fanout, context)
    delivered_first = sum(len(harness.sink.received(c)) for c in conns)
    assert 0 < delivered_first < len(conns)  # shards 0 and 1 went out before the failure
    workers.work(job, fanout, context)  # Lambda's retry
    workers.work(job, fanout, context)  # and a duplicate invocation
    assert [len(harness.sink.received(c)) for c in conns] == [1] * len(conns)


def test_malformed_job_is_refused(harness: Harness) -> None:
    """A fan-out event missing its fields is refused rather than half-run."""
    from chalicelib.errors import BadRequest

    with pytest.raises(BadRequest):
        harness.client.lambda_.invoke("fanout", {"channel": "x"})



def test_refused_worker_invocation_is_delivered_inline(parallel: Harness, output: Output) -> None:
    """When Lambda refuses a worker invocation the publisher delivers those shards itself."""
    h = parallel
    conns = subscribers(h, 40)
    h.sink.refuse_invokes = True
    h.sink.frames.clear()
    h.send(conns[0], {"action": "publish", "channel": "big", "data": "x", "id": "m"})
    assert [len(h.sink.received(c, "message")) for c in conns] == [1] * len(conns)
    assert any(line.get("message") == "fan-out worker not invoked; delivering inline"
               for line in output())


def test_memory_idempotency_store_delivers_a_retried_shard_once(harness: Harness) -> None:
    """A worker retried with the same job over MemoryIdempotencyStore (the benchmarks'
    layer) skips the shards it delivered, as over DynamoDB."""
    from chalicelib.parallel import Job, ParallelFanout
    from local.memory import MemoryIdempotencyStore

    c = harness.connect()
    harness.send(c, {"action": "subscribe", "channel": "big"})
    parallel = ParallelFanout(harness.storage, threshold=1, shards_per_worker=4,
                              function_name="fanout", invoke=None,
                              idempotency=MemoryIdempotencyStore())
    job = Job("t1", "big", "m1", b'{"type":"message"}', (0, 1, 2, 3), None,
              harness.sink.endpoint_url)
    fanout = harness.streamer.services.fanout_for(harness.sink.endpoint_url)
    context = LambdaContext("fanout", memory_size=128, max_runtime_ms=60_000)
    first = parallel.work(job, fanout, context)
    again = parallel.work(job, fanout, context)
    assert first["delivered"] == again["delivered"] == 1
    assert harness.sink.received(c, "message") == [{"type": "message"}]
