"""The event loop the local stack runs on: uvloop when installed, else asyncio's.

uvloop (libuv, from the asyncio maintainers at MagicStack) cuts the gateway's CPU per
``@connections`` POST from 80 us to 49 us on this machine (streamer_local/connections_api.py
has the figures), and its sockets, servers and ``transport.set_protocol`` behave as
asyncio's. ``LOCAL_EVENT_LOOP=asyncio`` selects the standard loop (to rule uvloop
out when debugging, or where it cannot be installed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

VARIABLE = "LOCAL_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")


def loop_kind() -> str:
    """``uvloop`` unless ``LOCAL_EVENT_LOOP=asyncio`` or uvloop is not importable."""
    chosen = os.environ.get(VARIABLE, "uvloop").strip().lower() or "uvloop"
    if chosen not in CHOICES:
        raise ValueError(f"{VARIABLE} must be one of {', '.join(CHOICES)}, not {chosen!r}")
    if chosen == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
    return chosen


def new_event_loop() -> asyncio.AbstractEventLoop:
    if loop_kind() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on :func:`new_event_loop`'s loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
