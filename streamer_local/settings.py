"""The local gateway's settings and fault switches, read once from flags or environment.

:class:`GatewaySettings` holds API Gateway's limits and timeouts (AWS defaults) and the
execution model; :class:`Faults` holds the fault-injection switches. Both are plain
dataclasses: tests build them directly, the CLI builds them from the options that
local/flags.py declares (flags whose defaults come from environment variables).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

KB = 1024


class SettingsError(ValueError):
    """A flag or environment variable has a value that cannot be used."""


@dataclass(frozen=True)
class GatewaySettings:
    """Limits, timeouts and identity of the emulated WebSocket API (AWS defaults)."""

    stage: str = "local"
    api_id: str = "localapi01"
    max_frame_bytes: int = 32 * KB
    max_message_bytes: int = 128 * KB
    max_post_bytes: int = 128 * KB
    idle_timeout: float = 600.0
    max_age: float = 7200.0
    max_concurrency: int = 32
    max_in_flight_per_connection: int = 64
    close_timeout: float = 5.0
    lambda_timeout: float = 30.0
    # Worker processes for asynchronous (Event) invocations; 0 runs them in the thread
    # pool with everything else (see streamer_local/lambda_processes.py).
    lambda_processes: int = 0

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "max_age", "close_timeout", "lambda_timeout"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_concurrency", "max_in_flight_per_connection", "max_frame_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.lambda_processes < 0:
            raise SettingsError(
                f"lambda_processes must be 0 or more, got {self.lambda_processes!r}")


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be between 0 and 1, got {value!r}")
    return value


@dataclass
class Faults:
    """Fault-injection switches; all off by default. Safe to change while running.

    - ``drop_disconnect``: fraction of ``$disconnect`` invocations skipped (1.0 = all),
      as AWS may skip them (``$disconnect`` is best effort).
    - ``gone_connections``: ids whose @connections calls answer 410 although the
      connection is open (a connection API Gateway has already forgotten).
    - ``gone_fraction``: fraction of @connections POSTs to live connections that answer 410.
    - ``throttle_fraction``: fraction of @connections POSTs that answer 429
      ``LimitExceededException``.
    - ``redeliver_fraction``: passed to the stream poller: fraction of stream records
      delivered twice.
    - ``seed``: seeds the random draws, so a faulty run can be replayed.
    """

    drop_disconnect: float = 0.0
    gone_connections: set[str] = field(default_factory=set)
    gone_fraction: float = 0.0
    throttle_fraction: float = 0.0
    redeliver_fraction: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name in ("drop_disconnect", "gone_fraction", "throttle_fraction",
                     "redeliver_fraction"):
            _fraction(name, getattr(self, name))
        self._rng = random.Random(self.seed)

    def draw(self, fraction: float) -> bool:
        """True with probability ``fraction`` (never for 0, always for 1)."""
        if fraction <= 0.0:
            return False
        if fraction >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < fraction
