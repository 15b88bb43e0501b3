"""Unit tests for chalicelib.sending.Fanout: bounded retries, 410 cleanup, isolation."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pytest

from chalicelib.errors import (
    ForbiddenSend,
    GoneError,
    PayloadTooLarge,
    SendError,
    ServerError,
    StorageError,
    ThrottledError,
)
from chalicelib.sending import DeliveryReport, Fanout

PAYLOAD = b'{"type":"message"}'
Outcome = type[SendError] | None


class FakeSender:
    """A thread-safe Sender that plays a script of outcomes per connection id.

    Each post to an id takes the next outcome from its script (the last one repeats);
    ``None`` delivers, an error class is raised. Ids without a script always deliver.
    """

    def __init__(self, scripts: dict[str, list[Outcome]] | None = None) -> None:
        self._scripts = {cid: list(s) for cid, s in (scripts or {}).items()}
        self._lock = threading.Lock()
        self.posts: list[tuple[str, bytes]] = []
        self.threads: set[str] = set()

    def close(self) -> None:
        """Nothing to release."""

    def post(self, connection_id: str, data: bytes) -> None:
        with self._lock:
            self.posts.append((connection_id, data))
            self.threads.add(threading.current_thread().name)
            script = self._scripts.get(connection_id, [None])
            outcome = script.pop(0) if len(script) > 1 else script[0]
        if outcome is not None:
            raise outcome(connection_id, "scripted")

    def posted(self, connection_id: str) -> int:
        return sum(1 for cid, _ in self.posts if cid == connection_id)


class Recorder:
    """Records on_gone calls and sleeps (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.gone: list[str] = []
        self.sleeps: list[float] = []

    def on_gone(self, connection_id: str) -> None:
        with self._lock:
            self.gone.append(connection_id)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)


def fanout(sender: FakeSender, rec: Recorder, *, concurrency: int = 1, max_attempts: int = 3,
           backoff: float = 0.1) -> Fanout:
    return Fanout(sender, concurrency=concurrency, max_attempts=max_attempts,
                  backoff_seconds=backoff, on_gone=rec.on_gone, sleep=rec.sleep)


def deliver(sender: FakeSender, rec: Recorder, ids: Iterable[str], *, concurrency: int = 1,
            max_attempts: int = 3, backoff: float = 0.1) -> DeliveryReport:
    fan = fanout(sender, rec, concurrency=concurrency, max_attempts=max_attempts,
                 backoff=backoff)
    return fan.deliver(ids, PAYLOAD)


def test_all_delivered_and_counted() -> None:
    """Every recipient gets the payload once and is counted as delivered."""
    sender, rec = FakeSender(), Recorder()
    report = deliver(sender, rec, ["a", "b", "c"])
    assert report == DeliveryReport(delivered=3, gone=[], failed=[], retries=0)
    assert sender.posts == [("a", PAYLOAD), ("b", PAYLOAD), ("c", PAYLOAD)]
    assert rec.sleeps == [] and rec.gone == []


def test_no_recipients_is_an_empty_report() -> None:
    """Delivering to nobody posts nothing."""
    sender, rec = FakeSender(), Recorder()
    assert deliver(sender, rec, [], concurrency=8) == DeliveryReport()
    assert sender.posts == []


def test_gone_reported_once_and_others_continue() -> None:
    """A 410 calls on_gone with that id only, is not retried, and the rest are delivered."""
    sender, rec = FakeSender({"b": [GoneError]}), Recorder()
    report = deliver(sender, rec, ["a", "b", "c"])
    assert rec.gone == ["b"]
    assert report.gone == ["b"]
    assert report.delivered == 2
    assert report.failed == []
    assert sender.posted("b") == 1
    assert sender.posted("c") == 1
    assert rec.sleeps == []


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 5])
def test_throttled_retried_up_to_max_attempts_then_failed(max_attempts: int) -> None:
    """A recipient that stays throttled is posted max_attempts times, then failed."""
    sender, rec = FakeSender({"t": [ThrottledError]}), Recorder()
    report = deliver(sender, rec, ["t"], max_attempts=max_attempts)
    assert sender.posted("t") == max_attempts
    assert report.failed == ["t"]
    assert report.delivered == 0
    assert report.retries == max_attempts - 1
    assert len(rec.sleeps) == max_attempts - 1
    assert rec.gone == []


