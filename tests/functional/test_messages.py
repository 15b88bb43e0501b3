"""$default frames through chalice.test.Client: every action and every error path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.functional.conftest import Harness, Output


def test_ping_answers_pong_with_id(harness: Harness) -> None:
    """ping gets a pong that echoes the frame's id."""
    c = harness.connect()
    assert harness.send(c, {"action": "ping", "id": "p1"}) == {"type": "pong", "id": "p1"}


def test_subscribe_and_publish_reach_every_subscriber(harness: Harness) -> None:
    """A publish reaches every subscriber of the channel, the publisher included."""
    a, b, c = harness.connect("a"), harness.connect("b"), harness.connect("c")
    for conn in (a, b):
        ack = harness.send(conn, {"action": "subscribe", "channel": "prices", "id": "s"})
        assert ack == {"type": "ack", "id": "s", "action": "subscribe", "channel": "prices",
                       "offset": 0, "epoch": ack["epoch"]}
    harness.sink.reset()
    harness.client.lambda_.invoke("message", _event(a, {
        "action": "publish", "channel": "prices", "data": {"p": 1}, "id": "m1"}))
    acks = harness.sink.received(a, "ack")
    assert len(acks) == 1 and acks[0]["id"] == "m1" and acks[0]["channel"] == "prices"
    for conn in (a, b):
        messages = harness.sink.received(conn, "message")
        assert len(messages) == 1
        assert messages[0]["data"] == {"p": 1}
        assert messages[0]["channel"] == "prices"
        assert messages[0]["sender"] == {"user_id": "a"}
        assert messages[0]["message_id"] == acks[0]["message_id"]
        assert isinstance(messages[0]["ts"], int)
    assert harness.sink.received(c) == []


def test_exclude_self_skips_the_publisher(harness: Harness) -> None:
    """With exclude_self the publisher gets its ack but not its own message."""
    a, b = harness.connect("a"), harness.connect("b")
    for conn in (a, b):
        harness.send(conn, {"action": "subscribe", "channel": "room"})
    harness.sink.reset()
    harness.send(a, {"action": "publish", "channel": "room", "data": "hi", "exclude_self": True})
    assert [f["type"] for f in harness.sink.received(a)] == ["ack"]
    assert [f["data"] for f in harness.sink.received(b, "message")] == ["hi"]


def test_tenants_are_isolated(harness: Harness) -> None:
    """A channel name in one tenant is a different channel in another."""
    a1, b1 = harness.connect("a", "tenant-a"), harness.connect("b", "tenant-b")
    for conn in (a1, b1):
        harness.send(conn, {"action": "subscribe", "channel": "prices"})
    harness.sink.reset()
    harness.send(a1, {"action": "publish", "channel": "prices", "data": 1})
    assert len(harness.sink.received(a1, "message")) == 1
    assert harness.sink.received(b1) == []
    keys = {r["channel_key"]["S"].rsplit("#", 1)[0] for r in harness.rows("subscriptions")}
    assert keys == {"tenant-a#prices", "tenant-b#prices"}


def test_channel_text_cannot_name_another_tenant(harness: Harness) -> None:
    """A channel containing '#' is refused, so no key can be forged."""
    c = harness.connect("a", "tenant-a")
    reply = harness.send(c, {"action": "subscribe", "channel": "tenant-b#prices", "id": "x"})
    assert reply["code"] == "bad_request" and reply["id"] == "x"
    assert harness.rows("subscriptions") == []


@pytest.mark.parametrize(
    ("permissions", "frame"),
    [
        (("write",), {"action": "subscribe", "channel": "c", "id": "f"}),
        (("read",), {"action": "publish", "channel": "c", "data": 1, "id": "f"}),
    ],
)
def test_missing_permission_is_forbidden(harness: Harness, permissions: tuple[str, ...],
                                         frame: dict[str, Any]) -> None:
    """subscribe needs read and publish needs write; without them the reply is forbidden."""
    c = harness.connect(permissions=permissions)
    reply = harness.send(c, frame)
    assert reply["type"] == "error" and reply["code"] == "forbidden" and reply["id"] == "f"
    assert harness.rows("subscriptions") == []


def test_unsubscribe_stops_delivery_and_acks_when_not_subscribed(harness: Harness) -> None:
    """unsubscribe acks whether or not the connection was subscribed, and stops delivery."""
    c = harness.connect()
    harness.send(c, {"action": "subscribe", "channel": "ch"})
    ack = {"type": "ack", "id": "u", "action": "unsubscribe", "channel": "ch"}
    assert harness.send(c, {"action": "unsubscribe", "channel": "ch", "id": "u"}) == ack
    assert harness.send(c, {"action": "unsubscribe", "channel": "ch", "id": "u"}) == ack
    harness.sink.reset()
    harness.send(c, {"action": "publish", "channel": "ch", "data": 1})
    assert harness.sink.received(c, "message") == []


