"""``python -m local`` as a child process, as a person runs it: for the tests that use
the whole stack from outside (the console's routes, the page in a real browser)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"^Streamer local gateway ready: (ws://127\.0\.0\.1:(\d+))$")


@contextlib.contextmanager
def local_stack(log_path: Path) -> Iterator[tuple[str, str]]:
    """(http base, ws url) of a fresh stack on a free port; its stderr goes to
    ``log_path``. Stopped with SIGINT (killed after 20 s)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "JWT_")) and k != "PORT"}
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "local", "--port", "0"], cwd=REPO,
                                   env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # bounded by the caller's timeout
        ready = READY.match(line)
        assert ready, f"{line!r}\n{log_path.read_text()}"
        yield f"http://127.0.0.1:{ready[2]}", ready[1]
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[str]) -> None:
    """Stop a stack as Ctrl-C does (SIGINT: clients get 1001, $disconnect runs), kill it
    after 20 s, and close its pipes."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
