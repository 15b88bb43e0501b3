"""``python -m local``: the one command that runs the stack, and its token subcommand."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from websockets.sync.client import connect

from local.stack import DEFAULT_JWT_SECRET
from tests.support.local_process import stop_process

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "local", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


def test_token_has_the_required_claims() -> None:
    """``token`` prints an HS256 JWT with user, tenant, permissions, iat and exp."""
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    token = _run("token", "--user", "u1", "--tenant", "t1", "--permissions", "read,write",
                 "--ttl", "120", env=env)
    claims = jwt.decode(token, DEFAULT_JWT_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == "u1"
    assert claims["tenant_id"] == "t1"
    assert claims["permissions"] == ["read", "write"]
    assert claims["exp"] - claims["iat"] == 120
    assert abs(claims["iat"] - time.time()) < 30
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_uses_jwt_secret_from_environment() -> None:
    """With ``JWT_SECRET`` set, the token is signed with it and not with the default."""
    secret = "s" * 40
    token = _run("token", "--user", "u2", "--tenant", "t2", env={**os.environ,
                                                                  "JWT_SECRET": secret})
    assert jwt.decode(token, secret, algorithms=["HS256"])["user_id"] == "u2"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, DEFAULT_JWT_SECRET, algorithms=["HS256"])


@pytest.fixture
def local_stack() -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    env = {**os.environ, "PORT": "0", "GATEWAY_IDLE_TIMEOUT": "30", "LOG_LEVEL": "WARNING"}
    env.pop("JWT_SECRET", None)
    env.pop("DYNAMODB_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "--app", "tests.e2e.conftest:stack_app"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Streamer local gateway ready: ws://127.0.0.1:"), line
        dynamodb_line = process.stdout.readline()
        yield process, line.rsplit(" ", 1)[1].strip(), dynamodb_line
    finally:
        stop_process(process)


def test_run_prints_ready_line_and_serves(
        local_stack: tuple[subprocess.Popen[str], str, str]) -> None:
    """The stack starts DynamoDB, the app and the gateway, prints the URL, then serves."""
    process, url, _ = local_stack
    with connect(url, open_timeout=10) as ws:
        ws.send("echo:through the whole stack")
        assert ws.recv(timeout=10) == "through the whole stack"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0


def test_second_stdout_line_names_a_working_dynamodb_endpoint(
        local_stack: tuple[subprocess.Popen[str], str, str]) -> None:
    """The line after the ready line names the DynamoDB endpoint, which answers with
    the stack's tables, and how to reach it."""
    import boto3

    _, _, line = local_stack
    match = re.match(r"DynamoDB: (http://127\.0\.0\.1:\d+) \(tables streamer_\*;", line)
    assert match, line
    assert "aws dynamodb list-tables --endpoint-url" in line
    client = boto3.client("dynamodb", endpoint_url=match.group(1), region_name="us-east-1",
                          aws_access_key_id="any", aws_secret_access_key="any")
    assert "streamer_connections" in client.list_tables()["TableNames"]


def test_a_port_in_use_is_a_one_line_error() -> None:
    """Started on a port something else holds, the stack exits 2 with one line on
    stderr naming the port, and no traceback."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "LOG_LEVEL": "CRITICAL"}
        env.pop("DYNAMODB_ENDPOINT_URL", None)
        done = subprocess.run([sys.executable, "-m", "local", "--app",
                               "tests.e2e.conftest:stack_app"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m local: error: 127.0.0.1:{port} is already in use; stop what holds it "
        "or pick another port (--port N, PORT=N)"]
    assert done.stdout == ""
