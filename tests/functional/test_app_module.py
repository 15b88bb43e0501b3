"""app.py as Chalice and `chalice package` see it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
