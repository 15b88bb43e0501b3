"""The real app's handshake through the gateway (PROTOCOL.md section 1)."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import urllib.parse
from collections.abc import Iterator

import jwt
import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.streamer_fixtures import SECRET, StartStreamer, StreamerStack

pytest_plugins = ["tests.e2e.streamer_fixtures"]

ALLOWED = "https://app.example.com"


def _refused(stack: StreamerStack, token: str | None,
             headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as info:
        stack.open(token, headers=headers)
    return int(info.value.response.status_code)


def test_query_token_is_accepted_and_stored(streamer: StreamerStack) -> None:
    """A valid token in the query string opens a connection and writes its record."""
    client = streamer.open(streamer.token("alice", "acme", ("read",)))
    assert client.call({"action": "ping", "id": "p"}) == {"type": "pong", "id": "p"}
    (row,) = streamer.connection_rows()
    assert row["user_id"]["S"] == "alice"
    assert row["tenant_id"]["S"] == "acme"
    assert [p["S"] for p in row["permissions"]["L"]] == ["read"]


def test_bearer_header_token_is_accepted(streamer: StreamerStack) -> None:
    """A valid ``Authorization: Bearer`` header opens a connection without a query token."""
    token = streamer.token("bob")
    client = streamer.open(token, query_token=False,
                           headers={"Authorization": f"Bearer {token}"})
    assert client.call({"action": "ping", "id": "p"})["type"] == "pong"
    assert streamer.connection_ids() == streamer.connection_ids("bob") != []


def test_same_token_in_query_and_header_is_accepted(streamer: StreamerStack) -> None:
    """The same token given both ways is accepted."""
    token = streamer.token("carol")
    client = streamer.open(token, headers={"Authorization": f"Bearer {token}"})
    assert client.call({"action": "ping", "id": "p"})["type"] == "pong"


@pytest.mark.parametrize("case", ["missing", "garbage", "expired", "bad_signature",
                                  "missing_claim", "bad_user_id", "bearer_garbage"])
def test_bad_tokens_are_refused_with_401_and_no_row(streamer: StreamerStack, case: str) -> None:
    """A missing, malformed, expired, badly signed or bad-claim token gets 401 and no row."""
    headers: dict[str, str] | None = None
    token: str | None
    if case == "missing":
        token = None
    elif case == "garbage":
        token = "not-a-jwt"
    elif case == "expired":
        token = streamer.token(ttl_seconds=-30)
    elif case == "bad_signature":
        token = streamer.token(secret="another-secret-that-is-at-least-32-bytes-long")
    elif case == "missing_claim":
        now = int(time.time())  # no permissions claim
        token = jwt.encode({"user_id": "u1", "tenant_id": "t1", "iat": now, "exp": now + 60},
                           SECRET, algorithm="HS256")
    elif case == "bad_user_id":
        token = streamer.token(user="has space")
    else:
        token, headers = None, {"Authorization": "Bearer"}
    assert _refused(streamer, token, headers) == 401
    assert streamer.connection_rows() == []


def test_query_and_header_tokens_that_differ_are_refused(streamer: StreamerStack) -> None:
    """Two valid but different tokens (query and header) get 401 and no row."""
    query_token = streamer.token("alice")
    header_token = streamer.token("mallory")
    assert _refused(streamer, query_token, {"Authorization": f"Bearer {header_token}"}) == 401
    assert streamer.connection_rows() == []


def test_streamer_v1_subprotocol_is_answered(streamer: StreamerStack) -> None:
    """A browser-style offer that includes ``streamer.v1`` is answered with it."""
    client = streamer.open(streamer.token("alice"), subprotocols=["chat.v9", "streamer.v1"])
    assert client.ws.subprotocol == "streamer.v1"
    assert client.call({"action": "ping", "id": "p"}) == {"type": "pong", "id": "p"}


def test_no_subprotocol_offer_is_served_without_one(streamer: StreamerStack) -> None:
    """A client that offers none connects as before and is answered with none."""
    client = streamer.open(streamer.token("alice"))
    assert client.ws.subprotocol is None


def test_unknown_subprotocols_are_refused_with_400(streamer: StreamerStack) -> None:
    """Offers without ``streamer.v1`` get 400 and no connection record."""
    with pytest.raises(InvalidStatus) as info:
        streamer.open(streamer.token("alice"), subprotocols=["chat.v1"])
    assert info.value.response.status_code == 400
    assert streamer.connection_rows() == []


def test_foreign_origin_is_refused_with_403(start_streamer: StartStreamer) -> None:
    """With ALLOWED_ORIGINS set, a handshake from another Origin gets 403 and no row."""
    stack = start_streamer(ALLOWED_ORIGINS=f"{ALLOWED},https://other.example.com")
    status = _refused(stack, stack.token(), {"Origin": "https://evil.example.net"})
    assert status == 403
    assert stack.connection_rows() == []


def test_allowed_origin_and_no_origin_are_accepted(start_streamer: StartStreamer) -> None:
    """With ALLOWED_ORIGINS set, the allowed Origin and a handshake without Origin connect."""
    stack = start_streamer(ALLOWED_ORIGINS=ALLOWED)
    browser = stack.open(stack.token("browser"), headers={"Origin": ALLOWED})
    native = stack.open(stack.token("native"))
    assert browser.call({"action": "ping", "id": "b"})["type"] == "pong"
    assert native.call({"action": "ping", "id": "n"})["type"] == "pong"
    assert sorted(row["user_id"]["S"] for row in stack.connection_rows()) == ["browser", "native"]


@contextlib.contextmanager
def _raw_handshake(stack: StreamerStack, target: str,
                   headers: list[tuple[str, str]]) -> Iterator[int]:
    """The status of a WebSocket upgrade sent byte for byte, so that a header or a query
    parameter can be repeated as no WebSocket client library would. The socket stays
    open for the block: closing it would run $disconnect, which deletes the row."""
    host, port = urllib.parse.urlsplit(stack.url).netloc.split(":")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in headers)]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        with sock.makefile("rb") as answer:
            yield int(answer.readline().decode().split()[1])


def _status(stack: StreamerStack, target: str, headers: list[tuple[str, str]]) -> int:
    with _raw_handshake(stack, target, headers) as status:
        return status


def test_two_authorization_parameters_are_refused(streamer: StreamerStack) -> None:
    """Garbage then a valid token, or two users' tokens, in two Authorization query
    parameters: 401 and no row (the copy API Gateway keeps is the last one)."""
    valid, other = streamer.token("alice"), streamer.token("mallory")
    for first, second in (("garbage", valid), (valid, other), (valid, valid)):
        query = urllib.parse.urlencode([("Authorization", first), ("Authorization", second)])
        assert _status(streamer, f"/?{query}", []) == 401
    assert streamer.connection_rows() == []
    single = "/?" + urllib.parse.urlencode({"Authorization": valid})
    with _raw_handshake(streamer, single, []) as status:
        assert status == 101
        assert [row["user_id"]["S"] for row in streamer.connection_rows()] == ["alice"]


def test_two_authorization_headers_differing_in_case_are_refused(
        streamer: StreamerStack) -> None:
    """'Authorization' and 'authorization' headers with two users' tokens: 401, no row."""
    alice, mallory = streamer.token("alice"), streamer.token("mallory")
    status = _status(streamer, "/", [("Authorization", f"Bearer {alice}"),
                                     ("authorization", f"Bearer {mallory}")])
    assert status == 401
    assert streamer.connection_rows() == []


