"""Asynchronous requests through chalice.test.Client: actions, processor, state machine.

The processor is invoked with stream events built by local.testkit from the rows
the app really wrote, as DynamoDB Streams would deliver them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.model import RequestState
from chalicelib.registry import default_tasks
from chalicelib.tasks import Requester, TaskContext, TaskTable
from local import testkit
from tests.functional.conftest import Harness, Output

HOOKS: dict[str, Callable[[int], None]] = {}


def _hooked(payload: dict[str, Any], requester: Requester, ctx: TaskContext) -> Any:
    """A test kind: before each step, run the hook the test registered."""
    steps = int(payload["steps"])
    for step in range(1, steps + 1):
        hook = HOOKS.get(str(payload.get("hook")))
        if hook is not None:
            hook(step)
        ctx.progress(step / steps, {"step": step})
    return {"done": steps}


def _explode(payload: dict[str, Any], requester: Requester, ctx: TaskContext) -> Any:
    ctx.progress(0.5)
    raise RuntimeError("secret internal detail")


def _stubborn(payload: dict[str, Any], requester: Requester, ctx: TaskContext) -> Any:
    """A test kind that catches every Exception around its steps."""
    done = 0
    for step in range(1, int(payload["steps"]) + 1):
        hook = HOOKS.get(str(payload.get("hook")))
        try:
            if hook is not None:
                hook(step)
            ctx.progress(step / int(payload["steps"]))
            done = step
        except Exception:  # noqa: BLE001  (what a careless task does)
            continue
    return {"done": done}


@pytest.fixture
def tasks() -> TaskTable:
    """The default kinds plus this module's test kinds, in a table of their own."""
    table = default_tasks()
    table.add("test-hooked", _hooked)
    table.add("test-explode", _explode)
    table.add("test-stubborn", _stubborn)
    return table


@pytest.fixture(autouse=True)
def clear_hooks() -> Iterator[None]:
    yield
    HOOKS.clear()


def request(h: Harness, conn: str, kind: str, payload: Any, frame_id: str = "r") -> str:
    reply = h.send(conn, {"action": "request", "kind": kind, "payload": payload, "id": frame_id})
    assert reply["type"] == "ack" and reply["action"] == "request" and reply["id"] == frame_id
    return str(reply["request_id"])


def row(h: Harness, request_id: str) -> dict[str, Any]:
    item = h.dynamodb.get_item(TableName=f"{h.prefix}requests",
                               Key={"request_id": {"S": request_id}}, ConsistentRead=True)
    return dict(item["Item"])


def process(h: Harness, *records: dict[str, Any]) -> Any:
    return h.client.lambda_.invoke("process", testkit.stream_event(*records)).payload


def frames(h: Harness, conn: str, request_id: str) -> list[dict[str, Any]]:
    return [f for f in h.sink.received(conn) if f.get("request_id") == request_id]


def test_count_sends_each_progress_then_the_result(harness: Harness) -> None:
    """count stores a pending row and acks; the processor sends n progress frames, then a result."""
    c = harness.connect()
    rid = request(harness, c, "count", {"steps": 3, "interval_ms": 0})
    assert row(harness, rid)["state"] == {"S": "pending"}
    assert process(harness, testkit.insert_record(row(harness, rid))) == {"batchItemFailures": []}
    got = frames(harness, c, rid)
    assert [f["type"] for f in got if f["type"] != "ack"] == ["progress"] * 3 + ["result"]
    assert [f["progress"] for f in got if f["type"] == "progress"] == pytest.approx(
        [1 / 3, 2 / 3, 1.0])
    assert [f["detail"] for f in got if f["type"] == "progress"] == [
        {"step": 1}, {"step": 2}, {"step": 3}]
    assert got[-1] == {"type": "result", "request_id": rid, "data": {"count": 3}, "seq": 4}
    assert [f["seq"] for f in got if f["type"] == "progress"] == [1, 2, 3]
    assert row(harness, rid)["state"] == {"S": "succeeded"}


def test_echo_result_is_the_payload(harness: Harness) -> None:
    """echo's result is its payload."""
    c = harness.connect()
    rid = request(harness, c, "echo", {"x": [1, "two"]})
    process(harness, testkit.insert_record(row(harness, rid)))
    assert harness.sink.last(c) == {"type": "result", "request_id": rid,
                                    "data": {"x": [1, "two"]}, "seq": 1}


