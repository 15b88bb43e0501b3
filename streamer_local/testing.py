"""Run a :class:`~streamer_local.gateway.Gateway` from synchronous code (pytest, scripts).

pytest-asyncio is not a dependency, so :class:`GatewayThread` runs the gateway's event
loop in a background thread and exposes blocking ``start``/``stop``; tests then talk to
it over real sockets with ordinary synchronous clients (websockets' sync client, boto3)::

    with GatewayThread(app, settings=GatewaySettings(idle_timeout=0.5)) as gateway:
        connect(gateway.url) ...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from streamer_local import eventloop
from streamer_local.gateway import Gateway
from streamer_local.settings import Faults, GatewaySettings
from streamer_local.tls import LocalTls

T = TypeVar("T")


class GatewayThread:
    """A gateway on 127.0.0.1 and a free port, its loop in a daemon thread."""

    def __init__(
        self,
        app: Any,
        *,
        settings: GatewaySettings | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        app_spec: str | None = None,
        lambda_env: Mapping[str, str] | None = None,
        lambda_setup: str | None = None,
        tls: LocalTls | None = None,
    ) -> None:
        self.gateway = Gateway(app, host, port, settings=settings, faults=faults,
                               app_spec=app_spec, lambda_env=lambda_env,
                               lambda_setup=lambda_setup, tls=tls)
        self.loop = eventloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop",
                                        daemon=True)

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def connections_url(self) -> str:
        return self.gateway.connections_url

    @property
    def http_url(self) -> str:
        return self.gateway.http_url

    @property
    def faults(self) -> Faults:
        return self.gateway.faults

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> GatewayThread:
        self._thread.start()
        self.run(self.gateway.start())
        return self

    def stop(self) -> None:
        try:
            self.run(self.gateway.stop(), timeout=60.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()

    def __enter__(self) -> GatewayThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