def test_backoff_sleeps_are_bounded_and_jittered() -> None:
    """Each retry sleeps between 0 and backoff * 2**attempt, with jitter."""
    backoff = 0.1
    sender = FakeSender({f"t{i}": [ThrottledError] for i in range(40)})
    rec = Recorder()
    deliver(sender, rec, [f"t{i}" for i in range(40)], max_attempts=4, backoff=backoff)
    assert len(rec.sleeps) == 40 * 3
    for index, seconds in enumerate(rec.sleeps):
        attempt = index % 3
        assert 0 <= seconds <= backoff * 2 ** attempt
    assert len(set(rec.sleeps)) > 1  # jittered, not a fixed delay
    assert max(rec.sleeps) > backoff  # later attempts may wait longer than the first


def test_zero_backoff_never_waits() -> None:
    """With SEND_BACKOFF_SECONDS 0, retries sleep zero seconds."""
    sender, rec = FakeSender({"t": [ThrottledError]}), Recorder()
    deliver(sender, rec, ["t"], backoff=0.0)
    assert rec.sleeps == [0.0, 0.0]


def test_throttled_then_delivered() -> None:
    """A recipient throttled once is delivered on the retry and counts one retry."""
    sender, rec = FakeSender({"t": [ThrottledError, None]}), Recorder()
    report = deliver(sender, rec, ["t"])
    assert report == DeliveryReport(delivered=1, gone=[], failed=[], retries=1)
    assert sender.posted("t") == 2


def test_server_errors_retried() -> None:
    """5xx is retried; a recipient that recovers is delivered."""
    sender, rec = FakeSender({"s": [ServerError, ServerError, None]}), Recorder()
    report = deliver(sender, rec, ["s"], max_attempts=3)
    assert report.delivered == 1
    assert report.retries == 2
    assert sender.posted("s") == 3


def test_gone_after_throttle_is_reported_as_gone() -> None:
    """A 410 on a retry still reports the connection gone."""
    sender, rec = FakeSender({"g": [ThrottledError, GoneError]}), Recorder()
    report = deliver(sender, rec, ["g"])
    assert report.gone == ["g"] and rec.gone == ["g"]
    assert report.failed == []


@pytest.mark.parametrize("error", [PayloadTooLarge, ForbiddenSend, SendError])
def test_non_retryable_errors_fail_at_once(error: type[SendError]) -> None:
    """413, 403 and unknown send errors are not retried: one post, failed, no sleep."""
    sender, rec = FakeSender({"x": [error, None]}), Recorder()
    report = deliver(sender, rec, ["x"], max_attempts=5)
    assert sender.posted("x") == 1
    assert report.failed == ["x"]
    assert report.retries == 0
    assert rec.sleeps == [] and rec.gone == []


def test_duplicates_sent_once() -> None:
    """A connection listed several times gets the payload once, in first-seen order."""
    sender, rec = FakeSender(), Recorder()
    report = deliver(sender, rec, ["a", "b", "a", "c", "b", "a"])
    assert [cid for cid, _ in sender.posts] == ["a", "b", "c"]
    assert report.delivered == 3


def test_duplicates_sent_once_concurrently() -> None:
    """Deduplication also holds on the concurrent path."""
    sender, rec = FakeSender(), Recorder()
    report = deliver(sender, rec, ["a", "b"] * 20, concurrency=8)
    assert sorted(cid for cid, _ in sender.posts) == ["a", "b"]
    assert report.delivered == 2


def test_accepts_any_iterable() -> None:
    """Recipients may be a generator (e.g. streamed from storage)."""
    sender, rec = FakeSender(), Recorder()
    report = deliver(sender, rec, (f"c{i}" for i in range(3)), concurrency=4)
    assert report.delivered == 3


