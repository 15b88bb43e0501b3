"""The app's handlers over one process's services: what ``app.py`` calls.

:class:`Streamer` has one method per Lambda entry point, each one call into its
module under ``chalicelib/handlers/``. ``chalicelib/runtime.py`` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.handlers import connect, disconnect, fanout, message, process, publish
from chalicelib.processor import Processor
from chalicelib.services import Services


class Streamer:
    def __init__(self, services: Services, processor: Processor | None = None) -> None:
        self.services = services
        self.processor = processor if processor is not None else process.processor(services)

    def connect(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return connect.handle(self.services, event)

    def message(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return message.handle(self.services, event)

    def disconnect(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return disconnect.handle(self.services, event)

    def push(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return publish.handle(self.services, event)

    def fan_out_worker(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        return fanout.handle(self.services, event, context)

    def process(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return process.handle(self.processor, event, context)

    def close(self) -> None:
        """Release every sender's connections and threads (tests, local restarts)."""
        self.services.close()
