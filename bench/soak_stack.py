"""The soak's local stack: moto's DynamoDB server and ``python -m local``, as child processes.

Both run exactly as a developer runs them (``python -m streamer_local.dynamodb_server
--port 0``, then ``python -m local --port 0 --dynamodb-endpoint ...`` with the fault
flags), so the soak exercises the real stack, not a test double. The DynamoDB server is started here
rather than by the stack because the soak needs its endpoint (to Scan for orphans
afterwards) and its pid (to sample its memory).

:class:`LogWatch` reads the stack's log as it is written. The app logs one JSON object
per line (Powertools) on stdout, the gateway and poller plain text on stderr. From it
the soak learns what clients cannot see: which connection id belongs to which client
(``connection established`` carries both), which connections the server forgot after
a 410 (``stale connection removed``, ``found: true``), whose ``$disconnect`` ran, what
each fan-out did, and every ERROR line.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.common import REPO_ROOT, rss_kib

READY_PREFIX = "Streamer local gateway ready: "
DYNAMODB_READY_PREFIX = "DYNAMODB_READY "
# The gateway's and poller's text lines: "2026-01-01 10:00:00,123 ERROR streamer_local.poller: ...".
_TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ([A-Z]+) (\S+): (.*)$")
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
KEPT_ERRORS = 20  # the first ERROR lines are kept verbatim for the report
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Faults:
    """The fault flags given to ``python -m local`` (see ``python -m local --help``)."""

    gone_fraction: float = 0.0
    throttle_fraction: float = 0.0
    drop_disconnect: float = 0.0
    redeliver_fraction: float = 0.0
    seed: int | None = None

    def flags(self) -> list[str]:
        flags = ["--gone-fraction", f"{self.gone_fraction:.6g}",
                 "--throttle-fraction", f"{self.throttle_fraction:.6g}",
                 "--drop-disconnect", f"{self.drop_disconnect:.6g}",
                 "--redeliver-fraction", f"{self.redeliver_fraction:.6g}"]
        if self.seed is not None:
            flags += ["--seed", str(self.seed)]
        return flags


@dataclass
class FanoutTotals:
    """Sums over the app's ``published`` log lines (one per fan-out)."""

    publishes: int = 0
    recipients: int = 0
    delivered: int = 0
    gone: int = 0
    failed: int = 0
    retries: int = 0


