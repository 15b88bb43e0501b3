"""Configuration: one frozen object read once from an environment-like mapping.

``Settings.from_env(os.environ)`` fails fast with a :class:`ConfigError` naming the
missing or bad key. The only other environment reads are ``REQUESTS_STREAM_ARN`` in
app.py (Chalice needs it at import) and Powertools' own ``POWERTOOLS_*`` variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ConfigError

MIN_SECRET_BYTES = 32
TABLE_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # DynamoDB's table-name charset
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
HMAC_ALGORITHMS = frozenset(HMAC_KEY_BYTES)


@dataclass(frozen=True)
class Settings:
    jwt_secret: str
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = 0
    allowed_origins: frozenset[str] = frozenset()
    table_prefix: str = "streamer_"
    connection_ttl_seconds: int = 86_400
    max_subscriptions: int = 100
    max_active_requests: int = 10
    subscription_shards: int = 4
    fanout_concurrency: int = 16
    sender: str = "fast"
    fanout_function_name: str | None = None
    fanout_worker_threshold: int = 1_000
    fanout_shards_per_worker: int = 2
    lambda_endpoint_url: str | None = None
    send_max_attempts: int = 3
    send_backoff_seconds: float = 0.05
    result_ttl_seconds: int = 86_400
    processor_safety_seconds: float = 5.0
    dynamodb_endpoint_url: str | None = None
    ws_endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        secret = env.get("JWT_SECRET", "")
        if not secret:
            raise ConfigError("JWT_SECRET is not set")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        algorithms = tuple(
            a.strip() for a in env.get("JWT_ALGORITHMS", "HS256").split(",") if a.strip()
        )
        if not algorithms or not set(algorithms) <= HMAC_ALGORITHMS:
            raise ConfigError(
                f"JWT_ALGORITHMS must be a comma-separated subset of {sorted(HMAC_ALGORITHMS)}"
            )
        needed = max(HMAC_KEY_BYTES[a] for a in algorithms)
        if len(secret.encode()) < needed:
            raise ConfigError(f"JWT_SECRET must be at least {needed} bytes for {algorithms}")
        origins = frozenset(
            o.strip() for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip()
        )
        prefix = env.get("TABLE_PREFIX") or "streamer_"
        if not TABLE_PREFIX_PATTERN.fullmatch(prefix):
            raise ConfigError("TABLE_PREFIX must be 1-200 characters of [A-Za-z0-9_.-]")
        return cls(
            jwt_secret=secret,
            jwt_algorithms=algorithms,
            jwt_audience=env.get("JWT_AUDIENCE") or None,
            jwt_issuer=env.get("JWT_ISSUER") or None,
            jwt_leeway_seconds=_int(env, "JWT_LEEWAY_SECONDS", 0, low=0, high=300),
            allowed_origins=origins,
            table_prefix=prefix,
            connection_ttl_seconds=_int(env, "CONNECTION_TTL_SECONDS", 86_400, low=60),
            max_subscriptions=_int(env, "MAX_SUBSCRIPTIONS", 100, low=1, high=10_000),
            max_active_requests=_int(env, "MAX_ACTIVE_REQUESTS", 10, low=1, high=10_000),
            subscription_shards=_int(env, "SUBSCRIPTION_SHARDS", 4, low=1, high=1_000),
            fanout_concurrency=_int(env, "FANOUT_CONCURRENCY", 16, low=1, high=256),
            sender=_choice(env, "SENDER", "fast", ("fast", "boto3")),
            fanout_function_name=env.get("FANOUT_FUNCTION_NAME") or None,
            fanout_worker_threshold=_int(env, "FANOUT_WORKER_THRESHOLD", 1_000, low=1),
            fanout_shards_per_worker=_int(env, "FANOUT_SHARDS_PER_WORKER", 2, low=1,
                                          high=1_000),
            lambda_endpoint_url=env.get("LAMBDA_ENDPOINT_URL") or None,
            send_max_attempts=_int(env, "SEND_MAX_ATTEMPTS", 3, low=1, high=10),
            send_backoff_seconds=_float(env, "SEND_BACKOFF_SECONDS", 0.05, low=0.0, high=5.0),
            result_ttl_seconds=_int(env, "RESULT_TTL_SECONDS", 86_400, low=60),
            processor_safety_seconds=_float(env, "PROCESSOR_SAFETY_SECONDS", 5.0,
                                            low=0.0, high=300.0),
            dynamodb_endpoint_url=env.get("DYNAMODB_ENDPOINT_URL") or None,
            ws_endpoint_url=(env.get("WS_ENDPOINT_URL") or "").rstrip("/") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )


def _int(env: Mapping[str, str], key: str, default: int, *, low: int,
         high: int | None = None) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{key} must be {bounds}, got {value}")
    return value


def _choice(env: Mapping[str, str], key: str, default: str,
            choices: tuple[str, ...]) -> str:
    value = env.get(key) or default
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, *, low: float,
           high: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{key} must be {low}..{high}, got {value}")
    return value
