"""The ``fanout`` function: one worker's shards of a large publish (chalicelib/parallel.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.observability import bind, logger
from chalicelib.parallel import Job
from chalicelib.services import Services


def handle(services: Services, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    bind(route="fanout")
    job = Job.from_event(dict(event))
    counts = services.parallel.work(job, services.fanout_for(job.endpoint), context)
    logger.info("fan-out shards delivered", extra={
        "channel": job.channel, "message_id": job.message_id,
        "shards": list(job.shards), **counts})
    return counts
