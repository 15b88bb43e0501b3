"""API Gateway's limits around the real app (PROTOCOL.md section 5), and the app's cleanup.

The gateway enforces the limits; these tests check that the app behind it ends up
consistent: a connection closed by the gateway has its record removed by ``$disconnect``.
"""

from __future__ import annotations

import contextlib
import json
import time

from websockets.exceptions import ConnectionClosed

from streamer_local.settings import GatewaySettings
from tests.e2e.streamer_fixtures import StartStreamer, StreamerStack, wait_until

pytest_plugins = ["tests.e2e.streamer_fixtures"]

KB = 1024
MESSAGE_TOO_BIG = 1009
GOING_AWAY = 1001


def _publish_text(size: int) -> str:
    """A valid publish frame of exactly ``size`` bytes."""
    head = '{"action": "publish", "id": "big", "channel": "c", "data": "'
    tail = '"}'
    text = head + "x" * (size - len(head) - len(tail)) + tail
    assert len(text.encode()) == size
    return text


def _chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_frame_over_32_kb_closes_with_1009_and_row_is_removed(streamer: StreamerStack) -> None:
    """One frame of 32 KB + 1 byte closes the connection with 1009; $disconnect cleans up."""
    client = streamer.client()
    client.subscribe("c")
    client.ws.send(_publish_text(32 * KB + 1))
    assert client.close_code() == MESSAGE_TOO_BIG
    wait_until(lambda: streamer.connection_rows() == [] and streamer.subscription_rows() == [],
               what="the closed connection's rows to go")


def test_fragmented_message_over_128_kb_closes_with_1009(streamer: StreamerStack) -> None:
    """A message over 128 KB in frames under 32 KB closes the connection with 1009."""
    client = streamer.client()
    with contextlib.suppress(ConnectionClosed):  # the server may close mid-message
        client.ws.send(_chunks(_publish_text(128 * KB + 1), 30 * KB))
    assert client.close_code() == MESSAGE_TOO_BIG
    wait_until(lambda: streamer.connection_rows() == [], what="the connection row to go")


def test_fragmented_message_under_the_limits_is_delivered(streamer: StreamerStack) -> None:
    """A 100 KB publish sent in 25 KB frames reaches the app whole and is delivered."""
    publisher = streamer.client("pub")
    subscriber = streamer.client("sub")
    subscriber.subscribe("c")
    text = _publish_text(100 * KB)
    publisher.ws.send(_chunks(text, 25 * KB))
    assert publisher.wait_for(lambda f: f.get("id") == "big")["type"] == "ack"
    message = subscriber.wait_for(lambda f: f["type"] == "message")
    assert message["data"] == json.loads(text)["data"]


def test_idle_connection_is_closed_and_its_row_removed(start_streamer: StartStreamer) -> None:
    """With a 1 s idle timeout an idle client is closed (1001) and its record removed."""
    stack = start_streamer(settings=GatewaySettings(idle_timeout=1.0))
    client = stack.client()
    client.subscribe("c")
    started = time.monotonic()
    assert client.close_code(timeout=5) == GOING_AWAY
    assert time.monotonic() - started >= 0.8
    wait_until(lambda: stack.connection_rows() == [] and stack.subscription_rows() == [],
               what="the idle connection's rows to go")


def test_ping_keeps_a_connection_alive_past_the_idle_timeout(
        start_streamer: StartStreamer) -> None:
    """Pinging every 0.3 s keeps a connection with a 1 s idle timeout open for 2.5 s."""
    stack = start_streamer(settings=GatewaySettings(idle_timeout=1.0))
    pinger = stack.client("pinger")
    idler = stack.client("idler")
    deadline = time.monotonic() + 2.5
    n = 0
    while time.monotonic() < deadline:
        n += 1
        assert pinger.call({"action": "ping", "id": f"p{n}"})["type"] == "pong"
        time.sleep(0.3)
    assert idler.close_code(timeout=1) == GOING_AWAY
    assert stack.connection_ids() == stack.connection_ids("pinger") != []
    assert pinger.call({"action": "ping", "id": "last"})["type"] == "pong"


def test_maximum_age_closes_even_an_active_connection(start_streamer: StartStreamer) -> None:
    """With a 1.5 s maximum age a pinging client is still closed (1001) and its row removed."""
    stack = start_streamer(settings=GatewaySettings(max_age=1.5))
    client = stack.client()
    deadline = time.monotonic() + 4
    code: int | None = None
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            client.call({"action": "ping", "id": f"p{n}"}, timeout=1)
        except ConnectionClosed as closed:
            code = None if closed.rcvd is None else closed.rcvd.code
            break
        time.sleep(0.2)
    assert code == GOING_AWAY
    wait_until(lambda: stack.connection_rows() == [], what="the aged connection's row to go")
