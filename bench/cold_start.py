"""Cold start: importing ``app.py``, and the first invocation after it, in fresh processes.

Each sample is a new interpreter (what a Lambda cold start pays). Two measurements:

- **import**: the interpreter times ``import app`` (or a bare Chalice app's module)
  with ``time.perf_counter``; the environment is stripped of AWS settings, since
  ``app.py`` must import with none.
- **first call**: the interpreter times the import and then the FIRST handler call,
  as Lambda's runtime makes them (``module.handler(event, context)``), then a second
  call (the warm cost, to tell one-time setup from per-call work). Variants: a bare
  Chalice ``@app.on_ws_message()`` handler that returns 200; the *floor*, the same
  bare handler doing the least a Streamer ``ping`` must do through the AWS SDK (a
  botocore DynamoDB client, built lazily, and one consistent ``GetItem`` of the
  connection row); Streamer's ``message`` with ``{"action":"ping"}`` for a registered
  connection (it reads the row, then posts a pong to ``@connections``); Streamer's
  ``connect`` with a valid token (it writes the row). They run against moto's
  DynamoDB server (``streamer_local.dynamodb_server``) and a recording ``@connections`` sink
  (``local/sink.py``) on 127.0.0.1, with the environment the deployment sets
  (``FANOUT_FUNCTION_NAME`` included) and dummy credentials. ``cryptography`` is
  hidden from these children: the deployment zip has none (moto needs it in the
  venv), and PyJWT and botocore import it when present.

Variants run interleaved, so drift on this noisy machine hits them alike; medians.
Then ``--profile-reps`` runs each under ``-X importtime`` and under cProfile break the
Streamer ping's first call down (medians per entry). ``--baseline DIR`` adds
Streamer's rows for the ``app.py`` and ``chalicelib/`` in DIR (an older version),
interleaved with the others: a before/after comparison in one run.

The deployment zip is read from ``build/package-<stage>/deployment.zip`` when
``make package`` has run, else built with ``python -m infra.package`` (needs PyPI
for ``chalice package``'s dependency download); when that fails, the report says so.

    .venv/bin/python -m bench.cold_start [--reps 15] [--no-package] [--profile-reps 3]
        [--no-first-call] [--baseline DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, SECRET, TENANT, format_table, median, write_results
from bench.report import COLD_FIRST_CALL_GOAL_RATIO as FIRST_CALL_GOAL_RATIO
from bench.report import COLD_IMPORT_GOAL_MS as GOAL_MS

SNIPPETS = {
    "python (nothing)": "pass",
    "bare Chalice app": "from chalice import Chalice\napp = Chalice(app_name='bare')",
    "app.py": "import app",
}
APP, BARE = "app.py", "bare Chalice app"
BARE_CALL = "bare Chalice handler"
FLOOR = "bare handler + botocore GetItem"
PING = "app.py message (ping)"
CONNECT = "app.py connect"
MARKER = "COLD_START_RESULT "
PHASE = "COLD_START_PHASE first-call"

_BARE_APP = """\
from chalice import Chalice
app = Chalice(app_name='bare')

@app.on_ws_message()
def message(event):
    return {'statusCode': 200}
"""
# The least a ping needs through the SDK: a client, built at the first call (as
# Streamer builds its own), and the connection row read. botocore, not boto3: boto3
# adds its own import (s3transfer) on top and is no part of the floor.
_FLOOR_APP = """\
import os
from chalice import Chalice
app = Chalice(app_name='floor')
_client = None

@app.on_ws_message()
def message(event):
    global _client
    if _client is None:
        import botocore.session
        _client = botocore.session.get_session().create_client(
            'dynamodb', endpoint_url=os.environ['DYNAMODB_ENDPOINT_URL'],
            region_name=os.environ['AWS_REGION'])
    _client.get_item(TableName=os.environ['TABLE_PREFIX'] + 'connections',
                     Key={'connection_id': {'S': event.connection_id}}, ConsistentRead=True)
    return {'statusCode': 200}
