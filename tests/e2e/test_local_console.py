"""The console routes of ``python -m local`` (local/console.py), over real sockets.

One stack (``python -m local --port 0``, a subprocess) for the module: the page and the
JS SDK are served with the right content types, nothing outside their directories is
served, the token route mints tokens the stack accepts and refuses bad input with 400,
and the disconnect route deletes a connection through ``@connections``.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.local_process import local_stack

REPO = Path(__file__).resolve().parents[2]
SDK_INDEX = REPO / "clients" / "js" / "dist" / "index.js"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with local_stack(tmp_path_factory.mktemp("console") / "stack.log") as (base, _):
        yield int(base.rsplit(":", 1)[1])


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path is sent as is: no client-side normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def post_json(port: int, path: str, body: Any, **headers: str) -> tuple[int, bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, data = request(port, "POST", path, raw,
                              {"Content-Type": "application/json", **headers})
    return status, data


def mint(port: int, body: Any) -> tuple[int, bytes]:
    return post_json(port, "/_local/console/token", body)


@pytest.mark.parametrize(("path", "content_type"), [
    ("/_local/console/", "text/html"),
    ("/_local/console/index.html", "text/html"),
    ("/_local/console/console.js", "text/javascript"),
    ("/_local/console/console.css", "text/css"),
])
def test_page_files_have_their_content_types(port: int, path: str, content_type: str) -> None:
    status, headers, body = request(port, "GET", path)
    assert status == 200
    assert headers["content-type"].split(";")[0] == content_type
    assert headers["cache-control"] == "no-store"
    assert body


def test_the_bare_prefix_redirects_to_the_page(port: int) -> None:
    status, headers, _ = request(port, "GET", "/_local/console")
    assert status == 302
    assert headers["location"] == "/_local/console/"


def test_the_sdk_is_served_as_javascript(port: int) -> None:
    if not SDK_INDEX.is_file():
        status, _, body = request(port, "GET", "/_local/console/sdk/index.js")
        assert status == 404 and b"npm run build" in body
        pytest.skip("the JS SDK is not built (cd clients/js && npm ci && npm run build)")
    status, headers, body = request(port, "GET", "/_local/console/sdk/index.js")
    assert status == 200
    assert headers["content-type"].split(";")[0] == "text/javascript"
    assert b"StreamerClient" in body
    status, headers, _ = request(port, "GET", "/_local/console/sdk/index.js.map")
    assert status == 200 and headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", [
    "/_local/console/../app.py",
    "/_local/console/..%2fapp.py",
    "/_local/console/%2e%2e/%2e%2e/app.py",
    "/_local/console/sdk/../../package.json",
    "/_local/console/sdk/..%2f..%2fpackage.json",
    "/_local/console/sdk/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/_local/console/%2fetc%2fpasswd",
    "/_local/console//etc/passwd",
    "/_local/console/..%5c..%5capp.py",
    "/_local/console/nothing-here.js",
    "/_local/console/sdk/",
])
def test_nothing_outside_the_console_is_served(port: int, path: str) -> None:
    status, _, body = request(port, "GET", path)
    assert status in (400, 403, 404), (status, body[:200])
    assert b"chalice" not in body.lower() and b"root:" not in body


def test_a_minted_token_is_accepted_by_the_stack(port: int) -> None:
    status, body = mint(port, {"user": "alice", "tenant": "acme",
                               "permissions": ["read", "write"], "ttl": 600})
    assert status == 200, body
    minted = json.loads(body)
    assert minted["user"] == "alice" and minted["ttl"] == 600
    token = minted["token"]
    url = f"ws://127.0.0.1:{port}/?{urllib.parse.urlencode({'Authorization': token})}"
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        ws.send(json.dumps({"action": "subscribe", "channel": "c1", "id": "s1"}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["type"] == "ack" and reply["id"] == "s1", reply


def test_defaults_and_comma_separated_permissions(port: int) -> None:
    status, body = mint(port, {})
    assert status == 200, body
    assert json.loads(body)["permissions"] == ["read", "write"]
    status, body = mint(port, {"permissions": "read, admin"})
    assert status == 200, body
    assert json.loads(body)["permissions"] == ["read", "admin"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", b"JSON"),
    ([1, 2], b"JSON object"),
    ({"user": ""}, b"user"),
    ({"user": "a b"}, b"user"),
    ({"user": "x" * 129}, b"user"),
    ({"tenant": "t/1"}, b"tenant"),
    ({"tenant": 7}, b"tenant"),
    ({"permissions": ["read", 3]}, b"permissions"),
    ({"permissions": ["has space"]}, b"permissions"),
    ({"permissions": [f"p{i}" for i in range(65)]}, b"permissions"),
    ({"permissions": {"read": True}}, b"permissions"),
    ({"ttl": 0}, b"ttl"),
    ({"ttl": -5}, b"ttl"),
    ({"ttl": 86401}, b"ttl"),
    ({"ttl": 1.5}, b"ttl"),
    ({"ttl": "60"}, b"ttl"),
    ({"ttl": True}, b"ttl"),
    ({"admin": True}, b"unknown field"),
    (b"{" + b" " * 20_000 + b"}", b"bytes"),
])
def test_bad_token_requests_get_400(port: int, body: Any, reason: bytes) -> None:
    status, data = mint(port, body)
    assert status == 400, data
    assert reason in data


def test_the_token_route_needs_json_and_the_same_origin(port: int) -> None:
    status, _, _ = request(port, "POST", "/_local/console/token", b"user=u1",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, _ = post_json(port, "/_local/console/token", {},
                          Origin="http://evil.example")
    assert status == 403
    status, _ = post_json(port, "/_local/console/token", {},
                          Origin=f"http://127.0.0.1:{port}")
    assert status == 200
    status, _, _ = request(port, "GET", "/_local/console/token")
    assert status in (404, 405)


def test_the_disconnect_route_deletes_a_connection(port: int) -> None:
    _, body = mint(port, {"user": "bob"})
    token = json.loads(body)["token"]
    url = f"ws://127.0.0.1:{port}/?{urllib.parse.urlencode({'Authorization': token})}"
    with connect(url, open_timeout=10, close_timeout=5,
                 user_agent_header="console-test-agent/1") as ws:
        status, data = post_json(port, "/_local/console/disconnect", {},
                                 **{"User-Agent": "console-test-agent/1"})
        assert status == 200, data
        assert len(json.loads(data)["deleted"]) == 1
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    status, data = post_json(port, "/_local/console/disconnect",
                             {"connectionId": "AAAAAAAAAAAAAAA="})
    assert status == 404, data
    for bad in ({"connectionId": "../x"}, {"connectionId": 5}, {"other": 1}, [1]):
        status, data = post_json(port, "/_local/console/disconnect", bad)
        assert status == 400, (bad, data)
