"""API Gateway's size limits (1009 closes) and its idle and maximum-age timeouts."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from streamer_local.framing import FrameGuard
from streamer_local.settings import GatewaySettings
from streamer_local.testing import GatewayThread
from tests.e2e.conftest import RawClient, Recorder, StartGateway, connection_id_of

KB = 1024




def test_frame_over_32kb_closes_with_1009(gateway: GatewayThread, recorder: Recorder) -> None:
    """A single frame over 32 KB closes the connection with 1009 and never reaches the app."""
    with connect(gateway.url, open_timeout=5, max_size=None) as ws:
        ws.send(b"x" * (32 * KB + 1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1009
    assert event["requestContext"]["disconnectReason"] == "Message too big"
    assert recorder.events["$default"] == []


def test_frame_of_32kb_is_accepted(gateway: GatewayThread, recorder: Recorder) -> None:
    """A frame of exactly 32 KB is within the limit."""
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send("a" * (32 * KB))
        ws.send("echo:ok")
        assert ws.recv(timeout=5) == "ok"
    recorder.wait_for("$default", lambda e: len(e["body"]) == 32 * KB)


def test_fragmented_message_under_128kb_is_accepted(gateway: GatewayThread,
                                                    recorder: Recorder) -> None:
    """A 128 KB message in 32 KB fragments is reassembled and delivered."""
    with connect(gateway.url, open_timeout=5) as ws:
        ws.send(["b" * (32 * KB)] * 4)
        ws.send("echo:ok")
        assert ws.recv(timeout=5) == "ok"
    recorder.wait_for("$default", lambda e: len(e["body"]) == 128 * KB)


def test_message_over_128kb_closes_with_1009(gateway: GatewayThread, recorder: Recorder) -> None:
    """A fragmented message over 128 KB closes with 1009 though every frame is small."""
    with connect(gateway.url, open_timeout=5) as ws:
        # The close can overtake the end of send(): the fifth fragment is the violation.
        with pytest.raises(ConnectionClosed):
            ws.send(["c" * (32 * KB)] * 4 + ["c"])
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1009
    assert recorder.events["$default"] == []


def test_oversized_frame_split_across_tcp_writes_is_caught(gateway: GatewayThread,
                                                          recorder: Recorder) -> None:
    """The frame limit holds when a frame's header and payload arrive in pieces."""
    client = RawClient(gateway.url)
    try:
        payload = b"z" * (40 * KB)
        header = bytes([0x82, 0x80 | 127]) + len(payload).to_bytes(8, "big")
        for piece in (header[:1], header[1:5], header[5:]):
            client.sock.sendall(piece)
            time.sleep(0.02)
        client.sock.sendall(b"\x00\x00\x00\x00" + payload[:1000])
        opcode, data = client.recv_frame()
        assert opcode == 0x8
        assert int.from_bytes(data[:2], "big") == 1009
    finally:
        client.close()


def test_frame_guard_tracks_frames_across_chunks() -> None:
    """The guard passes small frames byte by byte and flags the first oversized one."""
    guard = FrameGuard(max_frame=10, max_message=25)
    small = bytes([0x01, 0x80 | 3]) + b"\0\0\0\0" + b"abc"
    passed = b"".join(guard.feed(bytes([b])) for b in small)
    assert passed == small and guard.violation is None
    fragments = [bytes([0x01, 0x80 | 10]) + b"\0" * 4 + b"x" * 10,
                 bytes([0x00, 0x80 | 10]) + b"\0" * 4 + b"x" * 10,
                 bytes([0x80, 0x80 | 10]) + b"\0" * 4 + b"x" * 10]
    out = guard.feed(b"".join(fragments))
    assert out == fragments[0] + fragments[1]
    assert guard.violation is not None and "message" in guard.violation
    close = bytes([0x88, 0x80 | 2]) + b"\0" * 4 + b"\x03\xe8"
    assert guard.feed(bytes([0x81, 0x80 | 1]) + b"\0" * 4 + b"q" + close) == close


def test_idle_timeout_closes_quiet_connection(start_gateway: StartGateway,
                                              recorder: Recorder) -> None:
    """A connection without client messages for the idle timeout is closed with 1001."""
    gateway = start_gateway(GatewaySettings(idle_timeout=0.5))
    with connect(gateway.url, open_timeout=5) as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        waited = time.monotonic() - started
        assert ws.close_code == 1001
    assert 0.4 <= waited < 3.0
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1001
    assert event["requestContext"]["disconnectReason"] == "Going away (idle timeout)"


def test_messages_keep_connection_alive(start_gateway: StartGateway,
                                        recorder: Recorder) -> None:
    """Client messages reset the idle timer."""
    gateway = start_gateway(GatewaySettings(idle_timeout=0.6))
    with connect(gateway.url, open_timeout=5) as ws:
        for _ in range(8):
            time.sleep(0.2)
            ws.send("echo:ping")
            assert ws.recv(timeout=5) == "ping"
    assert recorder.wait_for("$disconnect")["requestContext"]["disconnectStatusCode"] == 1000


def test_server_posts_do_not_keep_connection_alive(start_gateway: StartGateway,
                                                   recorder: Recorder) -> None:
    """Only client messages count as activity: server pushes do not reset the idle timer."""
    gateway = start_gateway(GatewaySettings(idle_timeout=0.6))
    with connect(gateway.url, open_timeout=5) as ws:
        client = recorder.client()
        connection_id = connection_id_of(recorder)
        with pytest.raises((ConnectionClosed, client.exceptions.GoneException)):
            for _ in range(20):
                time.sleep(0.1)
                client.post_to_connection(ConnectionId=connection_id, Data=b"push")
                assert ws.recv(timeout=5) == "push"
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectReason"] == "Going away (idle timeout)"


def test_max_age_closes_even_active_connection(start_gateway: StartGateway,
                                               recorder: Recorder) -> None:
    """A connection older than the maximum age is closed however active it is."""
    gateway = start_gateway(GatewaySettings(max_age=0.8, idle_timeout=60))
    with connect(gateway.url, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed):
            for _ in range(50):
                ws.send("echo:x")
                ws.recv(timeout=5)
                time.sleep(0.05)
        assert ws.close_code == 1001
    event = recorder.wait_for("$disconnect")
    assert event["requestContext"]["disconnectReason"] == "Going away (maximum connection duration)"