def test_request_needs_write(harness: Harness) -> None:
    """request without the write permission is forbidden and stores nothing."""
    c = harness.connect(permissions=("read",))
    reply = harness.send(c, {"action": "request", "kind": "echo", "payload": {}, "id": "f"})
    assert (reply["code"], reply["id"]) == ("forbidden", "f")
    assert harness.rows("requests") == []


def test_duplicate_and_out_of_order_records_run_the_work_once(harness: Harness) -> None:
    """Redelivered, duplicated and out-of-order records never run the work twice."""
    c = harness.connect()
    rid = request(harness, c, "count", {"steps": 2, "interval_ms": 0})
    pending = row(harness, rid)
    running = {**pending, "state": {"S": RequestState.RUNNING}}
    insert = testkit.insert_record(pending)
    # A later MODIFY seen first, then the INSERT twice in one batch, then again later.
    process(harness, testkit.modify_record(pending, running), insert, insert)
    process(harness, insert)
    got = frames(harness, c, rid)
    assert [f["type"] for f in got if f["type"] != "ack"] == ["progress", "progress", "result"]


def test_raising_task_fails_the_request_without_a_stack_trace(harness: Harness) -> None:
    """A task that raises marks the request failed and sends an error frame code failed."""
    c = harness.connect()
    rid = request(harness, c, "test-explode", {})
    assert process(harness, testkit.insert_record(row(harness, rid))) == {"batchItemFailures": []}
    error = harness.sink.last(c)
    assert error["type"] == "error" and error["code"] == "failed"
    assert error["request_id"] == rid
    assert "secret internal detail" not in error["message"]
    assert "Traceback" not in error["message"]
    status = harness.send(c, {"action": "status", "request_id": rid, "id": "q"})
    assert status["state"] == "failed" and status["error"]["code"] == "failed"


def test_poison_record_is_skipped_and_the_rest_runs(harness: Harness, output: Output) -> None:
    """A record that cannot be parsed is logged and skipped; the batch's other records run."""
    c = harness.connect()
    rid = request(harness, c, "echo", {"n": 1})
    poison = testkit.insert_record(testkit.typed({"request_id": "p", "state": "pending"}))
    result = process(harness, poison, testkit.insert_record(row(harness, rid)))
    assert result == {"batchItemFailures": []}
    assert harness.sink.last(c)["type"] == "result"
    assert any(line.get("message") == "stream record could not be handled" for line in output())


def spoil_payload(h: Harness, request_id: str, payload: str) -> dict[str, Any]:
    """Overwrite a stored request's payload (as an older writer could have left it)."""
    h.dynamodb.update_item(TableName=f"{h.prefix}requests",
                           Key={"request_id": {"S": request_id}},
                           UpdateExpression="SET payload = :p",
                           ExpressionAttributeValues={":p": {"S": payload}})
    return row(h, request_id)


# 100,000 levels: past every Python's JSON recursion bound (3.13 parses ~10,000).
@pytest.mark.parametrize("payload", ["[" * 100_000 + "]" * 100_000, "not json", '{"a": NaN'])
def test_unreadable_request_fails_and_frees_its_slot(
        env: dict[str, str], harness_factory: Callable[[], Harness], payload: str) -> None:
    """A request the processor cannot read is failed with a reason, at once and not
    retried; its MAX_ACTIVE_REQUESTS slot is freed; status then answers its state."""
    env["MAX_ACTIVE_REQUESTS"] = "1"
    h = harness_factory()
    c = h.connect()
    rid = request(h, c, "echo", {"n": 1})
    bad = spoil_payload(h, rid, payload)
    assert process(h, testkit.insert_record(bad)) == {"batchItemFailures": []}
    stored = row(h, rid)
    assert stored["state"] == {"S": "failed"}
    assert stored["error_message"]["S"] == "the processor could not handle this request"
    assert stored["payload"] == {"S": "{}"}
    error = [f for f in frames(h, c, rid) if f["type"] == "error"]
    assert [f["code"] for f in error] == ["failed"]
    status = h.send(c, {"action": "status", "request_id": rid, "id": "q"})
    assert (status["type"], status["state"]) == ("request", "failed")
    assert status["error"]["message"] == "the processor could not handle this request"
    request(h, c, "echo", {}, "next")  # the slot was freed
    # The record delivered again (at least once) changes nothing and frees nothing twice.
    assert process(h, testkit.insert_record(bad)) == {"batchItemFailures": []}
    assert h.send(c, {"action": "request", "kind": "echo", "payload": {},
                      "id": "over"})["code"] == "limit_exceeded"


