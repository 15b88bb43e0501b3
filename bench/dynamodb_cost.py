"""DynamoDB requests and consumed capacity per connect, subscribe, publish and disconnect.

The real Streamer (``runtime.build``: DynamoStorage, DynamoRequestStore) over moto's
DynamoDB server on loopback, its replies posted to a local sink that answers 200. Two
botocore event handlers on boto3's default session (which ``runtime.build`` creates
its client from) add ``ReturnConsumedCapacity="TOTAL"`` to every request that accepts
it and count each call. Capacity is computed by AWS's rules for every call (see
:func:`capacity_units`); what moto reports in ``ConsumedCapacity`` is kept beside it
(moto does not follow those rules). Subscriptions for the publish cases are
seeded with BatchWriteItem by an uncounted client (1,000 transactional subscribes on
moto cost O(n^2): it deep-copies tables per transaction).

Handlers are driven through the Streamer methods ``app.py``'s handlers call, with
API Gateway events from ``local.testkit``.

    .venv/bin/python -m bench.dynamodb_cost [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import SECRET, TENANT, format_table, write_results

PUBLISH_SIZES = (0, 10, 100, 1000)
PUBLISH_REPS = 9
# Continuity's cost per publish is measured at these HISTORY_SIZE values; 0 is the
# publish without offsets or history (what Streamer did before them), the baseline.
HISTORY_SIZES = (0, 100)
DISCONNECT_SUBSCRIPTIONS = (0, 1, 10)
SHARDS = 4
KB = 1024
READS = frozenset({"GetItem", "Query", "BatchGetItem", "TransactGetItems", "Scan"})


# --- a @connections sink ---------------------------------------------------------------

class _Sink(BaseHTTPRequestHandler):
    # Keep-alive, as API Gateway's endpoint does: with HTTP/1.0 every post closed its
    # connection and the sender's next post on it stalled (about 1 s) before retrying.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one line per post would drown the table."""


@contextmanager
def sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/bench"
    finally:
        server.shutdown()
        server.server_close()


# --- counting --------------------------------------------------------------------------

@dataclass
class Phase:
    requests: Counter[str] = field(default_factory=Counter)
    computed: dict[str, float] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # per call, where timed

    def add(self, operation: str, computed: float, reported: float | None) -> None:
        self.requests[operation] += 1
        self.computed[operation] = self.computed.get(operation, 0.0) + computed
        if reported is not None:
            self.reported[operation] = self.reported.get(operation, 0.0) + reported

    def as_dict(self, runs: int) -> dict[str, Any]:
        return {
            "requests": {op: n / runs for op, n in sorted(self.requests.items())},
            "capacity_units": {op: u / runs for op, u in sorted(self.computed.items())},
            "moto_reported_units": {op: u / runs for op, u in sorted(self.reported.items())},
            "total_requests": sum(self.requests.values()) / runs,
            "total_capacity_units": sum(self.computed.values()) / runs,
            "read_units": sum(u for op, u in self.computed.items() if op in READS) / runs,
            "write_units": sum(u for op, u in self.computed.items() if op not in READS) / runs,
            "total_moto_reported_units": sum(self.reported.values()) / runs,
            "moto_reported_for": sorted(self.reported),
            "median_ms": statistics.median(self.seconds) * 1000 if self.seconds else None,
            "ms": [round(x * 1000, 1) for x in self.seconds],
        }