@dataclass
class LogWatch:
    """What the stack's log says, updated by the reader threads (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    lines: int = 0
    levels: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)
    connection_of: dict[str, str] = field(default_factory=dict)  # user id -> connection id
    user_of: dict[str, str] = field(default_factory=dict)  # connection id -> user id
    forgotten: dict[str, float] = field(default_factory=dict)  # connection id -> monotonic
    disconnected: set[str] = field(default_factory=set)  # connection ids whose $disconnect ran
    last_disconnect: float = 0.0  # monotonic time of the latest $disconnect line
    published: dict[str, float] = field(default_factory=dict)  # message id -> monotonic
    fanout: FanoutTotals = field(default_factory=FanoutTotals)
    replies_lost: int = 0  # "reply not delivered": a reply failed after every retry
    not_run_again: collections.Counter[str] = field(default_factory=collections.Counter)
    succeeded: collections.Counter[str] = field(default_factory=collections.Counter)

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line:
            return
        with self.lock:
            self.lines += 1
            if line.startswith("{"):
                self._json(line)
            else:
                self._text(line)

    def _text(self, line: str) -> None:
        match = _TEXT_LINE.match(line)
        if match is None:
            return  # a traceback's continuation or the ready line: its head was counted
        level = match.group(1)
        self.levels[level] += 1
        if level in ERROR_LEVELS:
            self._keep(line)

    def _json(self, line: str) -> None:
        # Several objects on one line happen: Powertools prints an EMF blob and its
        # newline in two writes, and another thread's log line can land in between (the
        # local gateway runs invocations as threads of one process; Lambda does not).
        decoder = json.JSONDecoder()
        position = 0
        while position < len(line):
            try:
                entry, position = decoder.raw_decode(line, position)
            except ValueError:
                self.levels["UNPARSED"] += 1
                return
            if isinstance(entry, dict):
                self._entry(entry)

    def _entry(self, entry: dict[str, Any]) -> None:
        if "_aws" in entry:
            return  # an EMF metrics blob, not a log line
        level = str(entry.get("level", "?"))
        self.levels[level] += 1
        if level in ERROR_LEVELS:
            self._keep(json.dumps(entry))
        message = entry.get("message")
        connection_id = entry.get("connection_id")
        if message == "connection established" and entry.get("route") == "$connect":
            user = str(entry.get("user_id"))
            self.connection_of[user] = str(connection_id)
            self.user_of[str(connection_id)] = user
        elif message == "stale connection removed" and entry.get("found") is True:
            self.forgotten.setdefault(str(entry.get("stale_connection_id")), time.monotonic())
        elif message in ("connection closed", "disconnect of an unknown connection"):
            self.disconnected.add(str(connection_id))
            self.last_disconnect = time.monotonic()
        elif message == "published":
            self.published.setdefault(str(entry.get("message_id")), time.monotonic())
            totals = self.fanout
            totals.publishes += 1
            totals.recipients += int(entry.get("recipients", 0))
            totals.delivered += int(entry.get("delivered", 0))
            totals.gone += int(entry.get("gone", 0))
            totals.failed += int(entry.get("failed", 0))
            totals.retries += int(entry.get("retries", 0))
        elif message == "reply not delivered":
            self.replies_lost += 1
        elif message == "request already claimed or cancelled; not run again":
            self.not_run_again[str(entry.get("request"))] += 1
        elif message == "request succeeded":
            self.succeeded[str(entry.get("request"))] += 1

    def _keep(self, line: str) -> None:
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(line[:600])


# Run as `python -c LAUNCHER cmd...`: ask Linux for SIGTERM when the thread that started
# this process ends (PR_SET_PDEATHSIG survives exec), then become ``cmd``. A soak that is
# killed (a test's timeout) then leaves no servers behind. Done in a launcher rather
# than a ``preexec_fn``, which is unsafe in a process with threads.
LAUNCHER = (
    "import ctypes, os, signal, sys; "
    f"ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, int(signal.SIGTERM)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def dies_with_parent(command: list[str]) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, *command]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Linux: /proc/<pid>/task/<tid>/children)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        for child in text.split():
            found.append(int(child))
            found.extend(_children(int(child)))
    return found


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` and its descendants, in KiB (0 once it has exited)."""
    total = 0
    for each in (pid, *_children(pid)):
        try:
            total += rss_kib(each)
        except (OSError, RuntimeError):
            continue  # exited between the listing and the read
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants so far."""
    total = 0.0
    for each in (pid, *_children(pid)):
        try:
            # Fields after the command (which may hold spaces) : utime is the 12th, stime
            # the 13th (fields 14 and 15 of proc(5)).
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


class LocalStackProcesses:
    """The DynamoDB server and ``python -m local``, their log, and their memory."""

    def __init__(self, faults: Faults, *, table_prefix: str, secret: str,
                 log_path: Path, extra_flags: list[str] | None = None,
                 dynamodb_module: str = "streamer_local.dynamodb_server") -> None:
        self.faults = faults
        self.dynamodb_module = dynamodb_module
        self.table_prefix = table_prefix
        self.secret = secret
        self.log_path = log_path
        self.extra_flags = extra_flags or []
        self.watch = LogWatch()
        self.url = ""
        self.dynamodb_url = ""
        self._dynamodb: subprocess.Popen[str] | None = None
        self._stack: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._log: IO[str] | None = None
        self._log_lock = threading.Lock()

    @property
    def stack_pid(self) -> int:
        assert self._stack is not None
        return self._stack.pid

    @property
    def dynamodb_pid(self) -> int:
        assert self._dynamodb is not None
        return self._dynamodb.pid

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Unbuffered: LogWatch must see each line when it is written, not 8 KB later.
        env.update({"PYTHONUNBUFFERED": "1", "JWT_SECRET": self.secret, "LOG_LEVEL": "INFO",
                    "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                    "AWS_DEFAULT_REGION": "us-east-1"})
        for name in ("DYNAMODB_ENDPOINT_URL", "TABLE_PREFIX", "PORT", "AWS_PROFILE"):
            env.pop(name, None)  # the flags below decide these
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Start both processes; return once the stack printed its ready line."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        env = self.environment()
        self._dynamodb = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", self.dynamodb_module,
                              "--host", "127.0.0.1", "--port", "0"]),
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.dynamodb_url = self._ready_line(self._dynamodb, DYNAMODB_READY_PREFIX, timeout)
        self._stack = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", "local", "--host", "127.0.0.1",
                              "--port", "0", "--dynamodb-endpoint", self.dynamodb_url,
                              "--table-prefix", self.table_prefix, *self.faults.flags(),
                              *self.extra_flags]),
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._stack.stderr is not None
        self._follow(self._stack.stderr)
        self.url = self._ready_line(self._stack, READY_PREFIX, timeout)
        assert self._stack.stdout is not None
        self._follow(self._stack.stdout)

    def _ready_line(self, process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
        """Read stdout up to the line starting with ``prefix`` (in a thread: bounded)."""
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                lines.put(line)
                if line.startswith(prefix):
                    return
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self._write_log(line)
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise RuntimeError(f"{process.args!r} did not print {prefix!r} within {timeout}s "
                           f"(see {self.log_path})")

    def _follow(self, stream: IO[str]) -> None:
        def read() -> None:
            for line in stream:
                self._write_log(line)
                self.watch.feed(line)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        self._readers.append(thread)

    def _write_log(self, line: str) -> None:
        with self._log_lock:
            if self._log is not None:
                self._log.write(line)

    def rss(self) -> dict[str, float]:
        """RSS in KiB and CPU seconds so far: the stack (gateway, app, poller and any
        worker processes), DynamoDB, and this process (the clients)."""
        stack = self.stack_pid if self._stack else None
        dynamodb = self.dynamodb_pid if self._dynamodb else None
        return {"stack_kib": tree_rss_kib(stack) if stack else 0,
                "dynamodb_kib": tree_rss_kib(dynamodb) if dynamodb else 0,
                "soak_clients_kib": rss_kib(os.getpid()),
                "stack_cpu_s": tree_cpu_s(stack) if stack else 0.0,
                "dynamodb_cpu_s": tree_cpu_s(dynamodb) if dynamodb else 0.0,
                # This process alone: the stack and DynamoDB are its children.
                "soak_clients_cpu_s": sum(os.times()[:2])}

    def alive(self) -> bool:
        return self._stack is not None and self._stack.poll() is None

    def stop(self) -> None:
        """SIGINT the stack (it closes clients and stops in order), then the DynamoDB server;
        each is killed if it has not exited in time."""
        if self._stack is not None:
            _stop(self._stack, signal.SIGINT, 30.0)
        for thread in self._readers:
            thread.join(timeout=5)
        if self._dynamodb is not None:
            _stop(self._dynamodb, signal.SIGTERM, 10.0)
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None


def _stop(process: subprocess.Popen[str], signum: int, grace: float) -> None:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class Tables:
    """Scans of the stack's tables: a test tool's view, never a request path (no Scan
    is on one)."""

    def __init__(self, endpoint_url: str, table_prefix: str) -> None:
        import boto3

        self._db: Any = boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local")
        self._prefix = table_prefix

    def scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": f"{self._prefix}{table}", "ConsistentRead": True}
        while True:
            page = self._db.scan(**kwargs)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def close(self) -> None:
        self._db.close()