def test_unreadable_request_does_not_block_the_batch(harness: Harness) -> None:
    """A poison record first in a batch: the records after it still run, none is retried."""
    c = harness.connect()
    poisoned, good = request(harness, c, "echo", {}, "p"), request(harness, c, "echo", {}, "g")
    bad = spoil_payload(harness, poisoned, "[" * 3000)
    result = process(harness, testkit.insert_record(bad, sequence_number="1"),
                     testkit.insert_record(row(harness, good), sequence_number="2"))
    assert result == {"batchItemFailures": []}
    assert row(harness, good)["state"] == {"S": "succeeded"}
    assert row(harness, poisoned)["state"] == {"S": "failed"}


@pytest.mark.parametrize("levels", [40, 980])
def test_deeply_nested_request_payload_is_refused_and_not_stored(harness: Harness,
                                                                 levels: int) -> None:
    """A request whose payload nests past the bound (980 levels included, which once
    stored a request nothing could run) answers bad_request and stores nothing."""
    c = harness.connect()
    raw = ('{"action":"request","kind":"echo","id":"deep","payload":{"x":'
           + "[" * levels + "]" * levels + "}}")
    reply = harness.send(c, raw)
    assert (reply["type"], reply["code"]) == ("error", "bad_request")
    assert harness.rows("requests") == []


def test_infrastructure_error_fails_only_that_record(harness: Harness) -> None:
    """A DynamoDB error on one record is reported in batchItemFailures; the others still run."""
    c = harness.connect()
    rid = request(harness, c, "echo", {"n": 1})
    broken = {**row(harness, rid), "request_id": {"S": ""}}  # DynamoDB refuses an empty key
    bad = testkit.insert_record(broken, sequence_number="111")
    result = process(harness, bad, testkit.insert_record(row(harness, rid)))
    assert result == {"batchItemFailures": [{"itemIdentifier": "111"}]}
    assert harness.sink.last(c)["type"] == "result"


def test_cancel_before_start(harness: Harness) -> None:
    """Cancelling a pending request acks cancelled, tells the requester, and the work never runs."""
    c = harness.connect()
    rid = request(harness, c, "count", {"steps": 2, "interval_ms": 0})
    harness.client.lambda_.invoke("message", testkit.message_event(
        c, {"action": "cancel", "request_id": rid, "id": "x"}))
    got = frames(harness, c, rid)
    assert {"type": "ack", "id": "x", "action": "cancel", "request_id": rid,
            "state": "cancelled"} in got
    assert any(f["type"] == "error" and f["code"] == "cancelled" for f in got)
    process(harness, testkit.insert_record(row(harness, rid)))
    assert not [f for f in frames(harness, c, rid) if f["type"] in ("progress", "result")]


def test_cancel_mid_way_stops_the_work_and_sends_no_result(harness: Harness) -> None:
    """A cancel from another connection of the user stops the work at its next step."""
    c, other = harness.connect("ann"), harness.connect("ann")
    rid = request(harness, c, "test-hooked", {"steps": 5, "hook": "cancel"})

    def cancel_at(step: int) -> None:
        if step == 3:
            reply = harness.send(other, {"action": "cancel", "request_id": rid, "id": "k"})
            assert reply["state"] == "cancelled"

    HOOKS["cancel"] = cancel_at
    process(harness, testkit.insert_record(row(harness, rid)))
    got = frames(harness, c, rid)
    assert len([f for f in got if f["type"] == "progress"]) == 2
    assert not [f for f in got if f["type"] == "result"]
    assert [f["code"] for f in got if f["type"] == "error"] == ["cancelled"]
    assert row(harness, rid)["state"] == {"S": "cancelled"}