"""


@dataclass(frozen=True)
class FirstCall:
    """One first-call variant: module code (timed as the import) and the handler."""

    name: str
    module: str
    handler: str
    event: str  # "ping" or "connect"


FIRST_CALLS = (
    FirstCall(BARE_CALL, _BARE_APP, "message", "ping"),
    FirstCall(FLOOR, _FLOOR_APP, "message", "ping"),
    FirstCall(PING, "import app", "app.message", "ping"),
    FirstCall(CONNECT, "import app", "app.connect", "connect"),
)

# The child: read the events, time the import, the first call and a second one, print
# the result after whatever the app logged. ``context`` stands in for Lambda's.
_CHILD = """\
import json, sys, time
sys.modules['cryptography'] = None  # the deployment has none; see the module docstring
_events = json.loads(sys.stdin.readline())

class _Context:
    function_name = 'cold-start'
    aws_request_id = 'cold-start'
    memory_limit_in_mb = 1024
    invoked_function_arn = 'arn:aws:lambda:us-east-1:000000000000:function:cold-start'

    def get_remaining_time_in_millis(self):
        return 30000

_context = _Context()
_profile = None
if len(sys.argv) > 1:
    import cProfile
    _profile = cProfile.Profile()
_c0, _t0 = time.process_time(), time.perf_counter()
{module}
_c1, _t1 = time.process_time(), time.perf_counter()
print({phase!r}, file=sys.stderr, flush=True)
if _profile is not None:
    _profile.enable()
_first = {handler}(_events[0], _context)
if _profile is not None:
    _profile.disable()
_c2, _t2 = time.process_time(), time.perf_counter()
_second = {handler}(_events[1], _context)
_c3, _t3 = time.process_time(), time.perf_counter()
if _profile is not None:
    _profile.dump_stats(sys.argv[1])
sys.stdout.flush()
print({marker!r} + json.dumps({{"import_s": _t1 - _t0, "first_s": _t2 - _t1,
      "second_s": _t3 - _t2, "import_cpu_s": _c1 - _c0, "first_cpu_s": _c2 - _c1,
      "second_cpu_s": _c3 - _c2,
      "status": [_first.get("statusCode"), _second.get("statusCode")]}}), flush=True)
"""


def _timed(snippet: str) -> str:
    return ("import time\n_t = time.perf_counter()\n" + snippet
            + "\nprint(time.perf_counter() - _t)")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "JWT_", "DYNAMODB_", "WS_", "REQUESTS_",
                                 "POWERTOOLS_", "FANOUT_", "LAMBDA_", "TABLE_", "SENDER"))}


def sample(snippet: str) -> tuple[float, float]:
    """(import seconds measured inside, process wall seconds) of one fresh interpreter."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _timed(snippet)], cwd=REPO_ROOT, env=_env(),
                         capture_output=True, text=True, check=True, timeout=60)
    wall = time.perf_counter() - start
    return float(out.stdout.strip().splitlines()[-1]), wall


# --- first call ------------------------------------------------------------------------

@dataclass
class Stack:
    """The servers a first call talks to, and what the children need to reach them."""

    env: dict[str, str]
    sink: Any
    ping_connection: str

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Two fresh events of ``kind`` (the first call's and the second's)."""
        from local import testkit as testing

        if kind == "ping":
            return [testing.message_event(self.ping_connection, {"action": "ping", "id": "p"})
                    for _ in range(2)]
        return [self.connect_event(testing.connection_id()) for _ in range(2)]

    def connect_event(self, connection_id: str) -> dict[str, Any]:
        from local import testkit as testing

        token = testing.make_token(SECRET, user_id="cold", tenant_id=TENANT)
        return testing.connect_event(connection_id, token=token)


@contextmanager
def stack() -> Iterator[Stack]:
    """moto's DynamoDB server and a @connections sink on loopback, the tables created."""
    import boto3

    from chalicelib.tables import create_tables
    from local import testkit as testing
    from local.sink import ConnectionsSink
    from local.stack import app_environment
    from streamer_local.dynamodb_server import DynamoDBServer

    sink = ConnectionsSink().start()
    try:
        with DynamoDBServer() as server:
            admin = boto3.session.Session(
                region_name="us-east-1", aws_access_key_id="local",
                aws_secret_access_key="local").client("dynamodb",
                                                      endpoint_url=server.endpoint_url)
            prefix = f"cold{uuid.uuid4().hex[:8]}_"
            create_tables(admin, prefix)
            env = {**_env(),
                   **app_environment(dynamodb_endpoint_url=server.endpoint_url,
                                     table_prefix=prefix, ws_endpoint_url=sink.endpoint_url,
                                     secret=SECRET, stream_arns={}),
                   # What .chalice/config.json and the deployment template set.
                   "POWERTOOLS_SERVICE_NAME": "streamer",
                   "POWERTOOLS_METRICS_NAMESPACE": "Streamer",
                   "POWERTOOLS_LOG_LEVEL": "INFO",
                   "FANOUT_FUNCTION_NAME": "fanout",
                   "LAMBDA_ENDPOINT_URL": sink.lambda_url}
            yield Stack(env, sink, testing.connection_id())
    finally:
        sink.stop()


