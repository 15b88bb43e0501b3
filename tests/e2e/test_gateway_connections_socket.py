"""The @connections fast path (streamer_local/connections_api.py), byte by byte, on real sockets.

boto3 never pipelines, splits a request line or mixes APIs on one socket; an HTTP
client may. These tests send raw HTTP/1.1 and read the raw answers.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from streamer_local.settings import GatewaySettings
from streamer_local.testing import GatewayThread
from tests.e2e.conftest import Recorder, connection_id_of, make_app


def _port(gateway: GatewayThread) -> int:
    return int(gateway.http_url.rsplit(":", 1)[1])


STAGE = GatewaySettings().stage


def _post(connection_id: str, body: bytes, stage: str = STAGE, extra: str = "") -> bytes:
    return (f"POST /{stage}/@connections/{quote(connection_id, safe='')} HTTP/1.1\r\n"
            f"Host: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _read_replies(sock: socket.socket, count: int, timeout: float = 5.0) -> list[tuple[int, bytes]]:
    """``count`` HTTP replies (status, body) read off ``sock`` in order."""
    sock.settimeout(timeout)
    buffer = b""
    replies: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(replies) < count and time.monotonic() < deadline:
        while b"\r\n\r\n" in buffer and len(replies) < count:
            head, rest = buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith("content-length:")), 0)
            if len(rest) < length:
                break
            replies.append((int(lines[0].split()[1]), rest[:length]))
            buffer = rest[length:]
        if len(replies) < count:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    return replies


def test_pipelined_posts_are_answered_in_order(gateway: GatewayThread,
                                               recorder: Recorder) -> None:
    """Three POSTs in one write: two deliveries and a 410, answered in request order."""
    with connect(gateway.url, open_timeout=5) as first, \
            connect(gateway.url, open_timeout=5) as second:
        a, b = connection_id_of(recorder, 0), connection_id_of(recorder, 1)
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.sendall(_post(a, b"one") + _post("AAAAAAAAAAAAAAA=", b"lost") + _post(b, b"two"))
            replies = _read_replies(sock, 3)
        assert [status for status, _ in replies] == [200, 410, 200]
        assert json.loads(replies[1][1])["message"].startswith("Connection AAAAAAAAAAAAAAA=")
        assert first.recv(timeout=5) == "one"
        assert second.recv(timeout=5) == "two"


def test_request_line_split_across_writes(gateway: GatewayThread, recorder: Recorder) -> None:
    """A request line that arrives a few bytes at a time is still routed and served."""
    with connect(gateway.url, open_timeout=5) as ws:
        request = _post(connection_id_of(recorder), b"slow")
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for start in range(0, 30, 3):
                sock.sendall(request[start:start + 3])
                time.sleep(0.01)
            sock.sendall(request[30:])
            assert _read_replies(sock, 1)[0][0] == 200
        assert ws.recv(timeout=5) == "slow"


def test_other_path_on_a_connections_socket_is_404(gateway: GatewayThread) -> None:
    """A socket that began with @connections serves only that API: anything else is 404."""
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(_post("AAAAAAAAAAAAAAA=", b"x")
                     + b"GET /2015-03-31/functions/publish/invocations HTTP/1.1\r\nHost: x\r\n\r\n")
        replies = _read_replies(sock, 2)
    assert [status for status, _ in replies] == [410, 404]
    assert "only @connections" in json.loads(replies[1][1])["message"]


def test_connections_after_another_request_on_one_socket(gateway: GatewayThread,
                                                         recorder: Recorder) -> None:
    """A socket that began with a Lambda invoke (aiohttp) still reaches @connections."""
    with connect(gateway.url, open_timeout=5) as ws:
        invoke = (b"POST /2015-03-31/functions/publish/invocations HTTP/1.1\r\nHost: x\r\n"
                  b"X-Amz-Invocation-Type: DryRun\r\nContent-Length: 2\r\n\r\n{}")
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.sendall(invoke)
            assert _read_replies(sock, 1)[0][0] == 204
            sock.sendall(_post(connection_id_of(recorder), b"via aiohttp"))
            assert _read_replies(sock, 1)[0][0] == 200
        assert ws.recv(timeout=5) == "via aiohttp"


def test_wrong_stage_is_403(gateway: GatewayThread, recorder: Recorder) -> None:
    with connect(gateway.url, open_timeout=5), \
            socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(_post(connection_id_of(recorder), b"x", stage=STAGE + "x"))
        status, body = _read_replies(sock, 1)[0]
    assert status == 403
    assert json.loads(body) == {"message": "Forbidden"}


def test_connection_close_is_honoured(gateway: GatewayThread, recorder: Recorder) -> None:
    """``Connection: close`` gets its answer, then the gateway closes the socket."""
    with connect(gateway.url, open_timeout=5) as ws:
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.sendall(_post(connection_id_of(recorder), b"bye", extra="Connection: close\r\n"))
            assert _read_replies(sock, 1)[0][0] == 200
            sock.settimeout(5)
            assert sock.recv(1024) == b""  # closed by the gateway
        assert ws.recv(timeout=5) == "bye"


def test_malformed_request_is_400_and_closed(gateway: GatewayThread) -> None:
    with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
        sock.sendall(b"POST /x/@connections/abc HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        status, body = _read_replies(sock, 1)[0]
        assert status == 400
        assert json.loads(body)["message"] == "Malformed HTTP request"
        sock.settimeout(5)
        assert sock.recv(1024) == b""


def test_delete_and_get_on_the_fast_path(gateway: GatewayThread, recorder: Recorder) -> None:
    """GET answers the connection's info; DELETE answers 204 and closes the client."""
    with connect(gateway.url, open_timeout=5) as ws:
        connection_id = quote(connection_id_of(recorder), safe="")
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.sendall(f"GET /{STAGE}/@connections/{connection_id} HTTP/1.1\r\nHost: x\r\n\r\n"
                         f"DELETE /{STAGE}/@connections/{connection_id} HTTP/1.1\r\nHost: x\r\n\r\n"
                         .encode())
            (get_status, info), (delete_status, _) = _read_replies(sock, 2)
        assert get_status == 200
        assert set(json.loads(info)) == {"connectedAt", "identity", "lastActiveAt"}
        assert delete_status == 204
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=5)
    assert recorder.wait_for("$disconnect")