def test_disconnect_mid_way_cancels(harness: Harness) -> None:
    """The requester's disconnect cancels its running request; the work stops, no result."""
    c = harness.connect()
    rid = request(harness, c, "test-hooked", {"steps": 4, "hook": "bye"})
    HOOKS["bye"] = lambda step: harness.disconnect(c) if step == 2 else None
    process(harness, testkit.insert_record(row(harness, rid)))
    assert row(harness, rid)["state"] == {"S": "cancelled"}
    assert [f["type"] for f in frames(harness, c, rid)] == ["ack", "progress"]


def test_disconnect_cancels_pending_requests(harness: Harness) -> None:
    """Disconnect cancels the connection's pending requests and no other connection's."""
    c, other = harness.connect("ann"), harness.connect("ann")
    mine = request(harness, c, "echo", {})
    theirs = request(harness, other, "echo", {})
    harness.disconnect(c)
    assert row(harness, mine)["state"] == {"S": "cancelled"}
    assert row(harness, theirs)["state"] == {"S": "pending"}


def test_gone_client_mid_way_cancels(harness: Harness) -> None:
    """A 410 while sending progress cancels the request and stops the work."""
    c = harness.connect()
    rid = request(harness, c, "test-hooked", {"steps": 4, "hook": "gone"})
    HOOKS["gone"] = lambda step: harness.sink.gone.add(c) if step == 2 else None
    process(harness, testkit.insert_record(row(harness, rid)))
    assert row(harness, rid)["state"] == {"S": "cancelled"}
    assert harness.sink.attempts[c] >= 2
    assert harness.storage.get_connection(c) is None  # the 410 also removed the connection


def test_status_after_reconnect_and_not_found_for_others(harness: Harness) -> None:
    """status answers any connection of the same user and tenant; others get not_found."""
    first = harness.connect("ann", "t1")
    rid = request(harness, first, "echo", {"v": 1})
    process(harness, testkit.insert_record(row(harness, rid)))
    harness.disconnect(first)
    again = harness.connect("ann", "t1")
    status = harness.send(again, {"action": "status", "request_id": rid, "id": "q"})
    assert status == {"type": "request", "id": "q", "request_id": rid, "state": "succeeded",
                      "progress": 1.0, "result": {"v": 1}, "seq": 1}
    for user, tenant in (("bob", "t1"), ("ann", "t2")):
        stranger = harness.connect(user, tenant)
        for action in ("status", "cancel"):
            reply = harness.send(stranger, {"action": action, "request_id": rid, "id": "s"})
            assert (reply["type"], reply["code"]) == ("error", "not_found")
    assert row(harness, rid)["state"] == {"S": "succeeded"}


def test_cancel_of_finished_request_changes_nothing(harness: Harness) -> None:
    """Cancelling a finished request acks its final state and sends no cancelled error."""
    c = harness.connect()
    rid = request(harness, c, "echo", {})
    process(harness, testkit.insert_record(row(harness, rid)))
    harness.sink.reset()
    reply = harness.send(c, {"action": "cancel", "request_id": rid, "id": "z"})
    assert reply == {"type": "ack", "id": "z", "action": "cancel", "request_id": rid,
                     "state": "succeeded"}
    assert harness.sink.received(c) == [reply]


def test_status_while_pending_and_running(harness: Harness) -> None:
    """status reports pending, then running with its progress."""
    c = harness.connect()
    rid = request(harness, c, "test-hooked", {"steps": 2, "hook": "peek"})
    assert harness.send(c, {"action": "status", "request_id": rid})["state"] == "pending"
    seen: list[dict[str, Any]] = []
    HOOKS["peek"] = lambda step: seen.append(
        harness.send(c, {"action": "status", "request_id": rid})) if step == 2 else None
    process(harness, testkit.insert_record(row(harness, rid)))
    assert seen[0]["state"] == "running" and seen[0]["progress"] == 0.5


def test_time_budget_fails_the_request(harness: Harness) -> None:
    """Work that cannot finish in the invocation's time left is failed with a clear error."""
    h = harness
    c = h.connect()
    # chalice.test gives an invocation 3 s; the second 1.5 s wait would overrun it.
    rid = request(h, c, "count", {"steps": 3, "interval_ms": 1500})
    process(h, testkit.insert_record(row(h, rid)))
    assert [f["type"] for f in frames(h, c, rid)].count("progress") == 1
    error = h.sink.last(c)
    assert error["type"] == "error" and error["code"] == "failed"
    assert "time budget" in error["message"]
    assert row(h, rid)["state"] == {"S": "failed"}


