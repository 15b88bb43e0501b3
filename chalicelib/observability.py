"""Structured JSON logs and EMF metrics, through aws-lambda-powertools.

One :data:`logger` and one :data:`metrics` for the whole app. Handlers bind the
invocation's keys (request id, connection id, user, tenant) with :func:`bind` and
flush metrics with :func:`flush_metrics` before returning. Tokens are never passed
to either.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "streamer")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Streamer")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Unit = MetricUnit


def bind(**keys: Any) -> None:
    """Start an invocation's log context: drop the previous one, keep these keys.

    The keys are thread-local: Lambda runs one invocation per container, but the local
    gateway runs many at once in threads, and their log lines must not mix keys.
    """
    logger.thread_safe_clear_keys()
    add_keys(**keys)


def add_keys(**keys: Any) -> None:
    """Add keys to this invocation's log context (this thread's)."""
    logger.thread_safe_append_keys(**{k: v for k, v in keys.items() if v is not None})


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def flush_metrics() -> None:
    # raise_on_empty_metrics=False: most invocations record no metric at all.
    metrics.flush_metrics(raise_on_empty_metrics=False)
