"""app.py as Chalice and `chalice package` see it, and the README's testing example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalice.test import Client

from app import app
from chalicelib import testing
from chalicelib.dispatch import ActionContext, Reply, actions
from chalicelib.protocol import Frame, ack
from tests.functional.conftest import SECRET, Harness

ROOT = Path(__file__).resolve().parents[2]


def test_app_imports_with_no_environment_and_no_network() -> None:
    """app.py imports in a process with an empty environment and sockets disabled."""
    probe = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise RuntimeError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import json, app\n"
        "print(json.dumps(sorted(app.app.handler_map)))\n"
        "print(json.dumps(sorted(m for m in __import__('sys').modules if m.startswith('boto'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    handlers, boto_modules = (json.loads(line) for line in result.stdout.splitlines())
    assert handlers == ["connect", "disconnect", "fanout", "message", "process", "publish"]
    assert boto_modules == []  # boto3 waits for the first invocation (cold start)


def greet(ctx: ActionContext, frame: Frame) -> Reply:
    """The README's example action."""
    return ack(frame.id, "greet", hello=ctx.connection.user_id)


if "greet" not in actions.names():
    actions.action("greet", permission="read")(greet)


def test_readme_testing_example(harness: Harness) -> None:
    """The README's 'add an action and test it with chalice.test.Client' example works."""
    token = testing.make_token(SECRET, user_id="u1", tenant_id="acme", permissions=["read"])
    with Client(app) as client:
        client.lambda_.invoke("connect", testing.connect_event("c1", token=token))
        client.lambda_.invoke("message", testing.message_event("c1", {"action": "greet",
                                                                      "id": "g"}))
        client.lambda_.invoke("disconnect", testing.disconnect_event("c1"))
    reply: dict[str, Any] = harness.sink.last("c1")
    assert reply == {"type": "ack", "action": "greet", "hello": "u1", "id": "g"}
    assert harness.rows("connections") == []