def test_abandoned_running_request_is_failed_when_looked_at(harness: Harness) -> None:
    """A request left running past its lease (its invocation died) reads back as failed."""
    c = harness.connect()
    rid = request(harness, c, "echo", {})
    assert harness.streamer.services.requests.claim(rid, lease_until=harness.clock() - 1)
    status = harness.send(c, {"action": "status", "request_id": rid, "id": "q"})
    assert status["state"] == "failed" and "time budget" in status["error"]["message"]
    process(harness, testkit.insert_record(row(harness, rid)))  # a late redelivery
    assert row(harness, rid)["state"] == {"S": "failed"}


def test_a_task_catching_exception_still_stops_on_cancel(harness: Harness) -> None:
    """A cancel stops even a task that wraps its steps in except Exception."""
    c = harness.connect()
    rid = request(harness, c, "test-stubborn", {"steps": 6, "hook": "cancel2"})

    def cancel_at_two(step: int) -> None:
        if step == 2:
            harness.send(c, {"action": "cancel", "request_id": rid})

    HOOKS["cancel2"] = cancel_at_two
    process(harness, testkit.insert_record(row(harness, rid)))
    got = frames(harness, c, rid)
    assert len([f for f in got if f["type"] == "progress"]) == 1
    assert not [f for f in got if f["type"] == "result"]


def test_remove_records_are_ignored(harness: Harness) -> None:
    """A REMOVE (a TTL expiry) runs nothing and fails nothing."""
    c = harness.connect()
    rid = request(harness, c, "echo", {})
    assert process(harness, testkit.remove_record(row(harness, rid))) == {
        "batchItemFailures": []}
    assert row(harness, rid)["state"] == {"S": "pending"}
    assert not [f for f in frames(harness, c, rid) if f["type"] == "result"]


def test_overlong_request_id_is_not_found(harness: Harness) -> None:
    """cancel and status for an id no request can have answer not_found, like any unknown id."""
    c = harness.connect()
    for action in ("cancel", "status"):
        for length in (65, 200, 257, 10_000):
            reply = harness.send(c, {"action": action, "request_id": "r" * length, "id": "x"})
            assert (reply["code"], reply["id"]) == ("not_found", "x")


@pytest.mark.parametrize("request_id", ["", 7, None, ["r"]])
def test_request_id_that_is_not_a_string_is_bad_request(harness: Harness,
                                                        request_id: Any) -> None:
    """cancel and status with an empty or non-string request_id answer bad_request."""
    c = harness.connect()
    for action in ("cancel", "status"):
        reply = harness.send(c, {"action": action, "request_id": request_id, "id": "x"})
        assert (reply["code"], reply["id"]) == ("bad_request", "x")


def test_unfinished_requests_per_connection_are_limited(
        env: dict[str, str], harness_factory: Callable[[], Harness]) -> None:
    """MAX_ACTIVE_REQUESTS bounds a connection's unfinished requests; finishing or
    cancelling one frees its slot."""
    env["MAX_ACTIVE_REQUESTS"] = "2"
    h = harness_factory()
    c = h.connect()
    first, second = request(h, c, "echo", {}, "a"), request(h, c, "echo", {}, "b")
    refused = h.send(c, {"action": "request", "kind": "echo", "payload": {}, "id": "c"})
    assert (refused["code"], refused["id"]) == ("limit_exceeded", "c")
    assert len(h.rows("requests")) == 2
    process(h, testkit.insert_record(row(h, first)))  # finishes: frees a slot
    third = request(h, c, "echo", {}, "d")
    assert h.send(c, {"action": "request", "kind": "echo", "payload": {},
                      "id": "e"})["code"] == "limit_exceeded"
    h.send(c, {"action": "cancel", "request_id": second})  # cancelled: frees a slot
    h.send(c, {"action": "cancel", "request_id": second})  # a repeat frees nothing
    request(h, c, "echo", {}, "f")
    assert h.send(c, {"action": "request", "kind": "echo", "payload": {},
                      "id": "g"})["code"] == "limit_exceeded"
    assert third