def first_call(variant: FirstCall, stack_: Stack, *, cwd: Path = REPO_ROOT,
               flags: tuple[str, ...] = (), profile: str | None = None,
               events: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], str]:
    """One fresh interpreter's import, first and second call; (result, its stderr)."""
    code = _CHILD.format(module=variant.module, handler=variant.handler, phase=PHASE,
                         marker=MARKER)
    payload = json.dumps(events or stack_.events(variant.event)) + "\n"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, *flags, "-c", code, *([profile] if profile else [])],
                         cwd=cwd, env=stack_.env, input=payload, capture_output=True,
                         text=True, timeout=120, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in out.stdout.splitlines() if line.startswith(MARKER)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{variant.name}: exit {out.returncode}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(MARKER):])
    if result["status"] != [200, 200]:
        raise RuntimeError(f"{variant.name}: answered {result['status']}: {out.stdout[-2000:]}")
    result["process_s"] = wall
    return result, out.stderr


def _check_pong(stack_: Stack) -> None:
    """The ping variants really ran: the registered connection got pongs."""
    frames = stack_.sink.received(stack_.ping_connection)
    if not frames or any(f.get("type") != "pong" for f in frames):
        raise RuntimeError(f"the ping connection got {frames[-3:]!r}, not pongs")


def measure_first_calls(variants: tuple[FirstCall, ...], reps: int, stack_: Stack, *,
                        cwd: Mapping[str, Path] | None = None) -> dict[str, dict[str, list[float]]]:
    """Interleaved samples (ms) of each variant: import, first, second call, process
    wall time, and the CPU times. ``cwd`` runs some variants in another directory (an
    older app.py and chalicelib/, for a before/after comparison)."""
    where = dict(cwd or {})
    keys = ("import_s", "first_s", "second_s", "process_s", "import_cpu_s", "first_cpu_s",
            "second_cpu_s")
    samples: dict[str, dict[str, list[float]]] = {v.name: {k: [] for k in keys}
                                                  for v in variants}
    # Registers the ping connection (Streamer's own connect), and one warm-up each:
    # page cache, .pyc files.
    register = next(v for v in FIRST_CALLS if v.name == CONNECT)
    first_call(register, stack_, cwd=where.get(register.name, REPO_ROOT),
               events=[stack_.connect_event(stack_.ping_connection),
                       *stack_.events("connect")[1:]])
    for variant in variants:
        first_call(variant, stack_, cwd=where.get(variant.name, REPO_ROOT))
    for _ in range(reps):
        for variant in variants:
            result, _stderr = first_call(variant, stack_, cwd=where.get(variant.name, REPO_ROOT))
            for key in keys:
                samples[variant.name][key].append(result[key] * 1000)
    if any(v.name == PING for v in variants):
        _check_pong(stack_)
    return samples


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, s in samples.items():
        totals = [i + f for i, f in zip(s["import_s"], s["first_s"], strict=True)]
        cpu = [i + f for i, f in zip(s["import_cpu_s"], s["first_cpu_s"], strict=True)]
        out[name] = {"import_ms": median(s["import_s"]), "first_call_ms": median(s["first_s"]),
                     "import_plus_first_ms": median(totals),
                     "second_call_ms": median(s["second_s"]),
                     "process_ms": median(s["process_s"]),
                     "import_cpu_ms": median(s["import_cpu_s"]),
                     "first_call_cpu_ms": median(s["first_cpu_s"]),
                     "import_plus_first_cpu_ms": median(cpu)}
    return out


# --- the breakdown ---------------------------------------------------------------------