def test_two_origin_headers_are_refused(start_streamer: StartStreamer) -> None:
    """With ALLOWED_ORIGINS set, a disallowed then an allowed Origin header: 403, no row."""
    stack = start_streamer(ALLOWED_ORIGINS=ALLOWED)
    query = "/?" + urllib.parse.urlencode({"Authorization": stack.token()})
    assert _status(stack, query, [("Origin", "https://evil.example.net"),
                                  ("Origin", ALLOWED)]) == 403
    assert stack.connection_rows() == []
    with _raw_handshake(stack, query, [("Origin", ALLOWED)]) as status:
        assert status == 101
        assert len(stack.connection_rows()) == 1


def _raw_exchange(stack: StreamerStack, request: bytes) -> bytes:
    """Everything the gateway answers to ``request`` before it closes (or 5 s pass)."""
    host, port = urllib.parse.urlsplit(stack.url).netloc.split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and not answer.startswith(b"HTTP/1.1 101"):
                    break
    return answer


def _upgrade(target: str, *headers: str) -> bytes:
    return ("\r\n".join([f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
                         "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                         "Sec-WebSocket-Version: 13", *headers]) + "\r\n\r\n").encode()


@pytest.mark.parametrize(("where", "length", "status"), [
    ("query", 8_300, 401), ("query", 15_000, 401), ("header", 9_000, 401),
    ("query", 20_000, 431), ("header", 40_000, 431),
])
def test_long_tokens_are_refused_cleanly_and_never_logged(
        streamer: StreamerStack, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str], where: str, length: int, status: int) -> None:
    """A token past 8 KB (aiohttp's line limit) still reaches the app and gets 401; past
    the gateway's 16 KB head limit it gets 431; its text is in no answer and no log."""
    caplog.set_level(logging.DEBUG)
    secret_text = "eyJ" + "tokenTEXT" * (length // 9)
    request = (_upgrade(f"/?Authorization={secret_text}") if where == "query"
               else _upgrade("/", f"Authorization: Bearer {secret_text}"))
    answer = _raw_exchange(streamer, request)
    assert int(answer.split()[1]) == status
    out, err = capfd.readouterr()
    for text in (answer.decode(errors="replace"), caplog.text, out, err):
        assert "tokenTEXT" not in text
    assert streamer.connection_rows() == []


def test_malformed_request_holding_a_token_is_not_logged(
        streamer: StreamerStack, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A request aiohttp cannot parse (a control character in a header) is refused with
    400 and logged without the request's text."""
    caplog.set_level(logging.DEBUG)
    answer = _raw_exchange(streamer, _upgrade("/", "Authorization: Bearer eyJtokenTEXT\x01x"))
    assert int(answer.split()[1]) == 400
    out, err = capfd.readouterr()
    assert "tokenTEXT" not in caplog.text + out + err
    assert "refused a malformed HTTP request" in caplog.text
