"""Asynchronous Lambda invocations in separate worker processes, as Lambda runs them.

On AWS an ``InvocationType=Event`` invocation (a fan-out worker, say) runs on its own
Lambda instance: another process on another machine, with its own interpreter, GIL
and clients. :class:`ProcessInvoker` emulates that with a pool of ``spawn``-started
processes. Each imports the app from its spec (``app:app``) with the app's
environment, so ``chalicelib.runtime`` builds its own Streamer there (DynamoDB
endpoint, ``WS_ENDPOINT_URL``...), and runs one invocation at a time:
``app.handler_map[name](event, LambdaContext)``. The gateway's process is left with
the WebSocket side (frames, ``@connections`` POSTs).

Anything held in the gateway process's memory is therefore *not* shared: storage must
be a server (DynamoDB on moto), or be served to the workers by a ``setup`` hook.

``setup`` (``"module:function"``, optional) runs in each worker once the app is
imported, as ``function(env)`` with the app's environment (a ``dict[str, str]``): the
place to install what the workers should use instead of what the app would build
(``chalicelib.runtime.configure(...)``, a proxy to a store served by the gateway's
process...). A worker whose start failed (app import or setup) stays up and answers
every invocation with that error, rather than dying and being respawned by the pool
forever.

Like :class:`~streamer_local.lambda_runtime.Invoker`, a timeout only stops the caller waiting
(a process is one instance; killing it would lose the pool's other queued work); the
processes are terminated at :meth:`ProcessInvoker.shutdown`, which is bounded.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from streamer_local.lambda_runtime import Invocation, LambdaContext, error_payload
from streamer_local.project import load_app

log = logging.getLogger("local.lambda")

# In a worker process: the app and the context settings, set once by _initialize, or
# why the worker could not start.
_app: Any = None
_timeout = 30.0
_region = "us-east-1"
_start_error: Exception | None = None

Setup = Callable[[dict[str, str]], object]


def _split_setup(spec: str) -> tuple[str, str]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"setup spec must be module:function, got {spec!r}")
    return module_name, attr


def resolve_setup(spec: str) -> Setup:
    """The function a ``"module:function"`` setup spec names (imported now)."""
    module_name, attr = _split_setup(spec)
    function = getattr(importlib.import_module(module_name), attr, None)
    if not callable(function):
        raise ValueError(f"{spec!r} does not name a function")
    setup: Setup = function
    return setup


def _initialize(env: dict[str, str], app_spec: str, timeout: float, region: str,
                setup: str | None = None, project_dir: str | None = None) -> None:
    """Worker start: the app's environment, then the app (it reads env at import), then
    the setup hook, if any, with that environment."""
    global _app, _timeout, _region, _start_error  # noqa: PLW0603  (one app per worker process)
    # Ctrl-C reaches the whole process group; the gateway process stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    _timeout, _region = timeout, region
    try:
        _app = load_app(app_spec, Path(project_dir) if project_dir else None)
        if setup is not None:
            resolve_setup(setup)(dict(env))
    except Exception as exc:  # reported by every invocation (see _run)
        log.exception("Lambda worker process %d failed to start", os.getpid())
        _start_error = exc


def _run(name: str, event: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
    """Run one invocation in this worker: (pid, request id, error payload or None)."""
    context = LambdaContext(name, _timeout, _region)
    if _start_error is not None:
        error = RuntimeError(f"worker process failed to start: {_start_error!r}")
        return os.getpid(), context.aws_request_id, error_payload(error, context.aws_request_id)
    try:
        _app.handler_map[name](event, context)
    except Exception as exc:  # Lambda contains any handler failure; so do we.
        log.exception("handler %s raised (request %s)", name, context.aws_request_id)
        return os.getpid(), context.aws_request_id, error_payload(exc, context.aws_request_id)
    return os.getpid(), context.aws_request_id, None


class ProcessInvoker:
    """A pool of ``processes`` worker processes for asynchronous invocations.

    Started by :meth:`start` (or the first :meth:`invoke`) with a snapshot of ``env``
    (taken then, so endpoints set after the gateway bound its port are included).
    ``setup``, a ``"module:function"`` spec, runs in each worker after the app's import
    as ``function(env)`` (see the module's docstring). ``pids`` counts finished
    invocations per worker pid, for tests and logs.
    """

    def __init__(self, processes: int, app_spec: str, timeout: float,
                 region: str = "us-east-1", env: Mapping[str, str] | None = None,
                 setup: str | None = None, project_dir: str | None = None) -> None:
        if setup is not None:
            _split_setup(setup)  # a malformed spec fails here, not in every worker
        self.processes = processes
        self.app_spec = app_spec
        self.timeout = timeout
        self.region = region
        self.env = env
        self.setup = setup
        # Where the workers import the app from: the parent's current directory.
        self.project_dir = project_dir or os.getcwd()
        self.pids: Counter[int] = Counter()
        self._pool: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start the worker processes (idempotent; blocking: call it off the event loop)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the process pool is shut down")
            if self._pool is not None:
                return
            env = dict(os.environ if self.env is None else self.env)
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.processes, initializer=_initialize,
                                  initargs=(env, self.app_spec, self.timeout, self.region,
                                            self.setup, self.project_dir))
            log.info("%d Lambda worker processes for asynchronous invocations of %s",
                     self.processes, self.app_spec)

    async def invoke(self, name: str, event: dict[str, Any]) -> Invocation:
        """Run ``name`` in a worker process; a timeout is reported like Lambda's."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            await loop.run_in_executor(None, self.start)
        future: asyncio.Future[tuple[int, str, dict[str, Any] | None]] = loop.create_future()

        def settle(outcome: Any, failed: bool) -> None:
            if future.done():
                return
            if failed:
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        # Callbacks run in the pool's result thread: hand them to the loop.
        self._pool.apply_async(
            _run, (name, event),
            callback=lambda r: loop.call_soon_threadsafe(settle, r, False),
            error_callback=lambda e: loop.call_soon_threadsafe(settle, e, True),
        )
        try:
            pid, request_id, error = await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            request_id = str(uuid.uuid4())
            log.error("handler %s timed out after %.1fs", name, self.timeout)
            return Invocation(request_id, error={
                "errorMessage": f"Task timed out after {self.timeout:.2f} seconds",
                "errorType": "TimeoutError", "requestId": request_id,
            })
        except Exception as exc:  # the pool could not run it (e.g. unpicklable event)
            request_id = str(uuid.uuid4())
            log.exception("handler %s not run in a worker process", name)
            return Invocation(request_id, error=error_payload(exc, request_id))
        self.pids[pid] += 1
        log.debug("%s ran in worker process %d (request %s)", name, pid, request_id)
        return Invocation(request_id, error=error)

    def shutdown(self) -> None:
        """Stop the workers (terminated: work still running is abandoned). Bounded."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()  # SIGTERM to every worker, then joins them
            pool.join()