# Top-level packages, grouped for the import breakdown; a stdlib module counts for the
# nearest non-stdlib module that imported it (http.client for urllib3, and so on).
IMPORT_GROUPS = {
    "botocore": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "urllib3": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "dateutil": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "jmespath": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "six": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "certifi": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "awscrt": "botocore and its dependencies (urllib3, dateutil, jmespath)",
    "boto3": "boto3 and s3transfer",
    "s3transfer": "boto3 and s3transfer",
    "aws_lambda_powertools": "Powertools (logger, metrics, tracer, idempotency, batch)",
    "typing_extensions": "Powertools (logger, metrics, tracer, idempotency, batch)",
    "jwt": "PyJWT",
    "chalicelib": "chalicelib (Streamer's own modules)",
    "chalice": "Chalice",
}


def import_breakdown(stderr: str) -> dict[str, float]:
    """ms of imports during the first call (``-X importtime`` self times), by group."""
    lines = stderr.splitlines()
    try:
        start = lines.index(PHASE)
    except ValueError:
        return {}
    rows: list[tuple[int, str, float]] = []
    for line in lines[start + 1:]:
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # two spaces a level
        rows.append((depth, name.strip(), float(self_us.split(":")[1]) / 1000))
    groups: dict[str, float] = {}
    chain: list[str] = []
    for depth, name, ms in reversed(rows):  # a parent is printed after its imports
        chain = [*chain[:depth], name]
        owner = next((m for m in reversed(chain)
                      if m.split(".")[0] not in sys.stdlib_module_names), None)
        top = owner.split(".")[0] if owner else ""
        group = IMPORT_GROUPS.get(top, "other (stdlib imported directly, cffi, ...)")
        groups[group] = groups.get(group, 0.0) + ms
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


