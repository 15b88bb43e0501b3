"""Run Chalice handlers the way Lambda does: off the event loop, bounded, errors contained.

:class:`Invoker` runs ``handler(event, context)`` in a thread pool whose size is the
concurrency limit (like a function's reserved concurrency), never on the gateway's event
loop, and turns an exception into an :class:`Invocation` with an AWS-shaped error
payload instead of letting it escape. :class:`LambdaContext` carries the attributes of
Lambda's Python context object that handlers commonly read.

Limitation (documented in docs/local.md): a thread cannot be killed, so the timeout
only stops the *caller* waiting; the handler thread runs to completion.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("local.lambda")

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """The subset of Lambda's context object handlers use."""

    def __init__(self, function_name: str, timeout: float, region: str = "us-east-1") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:000000000000:function:{function_name}"
        )
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation: a result, or an error payload as Lambda reports it."""

    request_id: str
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The payload the Python runtime returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


class Invoker:
    """A bounded thread pool that runs handlers and contains their failures."""

    def __init__(self, max_concurrency: int, timeout: float, region: str = "us-east-1") -> None:
        self.timeout = timeout
        self.region = region
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency,
                                        thread_name_prefix="lambda")

    def _run(self, name: str, handler: Handler, event: dict[str, Any]) -> Invocation:
        context = LambdaContext(name, self.timeout, self.region)
        try:
            result = handler(event, context)
        except Exception as exc:  # Lambda contains any handler failure; so do we.
            request_id = context.aws_request_id
            log.exception("handler %s raised (request %s)", name, request_id)
            return Invocation(request_id, error=error_payload(exc, request_id))
        return Invocation(context.aws_request_id, result=result)

    async def invoke(self, name: str, handler: Handler, event: dict[str, Any]) -> Invocation:
        """Run ``handler`` in the pool; a timeout is reported like Lambda's."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._run, name, handler, event)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            request_id = str(uuid.uuid4())
            log.error("handler %s timed out after %.1fs", name, self.timeout)
            return Invocation(request_id, error={
                "errorMessage": f"Task timed out after {self.timeout:.2f} seconds",
                "errorType": "TimeoutError",
                "requestId": request_id,
            })

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
