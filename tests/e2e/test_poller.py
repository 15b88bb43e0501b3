"""The local stream poller against the real DynamoDB server, with a throwaway app.

Each test registers an ``on_dynamodb_record`` handler on a small Chalice app whose
stream ARN names this test's ``requests`` table (the ARN is a made-up literal, as in
configuration; the poller matches it by table name), writes rows over HTTP and drives
the poller synchronously with ``drain``/``poll_once``, except the one asyncio test.

The throwaway handler reads each record through Chalice's ``DynamoDBRecord`` too (to
prove the poller's records parse there), and on Python 3.12+ that constructor warns:
see ``CHALICE_DEPRECATION``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.app import Chalice

from streamer_local.poller import PollerConfigError, StreamPoller
from streamer_local.poller_lambda import first_failed_index
from streamer_local.poller_shards import StreamReader

Behaviour = Callable[[list[dict[str, Any]]], Any]  # gets the records, answers

# Chalice 1.34's DynamoDBRecord.__init__ calls datetime.utcfromtimestamp(), which
# Python 3.12 deprecated. pyproject's filterwarnings turns every warning into an error,
# so on 3.12+ a handler here that iterates its event raises, and the poller (rightly)
# fails and retries the batch: 1 + max_retries = 4 deliveries of every record, then a
# drop. Only that one warning, and only from chalice.app, is let through; any other
# warning in a handler still fails its batch (the two tests after the asyncio one).
CHALICE_DEPRECATION = (
    "datetime.datetime.utcfromtimestamp() is deprecated and scheduled for removal in a "
    "future version. Use timezone-aware objects to represent datetimes in UTC: "
    "datetime.datetime.fromtimestamp(timestamp, datetime.UTC)."
)
pytestmark = pytest.mark.filterwarnings(
    r"ignore:datetime\.datetime\.utcfromtimestamp\(\) is deprecated"
    r":DeprecationWarning:chalice\.app"
)


def stream_arn(prefix: str, table: str = "requests") -> str:
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{prefix}{table}/stream/x"


@dataclass
class Recorder:
    """What the throwaway handler saw: raw events, Chalice's parsed view, threads."""

    events: list[dict[str, Any]] = field(default_factory=list)
    table_names: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def batches(self) -> list[list[str]]:
        """Sequence numbers of each invocation, in order."""
        return [
            [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
            for event in self.events
        ]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for event in self.events for record in event["Records"]]


def make_app(
    arn: str, behaviour: Behaviour | None = None, **options: Any
) -> tuple[Chalice, Recorder]:
    app = Chalice(app_name="poller-test")
    seen = Recorder()

    def handle(event: Any) -> Any:
        seen.events.append(json.loads(json.dumps(event.to_dict())))
        seen.table_names.extend(record.table_name for record in event)
        seen.threads.append(threading.current_thread())
        if behaviour is None:
            return None
        return behaviour(seen.events[-1]["Records"])

    app.on_dynamodb_record(stream_arn=arn, **options)(handle)
    return app, seen


@pytest.fixture
def make_poller(dynamodb_endpoint: str, table_prefix: str) -> Iterator[Callable[..., StreamPoller]]:
    pollers: list[StreamPoller] = []

    def make(app: Chalice, **kwargs: Any) -> StreamPoller:
        poller = StreamPoller(app, dynamodb_endpoint, table_prefix, **kwargs)
        pollers.append(poller)
        return poller

    yield make
    for poller in pollers:
        poller.close()


def put(client: Any, prefix: str, request_id: str, **attributes: Any) -> None:
    item = {"request_id": {"S": request_id}, **attributes}
    client.put_item(TableName=f"{prefix}requests", Item=item)