# (label, path suffix, function name): cumulative time under cProfile, inclusive of
# what each calls (imports included), so the rows overlap.
PROFILE_ROWS = (
    ("runtime.build: settings, clients, adapters", "chalicelib/runtime.py", "build"),
    ("Settings.from_env", "chalicelib/settings.py", "from_env"),
    ("imports (all, inside the call)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("botocore sessions created (get_session)", "botocore/session.py", "get_session"),
    ("botocore clients created", "botocore/session.py", "create_client"),
    ("botocore JSON data loaded (service models, endpoints, rules)", "botocore/loaders.py",
     "load_file"),
    ("Powertools DynamoDBPersistenceLayer built", "idempotency/persistence/dynamodb.py",
     "__init__"),
    ("the DynamoDB call (DynamoStorage.get_connection)", "chalicelib/storage.py",
     "get_connection"),
    ("sender setup (Services.fanout_for)", "chalicelib/services.py", "fanout_for"),
    ("credentials resolved (Session.get_credentials)", "botocore/session.py",
     "get_credentials"),
    ("the pong's POST (Fanout.send)", "chalicelib/sending.py", "send"),
)


def profile_breakdown(path: str) -> dict[str, Any]:
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
    rows: dict[str, dict[str, float]] = {}
    for label, suffix, function in PROFILE_ROWS:
        calls, cumulative = 0, 0.0
        for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in stats.items():
            if name == function and filename.endswith(suffix):
                calls += nc
                cumulative += ct  # a recursive function's ct counts outermost calls only
        rows[label] = {"calls": calls, "ms": cumulative * 1000}
    return {"total_ms": total * 1000, "rows": rows}


def breakdown(stack_: Stack, reps: int) -> dict[str, Any]:
    """The ping's first call, broken down: imports by group, profiled phases; medians."""
    variant = next(v for v in FIRST_CALLS if v.name == PING)
    imports: list[dict[str, float]] = []
    profiles: list[dict[str, Any]] = []
    unprofiled: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            result, stderr = first_call(variant, stack_, flags=("-X", "importtime"))
            imports.append(import_breakdown(stderr))
            unprofiled.append(result["first_s"] * 1000)
            path = str(Path(tmp) / f"first-call-{rep}.prof")
            first_call(variant, stack_, profile=path)
            profiles.append(profile_breakdown(path))
    groups = {g for sample_ in imports for g in sample_}
    import_ms = {g: median([s.get(g, 0.0) for s in imports]) for g in groups}
    rows = {label: {"calls": max(p["rows"][label]["calls"] for p in profiles),
                    "ms": median([p["rows"][label]["ms"] for p in profiles])}
            for label, _suffix, _function in PROFILE_ROWS}
    return {
        "reps": reps,
        "first_call_ms_with_importtime": median(unprofiled),
        "imports_ms": dict(sorted(import_ms.items(), key=lambda kv: -kv[1])),
        "imports_total_ms": median([sum(s.values()) for s in imports]),
        "profiled_total_ms": median([p["total_ms"] for p in profiles]),
        "profile": rows,
    }


# --- zip, run, print -------------------------------------------------------------------

def deployment_zip(stage: str = "dev") -> dict[str, Any]:
    """The zip's size, from build/ or a fresh ``infra.package`` run; why not, if neither."""
    path = REPO_ROOT / "build" / f"package-{stage}" / "deployment.zip"
    built = False
    if not path.exists():
        try:
            subprocess.run([sys.executable, "-m", "infra.package", "--stage", stage],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                           timeout=600)
            built = True
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            return {"available": False, "reason": str(detail).strip()[-500:]}
    if not path.exists():
        return {"available": False, "reason": f"{path} missing after packaging"}
    from infra.package import inspect_zip

    report = inspect_zip(Path(path))
    return {"available": True, "path": str(path.relative_to(REPO_ROOT)), "built_now": built,
            "bytes": report.size_bytes, "files": report.files,
            "top_level": sorted(report.top_level)}


def measure_imports(reps: int) -> dict[str, Any]:
    imports: dict[str, list[float]] = {name: [] for name in SNIPPETS}
    walls: dict[str, list[float]] = {name: [] for name in SNIPPETS}
    for snippet in SNIPPETS.values():  # one warm-up each: page cache, .pyc files
        sample(snippet)
    for _ in range(reps):
        for name, snippet in SNIPPETS.items():
            inside, wall = sample(snippet)
            imports[name].append(inside * 1000)
            walls[name].append(wall * 1000)
    medians = {name: {"import_ms": median(imports[name]), "process_ms": median(walls[name])}
               for name in SNIPPETS}
    diff = medians[APP]["import_ms"] - medians[BARE]["import_ms"]
    return {
        "medians": medians,
        "samples_import_ms": imports,
        "samples_process_ms": walls,
        "app_minus_bare_import_ms": diff,
        "app_minus_bare_process_ms": medians[APP]["process_ms"] - medians[BARE]["process_ms"],
        "goal": {"max_ms_above_bare": GOAL_MS, "met": diff <= GOAL_MS},
    }


def baseline_variants(baseline: Path) -> dict[str, FirstCall]:
    """Streamer's rows again, for the app.py and chalicelib/ in ``baseline``."""
    return {f"{v.name} @ {baseline.name}": replace(v, name=f"{v.name} @ {baseline.name}")
            for v in FIRST_CALLS if v.name in (PING, CONNECT)}


def first_call_report(reps: int, profile_reps: int,
                      baseline: Path | None = None) -> dict[str, Any]:
    variants = list(FIRST_CALLS)
    where: dict[str, Path] = {}
    if baseline is not None:
        extra = baseline_variants(baseline)
        variants += extra.values()
        where = dict.fromkeys(extra, baseline.resolve())
    with stack() as stack_:
        samples = measure_first_calls(tuple(variants), reps, stack_, cwd=where)
        profile = breakdown(stack_, profile_reps) if profile_reps > 0 else None
    medians = summarize(samples)
    total = {name: m["import_plus_first_ms"] for name, m in medians.items()}
    own = total[PING] - total[FLOOR]
    ratio = total[PING] / total[FLOOR]
    return {
        "medians": medians,
        "samples_ms": samples,
        "ping_minus_bare_ms": total[PING] - total[BARE_CALL],
        "floor_minus_bare_ms": total[FLOOR] - total[BARE_CALL],
        "ping_minus_floor_ms": own,
        "connect_minus_bare_ms": total[CONNECT] - total[BARE_CALL],
        "ping_over_bare": total[PING] / total[BARE_CALL] if total[BARE_CALL] else None,
        "ping_over_floor": ratio,
        "goal": {"max_times_floor": FIRST_CALL_GOAL_RATIO,
                 "met": ratio <= FIRST_CALL_GOAL_RATIO},
        "breakdown": profile,
    }


def run(reps: int, package: bool = True, profile_reps: int = 3, first_calls: bool = True,
        baseline: Path | None = None) -> dict[str, Any]:
    report = {"reps": reps, **measure_imports(reps)}
    report["first_call"] = (first_call_report(reps, profile_reps, baseline) if first_calls
                            else None)
    report["zip"] = deployment_zip() if package else {"available": False, "reason": "skipped"}
    return report


def table(report: dict[str, Any]) -> str:
    rows = [[name, m["import_ms"], m["process_ms"]] for name, m in report["medians"].items()]
    return format_table(["fresh process", "import ms (median)", "process wall ms (median)"],
                        rows)


def first_call_table(first: dict[str, Any]) -> str:
    bare = first["medians"][BARE_CALL]["import_plus_first_ms"]
    rows = [[name, m["import_ms"], m["first_call_ms"], m["import_plus_first_ms"],
             m["import_plus_first_ms"] - bare, m["import_plus_first_ms"] / bare,
             m["import_plus_first_cpu_ms"], m["second_call_ms"], m["process_ms"]]
            for name, m in first["medians"].items()]
    return format_table(["fresh process, first invocation", "import ms", "first call ms",
                         "import + first ms", "extra ms vs bare", "x bare", "of it CPU ms",
                         "second call ms", "process wall ms"], rows)


def breakdown_text(b: dict[str, Any]) -> str:
    imports = format_table(["imported during the first call, by package", "ms"],
                           [[g, ms] for g, ms in b["imports_ms"].items()])
    profile = format_table(["first call under cProfile (inclusive, rows overlap)", "calls",
                            "ms"],
                           [[label, r["calls"], r["ms"]] for label, r in b["profile"].items()])
    return (f"{imports}\n(imports in all: {b['imports_total_ms']:.1f} ms of a "
            f"{b['first_call_ms_with_importtime']:.1f} ms first call under -X importtime)\n"
            f"{profile}\n(profiled first call: {b['profiled_total_ms']:.1f} ms; cProfile "
            "inflates Python-heavy code, read the rows as shares)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--no-package", action="store_true", help="skip the zip size")
    parser.add_argument("--no-first-call", action="store_true",
                        help="skip the first-invocation measurement (no servers)")
    parser.add_argument("--profile-reps", type=int, default=3,
                        help="runs under -X importtime and cProfile (0: no breakdown)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also time Streamer's rows for the app.py and chalicelib/ in DIR "
                             "(an older version), interleaved: a before/after comparison")
    parser.add_argument("--json", action="store_true", help="write build/bench/cold_start.json")
    args = parser.parse_args(argv)
    report = run(args.reps, package=not args.no_package, profile_reps=args.profile_reps,
                 first_calls=not args.no_first_call, baseline=args.baseline)
    print(f"cold start, {args.reps} fresh processes each:")
    print(table(report))
    verdict = "met" if report["goal"]["met"] else "MISSED"
    print(f"app.py - bare Chalice: {report['app_minus_bare_import_ms']:.1f} ms import "
          f"(goal <= {GOAL_MS:g} ms: {verdict})")
    first = report["first_call"]
    if first:
        print(f"\nfirst invocation (import + first handler call), {args.reps} fresh processes "
              "each:")
        print(first_call_table(first))
        verdict = "met" if first["goal"]["met"] else "MISSED"
        print(f"Streamer ping - bare handler: {first['ping_minus_bare_ms']:+.1f} ms, of which "
              f"Python + botocore (the floor) {first['floor_minus_bare_ms']:+.1f} ms and "
              f"Streamer's own {first['ping_minus_floor_ms']:+.1f} ms: "
              f"{first['ping_over_floor']:.2f}x the floor "
              f"(goal <= {FIRST_CALL_GOAL_RATIO:g}x: {verdict})")
        if first["breakdown"]:
            print(f"\nbreakdown of the Streamer ping's first call "
                  f"({first['breakdown']['reps']} runs, medians):")
            print(breakdown_text(first["breakdown"]))
    zip_info = report["zip"]
    if zip_info["available"]:
        print(f"deployment zip: {zip_info['bytes']:,} bytes, {zip_info['files']} files "
              f"({zip_info['path']})")
    else:
        print(f"deployment zip: not available: {zip_info['reason']}")
    if args.json:
        write_results("cold_start", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
