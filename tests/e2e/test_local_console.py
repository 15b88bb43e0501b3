"""The console's routes on the local stack (local/console.py), over real sockets: the
page and the SDK are served with their content types and nothing outside their folders;
the dev-token route mints tokens the stack accepts and refuses bad input with 400; the
disconnect route closes a connection through @connections."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from local.console import SDK_DIR
from tests.support.local_process import local_stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The http base URL of a fresh ``python -m local``."""
    if not (SDK_DIR / "index.js").is_file():
        pytest.fail("clients/js is not built: make test builds it first "
                    "(cd clients/js && npm ci && npm run build)")
    with local_stack(tmp_path_factory.mktemp("console") / "stack.log") as (base, _):
        yield base


def http(stack: str, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    request = urllib.request.Request(
        stack + path, data=data, method=method,
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ws_url(base: str) -> str:
    return "ws" + base.removeprefix("http")


@pytest.mark.parametrize(("path", "kind"), [
    ("/_local/console/", "text/html"),
    ("/_local/console/console.js", "text/javascript"),
    ("/_local/console/console.css", "text/css"),
    ("/_local/console/sdk/index.js", "text/javascript"),
])
def test_page_and_sdk_are_served(stack: str, path: str, kind: str) -> None:
    status, headers, body = http(stack, "GET", path)
    assert status == 200 and headers["Content-Type"].startswith(kind) and body
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", [
    "/_local/console/../local/console.py",
    "/_local/console/%2e%2e/app.py",
    "/_local/console/sdk/%2e%2e/package.json",
    "/_local/console/sdk/..%2F..%2F..%2Fapp.py",
    "/_local/console/nope.html",
])
def test_nothing_outside_the_folders_is_served(stack: str, path: str) -> None:
    status, _, body = http(stack, "GET", path)
    assert status == 404, body
    assert b"import" not in body


def test_a_minted_token_connects(stack: str) -> None:
    status, _, body = http(stack, "POST", "/_local/console/token",
                           {"user": "ann", "tenant": "acme", "permissions": ["read"],
                            "ttl": 3600})
    assert status == 200
    minted = json.loads(body)
    assert (minted["user"], minted["tenant"], minted["permissions"]) == (
        "ann", "acme", ["read"])
    with connect(f"{ws_url(stack)}/?Authorization={minted['token']}",
                 open_timeout=10) as ws:
        ws.send(json.dumps({"action": "ping", "id": "p"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong", "id": "p"}


@pytest.mark.parametrize("body", [
    {"user": "a#b"}, {"tenant": ""}, {"permissions": ["read write"]}, {"ttl": 0},
    {"ttl": 10**9}, {"ttl": "60"}, {"role": "admin"}, [1, 2], b"{not json",
])
def test_bad_token_requests_get_400(stack: str, body: Any) -> None:
    status, _, reply = http(stack, "POST", "/_local/console/token", body)
    assert status == 400 and reply.strip()


def test_token_route_needs_json_and_the_same_origin(stack: str) -> None:
    status, _, _ = http(stack, "POST", "/_local/console/token", {},
                        headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, _ = http(stack, "POST", "/_local/console/token", {},
                        headers={"Origin": "https://evil.example"})
    assert status == 403


def test_disconnect_route_closes_a_named_connection(stack: str) -> None:
    _, _, body = http(stack, "POST", "/_local/console/token", {})
    token = json.loads(body)["token"]
    before = {c["connectionId"] for c in json.loads(
        http(stack, "GET", "/_local/connections")[2])}
    with connect(f"{ws_url(stack)}/?Authorization={token}", open_timeout=10) as client:
        listed = json.loads(http(stack, "GET", "/_local/connections")[2])
        (mine,) = [c["connectionId"] for c in listed if c["connectionId"] not in before]
        status, _, reply = http(stack, "POST", "/_local/console/disconnect",
                                {"connectionId": mine})
        assert status == 200 and json.loads(reply)["deleted"] == [mine]
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
    status, _, _ = http(stack, "POST", "/_local/console/disconnect",
                        {"connectionId": "no-such-id"})
    assert status == 404
    status, _, _ = http(stack, "POST", "/_local/console/disconnect",
                        {"connectionId": "bad id!"})
    assert status == 400