def test_one_bad_recipient_does_not_stop_others() -> None:
    """Gone, throttled-out, too-large and forbidden recipients leave the others delivered."""
    scripts: dict[str, list[Outcome]] = {
        "gone": [GoneError], "slow": [ThrottledError], "big": [PayloadTooLarge],
        "denied": [ForbiddenSend], "flaky": [ServerError, None]}
    sender, rec = FakeSender(scripts), Recorder()
    ids = ["ok1", "gone", "slow", "ok2", "big", "denied", "flaky", "ok3"]
    report = deliver(sender, rec, ids)
    assert report.delivered == 4
    assert report.gone == ["gone"]
    assert report.failed == ["slow", "big", "denied"]
    assert report.retries == 3
    for cid in ids:
        assert sender.posted(cid) >= 1


def test_concurrent_path_delivers_all() -> None:
    """With concurrency > 1, every recipient is handled on the pool and counts add up."""
    scripts: dict[str, list[Outcome]] = {}
    for i in range(0, 200, 10):
        scripts[f"c{i}"] = [GoneError]
    for i in range(5, 200, 10):
        scripts[f"c{i}"] = [ThrottledError, None]
    for i in range(7, 200, 20):
        scripts[f"c{i}"] = [PayloadTooLarge]
    sender, rec = FakeSender(scripts), Recorder()
    ids = [f"c{i}" for i in range(200)]
    report = deliver(sender, rec, ids, concurrency=8)
    assert sorted(report.gone) == sorted(f"c{i}" for i in range(0, 200, 10))
    assert sorted(rec.gone) == sorted(report.gone)
    assert sorted(report.failed) == sorted(f"c{i}" for i in range(7, 200, 20))
    assert report.delivered == 200 - 20 - 10
    assert report.retries == 20
    assert {cid for cid, _ in sender.posts} == set(ids)
    assert all(name.startswith("fanout") for name in sender.threads)


def test_concurrent_pool_is_reused() -> None:
    """A Fanout delivers repeatedly on its kept pool."""
    sender, rec = FakeSender(), Recorder()
    fan = fanout(sender, rec, concurrency=4)
    for _ in range(3):
        assert fan.deliver(["a", "b", "c"], PAYLOAD).delivered == 3
    assert len(sender.posts) == 9


def test_single_recipient_is_sent_inline() -> None:
    """One recipient is sent on the caller's thread, not the pool."""
    sender, rec = FakeSender(), Recorder()
    assert deliver(sender, rec, ["only"], concurrency=8).delivered == 1
    assert sender.threads == {threading.current_thread().name}


def test_send_reports_into_given_report() -> None:
    """send() (the reply path) adds its outcome to the report it is given."""
    sender, rec = FakeSender({"g": [GoneError]}), Recorder()
    fan = fanout(sender, rec)
    report = DeliveryReport(delivered=5)
    fan.send("ok", PAYLOAD, report)
    fan.send("g", PAYLOAD, report)
    assert report.delivered == 6
    assert report.gone == ["g"]


def test_report_as_log_counts() -> None:
    """as_log gives counts, not connection ids."""
    report = DeliveryReport(delivered=2, gone=["a"], failed=["b", "c"], retries=4)
    assert report.as_log() == {"delivered": 2, "gone": 1, "failed": 2, "retries": 4}


@pytest.mark.parametrize("concurrency", [1, 4])
def test_failing_gone_cleanup_does_not_stop_others(concurrency: int) -> None:
    """A 410 whose cleanup callback raises still leaves every other recipient delivered."""
    sender = FakeSender({"gone": [GoneError]})

    def failing_cleanup(connection_id: str) -> None:
        raise StorageError("DynamoDB throttled the delete")

    fan = Fanout(sender, concurrency=concurrency, max_attempts=3, backoff_seconds=0.0,
                 on_gone=failing_cleanup, sleep=Recorder().sleep)
    report = fan.deliver(["gone", "a", "b"], PAYLOAD)
    assert report.delivered == 2
    assert report.gone == ["gone"]
