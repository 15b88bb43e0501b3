"""``python -m local`` refuses settings the app would refuse, instead of serving 500s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORT": "0", "LOG_LEVEL": "WARNING", **extra}
    env.pop("DYNAMODB_ENDPOINT_URL", None)
    return subprocess.run([sys.executable, "-m", "local", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=20, check=False)


def test_run_with_short_secret_exits_with_the_config_error() -> None:
    """With a secret under 32 bytes the stack exits non-zero before its ready line."""
    result = _run("--port", "0", "--app", "tests.e2e.conftest:stack_app", JWT_SECRET="short")
    assert result.returncode != 0
    assert "ready" not in result.stdout
    assert "JWT_SECRET must be at least 32 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_bad_app_setting_exits_with_the_config_error() -> None:
    """Any variable the app's Settings refuse stops the stack, not only the secret."""
    result = _run("--port", "0", "--app", "tests.e2e.conftest:stack_app",
                  SUBSCRIPTION_SHARDS="many")
    assert result.returncode != 0
    assert "ready" not in result.stdout
    assert "SUBSCRIPTION_SHARDS" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_with_short_secret_is_refused() -> None:
    """``token`` prints no token for a secret the app would refuse."""
    result = _run("token", "--user", "u1", "--tenant", "t1", JWT_SECRET="short")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "JWT_SECRET must be at least 32 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_checks_the_secret_against_the_app_algorithms() -> None:
    """A 46-byte secret is too short once the app is told to accept HS512."""
    result = _run("token", "--user", "u1", "--tenant", "t1", JWT_ALGORITHMS="HS512")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "JWT_SECRET must be at least 64 bytes" in result.stderr
