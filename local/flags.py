"""Every option of ``python -m local``, declared once: flag, environment variable, default,
meaning.

:func:`add_to` puts them on the CLI's parser (a flag's default is read from its
variable, so ``make run`` can be tuned without editing the Makefile); :func:`faults`
and :func:`gateway_settings` turn parsed arguments into :class:`~streamer_local.settings.Faults`
and :class:`~streamer_local.settings.GatewaySettings`; :func:`markdown_table` writes
docs/local.md's tables (``tests/unit/test_docs_tables.py`` fails when they drift;
``make docs`` rewrites them). A fault switch is one :class:`Option` here plus the
:class:`~streamer_local.settings.Faults` field of the same name that the gateway reads.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from streamer_local.settings import Faults, GatewaySettings, SettingsError

DEFAULTS = GatewaySettings()
DEFAULT_REGION = "us-east-1"
DEFAULT_TABLE_PREFIX = "streamer_"


def fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {raw}")
    return value


def id_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _optional(raw: str) -> str | None:
    return raw or None


@dataclass(frozen=True)
class Option:
    """One option. ``flag`` None: environment only. ``group``: ``stack`` (the stack's
    options), ``gateway`` (a GatewaySettings field named ``dest``), ``fault`` (a
    Faults field named ``dest``) or ``env`` (read by the stack or the app, no flag).
    ``shown`` is the default as the docs show it; ``argparse`` adds keyword arguments
    for the parser (``nargs``, ``const``, ``action``, ``metavar``)."""

    flag: str | None
    env: str
    dest: str
    parse: Callable[[str], Any]
    default: Any
    meaning: str
    group: str = "stack"
    shown: str = ""
    argparse: Mapping[str, Any] = field(default_factory=dict)

    def default_from(self, env: Mapping[str, str]) -> Any:
        raw = env.get(self.env)
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{self.env} {_reason(exc)}") from None

    def default_text(self) -> str:
        return self.shown or f"`{self.default}`"

    def usage(self) -> str:
        """The flag as typed: ``--gone-fraction F``, ``--drop-disconnect [F]``."""
        metavar = self.argparse.get("metavar")
        if self.flag is None or metavar is None:
            return self.flag or ""
        if self.argparse.get("nargs") == "?":
            return f"{self.flag} [{metavar}]"
        repeat = " (repeatable)" if self.argparse.get("action") == "append" else ""
        return f"{self.flag} {metavar}{repeat}"


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return text if text.startswith("must") else f"must be valid: {text}"


Opt = Option
OPTIONS: tuple[Option, ...] = (
    Opt("--host", "GATEWAY_HOST", "host", str, "127.0.0.1", "address to bind"),
    Opt("--port", "PORT", "port", int, 8080,
      "gateway port; `0` picks a free one (the ready line shows it)"),
    Opt("--app", "STREAMER_APP", "app", str, "app:app",
      "the Chalice app as `module:attr`, imported with the repo root on `sys.path`"),
    Opt("--table-prefix", "TABLE_PREFIX", "table_prefix", str, DEFAULT_TABLE_PREFIX,
      "prefix of the tables created and given to the app"),
    Opt("--dynamodb-endpoint", "DYNAMODB_ENDPOINT_URL", "dynamodb_endpoint", _optional, None,
      "use an already running DynamoDB server", shown="(start one)"),
    Opt("--region", "AWS_REGION", "region", str, DEFAULT_REGION,
      "region told to the app and clients"),
    Opt("--stage", "GATEWAY_STAGE", "stage", str, DEFAULTS.stage,
      "stage in events and in the `@connections` path", group="gateway"),
    Opt("--idle-timeout", "GATEWAY_IDLE_TIMEOUT", "idle_timeout", float, DEFAULTS.idle_timeout,
      "seconds without a client message before a 1001 close", group="gateway",
      shown="`600`"),
    Opt("--max-age", "GATEWAY_MAX_AGE", "max_age", float, DEFAULTS.max_age,
      "maximum connection duration in seconds", group="gateway", shown="`7200`"),
    Opt("--max-concurrency", "GATEWAY_MAX_CONCURRENCY", "max_concurrency", int,
      DEFAULTS.max_concurrency, "handler invocations running at once", group="gateway"),
    Opt("--lambda-timeout", "GATEWAY_LAMBDA_TIMEOUT", "lambda_timeout", float,
      DEFAULTS.lambda_timeout,
      "seconds the gateway waits for one invocation; also the stream poller's function "
      "timeout, so a stream handler's `context.get_remaining_time_in_millis()` (the "
      "processor's time budget) starts from it", group="gateway", shown="`30`"),
    Opt("--lambda-processes", "GATEWAY_LAMBDA_PROCESSES", "lambda_processes", int,
      DEFAULTS.lambda_processes,
      "run asynchronous (`InvocationType=Event`) invocations of plain Lambda functions, "
      "such as the `fanout` workers, in N worker processes; 0 runs them in the "
      "gateway's thread pool. See \"Worker processes\" below", group="gateway",
      argparse={"metavar": "N"}),
    Opt("--log-level", "LOG_LEVEL", "log_level", str, "INFO",
      "logging level (logs go to stderr)"),
    Opt(None, "JWT_SECRET", "", str, None,
      "the app's JWT secret, also used by `token`", group="env",
      shown="development default above"),
    Opt(None, "LOCAL_EVENT_LOOP", "", str, "uvloop",
      "`uvloop` (if installed; else asyncio's) or `asyncio`: the event loop of the "
      "gateway and the stack", group="env"),
    Opt("--drop-disconnect", "FAULT_DROP_DISCONNECT", "drop_disconnect", fraction, 0.0,
      "skip this fraction of `$disconnect` invocations; the bare flag means 1 (all). "
      "Stale connection rows follow, as on AWS.", group="fault", shown="`0`",
      argparse={"nargs": "?", "const": 1.0, "metavar": "F"}),
    Opt("--gone-connection", "FAULT_GONE_CONNECTIONS", "gone_connections", id_list, (),
      "every `@connections` call for this open connection answers 410, as for a "
      "connection API Gateway has already dropped; repeatable, or comma-separated in "
      "the variable. Connection ids appear in the debug log and in the app's own logs.",
      group="fault", shown="none", argparse={"action": "append", "metavar": "ID"}),
    Opt("--gone-fraction", "FAULT_GONE_FRACTION", "gone_fraction", fraction, 0.0,
      "this fraction of POSTs to open connections answers 410", group="fault",
      shown="`0`", argparse={"metavar": "F"}),
    Opt("--throttle-fraction", "FAULT_THROTTLE_FRACTION", "throttle_fraction", fraction, 0.0,
      "this fraction of POSTs answers 429 `LimitExceededException`. The app's `Fanout` "
      "retries these itself, with backoff, up to `SEND_MAX_ATTEMPTS` attempts "
      "(botocore's retries are off, and the default sender, "
      "`chalicelib/fast_sender.FastSender`, has none of its own)", group="fault",
      shown="`0`", argparse={"metavar": "F"}),
    Opt("--redeliver-fraction", "FAULT_REDELIVER_FRACTION", "redeliver_fraction", fraction,
      0.0, "passed to the stream poller: this fraction of stream records is delivered a "
      "second time", group="fault", shown="`0`", argparse={"metavar": "F"}),
    Opt("--seed", "FAULT_SEED", "seed", int, None,
      "seed for the draws above (and the poller's), so a run can be replayed",
      group="fault", shown="random", argparse={"metavar": "N"}),
)


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(_reason(exc)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add_to(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Add every option with a flag to ``parser``, its default read from ``env``."""
    faults = parser.add_argument_group("fault injection (all off by default)")
    for option in OPTIONS:
        if option.flag is None:
            continue
        target = faults if option.group == "fault" else parser
        kwargs = dict(option.argparse)
        default = option.default_from(env)
        help_text = f"{_plain(option.meaning)} (env {option.env})"
        if kwargs.get("action") == "append":
            # Repeated flags add to the variable's ids; argparse appends to a copy.
            default = list(default)
            kwargs.setdefault("type", str)
        else:
            kwargs["type"] = _argparse_type(option.parse)
        target.add_argument(option.flag, dest=option.dest, default=default, help=help_text,
                            **kwargs)


