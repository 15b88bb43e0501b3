"""Offsets, history, resume and token refresh (docs/protocol.md section 6) over DynamoDB."""

from __future__ import annotations

from typing import Any

from tests.functional.conftest import Harness


def _publish(harness: Harness, conn: str, n: int, channel: str = "prices") -> list[dict[str, Any]]:
    return [harness.send(conn, {"action": "publish", "channel": channel, "data": i,
                                "id": f"m{i}", "exclude_self": True}) for i in range(n)]


def test_offsets_grow_by_one_within_one_epoch(harness: Harness) -> None:
    """Each publish's message and ack carry the next offset of the channel, one epoch."""
    sub, pub = harness.connect("s"), harness.connect("p")
    first = harness.send(sub, {"action": "subscribe", "channel": "prices", "id": "s"})
    assert first["offset"] == 0
    _publish(harness, pub, 3)
    got = harness.sink.received(sub, "message")
    assert [m["offset"] for m in got] == [1, 2, 3]
    assert {m["epoch"] for m in got} == {first["epoch"]}
    acks = [a for a in harness.sink.received(pub, "ack") if a["action"] == "publish"]
    assert [a["offset"] for a in acks] == [1, 2, 3]


def test_resume_replays_missed_messages_in_order_then_acks_recovered(harness: Harness) -> None:
    """subscribe with since replays exactly the missed offsets, then acks recovered: true."""
    sub, pub = harness.connect("s"), harness.connect("p")
    start = harness.send(sub, {"action": "subscribe", "channel": "prices", "id": "s"})
    _publish(harness, pub, 2)
    harness.disconnect(sub)
    _publish(harness, pub, 3)  # offsets 3, 4, 5 missed
    again = harness.connect("s")
    ack = harness.send(again, {"action": "subscribe", "channel": "prices", "id": "r",
                               "since": {"offset": 2, "epoch": start["epoch"]}})
    assert (ack["type"], ack["recovered"], ack["offset"]) == ("ack", True, 5)
    assert [m["offset"] for m in harness.sink.received(again, "message")] == [3, 4, 5]
    assert [m["data"] for m in harness.sink.received(again, "message")] == [0, 1, 2]


def test_resume_with_another_epoch_is_not_recovered_and_sends_nothing(harness: Harness) -> None:
    """A since whose epoch is not the channel's acks recovered: false with no replay."""
    sub, pub = harness.connect("s"), harness.connect("p")
    _publish(harness, pub, 2)
    ack = harness.send(sub, {"action": "subscribe", "channel": "prices", "id": "r",
                             "since": {"offset": 0, "epoch": "not-the-epoch"}})
    assert (ack["recovered"], ack["offset"]) == (False, 2)
    assert harness.sink.received(sub, "message") == []


def test_resume_past_the_history_window_is_not_recovered(harness: Harness) -> None:
    """Messages older than HISTORY_TTL_SECONDS are gone: recovered false, nothing stale sent."""
    sub, pub = harness.connect("s"), harness.connect("p")
    start = harness.send(sub, {"action": "subscribe", "channel": "prices", "id": "s"})
    harness.disconnect(sub)
    _publish(harness, pub, 2)
    harness.clock.offset = 301  # HISTORY_TTL_SECONDS is 300
    again = harness.connect("s")
    ack = harness.send(again, {"action": "subscribe", "channel": "prices", "id": "r",
                               "since": {"offset": 0, "epoch": start["epoch"]}})
    assert (ack["recovered"], ack["offset"], ack["epoch"]) == (False, 2, start["epoch"])
    assert harness.sink.received(again, "message") == []


def test_since_must_be_an_offset_and_an_epoch(harness: Harness) -> None:
    """A malformed since is bad_request with the frame's id."""
    c = harness.connect()
    for since in ({"offset": -1, "epoch": "e"}, {"offset": 1}, {"offset": True, "epoch": "e"},
                  "1", {"offset": 1, "epoch": ""}):
        reply = harness.send(c, {"action": "subscribe", "channel": "x", "id": "b",
                                 "since": since})
        assert (reply["code"], reply["id"]) == ("bad_request", "b")


def test_history_returns_the_last_messages_oldest_first(harness: Harness) -> None:
    """history answers the last `limit` messages as delivered, and is tenant-scoped."""
    pub = harness.connect("p")
    _publish(harness, pub, 4)
    reader = harness.connect("r")
    frame = harness.send(reader, {"action": "history", "channel": "prices", "limit": 2,
                                  "id": "h"})
    assert (frame["type"], frame["id"], frame["offset"], frame["complete"]) == (
        "history", "h", 4, True)
    assert [m["offset"] for m in frame["messages"]] == [3, 4]
    other = harness.connect("r", "t2")
    assert harness.send(other, {"action": "history", "channel": "prices"})["messages"] == []


def test_refresh_extends_the_token_and_other_users_are_forbidden(harness: Harness) -> None:
    """refresh takes a new token of the same user and tenant; another user's is forbidden."""
    c = harness.connect("u1", "t1")
    fresh = harness.token("u1", "t1", exp=int(harness.clock()) + 7200)
    ack = harness.send(c, {"action": "refresh", "token": fresh, "id": "t"})
    assert (ack["type"], ack["action"]) == ("ack", "refresh")
    harness.clock.offset = 3700  # past the first token's hour
    assert harness.send(c, {"action": "ping"}) == {"type": "pong"}
    stranger = harness.token("u2", "t1")
    assert harness.send(c, {"action": "refresh", "token": stranger})["code"] == "forbidden"
    assert harness.send(c, {"action": "refresh", "token": "nope"})["code"] == "unauthorized"


def test_token_expiring_warns_and_expiry_closes_the_connection(harness: Harness) -> None:
    """Near exp a frame also gets token_expiring; after exp, token_expired and a DELETE."""
    c = harness.connect()
    harness.clock.offset = 3600 - 100
    harness.send(c, {"action": "ping"})
    warning = harness.sink.received(c, "token_expiring")
    assert len(warning) == 1 and 0 < warning[0]["expires_in"] <= 100
    harness.clock.offset = 3601
    assert harness.send(c, {"action": "ping"})["code"] == "token_expired"
    assert harness.sink.deleted == [c]
