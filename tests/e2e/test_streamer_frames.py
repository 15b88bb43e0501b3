"""The real app's client frames through the gateway (PROTOCOL.md sections 2 and 3).

Replies are not ordered against other frames, so every check correlates by ``id`` or
``type`` (see :class:`tests.e2e.streamer_fixtures.WsClient`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.streamer_fixtures import StartStreamer, StreamerStack, wait_until

pytest_plugins = ["tests.e2e.streamer_fixtures"]

QUIET = 0.5  # how long a client must stay silent to count as "received nothing"


def _error(frame: dict[str, Any], code: str, frame_id: str | None) -> None:
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert isinstance(frame["message"], str) and frame["message"]
    if frame_id is None:
        assert "id" not in frame, frame
    else:
        assert frame["id"] == frame_id, frame


def test_ping_is_answered_with_pong_and_its_id(streamer: StreamerStack) -> None:
    """``ping`` gets ``pong`` echoing the id, and a plain ``pong`` without one."""
    client = streamer.client()
    assert client.call({"action": "ping", "id": "p-1"}) == {"type": "pong", "id": "p-1"}
    client.send({"action": "ping"})
    assert client.wait_for(lambda f: f["type"] == "pong") == {"type": "pong"}


def test_publish_reaches_every_subscriber_of_the_tenant_only(streamer: StreamerStack) -> None:
    """A publish reaches both subscribers in the tenant, publisher included; not tenant B."""
    alice = streamer.client("alice", "acme")
    bob = streamer.client("bob", "acme")
    eve = streamer.client("eve", "globex")
    for client in (alice, bob, eve):
        client.subscribe("prices")
    data = {"EURUSD": 1.08, "nested": [1, "two", None]}
    ack = alice.call({"action": "publish", "id": "m1", "channel": "prices", "data": data})
    assert ack["type"] == "ack" and ack["action"] == "publish" and ack["channel"] == "prices"
    message_id = ack["message_id"]
    for client in (alice, bob):
        message = client.wait_for(lambda f: f["type"] == "message")
        assert message["message_id"] == message_id
        assert message["channel"] == "prices"
        assert message["data"] == data
        assert message["sender"] == {"user_id": "alice"}
        assert isinstance(message["ts"], int)
    for client in (alice, bob, eve):
        client.drain(QUIET)
    assert len(alice.messages()) == len(bob.messages()) == 1
    assert eve.messages() == []


def test_exclude_self_skips_only_the_publisher(streamer: StreamerStack) -> None:
    """``exclude_self`` keeps the publisher's own copy away; other subscribers get it."""
    alice = streamer.client("alice")
    bob = streamer.client("bob")
    alice.subscribe("news")
    bob.subscribe("news")
    ack = alice.call({"action": "publish", "id": "m", "channel": "news", "data": "hi",
                      "exclude_self": True})
    assert ack["type"] == "ack"
    message = bob.wait_for(lambda f: f["type"] == "message")
    assert message["message_id"] == ack["message_id"]
    alice.drain(QUIET)
    assert alice.messages() == []


def test_unsubscribe_stops_delivery(streamer: StreamerStack) -> None:
    """After ``unsubscribe`` (acked, also when repeated) a client gets no more messages."""
    alice = streamer.client("alice")
    bob = streamer.client("bob")
    alice.subscribe("c")
    bob.subscribe("c")
    for frame_id in ("u1", "u2"):
        ack = bob.call({"action": "unsubscribe", "id": frame_id, "channel": "c"})
        assert ack == {"type": "ack", "id": frame_id, "action": "unsubscribe", "channel": "c"}
    alice.call({"action": "publish", "id": "m", "channel": "c", "data": 1})
    alice.wait_for(lambda f: f["type"] == "message")
    bob.drain(QUIET)
    assert bob.messages() == []


def test_missing_permissions_are_forbidden(streamer: StreamerStack) -> None:
    """Subscribe without ``read`` and publish without ``write`` answer ``forbidden``."""
    reader = streamer.client("reader", permissions=("read",))
    writer = streamer.client("writer", permissions=("write",))
    _error(reader.call({"action": "publish", "id": "p", "channel": "c", "data": 1}),
           "forbidden", "p")
    _error(writer.call({"action": "subscribe", "id": "s", "channel": "c"}), "forbidden", "s")
    # Both connections stay usable, and what they may do still works.
    assert reader.subscribe("c")["channel"] == "c"
    assert writer.call({"action": "publish", "id": "w", "channel": "c", "data": 2})["type"] \
        == "ack"
    reader.wait_for(lambda f: f["type"] == "message" and f["data"] == 2)
    assert streamer.subscribed_ids() == {streamer.connection_id("reader")}


@pytest.mark.parametrize(("raw", "code", "frame_id"), [
    ("this is not json", "bad_request", None),
    ("[1, 2, 3]", "bad_request", None),
    ('{"id": "n"}', "bad_request", "n"),
    ('{"action": "dance", "id": "d"}', "unknown_action", "d"),
    ('{"action": "subscribe", "id": "c", "channel": "bad channel!"}', "bad_request", "c"),
    ('{"action": "subscribe", "id": "c", "channel": "tenantB#prices"}', "bad_request", "c"),
    ('{"action": "subscribe", "id": "m"}', "bad_request", "m"),
    ('{"action": "publish", "id": "m", "channel": "c"}', "bad_request", "m"),
    ('{"action": "publish", "id": "x", "channel": "c", "data": 1, "exclude_self": "y"}',
     "bad_request", "x"),
    ('{"action": "ping", "id": 7}', "bad_request", None),
])
def test_bad_frames_get_error_frames_and_connection_stays_usable(
        streamer: StreamerStack, raw: str, code: str, frame_id: str | None) -> None:
    """A bad frame gets an error with the right code (and id); the connection still works."""
    client = streamer.client()
    client.send(raw)
    _error(client.wait_for(lambda f: f["type"] == "error"), code, frame_id)
    assert client.call({"action": "ping", "id": "after"}) == {"type": "pong", "id": "after"}
    assert client.subscribe("still-works")["type"] == "ack"