def test_subscription_limit(env: dict[str, str], harness_factory: Callable[[], Harness]) -> None:
    """MAX_SUBSCRIPTIONS caps channels; a repeat does not count and unsubscribe frees a slot."""
    env["MAX_SUBSCRIPTIONS"] = "2"
    h = harness_factory()
    c = h.connect()
    assert h.send(c, {"action": "subscribe", "channel": "a"})["type"] == "ack"
    assert h.send(c, {"action": "subscribe", "channel": "a"})["type"] == "ack"
    assert h.send(c, {"action": "subscribe", "channel": "b"})["type"] == "ack"
    refused = h.send(c, {"action": "subscribe", "channel": "c", "id": "3"})
    assert (refused["code"], refused["id"]) == ("limit_exceeded", "3")
    h.send(c, {"action": "unsubscribe", "channel": "a"})
    assert h.send(c, {"action": "subscribe", "channel": "c"})["type"] == "ack"
    assert len(h.rows("subscriptions")) == 2


@pytest.mark.parametrize(
    ("frame", "code", "frame_id"),
    [
        ("not json", "bad_request", None),
        ("[1, 2]", "bad_request", None),
        ('"text"', "bad_request", None),
        ({"id": "n1"}, "bad_request", "n1"),
        ({"action": 5, "id": "n2"}, "bad_request", "n2"),
        ({"action": "dance", "id": "n3"}, "unknown_action", "n3"),
        ({"action": "subscribe", "id": "n4"}, "bad_request", "n4"),
        ({"action": "subscribe", "channel": "", "id": "n5"}, "bad_request", "n5"),
        ({"action": "subscribe", "channel": "a b", "id": "n6"}, "bad_request", "n6"),
        ({"action": "subscribe", "channel": "x" * 129, "id": "n7"}, "bad_request", "n7"),
        ({"action": "publish", "channel": "c", "id": "n8"}, "bad_request", "n8"),
        ({"action": "publish", "channel": "c", "data": 1, "exclude_self": "yes", "id": "n9"},
         "bad_request", "n9"),
        ({"action": "ping", "id": "x" * 65}, "bad_request", None),
        ({"action": "ping", "id": 7}, "bad_request", None),
        (b"\x00\x01binary", "bad_request", None),
        # The frame fits API Gateway's 128 KiB, the message built from it would not.
        ({"action": "publish", "channel": "c", "data": "x" * (128 * 1024 - 80), "id": "n10"},
         "too_large", "n10"),
        ({"action": "publish", "channel": "c", "data": "x" * (128 * 1024), "id": "n14"},
         "too_large", None),
        ({"action": "request", "kind": "nope", "payload": {}, "id": "n11"},
         "bad_request", "n11"),
        ({"action": "request", "kind": "echo", "payload": [1], "id": "n15"},
         "bad_request", "n15"),
        ({"action": "request", "kind": "count", "payload": {"steps": -1}, "id": "n16"},
         "bad_request", "n16"),
        ({"action": "cancel", "request_id": "r", "id": "n12"}, "not_found", "n12"),
        ({"action": "status", "request_id": "r", "id": "n13"}, "not_found", "n13"),
        ({"action": "status", "id": "n17"}, "bad_request", "n17"),
    ],
)
def test_bad_frames_get_an_error_and_the_connection_stays_usable(
        harness: Harness, frame: Any, code: str, frame_id: str | None) -> None:
    """Each bad frame gets an error frame with its code (and id when valid); ping still works."""
    c = harness.connect()
    reply = harness.send(c, frame)
    assert reply["type"] == "error" and reply["code"] == code
    assert reply.get("id") == frame_id
    assert isinstance(reply["message"], str) and "Traceback" not in reply["message"]
    assert harness.send(c, {"action": "ping", "id": "after"}) == {"type": "pong", "id": "after"}


def test_null_data_is_a_valid_message(harness: Harness) -> None:
    """data may be any JSON value, null included."""
    c = harness.connect()
    harness.send(c, {"action": "subscribe", "channel": "n"})
    harness.send(c, {"action": "publish", "channel": "n", "data": None})
    assert harness.sink.received(c, "message")[0]["data"] is None


def test_expired_token_answers_token_expired_to_every_frame(harness: Harness) -> None:
    """After the token's exp, every frame, ping too, answers token_expired (docs/protocol.md 6)."""
    c = harness.connect()
    harness.clock.offset = 7200  # the token lived an hour
    for action in ({"action": "subscribe", "channel": "x", "id": "e"}, {"action": "ping"}):
        reply = harness.send(c, action)
        assert (reply["type"], reply["code"]) == ("error", "token_expired")


