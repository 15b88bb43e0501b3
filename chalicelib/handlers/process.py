"""``process``: the requests table's stream, batch by batch (chalicelib/processor.py)."""

from __future__ import annotations

from typing import Any

from chalicelib.observability import bind
from chalicelib.processor import Processor
from chalicelib.services import Services


def processor(services: Services) -> Processor:
    """The processor over these services: it releases a connection's request slot
    whenever one of its requests reaches a final state."""
    return Processor(
        services.requests, services.fanout_for,
        result_ttl_seconds=services.settings.result_ttl_seconds,
        safety_seconds=services.settings.processor_safety_seconds, tasks=services.tasks,
        clock=services.now, on_final=services.storage.release_request,
        reconnect_grace_seconds=services.settings.request_reconnect_grace_seconds,
    )


def handle(processor: Processor, event: dict[str, Any], context: Any) -> dict[str, Any]:
    bind(route="processor")
    return processor.handle_batch(event, context)
