"""The work behind ``request`` frames: one function per ``kind``, added to a TaskTable.

A kind is a function added by name, explicitly (``chalicelib/custom.py`` adds an
application's own; see the README)::

    def resize(payload: dict, requester: Requester, ctx: TaskContext) -> Any:
        for n, image in enumerate(payload["images"]):
            ...                                   # one step of work
            ctx.progress((n + 1) / len(payload["images"]), {"done": n + 1})
        return {"resized": len(payload["images"])}   # the result frame's data

    table.add("resize", resize)

``ctx.progress`` sends a ``progress`` frame and is also the cancellation point: it
raises :class:`Stop` when the request was cancelled, the client is gone, or the
invocation's time budget is spent, so the work stops at its next step. Long waits
should use ``ctx.sleep``, which checks the same. A task that raises anything else
fails the request (the client gets an ``error`` frame with code ``failed`` and the
exception's class name, never a stack trace). An optional ``validate`` function
refuses a bad payload at once with ``bad_request``, before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.errors import BadRequest


@dataclass(frozen=True)
class Requester:
    user_id: str
    tenant_id: str


class Stop(Exception):
    """Raised inside a task to end it early: cancelled, client gone, or out of time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TaskContext(Protocol):
    request_id: str

    def progress(self, fraction: float, detail: dict[str, Any] | None = None) -> None: ...

    def cancelled(self) -> bool: ...

    def time_left(self) -> float:
        """Seconds left in this invocation for the task (the safety margin excluded)."""
        ...

    def sleep(self, seconds: float) -> None: ...


TaskFunction = Callable[[dict[str, Any], Requester, TaskContext], Any]
Validator = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Task:
    kind: str
    run: TaskFunction
    validate: Validator | None


class TaskTable:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def add(self, kind: str, function: TaskFunction, *,
            validate: Validator | None = None) -> None:
        """Run ``function`` for requests of ``kind``; ``validate`` refuses a bad payload
        (raising BadRequest) before anything is stored."""
        if kind in self._tasks:
            raise ValueError(f"task kind {kind!r} is registered twice")
        self._tasks[kind] = Task(kind, function, validate)

    def get(self, kind: str) -> Task | None:
        return self._tasks.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._tasks)


# -- built-in kinds (PROTOCOL.md section 4) -----------------------------------


def register(table: TaskTable) -> None:
    table.add("echo", echo)
    table.add("count", count, validate=_validate_count)


def echo(payload: dict[str, Any], requester: Requester, ctx: TaskContext) -> Any:
    """The result is the payload."""
    return payload


MAX_COUNT_STEPS = 10_000
MAX_COUNT_INTERVAL_MS = 60_000


def _validate_count(payload: dict[str, Any]) -> None:
    steps, interval = payload.get("steps"), payload.get("interval_ms", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_COUNT_STEPS:
        raise BadRequest(f"payload.steps must be an integer 0-{MAX_COUNT_STEPS}")
    if (isinstance(interval, bool) or not isinstance(interval, int)
            or not 0 <= interval <= MAX_COUNT_INTERVAL_MS):
        raise BadRequest(f"payload.interval_ms must be an integer 0-{MAX_COUNT_INTERVAL_MS}")


def count(payload: dict[str, Any], requester: Requester, ctx: TaskContext) -> Any:
    """One progress frame per step, ``interval_ms`` apart; the result is the count."""
    steps, interval = int(payload["steps"]), int(payload.get("interval_ms", 0))
    for step in range(1, steps + 1):
        ctx.sleep(interval / 1000)
        ctx.progress(step / steps, {"step": step})
    return {"count": steps}