def test_unknown_connection_is_unauthorized(harness: Harness) -> None:
    """A frame from a connection with no record gets unauthorized."""
    reply = harness.send("ghost", {"action": "subscribe", "channel": "x", "id": "g"})
    assert (reply["code"], reply["id"]) == ("unauthorized", "g")


def test_stale_connection_is_removed_on_410_and_fanout_carries_on(
        harness: Harness, output: Output) -> None:
    """A 410 deletes the stale connection and its subscriptions; others still get the message."""
    pub, stale, live = harness.connect("p"), harness.connect("s"), harness.connect("l")
    for conn in (pub, stale, live):
        harness.send(conn, {"action": "subscribe", "channel": "news"})
        harness.send(conn, {"action": "subscribe", "channel": "other"})
    harness.sink.gone.add(stale)
    harness.send(pub, {"action": "publish", "channel": "news", "data": 1, "id": "m"})
    assert len(harness.sink.received(pub, "message")) == 1
    assert len(harness.sink.received(live, "message")) == 1
    assert harness.storage.get_connection(stale) is None
    assert harness.storage.get_connection(pub) is not None
    remaining = {r["connection_id"]["S"] for r in harness.rows("subscriptions")}
    assert remaining == {pub, live}
    summary = [line for line in output() if line.get("message") == "published"]
    assert summary and (summary[0]["delivered"], summary[0]["gone"], summary[0]["failed"]) == (
        2, 1, 0)


def test_throttled_posts_are_retried(harness: Harness) -> None:
    """A 429 from @connections is retried with backoff until it is delivered."""
    pub, slow = harness.connect("p"), harness.connect("s")
    for conn in (pub, slow):
        harness.send(conn, {"action": "subscribe", "channel": "t"})
    harness.sink.throttle[slow] = 2
    harness.send(pub, {"action": "publish", "channel": "t", "data": "x"})
    assert [m["data"] for m in harness.sink.received(slow, "message")] == ["x"]
    assert harness.sink.attempts[slow] >= 3


def test_persistent_server_errors_fail_one_recipient_only(harness: Harness,
                                                           output: Output) -> None:
    """A recipient whose posts keep failing 5xx is given up after bounded retries; others get it."""
    pub, broken = harness.connect("p"), harness.connect("b")
    for conn in (pub, broken):
        harness.send(conn, {"action": "subscribe", "channel": "t"})
    harness.sink.fail.add(broken)
    before = harness.sink.attempts[broken]
    harness.send(pub, {"action": "publish", "channel": "t", "data": "x", "id": "m"})
    assert len(harness.sink.received(pub, "message")) == 1
    assert harness.sink.attempts[broken] - before == 3  # SEND_MAX_ATTEMPTS
    assert harness.storage.get_connection(broken) is not None  # 5xx is not 410
    summary = [line for line in output() if line.get("message") == "published"]
    assert (summary[0]["delivered"], summary[0]["failed"]) == (1, 1)


def test_many_subscribers_across_shards_each_get_one_copy(harness: Harness) -> None:
    """A publish to 40 subscribers spread over the shards delivers exactly one copy each."""
    conns = [harness.connect(f"u{n}") for n in range(40)]
    for conn in conns:
        harness.send(conn, {"action": "subscribe", "channel": "wide"})
    shards = {r["channel_key"]["S"] for r in harness.rows("subscriptions")}
    assert len(shards) > 1
    harness.sink.reset()
    harness.send(conns[0], {"action": "publish", "channel": "wide", "data": 7})
    assert all(len(harness.sink.received(c, "message")) == 1 for c in conns)


def _event(connection_id: str, frame: dict[str, Any]) -> dict[str, Any]:
    from local import testkit

    return testkit.message_event(connection_id, frame)


@pytest.mark.parametrize("levels", [40, 980])
def test_deeply_nested_publish_is_bad_request_and_nothing_is_delivered(
        harness: Harness, levels: int) -> None:
    """A publish nesting past the bound (980 levels included, which once answered
    Internal server error) gets bad_request; subscribers receive nothing."""
    c = harness.connect()
    harness.send(c, {"action": "subscribe", "channel": "deep"})
    raw = ('{"action":"publish","channel":"deep","id":"d","data":'
           + "[" * levels + "]" * levels + "}")
    reply = harness.send(c, raw)
    assert (reply["type"], reply["code"]) == ("error", "bad_request")
    assert harness.sink.received(c, "message") == []