# -- REQUEST_RECONNECT_GRACE_SECONDS: a reconnect takes a running request over --------

@pytest.fixture
def graced(env: dict[str, str], harness_factory: Callable[[], Harness]) -> Harness:
    env["REQUEST_RECONNECT_GRACE_SECONDS"] = "5"
    return harness_factory()


def test_with_a_grace_a_reconnect_takes_the_request_over(graced: Harness) -> None:
    """The disconnect leaves the request running; the reconnect's status takes it over,
    and the rest of its progress and its result go to the new connection, seq going on
    from where the old one stopped."""
    h = graced
    old = h.connect("ann")
    rid = request(h, old, "test-hooked", {"steps": 4, "hook": "move"})
    moved: list[str] = []

    def move(step: int) -> None:
        if step == 2:
            h.disconnect(old)
            assert row(h, rid)["state"] == {"S": "running"} and "detached_until" in row(h, rid)
            new = h.connect("ann")
            status = h.send(new, {"action": "status", "request_id": rid, "id": "q"})
            assert (status["state"], status["seq"]) == ("running", 1)
            moved.append(new)

    HOOKS["move"] = move
    process(h, testkit.insert_record(row(h, rid)))
    (new,) = moved
    assert [(f["type"], f.get("seq")) for f in frames(h, old, rid)] == [
        ("ack", None), ("progress", 1)]
    assert [(f["type"], f.get("seq")) for f in frames(h, new, rid)] == [
        ("request", 1), ("progress", 2), ("progress", 3), ("progress", 4), ("result", 5)]
    assert row(h, rid)["connection_id"] == {"S": new}
    assert "detached_until" not in row(h, rid)
    # The slot it took on the new connection is freed at the end.
    connection_row = h.dynamodb.get_item(TableName=f"{h.prefix}connections",
                                         Key={"connection_id": {"S": new}})["Item"]
    assert connection_row["active_requests"] == {"N": "0"}


def test_with_a_grace_a_gone_client_finds_the_result_later(graced: Harness) -> None:
    """A 410 mid-way detaches instead of cancelling: the work finishes unseen and a
    later status (no disconnect ever came) returns the result."""
    h = graced
    c = h.connect("ann")
    rid = request(h, c, "test-hooked", {"steps": 3, "hook": "gone"})
    HOOKS["gone"] = lambda step: h.sink.gone.add(c) if step == 2 else None
    process(h, testkit.insert_record(row(h, rid)))
    assert row(h, rid)["state"] == {"S": "succeeded"}
    again = h.connect("ann")
    status = h.send(again, {"action": "status", "request_id": rid, "id": "q"})
    assert (status["state"], status["result"], status["seq"]) == ("succeeded", {"done": 3}, 4)


def test_with_a_grace_nobody_coming_back_cancels(graced: Harness) -> None:
    """Past the grace without a takeover, the next step cancels the request: no result."""
    h = graced
    c = h.connect("ann")
    rid = request(h, c, "test-hooked", {"steps": 4, "hook": "leave"})

    def leave(step: int) -> None:
        if step == 2:
            h.disconnect(c)
        if step == 3:  # the grace runs out (moved, not waited for: the invocation's
            # own time budget is chalice.test's 3 s)
            h.dynamodb.update_item(
                TableName=f"{h.prefix}requests", Key={"request_id": {"S": rid}},
                UpdateExpression="SET detached_until = :past",
                ExpressionAttributeValues={":past": {"N": str(h.clock() - 1)}})

    HOOKS["leave"] = leave
    process(h, testkit.insert_record(row(h, rid)))
    assert row(h, rid)["state"] == {"S": "cancelled"}
    assert [f["type"] for f in frames(h, c, rid)] == ["ack", "progress"]


def test_another_live_connection_of_the_user_does_not_take_it(graced: Harness) -> None:
    """status from a second tab while the first is still connected changes nothing."""
    h = graced
    first, second = h.connect("ann"), h.connect("ann")
    rid = request(h, first, "echo", {})
    h.send(second, {"action": "status", "request_id": rid, "id": "q"})
    assert row(h, rid)["connection_id"] == {"S": first}
