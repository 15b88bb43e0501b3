"""Configuration: one frozen object read once from an environment-like mapping.

Each environment variable is declared once, in :data:`VARIABLES`: its name, the
:class:`Settings` field it fills, how it is parsed and checked, its default and what
it means. ``Settings.from_env`` reads them all and fails fast with a
:class:`ConfigError` naming the missing or bad key; :func:`markdown_table` writes the
README's table from the same declarations (``tests/unit/test_docs_tables.py`` fails
when the two drift; ``make docs`` rewrites it). The only other environment reads are
``REQUESTS_STREAM_ARN`` in app.py (Chalice needs it at import; declared here too, for
the table) and Powertools' own ``POWERTOOLS_*`` variables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

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
    history_size: int = 100
    history_ttl_seconds: int = 300
    channel_state_ttl_seconds: int = 86_400
    request_reconnect_grace_seconds: int = 0
    token_expiry_warning_seconds: int = 300
    processor_safety_seconds: float = 5.0
    dynamodb_endpoint_url: str | None = None
    ws_endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values = {var.field: var.read(env) for var in VARIABLES if var.field is not None}
        settings = cls(**values)
        if settings.channel_state_ttl_seconds < settings.history_ttl_seconds:
            raise ConfigError("CHANNEL_STATE_TTL_SECONDS must be at least HISTORY_TTL_SECONDS")
        needed = max(HMAC_KEY_BYTES[a] for a in settings.jwt_algorithms)
        if len(settings.jwt_secret.encode()) < needed:
            raise ConfigError(
                f"JWT_SECRET must be at least {needed} bytes for {settings.jwt_algorithms}")
        return settings


# -- parsers: raw text (never empty) -> value, or ValueError with what is wrong -------


Parser = Callable[[str], Any]


def integer(low: int, high: int | None = None) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"must be {bounds}, got {value}")
        return value
    return parse


def number(low: float, high: float) -> Parser:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be {low}..{high}, got {value}")
        return value
    return parse


def choice(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return raw
    return parse


def text(raw: str) -> str:
    return raw


def url(raw: str) -> str | None:
    return raw.rstrip("/") or None  # "/" alone means unset, like ""


def comma_set(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _secret(raw: str) -> str:
    if len(raw.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
    return raw


def _algorithms(raw: str) -> tuple[str, ...]:
    algorithms = tuple(a.strip() for a in raw.split(",") if a.strip())
    if not algorithms or not set(algorithms) <= HMAC_ALGORITHMS:
        raise ValueError(f"must be a comma-separated subset of {sorted(HMAC_ALGORITHMS)}")
    return algorithms


def _table_prefix(raw: str) -> str:
    if not TABLE_PREFIX_PATTERN.fullmatch(raw):
        raise ValueError("must be 1-200 characters of [A-Za-z0-9_.-]")
    return raw


_MISSING: Any = object()


@dataclass(frozen=True)
class Variable:
    """One environment variable: where it goes, how it is read, what it means.

    ``field`` None: documented here, read elsewhere (REQUESTS_STREAM_ARN). ``default``
    ``_MISSING``: required. ``shown`` is how the default reads in the docs (the
    default's own text when empty). ``fallbacks`` are read, in order, when the
    variable is unset or empty."""

    name: str
    field: str | None
    parse: Parser
    default: Any
    meaning: str
    shown: str = ""
    fallbacks: tuple[str, ...] = ()

    def read(self, env: Mapping[str, str]) -> Any:
        for key in (self.name, *self.fallbacks):
            raw = env.get(key)
            if raw:  # unset and empty both mean the default, as the shell reads them
                try:
                    return self.parse(raw)
                except ValueError as exc:
                    raise ConfigError(f"{key} {exc}") from None
        if self.default is _MISSING:
            raise ConfigError(f"{self.name} is not set")
        return self.default

    def default_text(self) -> str:
        if self.shown:
            return self.shown
        if self.default is _MISSING:
            return "— (required)"
        if self.default is None:
            return "unset"
        value = ",".join(self.default) if isinstance(self.default, tuple) else self.default
        return f"`{value}`"


V = Variable
VARIABLES: tuple[Variable, ...] = (
    V("JWT_SECRET", "jwt_secret", _secret, _MISSING,
      "HMAC secret; at least 32 bytes (48 for HS384, 64 for HS512); the app refuses to "
      "start otherwise"),
    V("JWT_ALGORITHMS", "jwt_algorithms", _algorithms, ("HS256",),
      "accepted algorithms, comma-separated, from HS256/HS384/HS512; never taken from "
      "the token"),
    V("JWT_AUDIENCE", "jwt_audience", text, None,
      "when set, the `aud` claim is required and must match exactly"),
    V("JWT_ISSUER", "jwt_issuer", text, None,
      "when set, the `iss` claim is required and must match exactly"),
    V("JWT_LEEWAY_SECONDS", "jwt_leeway_seconds", integer(0, 300), 0,
      "clock skew allowed on `exp` / `iat` (0-300)"),
    V("ALLOWED_ORIGINS", "allowed_origins", comma_set, frozenset(),
      "comma-separated; when set, a handshake whose `Origin` is not listed (or that has "
      "two) is refused 403", shown="unset"),
    V("TABLE_PREFIX", "table_prefix", _table_prefix, "streamer_",
      "DynamoDB table names are `<prefix>connections`, `<prefix>subscriptions`, "
      "`<prefix>requests`, `<prefix>idempotency`, `<prefix>channels`, `<prefix>history`"),
    V("CONNECTION_TTL_SECONDS", "connection_ttl_seconds", integer(60), 86_400,
      "TTL of connection and subscription rows"),
    V("MAX_SUBSCRIPTIONS", "max_subscriptions", integer(1, 10_000), 100,
      "channels one connection may hold"),
    V("MAX_ACTIVE_REQUESTS", "max_active_requests", integer(1, 10_000), 10,
      "unfinished (pending or running) requests one connection may hold; more answer "
      "`limit_exceeded`"),
    V("SUBSCRIPTION_SHARDS", "subscription_shards", integer(1, 1_000), 4,
      "partition keys each channel's subscribers are spread over "
      "(`tenant#channel#shard`); changing it on a live system orphans existing "
      "subscriptions until clients resubscribe"),
    V("FANOUT_CONCURRENCY", "fanout_concurrency", integer(1, 256), 16,
      "concurrent posts during one fan-out"),
    V("SENDER", "sender", choice("fast", "boto3"), "fast",
      "`fast` (Streamer's SigV4 sender, far less CPU per delivery: docs/benchmarks.md) "
      "or `boto3` (`post_to_connection`; the rollback switch, and the choice behind an "
      "HTTPS proxy)"),
    V("FANOUT_FUNCTION_NAME", "fanout_function_name", text, None,
      "the `fanout` worker function's name; when set, publishes to large channels go "
      "to parallel workers (the deployment template and the local stack set it)"),
    V("FANOUT_WORKER_THRESHOLD", "fanout_worker_threshold", integer(1), 1_000,
      "estimated subscribers (shard 0 times shards) from which a publish goes to workers"),
    V("FANOUT_SHARDS_PER_WORKER", "fanout_shards_per_worker", integer(1, 1_000), 2,
      "subscription shards each worker delivers"),
    V("LAMBDA_ENDPOINT_URL", "lambda_endpoint_url", url, None,
      "a Lambda endpoint for invoking workers (the local stack sets it to the gateway)",
      shown="AWS"),
    V("SEND_MAX_ATTEMPTS", "send_max_attempts", integer(1, 10), 3,
      "attempts per recipient for 429 and 5xx answers"),
    V("SEND_BACKOFF_SECONDS", "send_backoff_seconds", number(0.0, 5.0), 0.05,
      "base of the jittered exponential backoff between attempts"),
    V("WS_ENDPOINT_URL", "ws_endpoint_url", url, None,
      "the `@connections` endpoint; needed by the `publish` function (no WebSocket "
      "event to derive it from) and local runs", shown="from the event"),
    V("DYNAMODB_ENDPOINT_URL", "dynamodb_endpoint_url", url, None,
      "a DynamoDB endpoint (the local stack sets it)", shown="AWS"),
    V("AWS_REGION", "region", text, None,
      "region for the clients (else `AWS_DEFAULT_REGION`); Chalice needs it for its "
      "WebSocket wrapper", shown="Lambda's", fallbacks=("AWS_DEFAULT_REGION",)),
    V("RESULT_TTL_SECONDS", "result_ttl_seconds", integer(60), 86_400,
      "how long requests and their results are kept"),
    V("HISTORY_SIZE", "history_size", integer(0, 1_000), 100,
      "messages of each channel kept for resume and `history` (docs/protocol.md "
      "section 6); 0 turns continuity off: no offsets, epochs or history"),
    V("HISTORY_TTL_SECONDS", "history_ttl_seconds", integer(10, 86_400), 300,
      "how long each message stays in a channel's history"),
    V("CHANNEL_STATE_TTL_SECONDS", "channel_state_ttl_seconds", integer(60), 86_400,
      "a channel's offset counter is forgotten (and its epoch changes) after this "
      "long without a publish; at least `HISTORY_TTL_SECONDS`"),
    V("TOKEN_EXPIRY_WARNING_SECONDS", "token_expiry_warning_seconds", integer(0, 86_400),
      300, "a frame arriving this long or less before the token's `exp` also gets a "
      "`token_expiring` frame"),
    V("REQUEST_RECONNECT_GRACE_SECONDS", "request_reconnect_grace_seconds",
      integer(0, 3_600), 0,
      "0: a disconnect cancels the connection's requests at once. More: they keep "
      "running this long, and a `status` from a reconnect of the same user takes them "
      "over (progress and result follow it); see docs/protocol.md section 6"),
    V("PROCESSOR_SAFETY_SECONDS", "processor_safety_seconds", number(0.0, 300.0), 5.0,
      "a task must end this long (at most a fifth of the time left) before its "
      "invocation does; see docs/tasks.md"),
    V("REQUESTS_STREAM_ARN", None, text, None,
      "the requests table's stream, read when `app.py` is imported (Chalice needs it "
      "then); the local stack matches it by table name", shown="placeholder"),
)


def markdown_table() -> str:
    """The README's table of environment variables, from :data:`VARIABLES`."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default_text()} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(rows) + "\n"


def _check_declarations() -> None:
    # A field without a variable (or a variable naming no field) is a bug of this
    # module; fail at import rather than read a setting that is never set.
    declared = {v.field for v in VARIABLES if v.field is not None}
    missing = {f.name for f in fields(Settings)} ^ declared
    if missing:
        raise AssertionError(f"settings without exactly one variable: {sorted(missing)}")


_check_declarations()