class Meter:
    """botocore event handlers that count every DynamoDB call into the current phase.

    Capacity is computed by AWS's rules (:func:`capacity_units`) for every call, and what
    moto reports is kept beside it: moto answers ``ConsumedCapacity`` for most calls but
    not by those rules (a Query is 1 unit whatever it reads, a BatchWriteItem likewise).
    ``reader`` is an uncounted client, used to read the full items a projected Query
    read, because a Query is charged for whole items before projection and filtering.
    """

    def __init__(self, reader: Any) -> None:
        self.phase: Phase | None = None
        self.all_operations: Counter[str] = Counter()
        self._reader = reader
        self._pending: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def before_parameter_build(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        with self._lock:
            self._pending[threading.get_ident()] = dict(params)

    def after_call(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            params = self._pending.pop(threading.get_ident(), {})
            self.all_operations[model.name] += 1
            phase = self.phase
        if phase is None:
            return
        consumed = parsed.get("ConsumedCapacity")
        reported = None
        if consumed:
            entries = consumed if isinstance(consumed, list) else [consumed]
            reported = sum(float(e.get("CapacityUnits", 0.0)) for e in entries)
        items = self._full_items(params) if model.name == "Query" else None
        computed = capacity_units(model.name, params, parsed, items)
        with self._lock:
            phase.add(model.name, computed, reported)

    def _full_items(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The items (or index entries) a Query read, whole: the same key condition and
        page start, without projection or filter."""
        condition = params["KeyConditionExpression"]
        query: dict[str, Any] = {
            "TableName": params["TableName"], "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {k: v for k, v in
                                          params["ExpressionAttributeValues"].items()
                                          if k in condition},
        }
        for key in ("IndexName", "ExclusiveStartKey", "ConsistentRead", "Limit"):
            if key in params:
                query[key] = params[key]
        items: list[dict[str, Any]] = self._reader.query(**query).get("Items", [])
        return items


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size by AWS's rule: attribute name lengths plus value sizes (approximate
    for numbers: one byte per two digits plus one)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return math.ceil(len(str(inner).lstrip("-").replace(".", "")) / 2) + 1
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_bytes(v) for k, v in inner.items())
    if kind in {"BOOL", "NULL"}:
        return 1
    return len(str(inner).encode())


def capacity_units(operation: str, params: dict[str, Any], parsed: dict[str, Any],
                   query_items: list[dict[str, Any]] | None = None) -> float:
    """Capacity units by AWS's rules.

    Writes: ceil(size / 1 KB) per item, doubled inside transactions; a Delete or Update
    whose item the request does not carry is taken as one unit (Streamer's rows are
    well under 1 KB: see the item sizes in the report). Reads: ceil(size / 4 KB) for a
    consistent read, half of it for an eventual one; a Query sums the sizes of the whole
    items it read (before projection and filter) and then rounds.
    """
    if operation == "TransactWriteItems":
        units = 0.0
        for entry in params.get("TransactItems", []):
            put = entry.get("Put")
            size = item_bytes(put["Item"]) if put else KB
            units += 2 * math.ceil(size / KB)
        return units
    if operation == "BatchWriteItem":
        units = 0.0
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                put = request.get("PutRequest")
                units += math.ceil(item_bytes(put["Item"]) / KB) if put else 1
        return units
    if operation == "PutItem":
        return float(math.ceil(item_bytes(params.get("Item", {})) / KB))
    if operation == "DeleteItem":
        old = parsed.get("Attributes")
        return float(math.ceil(item_bytes(old) / KB)) if old else 1.0
    if operation == "UpdateItem":
        return 1.0
    factor = 1.0 if params.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        size = item_bytes(parsed.get("Item", {})) or 1
        return factor * math.ceil(size / (4 * KB))
    if operation == "Query":
        items = query_items if query_items is not None else parsed.get("Items", [])
        size = sum(item_bytes(i) for i in items) or 1
        return factor * math.ceil(size / (4 * KB))
    return 0.0


# --- the scenario ----------------------------------------------------------------------

def seed_subscribers(client: Any, table: str, channel: str, count: int) -> None:
    """Put ``count`` subscription rows as DynamoStorage.subscribe writes them."""
    from chalicelib.model import channel_key, shard_of
    from local import testkit

    rows = []
    for _ in range(count):
        cid = testkit.connection_id()
        rows.append({"PutRequest": {"Item": {
            "channel_key": {"S": channel_key(TENANT, channel, shard_of(cid, SHARDS))},
            "connection_id": {"S": cid}, "tenant_id": {"S": TENANT},
            "channel": {"S": channel}, "expires_at": {"N": "9999999999"}}}})
    for start in range(0, len(rows), 25):
        client.batch_write_item(RequestItems={table: rows[start:start + 25]})


def seed_channel_position(client: Any, prefix: str, channel: str, offset: int) -> None:
    """Put the channel's position past HISTORY_SIZE, so each measured publish pays for
    the steady state: it also deletes the row that falls out of the history."""
    from chalicelib.history_store import history_key, new_epoch
    from chalicelib.tables import CHANNELS

    client.put_item(TableName=CHANNELS.physical_name(prefix), Item={
        "channel_key": {"S": history_key(TENANT, channel)}, "offset": {"N": str(offset)},
        "epoch": {"S": new_epoch()}, "expires_at": {"N": "9999999999"}})


def publish_phases(message: Callable[[dict[str, Any]], None], admin: Any, prefix: str,
                   phase: Callable[[str, int], AbstractContextManager[Phase]],
                   label: str = "") -> None:
    """``PUBLISH_REPS`` publishes to each fan-out size, each call timed."""
    from chalicelib.tables import SUBSCRIPTIONS

    for n in PUBLISH_SIZES:
        channel = f"fan{n}-{len(label)}"  # a valid channel name, one per label
        seed_subscribers(admin, SUBSCRIPTIONS.physical_name(prefix), channel, n)
        seed_channel_position(admin, prefix, channel, 1000)
        with phase(f"publish to {n}{label}", PUBLISH_REPS) as measured:
            for _ in range(PUBLISH_REPS):
                started = time.perf_counter()
                message({"action": "publish", "channel": channel, "data": {"p": 1}, "id": "p"})
                measured.seconds.append(time.perf_counter() - started)


def _scenario(streamer: Any, admin: Any, prefix: str,
              phase: Callable[[str, int], AbstractContextManager[Phase]]) -> None:
    """Each operation a few times, each inside its phase; publish channels seeded first."""
    from local import testkit

    token = testkit.make_token(SECRET, user_id="u1", tenant_id=TENANT,
                               permissions=["read", "write"])

    def connect(cid: str) -> None:
        streamer.connect(testkit.connect_event(cid, token=token))

    def message(cid: str, body: dict[str, Any]) -> None:
        streamer.message(testkit.message_event(cid, body))

    reps = 5
    ids = [testkit.connection_id() for _ in range(reps)]
    with phase("connect", reps):
        for cid in ids:
            connect(cid)
    with phase("subscribe", reps):
        for cid in ids:
            message(cid, {"action": "subscribe", "channel": "c1", "id": "s"})
    with phase("unsubscribe", reps):
        for cid in ids:
            message(cid, {"action": "unsubscribe", "channel": "c1", "id": "u"})
    publish_phases(lambda body: message(ids[0], body), admin, prefix, phase)
    for k in DISCONNECT_SUBSCRIPTIONS:
        cids = [testkit.connection_id() for _ in range(3)]
        for cid in cids:
            connect(cid)
            for i in range(k):
                message(cid, {"action": "subscribe", "channel": f"d{i}", "id": "s"})
        with phase(f"disconnect ({k} subscriptions)", len(cids)):
            for cid in cids:
                streamer.disconnect(testkit.disconnect_event(cid))


def _publish_baseline(streamer: Any, admin: Any, prefix: str,
                      phase: Callable[[str, int], AbstractContextManager[Phase]],
                      history_size: int) -> None:
    """Publishes only, on a Streamer built with another HISTORY_SIZE."""
    from local import testkit

    token = testkit.make_token(SECRET, user_id="u1", tenant_id=TENANT,
                               permissions=["read", "write"])
    cid = testkit.connection_id()
    streamer.connect(testkit.connect_event(cid, token=token))
    publish_phases(lambda body: streamer.message(testkit.message_event(cid, body)),
                   admin, prefix, phase, label=f" (HISTORY_SIZE={history_size})")


def run() -> dict[str, Any]:
    import boto3

    from chalicelib import runtime
    from chalicelib.tables import CONNECTIONS, SUBSCRIPTIONS, create_tables
    from local.stack import app_environment
    from streamer_local.dynamodb_server import DynamoDBServer

    boto3.setup_default_session(region_name="us-east-1", aws_access_key_id="local",
                                aws_secret_access_key="local")
    phases: dict[str, Phase] = {}
    meter: Meter | None = None
    runs: dict[str, int] = {}

    @contextmanager
    def phase(name: str, count: int = 1) -> Iterator[Phase]:
        assert meter is not None
        meter.phase = phases.setdefault(name, Phase())
        runs[name] = count
        try:
            yield meter.phase
        finally:
            meter.phase = None

    with DynamoDBServer() as server, sink() as endpoint:
        # An uncounted client (its own session) creates tables and seeds rows.
        admin = boto3.session.Session(
            region_name="us-east-1", aws_access_key_id="local",
            aws_secret_access_key="local").client("dynamodb", endpoint_url=server.endpoint_url)
        prefix = f"b{uuid.uuid4().hex[:8]}_"
        create_tables(admin, prefix)
        meter = Meter(admin)
        events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build.dynamodb", meter.before_parameter_build)
        events.register("after-call.dynamodb", meter.after_call)
        def environment(table_prefix: str, history_size: int) -> dict[str, str]:
            return {**app_environment(dynamodb_endpoint_url=server.endpoint_url,
                                      table_prefix=table_prefix, ws_endpoint_url=endpoint,
                                      secret=SECRET, stream_arns={}),
                    "SUBSCRIPTION_SHARDS": str(SHARDS), "POWERTOOLS_LOG_LEVEL": "WARNING",
                    "HISTORY_SIZE": str(history_size)}

        env = environment(prefix, HISTORY_SIZES[-1])
        os.environ.update(env)  # the @connections sender reads credentials from here
        streamer = runtime.build(env)
        table = SUBSCRIPTIONS.physical_name(prefix)
        _scenario(streamer, admin, prefix, phase)
        runtime.reset()
        for size in HISTORY_SIZES[:-1]:
            other = f"b{uuid.uuid4().hex[:8]}_"
            create_tables(admin, other)
            _publish_baseline(runtime.build(environment(other, size)), admin, other, phase,
                              size)
            runtime.reset()
        # The benchmark's own look at the rows left (its uncounted client, not the app's).
        largest = {name: max((item_bytes(i) for i in admin.scan(TableName=name)["Items"]),
                             default=0)
                   for name in (table, CONNECTIONS.physical_name(prefix))}
    assert meter is not None
    return {
        "largest_row_bytes": largest,
        "shards": SHARDS,
        "history_size": HISTORY_SIZES[-1],
        "phases": {name: p.as_dict(runs[name]) for name, p in phases.items()
                   if "HISTORY_SIZE=" not in name},
        "publish_history": publish_history(
            {name: p.as_dict(runs[name]) for name, p in phases.items()}),
        "operations_seen": dict(meter.all_operations),
        "scan_issued": meter.all_operations.get("Scan", 0) > 0,
        "store": "moto server (DynamoDB wire protocol) on loopback",
    }


def publish_history(phases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fan-out size: a publish with continuity (HISTORY_SIZE=100: an offset, a
    history row) beside one without (HISTORY_SIZE=0), measured in the same run."""
    rows = []
    for n in PUBLISH_SIZES:
        on = phases[f"publish to {n}"]
        off = phases[f"publish to {n} (HISTORY_SIZE={HISTORY_SIZES[0]})"]
        rows.append({
            "subscribers": n,
            "without": {k: off[k] for k in ("total_requests", "read_units", "write_units",
                                            "median_ms", "requests")},
            "with": {k: on[k] for k in ("total_requests", "read_units", "write_units",
                                        "median_ms", "requests")},
            "time_ratio": (on["median_ms"] / off["median_ms"]
                           if on["median_ms"] and off["median_ms"] else None),
        })
    return rows


def history_table(report: dict[str, Any]) -> str:
    rows = []
    for row in report["publish_history"]:
        off, on = row["without"], row["with"]
        rows.append([row["subscribers"], off["total_requests"], on["total_requests"],
                     off["read_units"], on["read_units"], off["write_units"],
                     on["write_units"], off["median_ms"], on["median_ms"],
                     row["time_ratio"]])
    return format_table(["subscribers", "requests off", "requests on", "RCU off", "RCU on",
                         "WCU off", "WCU on", "median ms off", "median ms on", "time on/off"],
                        rows)


def table(report: dict[str, Any]) -> str:
    rows = []
    for name, p in report["phases"].items():
        ops = ", ".join(f"{op} {n:g}" for op, n in p["requests"].items())
        rows.append([name, p["total_requests"], p["read_units"], p["write_units"],
                     p["total_moto_reported_units"], ops])
    return format_table(["operation", "requests", "RCU (AWS rules)", "WCU (AWS rules)",
                         "moto reported", "requests by API"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true",
                        help="write build/bench/dynamodb_cost.json")
    args = parser.parse_args(argv)
    # The app's JSON logs and EMF metrics go to stdout; keep them out of the table.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        report = run()
    print(f"DynamoDB per operation (mean per call; SUBSCRIPTION_SHARDS={SHARDS}):")
    print(table(report))
    print(f"Continuity's cost per publish (HISTORY_SIZE={report['history_size']} 'on' "
          f"beside HISTORY_SIZE=0 'off', {PUBLISH_REPS} publishes each, same run):")
    print(history_table(report))
    print(f"largest rows (bytes): {report['largest_row_bytes']}")
    print(f"Scan issued: {'YES' if report['scan_issued'] else 'no'}; all operations: "
          f"{json.dumps(report['operations_seen'])}")
    if args.json:
        write_results("dynamodb_cost", report)
    return 1 if report["scan_issued"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