def test_records_have_lambda_shape_with_typed_images(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Insert, modify and remove arrive as Lambda's JSON records with typed images."""
    arn = stream_arn(table_prefix)
    app, seen = make_app(arn)
    poller = make_poller(app)
    poller.connect()
    attributes = {
        "n": {"N": "1.5"},
        "blob": {"B": b"xy"},
        "flag": {"BOOL": True},
        "nothing": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "list": {"L": [{"S": "q"}, {"N": "2"}]},
        "map": {"M": {"inner": {"S": "v"}}},
    }
    put(dynamodb_client, table_prefix, "r1", **attributes)
    dynamodb_client.update_item(
        TableName=f"{table_prefix}requests",
        Key={"request_id": {"S": "r1"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    dynamodb_client.delete_item(
        TableName=f"{table_prefix}requests", Key={"request_id": {"S": "r1"}}
    )
    before = time.time()
    poller.drain()

    insert, modify, remove = seen.records
    image = {"request_id": {"S": "r1"}, **attributes, "blob": {"B": "eHk="}}
    assert insert["dynamodb"]["NewImage"] == image
    assert modify["dynamodb"]["OldImage"] == image
    assert modify["dynamodb"]["NewImage"] == {**image, "n": {"N": "2"}}
    assert remove["dynamodb"]["OldImage"] == {**image, "n": {"N": "2"}}
    assert "OldImage" not in insert["dynamodb"]
    assert "NewImage" not in remove["dynamodb"]
    assert [r["eventName"] for r in seen.records] == ["INSERT", "MODIFY", "REMOVE"]
    sequences = []
    for record in seen.records:
        assert set(record) == {
            "eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
            "eventSourceARN",
        }
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == "us-east-1"
        assert record["eventSourceARN"] == arn
        stream = record["dynamodb"]
        assert stream["Keys"] == {"request_id": {"S": "r1"}}
        assert stream["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(stream["SizeBytes"], int) and stream["SizeBytes"] > 0
        created = stream["ApproximateCreationDateTime"]
        assert isinstance(created, float) and created == int(created)
        assert before - 60 < created <= before + 1
        sequences.append(int(stream["SequenceNumber"]))
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    assert seen.table_names == [f"{table_prefix}requests"] * 3


def test_batch_size_is_honoured(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Five records with ``batch_size=2`` arrive as batches of 2, 2 and 1, in order."""
    app, seen = make_app(stream_arn(table_prefix), batch_size=2)
    poller = make_poller(app)
    poller.connect()
    for index in range(5):
        put(dynamodb_client, table_prefix, f"r{index}")
    assert poller.drain() == 3
    assert [len(batch) for batch in seen.batches] == [2, 2, 1]
    ids = [r["dynamodb"]["Keys"]["request_id"]["S"] for r in seen.records]
    assert ids == [f"r{index}" for index in range(5)]


def test_latest_skips_records_written_before_connect(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """With ``LATEST`` only rows written after ``connect`` are delivered."""
    app, seen = make_app(stream_arn(table_prefix), starting_position="LATEST")
    poller = make_poller(app)
    put(dynamodb_client, table_prefix, "before")
    poller.connect()
    put(dynamodb_client, table_prefix, "after")
    poller.drain()
    assert [r["dynamodb"]["Keys"]["request_id"]["S"] for r in seen.records] == ["after"]


def test_trim_horizon_reads_records_written_before_connect(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """With ``TRIM_HORIZON`` rows written before ``connect`` are delivered too."""
    app, seen = make_app(stream_arn(table_prefix), starting_position="TRIM_HORIZON")
    poller = make_poller(app)
    put(dynamodb_client, table_prefix, "before")
    poller.connect()
    put(dynamodb_client, table_prefix, "after")
    poller.drain()
    ids = [r["dynamodb"]["Keys"]["request_id"]["S"] for r in seen.records]
    assert ids == ["before", "after"]


def test_raising_handler_is_retried_until_it_succeeds(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """A handler that raises twice gets the same whole batch three times and loses nothing."""
    calls = 0

    def flaky(records: list[dict[str, Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("transient")

    app, seen = make_app(stream_arn(table_prefix), flaky)
    poller = make_poller(app, max_retries=3)
    poller.connect()
    put(dynamodb_client, table_prefix, "a")
    put(dynamodb_client, table_prefix, "b")
    assert poller.drain() == 3
    assert len(seen.batches[0]) == 2
    assert seen.batches == [seen.batches[0]] * 3
    assert poller.dropped == []


def test_batch_item_failures_resend_from_the_first_failed_record(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Reported failures re-send from the lowest failed sequence number, not earlier."""

    def partial(records: list[dict[str, Any]]) -> dict[str, Any] | None:
        batch = [record["dynamodb"]["SequenceNumber"] for record in records]
        if len(batch) == 4:  # the first delivery: report the 3rd and the 2nd record
            return {"batchItemFailures": [{"itemIdentifier": s} for s in (batch[2], batch[1])]}
        return {"batchItemFailures": []}

    app, seen = make_app(stream_arn(table_prefix), partial)
    poller = make_poller(app)
    poller.connect()
    for name in "abcd":
        put(dynamodb_client, table_prefix, name)
    assert poller.drain() == 2
    first, second = seen.batches
    assert second == first[1:]
    assert poller.dropped == []


def test_exhausted_retries_drop_the_batch_and_move_on(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """A batch failing ``max_retries + 1`` times is recorded as dropped and later rows flow."""

    def refuse_poison(records: list[dict[str, Any]]) -> None:
        if any(r["dynamodb"]["Keys"]["request_id"]["S"] == "poison" for r in records):
            raise ValueError("poison")

    app, seen = make_app(stream_arn(table_prefix), refuse_poison)
    poller = make_poller(app, max_retries=2)
    poller.connect()
    put(dynamodb_client, table_prefix, "poison")
    assert poller.drain() == 3
    poison = seen.batches[0]
    assert seen.batches == [poison] * 3
    [dropped] = poller.dropped
    assert dropped.attempts == 3
    assert [r["dynamodb"]["SequenceNumber"] for r in dropped.records] == poison
    assert dropped.handler == "handle"

    put(dynamodb_client, table_prefix, "healthy")
    assert poller.drain() == 1
    assert seen.records[-1]["dynamodb"]["Keys"] == {"request_id": {"S": "healthy"}}
    assert len(poller.dropped) == 1


def test_a_record_reported_failed_too_often_is_dropped_with_the_rest_of_its_batch(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Partial failures count against the failed record; giving up drops it and what follows."""

    def refuse_b(records: list[dict[str, Any]]) -> dict[str, Any]:
        failed = [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
            for r in records
            if r["dynamodb"]["Keys"]["request_id"]["S"] == "b"
        ]
        return {"batchItemFailures": failed}

    app, seen = make_app(stream_arn(table_prefix), refuse_b)
    poller = make_poller(app, max_retries=1)
    poller.connect()
    for name in "abc":
        put(dynamodb_client, table_prefix, name)
    assert poller.drain() == 2
    first, second = seen.batches
    assert second == first[1:]
    [dropped] = poller.dropped
    assert [r["dynamodb"]["SequenceNumber"] for r in dropped.records] == first[1:]
    assert dropped.attempts == 2


def test_a_retry_gets_a_fresh_event_even_if_the_handler_mutated_it(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Each invocation's event is a fresh copy, as Lambda deserialises it anew."""
    mutated: list[bool] = []

    def vandal(records: list[dict[str, Any]]) -> None:
        if not mutated:
            mutated.append(True)
            records[0]["dynamodb"].clear()
            records.clear()
            raise RuntimeError("after scribbling on the event")

    app = Chalice(app_name="poller-test")
    received: list[str] = []

    def handle(event: Any) -> None:
        received.append(json.dumps(event.to_dict(), sort_keys=True))
        vandal(event.to_dict()["Records"])

    app.on_dynamodb_record(stream_arn=stream_arn(table_prefix))(handle)
    poller = make_poller(app)
    poller.connect()
    put(dynamodb_client, table_prefix, "a")
    assert poller.drain() == 2
    assert received[0] == received[1]
    assert '"SequenceNumber"' in received[1]


def test_redelivering_every_record_sends_each_twice_in_a_later_batch(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """``redeliver_fraction=1.0`` delivers every record exactly twice, the copy later."""
    app, seen = make_app(stream_arn(table_prefix), batch_size=3)
    poller = make_poller(app, redeliver_fraction=1.0)
    poller.connect()
    for name in "abc":
        put(dynamodb_client, table_prefix, name)
    poller.drain()
    first_seen: dict[str, int] = {}
    copies: dict[str, list[dict[str, Any]]] = {}
    for index, event in enumerate(seen.events):
        for record in event["Records"]:
            sequence = record["dynamodb"]["SequenceNumber"]
            if sequence in first_seen:
                assert index > first_seen[sequence]
            first_seen.setdefault(sequence, index)
            copies.setdefault(sequence, []).append(record)
    assert len(copies) == 3
    assert all(len(both) == 2 and both[0] == both[1] for both in copies.values())
    assert sorted(sequence for _, sequence in poller.redelivered) == sorted(copies)


def test_redelivery_fraction_is_repeatable_with_a_seed(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Two pollers with the same seed redeliver the same strict subset of records."""
    chosen: list[set[str]] = []
    for _ in range(2):
        app, seen = make_app(stream_arn(table_prefix), starting_position="TRIM_HORIZON")
        poller = make_poller(app, redeliver_fraction=0.5, seed=11)
        if not chosen:
            for index in range(8):
                put(dynamodb_client, table_prefix, f"r{index}")
        poller.drain()
        sequences = [r["dynamodb"]["SequenceNumber"] for r in seen.records]
        duplicates = {s for s in sequences if sequences.count(s) == 2}
        assert duplicates == {s for _, s in poller.redelivered}
        chosen.append(duplicates)
    assert chosen[0] == chosen[1]
    assert 0 < len(chosen[0]) < 8


def test_batching_window_holds_a_short_batch_until_flushed(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """A short batch waits out ``maximum_batching_window_in_seconds``; ``drain`` sends it."""
    app, seen = make_app(
        stream_arn(table_prefix), batch_size=10, maximum_batching_window_in_seconds=60
    )
    poller = make_poller(app)
    poller.connect()
    put(dynamodb_client, table_prefix, "lonely")
    stats = poller.poll_once()
    assert (stats.fetched, stats.invocations) == (1, 0)
    assert seen.events == []
    assert poller.drain() == 1
    assert len(seen.records) == 1


def test_start_and_stop_poll_in_the_background_off_the_loop_thread(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """``start`` polls from the running loop and invokes handlers in a worker thread."""
    app, seen = make_app(stream_arn(table_prefix))
    poller = make_poller(app, poll_interval=0.05)

    async def scenario() -> None:
        await poller.start()
        await asyncio.to_thread(put, dynamodb_client, table_prefix, "async")
        deadline = time.monotonic() + 10
        while not seen.events and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await poller.stop()

    asyncio.run(scenario())
    assert [r["dynamodb"]["Keys"]["request_id"]["S"] for r in seen.records] == ["async"]
    assert seen.threads[0] is not threading.main_thread()


def warn_from(module: str, message: str) -> None:
    """Warn ``message`` as code in ``module`` would; ``chalice.app`` as on Python 3.12+."""
    warnings.warn_explicit(message, DeprecationWarning, f"{module}.py", 1, module=module)


def test_chalices_utcfromtimestamp_deprecation_does_not_fail_a_batch(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """Chalice's own utcfromtimestamp warning in a handler, on any Python, costs no retry."""
    app, seen = make_app(
        stream_arn(table_prefix), lambda records: warn_from("chalice.app", CHALICE_DEPRECATION)
    )
    poller = make_poller(app, max_retries=3)
    poller.connect()
    put(dynamodb_client, table_prefix, "once")
    assert poller.drain() == 1
    assert [r["dynamodb"]["Keys"]["request_id"]["S"] for r in seen.records] == ["once"]
    assert poller.dropped == []


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("chalice.app", "some other Chalice deprecation"),
        ("chalicelib.processor", CHALICE_DEPRECATION),  # our code must not call it
    ],
)
def test_any_other_warning_in_a_handler_still_fails_its_batch(
    dynamodb_client: Any,
    table_prefix: str,
    make_poller: Callable[..., StreamPoller],
    module: str,
    message: str,
) -> None:
    """The Chalice exemption is that one message from that one module, nothing wider."""
    app, seen = make_app(stream_arn(table_prefix), lambda records: warn_from(module, message))
    poller = make_poller(app, max_retries=0)
    poller.connect()
    put(dynamodb_client, table_prefix, "warned")
    assert poller.drain() == 1
    assert len(seen.events) == 1
    [dropped] = poller.dropped
    assert [r["dynamodb"]["Keys"]["request_id"]["S"] for r in dropped.records] == ["warned"]


def test_a_stream_arn_naming_no_local_table_is_a_config_error(
    table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """A handler whose ARN names a table the server lacks fails ``connect`` by name."""
    app, _ = make_app(stream_arn(table_prefix, table="missing"))
    poller = make_poller(app)
    with pytest.raises(PollerConfigError, match=f"{table_prefix}missing"):
        poller.connect()


def test_an_arn_with_another_prefix_falls_back_to_the_local_prefix(
    dynamodb_client: Any, table_prefix: str, make_poller: Callable[..., StreamPoller]
) -> None:
    """An ARN naming ``streamer_requests`` reads this stack's ``<prefix>requests`` stream,
    ``requests`` being one of the poller's fallback tables (the local stack passes the
    app's streamed tables)."""
    arn = stream_arn("streamer_")
    app, seen = make_app(arn)
    poller = make_poller(app, fallback_tables=("requests",))
    poller.connect()
    put(dynamodb_client, table_prefix, "x")
    poller.drain()
    assert [r["eventSourceARN"] for r in seen.records] == [arn]


class ScriptedStreams:
    """A DynamoDB Streams client over fixed shards (moto's streams have only one).

    ``shards`` maps a shard id to its parent and its sequence numbers; a shard listed in
    ``closed`` ends after its records. ``describe_stream`` pages one shard at a time.
    """

    def __init__(self, shards: dict[str, tuple[str | None, list[str]]], closed: set[str]):
        self.shards = shards
        self.closed = closed

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "") -> Any:
        ids = list(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        shard_id = ids[start]
        parent, sequences = self.shards[shard_id]
        listed: dict[str, Any] = {
            "ShardId": shard_id,
            "SequenceNumberRange": {"StartingSequenceNumber": sequences[0]},
        }
        if parent is not None:
            listed["ParentShardId"] = parent
        if shard_id in self.closed:
            listed["SequenceNumberRange"]["EndingSequenceNumber"] = sequences[-1]
        description: dict[str, Any] = {"Shards": [listed]}
        if start + 1 < len(ids):
            description["LastEvaluatedShardId"] = shard_id
        return {"StreamDescription": description}

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str = ""
    ) -> Any:
        sequences = self.shards[ShardId][1]
        position = {"TRIM_HORIZON": 0, "LATEST": len(sequences)}.get(ShardIteratorType)
        if position is None:
            position = sequences.index(SequenceNumber) + 1
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        shard_id, start = ShardIterator.split("|")
        sequences = self.shards[shard_id][1]
        chosen = sequences[int(start) : int(start) + Limit]
        end = int(start) + len(chosen)
        records = [
            {
                "eventID": f"e{sequence}",
                "eventName": "INSERT",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": datetime.datetime.now(datetime.UTC),
                    "Keys": {"request_id": {"S": sequence}},
                    "SequenceNumber": sequence,
                    "SizeBytes": 10,
                    "StreamViewType": "KEYS_ONLY",
                },
            }
            for sequence in chosen
        ]
        response: dict[str, Any] = {"Records": records}
        if not (shard_id in self.closed and end == len(sequences)):
            response["NextShardIterator"] = f"{shard_id}|{end}"
        return response


def read_passes(reader: StreamReader, passes: int) -> list[list[str]]:
    """What each pass over the readable shards read (and handled at once)."""
    seen = []
    for _ in range(passes):
        got: list[str] = []
        for shard in reader.readable():
            reader.fill(shard)
            got.extend(pending.sequence_number for pending in shard.pending)
            shard.pending.clear()
        seen.append(got)
    return seen


def test_a_child_shard_is_read_only_after_its_closed_parent() -> None:
    """From ``TRIM_HORIZON`` a closed parent is read to its end before its child starts."""
    streams = ScriptedStreams(
        {"child": ("parent", ["3", "4"]), "parent": (None, ["1", "2"])}, closed={"parent"}
    )
    reader = StreamReader(streams, "arn:stream", "arn:configured", "TRIM_HORIZON", 10)
    reader.refresh(initial=True)
    assert set(reader.shards) == {"parent", "child"}
    assert read_passes(reader, 3) == [["1", "2"], ["3", "4"], []]
    assert reader.shards["parent"].finished and not reader.shards["child"].finished


def test_latest_skips_closed_shards_and_reads_new_records_of_open_ones() -> None:
    """From ``LATEST`` a closed shard is skipped and an open one yields only new records."""
    streams = ScriptedStreams(
        {"parent": (None, ["1", "2"]), "child": ("parent", ["3"])}, closed={"parent"}
    )
    reader = StreamReader(streams, "arn:stream", "arn:configured", "LATEST", 10)
    reader.refresh(initial=True)
    streams.shards["child"][1].append("4")
    assert read_passes(reader, 2) == [["4"], []]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, None),
        ("done", None),
        ({}, None),
        ({"batchItemFailures": None}, None),
        ({"batchItemFailures": []}, None),
        ({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}, 1),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, 0),
        ({"batchItemFailures": [{"sequenceNumber": "2"}]}, 0),
        ({"batchItemFailures": [{"itemIdentifier": "9"}]}, 0),
        ({"batchItemFailures": "2"}, 0),
    ],
)
def test_handler_responses_are_read_like_lambda(response: Any, expected: int | None) -> None:
    """Success, partial failure and malformed answers map to Lambda's resume points."""
    assert first_failed_index(response, ["1", "2", "3"]) == expected
