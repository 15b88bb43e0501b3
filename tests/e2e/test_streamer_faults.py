"""The app's cleanup and retry paths, driven by the gateway's fault switches.

- a skipped ``$disconnect`` leaves a stale row that the next publish finds (410) and removes;
- a connection the gateway answers 410 for although it is open loses its rows;
- 429 throttling is retried by the app, so every subscriber gets exactly one copy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from streamer_local.settings import Faults
from tests.e2e.streamer_fixtures import Frame, StartStreamer, WsClient, wait_until

pytest_plugins = ["tests.e2e.streamer_fixtures"]

QUIET = 0.5


def _publish(client: WsClient, frame_id: str, channel: str, data: object) -> str:
    ack = client.call({"action": "publish", "id": frame_id, "channel": channel, "data": data})
    assert ack["type"] == "ack", ack
    return str(ack["message_id"])


def _message(message_id: str) -> Callable[[Frame], bool]:
    return lambda f: f["type"] == "message" and f.get("message_id") == message_id


def test_dropped_disconnect_leaves_a_row_the_next_publish_removes(
        start_streamer: StartStreamer) -> None:
    """With $disconnect dropped the row stays; a publish gets 410 for it and removes it."""
    stack = start_streamer(faults=Faults(drop_disconnect=1.0))
    alice, bob, carol = (stack.client(name) for name in ("alice", "bob", "carol"))
    for client in (alice, bob, carol):
        client.subscribe("c")
    carol.subscribe("other")
    carol_id = stack.connection_id("carol")
    carol.close()
    wait_until(lambda: carol_id not in stack.gateway.gateway.connection_ids(),
               what="the gateway to forget carol")
    alice.call({"action": "ping", "id": "settle"})  # the gateway's close path has run
    assert carol_id in stack.connection_ids()
    assert carol_id in stack.subscribed_ids()

    message_id = _publish(alice, "m", "c", {"n": 1})

    for client in (alice, bob):
        assert client.wait_for(lambda f: f["type"] == "message")["message_id"] == message_id
    wait_until(lambda: carol_id not in stack.connection_ids()
               and carol_id not in stack.subscribed_ids(),
               what="the stale connection and both its subscriptions to go")
    assert sorted(stack.connection_ids()) == sorted(
        [stack.connection_id("alice"), stack.connection_id("bob")])


def test_gone_live_connection_loses_its_rows_and_others_are_delivered(
        start_streamer: StartStreamer) -> None:
    """A 410 for an open connection removes its rows; the other subscribers get the message."""
    stack = start_streamer()
    alice, bob, carol = (stack.client(name) for name in ("alice", "bob", "carol"))
    for client in (alice, bob, carol):
        client.subscribe("c")
    bob_id = stack.connection_id("bob")
    stack.faults.gone_connections.add(bob_id)

    message_id = _publish(alice, "m", "c", "hello")

    for client in (alice, carol):
        assert client.wait_for(lambda f: f["type"] == "message")["message_id"] == message_id
    wait_until(lambda: bob_id not in stack.connection_ids()
               and bob_id not in stack.subscribed_ids(), what="bob's rows to go")
    bob.drain(QUIET)
    assert bob.messages() == []
    # The gateway knows bob again: the app no longer does, and says so.
    stack.faults.gone_connections.discard(bob_id)
    reply = bob.call({"action": "subscribe", "id": "again", "channel": "c"})
    assert reply["type"] == "error" and reply["code"] == "unauthorized", reply
    assert bob_id not in stack.subscribed_ids()


def test_throttled_posts_are_retried_and_delivered_exactly_once(
        start_streamer: StartStreamer, caplog: pytest.LogCaptureFixture) -> None:
    """With 30% of posts answered 429, every subscriber still gets each message exactly once."""
    stack = start_streamer(faults=Faults(throttle_fraction=0.3, seed=20240601),
                           SEND_MAX_ATTEMPTS="10", SEND_BACKOFF_SECONDS="0.005")
    clients = [stack.client(f"user{i}") for i in range(12)]
    for client in clients:
        client.subscribe("c")
    publisher = clients[0]
    sent = {_publish(publisher, f"m{i}", "c", i) for i in range(3)}

    for client in clients:
        for message_id in sent:
            client.wait_for(_message(message_id))
    for client in clients:
        client.drain(QUIET / len(clients))
    for client in clients:
        counts = Counter(f["message_id"] for f in client.messages())
        assert counts == dict.fromkeys(sent, 1), counts
    retries = sum(getattr(r, "retries", 0) for r in caplog.records if r.getMessage() == "published")
    assert retries > 0, "the throttle fault never fired: the test proves nothing"