def test_expect_100_continue_is_answered_before_the_body(gateway: GatewayThread,
                                                        recorder: Recorder) -> None:
    """curl's way for bodies over 1 KB: headers, wait for 100 Continue, then the body."""
    with connect(gateway.url, open_timeout=5) as ws:
        body = b"b" * 2048
        request = _post(connection_id_of(recorder), body, extra="Expect: 100-continue\r\n")
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.sendall(request[:-len(body)])
            sock.settimeout(5)
            assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            assert _read_replies(sock, 1)[0][0] == 200
        assert ws.recv(timeout=5) == body.decode()


def test_half_closed_client_still_gets_its_answer(gateway: GatewayThread,
                                                  recorder: Recorder) -> None:
    """A request then shutdown(SHUT_WR): the POST is delivered and answered, then closed."""
    with connect(gateway.url, open_timeout=5) as ws:
        with socket.create_connection(("127.0.0.1", _port(gateway))) as sock:
            sock.sendall(_post(connection_id_of(recorder), b"last words"))
            sock.shutdown(socket.SHUT_WR)
            assert _read_replies(sock, 1)[0][0] == 200
            assert sock.recv(1024) == b""
        assert ws.recv(timeout=5) == "last words"


def test_stop_closes_undecided_and_connections_sockets(recorder: Recorder) -> None:
    """Sockets aiohttp does not track (a request line still arriving, a kept-alive
    @connections socket) are closed when the gateway stops."""
    with GatewayThread(make_app(recorder)) as gateway:
        undecided = socket.create_connection(("127.0.0.1", _port(gateway)))
        undecided.sendall(b"POS")
        kept = socket.create_connection(("127.0.0.1", _port(gateway)))
        kept.sendall(_post("AAAAAAAAAAAAAAA=", b"x"))
        assert _read_replies(kept, 1)[0][0] == 410
    for sock in (undecided, kept):
        with sock:
            sock.settimeout(5)
            assert sock.recv(1024) == b""