def _plain(markdown: str) -> str:
    return markdown.replace("`", "").replace("%", "%%")


def gateway_settings(args: argparse.Namespace) -> GatewaySettings:
    return GatewaySettings(**{o.dest: getattr(args, o.dest)
                              for o in OPTIONS if o.group == "gateway"})


def faults(args: argparse.Namespace) -> Faults:
    values = {o.dest: getattr(args, o.dest) for o in OPTIONS if o.group == "fault"}
    values["gone_connections"] = set(values["gone_connections"])
    return Faults(**values)


def markdown_table(groups: tuple[str, ...]) -> str:
    """docs/local.md's table of the options in ``groups``."""
    rows = ["| Flag | Environment | Default | Meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        if option.group not in groups:
            continue
        flag = "—" if option.flag is None else f"`{option.usage()}`"
        rows.append(f"| {flag} | `{option.env}` | {option.default_text()} "
                    f"| {option.meaning} |")
    return "\n".join(rows) + "\n"


def _check_declarations() -> None:
    # Every fault switch has exactly one option; a gateway option names a real field
    # (the limits that only tests change have none).
    fault_fields = {f.name for f in fields(Faults) if not f.name.startswith("_")}
    fault_options = {o.dest for o in OPTIONS if o.group == "fault"}
    gateway_options = {o.dest for o in OPTIONS if o.group == "gateway"}
    wrong = (fault_fields ^ fault_options) | (
        gateway_options - {f.name for f in fields(GatewaySettings)})
    if wrong:
        raise AssertionError(f"options and settings fields disagree: {sorted(wrong)}")


_check_declarations()