def test_binary_frame_closes_the_connection_with_1003(streamer: StreamerStack) -> None:
    """A binary frame closes the connection with 1003 (API Gateway's rule), and the
    $disconnect it causes removes the connection's row."""
    client = streamer.client()
    client.ws.send(json.dumps({"action": "ping", "id": "b"}).encode())
    with pytest.raises(ConnectionClosed):
        client.ws.recv(timeout=5)
    assert client.ws.close_code == 1003
    deadline = time.monotonic() + 5
    while streamer.connection_rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert streamer.connection_rows() == []


def test_subscription_limit_answers_limit_exceeded(start_streamer: StartStreamer) -> None:
    """With MAX_SUBSCRIPTIONS=2 a third channel is ``limit_exceeded``; freeing one helps."""
    stack = start_streamer(MAX_SUBSCRIPTIONS="2")
    client = stack.client()
    client.subscribe("a")
    client.subscribe("b")
    assert client.subscribe("a")["channel"] == "a"  # a repeat is not counted
    _error(client.call({"action": "subscribe", "id": "c1", "channel": "c"}),
           "limit_exceeded", "c1")
    client.call({"action": "unsubscribe", "id": "u", "channel": "b"})
    assert client.subscribe("c", "c2")["channel"] == "c"
    channels = sorted(row["channel"]["S"] for row in stack.subscription_rows())
    assert channels == ["a", "c"]


def test_request_is_stored_pending_and_cancel_and_status_follow_it(
        streamer: StreamerStack) -> None:
    """``request`` acks a request id; ``status`` shows it pending; ``cancel`` cancels it once.

    No stream poller runs here, so the request stays ``pending`` until cancelled (the
    processor's own end-to-end tests cover running work).
    """
    client = streamer.client("alice")
    ack = client.call({"action": "request", "id": "r", "kind": "echo", "payload": {"x": 1}})
    assert ack["type"] == "ack" and ack["action"] == "request", ack
    request_id = ack["request_id"]
    status = client.call({"action": "status", "id": "q1", "request_id": request_id})
    assert status["type"] == "request" and status["request_id"] == request_id
    assert status["state"] == "pending", status
    cancel = client.call({"action": "cancel", "id": "c1", "request_id": request_id})
    assert cancel == {"type": "ack", "id": "c1", "action": "cancel",
                      "request_id": request_id, "state": "cancelled"}
    cancelled = client.wait_for(lambda f: f["type"] == "error" and "id" not in f)
    assert cancelled["code"] == "cancelled" and cancelled["request_id"] == request_id
    again = client.call({"action": "cancel", "id": "c2", "request_id": request_id})
    assert again["state"] == "cancelled"
    final = client.call({"action": "status", "id": "q2", "request_id": request_id})
    assert final["state"] == "cancelled"
    client.drain(QUIET)
    assert [f for f in client.frames if f.get("code") == "cancelled"] == [cancelled]


def test_requests_of_others_and_unknown_ids_are_not_found(streamer: StreamerStack) -> None:
    """``status``/``cancel`` of another user's (or no) request answer ``not_found``."""
    alice = streamer.client("alice")
    mallory = streamer.client("mallory")
    request_id = alice.call({"action": "request", "id": "r", "kind": "echo",
                             "payload": {}})["request_id"]
    for action in ("status", "cancel"):
        for rid in (request_id, "0" * 32):
            _error(mallory.call({"action": action, "id": "x", "request_id": rid}),
                   "not_found", "x")
    assert alice.call({"action": "status", "id": "q", "request_id": request_id})["state"] \
        == "pending"


@pytest.mark.parametrize("frame", [
    {"action": "request", "id": "r", "kind": "no-such-kind", "payload": {}},
    {"action": "request", "id": "r", "kind": "echo", "payload": [1]},
    {"action": "request", "id": "r", "kind": "echo"},
])
def test_bad_requests_are_refused_and_nothing_is_stored(
        streamer: StreamerStack, frame: dict[str, Any]) -> None:
    """An unknown kind or a payload that is not an object is ``bad_request``, nothing stored."""
    client = streamer.client()
    _error(client.call(frame), "bad_request", "r")
    table = f"{streamer.table_prefix}requests"
    assert streamer.db.scan(TableName=table, ConsistentRead=True)["Items"] == []


def test_request_needs_write_permission(streamer: StreamerStack) -> None:
    """``request`` without ``write`` answers ``forbidden``."""
    client = streamer.client(permissions=("read",))
    _error(client.call({"action": "request", "id": "r", "kind": "echo", "payload": {}}),
           "forbidden", "r")


def test_expired_token_answers_token_expired_and_closes(streamer: StreamerStack) -> None:
    """Once the token expires, a frame answers ``token_expired`` and the server closes
    the connection (docs/protocol.md section 6), so its record goes too."""
    client = streamer.open(streamer.token(ttl_seconds=2))
    client.subscribe("early")
    time.sleep(max(0.0, client_expiry(streamer) - time.time()) + 0.2)
    _error(client.call({"action": "subscribe", "id": "late", "channel": "c"}),
           "token_expired", "late")
    wait_until(lambda: not streamer.connection_rows(), what="the expired connection closed")


def client_expiry(stack: StreamerStack) -> float:
    (row,) = stack.connection_rows()
    return float(row["token_expires_at"]["N"])
