"""A tiny Chalice app for ProcessInvoker tests, with setup hooks for its workers.

Spawned worker processes import it by spec (``tests.support.process_app:app``). The
``probe`` function succeeds only in a worker whose setup hook ran after the app's
import with the environment given to the pool.
"""

from __future__ import annotations

import os
from typing import Any

from chalice.app import Chalice

app = Chalice(app_name="process-probe")

# Set in a worker by setup(): the environment it was given, and whether the app
# module was already imported then (it is this module: app exists).
received: dict[str, str] | None = None


@app.lambda_function(name="probe")
def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if received is None:
        raise RuntimeError("the setup hook did not run in this worker")
    if received.get("PROBE_VALUE") != event["expect"]:
        raise RuntimeError(f"setup saw PROBE_VALUE={received.get('PROBE_VALUE')!r}")
    return {"pid": os.getpid()}


def setup(env: dict[str, str]) -> None:
    global received  # noqa: PLW0603  (one per worker process)
    received = dict(env)


def failing_setup(env: dict[str, str]) -> None:
    raise RuntimeError("setup refused")
