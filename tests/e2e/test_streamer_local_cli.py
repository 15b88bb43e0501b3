"""streamer-local serves a Chalice project from its own directory, over real sockets.

The chat app (tests/apps/chat) is a user's project: its own chalicelib/, a DynamoDB table
in its resources.json, its table name in .chalice/config.json's stage, replies through
app.websocket_api. It runs in a copy, from that directory, in a process of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.local_process import stop_process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "streamer-local"


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[tuple[str, str]]:
    project = tmp_path / "chat"
    shutil.copytree(ROOT / "tests" / "apps" / "chat", project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = ""  # nothing of Streamer's on the path: only the installed script
    process = subprocess.Popen([str(SCRIPT), "--port", "0"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("streamer-local ready: ws://127.0.0.1:"), (
            ready + (process.stderr.read() if process.poll() is not None and process.stderr
                     else ""))
        yield ready.rsplit(" ", 1)[1].strip(), process.stdout.readline()
    finally:
        stop_process(process)


def test_the_console_script_is_installed() -> None:
    """make run / make test install streamer-local into the venv's bin."""
    assert SCRIPT.exists()


def test_a_chat_project_with_its_own_chalicelib_and_table_works(
        chat: tuple[str, str]) -> None:
    """Two clients in the chat room: each message reaches both, through the app's own
    chalicelib, its DynamoDB table (created from resources.json, named by the stage's
    environment) and Chalice's app.websocket_api."""
    url, dynamodb_line = chat
    assert re.match(r"DynamoDB: http://127\.0\.0\.1:\d+ ", dynamodb_line), dynamodb_line
    with connect(url, open_timeout=10) as alice, connect(url, open_timeout=10) as bob:
        alice.send("hello")
        assert str(alice.recv(timeout=10)).endswith(": hello")
        assert str(bob.recv(timeout=10)).endswith(": hello")
        bob.send("hi")
        assert str(alice.recv(timeout=10)).endswith(": hi")


def test_a_missing_stage_is_a_one_line_error(tmp_path: Path) -> None:
    """A stage .chalice/config.json does not have ends the start with one line."""
    project = tmp_path / "chat"
    shutil.copytree(ROOT / "tests" / "apps" / "chat", project)
    done = subprocess.run([str(SCRIPT), "--port", "0", "--stage", "prod"], cwd=project,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"streamer-local: error: {project / '.chalice' / 'config.json'}: no stage 'prod' "
        "(stages: dev)"]


RELOADED_APP = '''
import boto3
from chalice import Chalice

app = Chalice(app_name="reloaded")
app.websocket_api.session = boto3.session.Session()
app.experimental_feature_flags.update(["WEBSOCKETS"])
VERSION = "v1"


@app.on_ws_message()
def message(event):
    app.websocket_api.send(event.connection_id, f"{VERSION}: {event.body}")
'''


def test_reload_serves_the_edited_app_on_the_same_connection(tmp_path: Path) -> None:
    """With --reload, saving app.py swaps the app in: the connection opened before the
    edit stays open and its next message is answered by the new code."""
    import time

    project = tmp_path / "reloaded"
    project.mkdir()
    (project / "app.py").write_text(RELOADED_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen([str(SCRIPT), "--port", "0", "--reload"], cwd=project,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        with connect(url, open_timeout=10) as ws:
            ws.send("a")
            assert ws.recv(timeout=10) == "v1: a"
            (project / "app.py").write_text(RELOADED_APP.replace('"v1"', '"v2"'))
            deadline, answer = time.monotonic() + 15, ""
            while time.monotonic() < deadline:
                ws.send("b")
                answer = str(ws.recv(timeout=10))
                if answer.startswith("v2"):
                    break
                time.sleep(0.2)
            assert answer == "v2: b"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def served(tmp_path: Path, module: str) -> Iterator[str]:
    """tests/apps/<module>.py as a project's app.py, served by streamer-local; its URL."""
    project = tmp_path / module
    project.mkdir()
    shutil.copy(ROOT / "tests" / "apps" / f"{module}.py", project / "app.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen([str(SCRIPT), "--port", "0"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().rsplit(" ", 1)[1].strip()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


def test_the_echo_tutorial_through_the_command(tmp_path: Path) -> None:
    """Chalice's echo tutorial (websocket_api.send) answers through streamer-local."""
    with served(tmp_path, "echo") as url, connect(url, open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"


def test_an_app_without_connect_through_the_command(tmp_path: Path) -> None:
    """An app with no $connect handler accepts the handshake through streamer-local."""
    with served(tmp_path, "noconnect") as url, connect(url, open_timeout=10) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "got x"


def test_a_subprotocol_app_through_the_command(tmp_path: Path) -> None:
    """The subprotocol $connect picks is negotiated through streamer-local."""
    with served(tmp_path, "subprotocol") as url, connect(
            url, open_timeout=10, subprotocols=["chat.v2"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat.v2"
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
