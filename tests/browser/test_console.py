"""The console page (console/, local/console.py) in headless Debian chromium, via Playwright.

Starts the real local stack (``python -m local --port 0``) in a subprocess, opens the
console, mints a token on the page, connects, subscribes, publishes, runs a ``count``
request, then forces a disconnect (the page's button: the server deletes the page's
connection through ``@connections``) with the page held offline for a while, publishes
from another client meanwhile, and watches the page reconnect, recover the channel
(``recovered=true``) and show each message exactly once. Saves build/console.png.

Needs ``apt-get install chromium`` (skipped without /usr/bin/chromium) and Playwright for
Python (never ``playwright install``: the system chromium is used). The JS SDK is built
(``npm ci && npm run build`` in clients/js) if clients/js/dist/ is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from local.cli import make_token
from local.stack import DEFAULT_JWT_SECRET
from tests.support.local_process import REPO, local_stack

SDK = REPO / "clients" / "js"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 10_000
JWT = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")
CHANNEL = "console-test"
OFFLINE_MS = 3000

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def sdk_dist() -> Path:
    """clients/js/dist/, built with npm if it is not there yet."""
    dist = SDK / "dist"
    if not (dist / "index.js").is_file():
        npm = shutil.which("npm")
        assert npm is not None, "the JS SDK is not built and npm is missing"
        for step in (["ci"], ["run", "build"]):
            subprocess.run([npm, *step], cwd=SDK, check=True, timeout=600,
                           stdout=subprocess.DEVNULL)
    assert (dist / "index.js").is_file()
    return dist


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(http base, ws url) of a fresh ``python -m local`` on a free port."""
    with local_stack(tmp_path / "stack.log") as urls:
        yield urls


def test_console_end_to_end(chromium: str, sdk_dist: Path, stack: tuple[str, str],
                            tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    base, ws_url = stack
    started = time.monotonic()
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, args=ARGS, headless=True,
            timeout=30_000, viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = sync_api.expect
            page.goto(f"{base}/_local/console/")
            expect(page.locator("#sdk-status")).to_have_attribute("data-ready", "true")

            page.click("#mint")
            expect(page.locator("#token")).to_have_value(JWT)
            page.click("#connect")
            expect(page.locator("#state")).to_have_attribute("data-state", "connected")

            page.fill("#channel", CHANNEL)
            page.click("#subscribe")
            expect(page.locator(f"#subscriptions li[data-channel='{CHANNEL}']")).to_have_count(1)
            page.fill("#publish-data", '{"n": 1}')
            page.click("#publish")
            messages = page.locator(f"#messages li[data-channel='{CHANNEL}']")
            expect(messages).to_have_count(1)
            expect(messages.first).to_contain_text('{"n":1}')
            expect(page.locator("#frames li[data-direction='out']").first).to_be_attached()
            expect(page.locator("#frames li[data-direction='in']").first).to_be_attached()

            _count_request(page, expect)
            _reconnect_and_recover(page, expect, ws_url)
            # Still live after the reconnect.
            page.fill("#publish-data", '{"n": 4}')
            page.click("#publish")
            expect(messages).to_have_count(4)
            data = messages.evaluate_all("items => items.map(i => i.dataset.data)")
            assert data == ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}'], data
            offsets = messages.evaluate_all("items => items.map(i => i.dataset.offset)")
            assert len(set(offsets)) == 4, offsets
            assert errors == [], errors

            out = REPO / "build" / "console.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            context.close()
    assert time.monotonic() - started < 120


def _count_request(page: Any, expect: Any) -> None:
    page.fill("#count-steps", "4")
    page.fill("#count-interval", "100")
    page.click("#start-count")
    expect(page.locator("#request-id")).not_to_be_empty()
    expect(page.locator("#progress-text")).to_have_attribute("data-progress", re.compile(r"."),
                                                             timeout=20_000)
    expect(page.locator("#result")).to_have_attribute("data-done", "true", timeout=20_000)
    expect(page.locator("#result")).to_contain_text('"count":4')
    assert page.locator("#progress").get_attribute("value") is not None


def _publish_elsewhere(ws_url: str, values: list[int]) -> None:
    """Publish to the page's channel from a second client (user u2, same tenant)."""
    token = make_token(DEFAULT_JWT_SECRET, user="u2", tenant="t1",
                       permissions=["read", "write"])
    url = f"{ws_url}/?{urllib.parse.urlencode({'Authorization': token})}"
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        for n in values:
            ws.send(json.dumps({"action": "publish", "id": f"p{n}", "channel": CHANNEL,
                                "data": {"n": n}}))
            deadline = time.monotonic() + 10
            while True:
                frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                if frame.get("id") == f"p{n}":
                    assert frame["type"] == "ack", frame
                    break


def _reconnect_and_recover(page: Any, expect: Any, ws_url: str) -> None:
    page.fill("#offline-ms", str(OFFLINE_MS))
    held = time.monotonic()
    page.click("#force-disconnect")
    expect(page.locator("#disconnect-result")).to_have_text("deleted 1 connection(s)")
    expect(page.locator("#state-history li[data-state='reconnecting']")).to_have_count(1)
    # While the page is held offline: two messages it must get once it is back.
    _publish_elsewhere(ws_url, [2, 3])
    assert time.monotonic() - held < OFFLINE_MS / 1000, "published after the page was back"
    expect(page.locator(f"#messages li[data-channel='{CHANNEL}']")).to_have_count(1)
    expect(page.locator("#state")).to_have_attribute("data-state", "connected",
                                                     timeout=15_000)
    history = page.locator("#state-history li").evaluate_all(
        "items => items.map(i => i.dataset.state)")
    at = history.index("reconnecting")
    assert "connected" in history[at:], history
    # The resume of the subscription after the reconnect (protocol.md section 6).
    recovery = page.locator(f"#events li[data-kind='recovery'][data-channel='{CHANNEL}']")
    expect(recovery.first).to_have_attribute("data-recovered", "true")
    expect(page.locator(f"#messages li[data-channel='{CHANNEL}']")).to_have_count(3)
