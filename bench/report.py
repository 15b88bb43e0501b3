"""docs/benchmarks.md and docs/img/*.png from the JSON files in build/bench/.

Each goal is stated against the measurement with PASS or MISS; a benchmark whose JSON
is missing is reported as not run. Plots use matplotlib's Agg backend (no display).

    .venv/bin/python -m bench.report
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, read_results

DOC = REPO_ROOT / "docs" / "benchmarks.md"
IMG = REPO_ROOT / "docs" / "img"
PROCESSES, THREADS = "Streamer, worker processes", "Streamer"
# The worker-process variant first: each fan-out worker its own process, as each Lambda
# instance is on AWS. "Streamer" (the JSON key) runs them in threads of the gateway's.
FANOUT_VARIANTS = (PROCESSES, THREADS, "sequential send loop", "raw aiohttp broadcast")
FANOUT_LABELS = {THREADS: "Streamer, worker threads"}

# -- goals: every threshold, in this one place; the benchmarks import theirs from here --
SENDER_MAX_US = 150.0  # FastSender's CPU per delivery
SENDER_MIN_RATIO = 6.0  # times below boto3's post_to_connection
FANOUT_N = 10_000  # the fan-out goals' channel size
FANOUT_MIN_SPEEDUP_VS_SEQUENTIAL = 5.0
FANOUT_MAX_TIMES_RAW = 5.0  # at most this many times the raw aiohttp broadcast
CAPACITY_CONNECTIONS = 10_000  # held by the local gateway
# Cold start. The import one: app.py adds at most this over a bare Chalice app.
COLD_IMPORT_GOAL_MS = 30.0
# The first-invocation one: a cold ping (import + first call) at most this many times
# the floor's, a bare handler's botocore DynamoDB client and one GetItem. What is above
# the floor is Streamer's own: its modules, Powertools, PyJWT, the sender and the
# pong's POST. A ratio, because a loaded machine slows both alike.
COLD_FIRST_CALL_GOAL_RATIO = 1.2


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "not run" if ok is None else ("**PASS**" if ok else "**MISS**")


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


# --- plots -----------------------------------------------------------------------------

def _plots(data: dict[str, dict[str, Any] | None]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    fanout = data["fanout"]
    if fanout:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        sizes = fanout["sizes"]
        for variant, marker in zip(FANOUT_VARIANTS, "oDs^", strict=True):
            if variant not in fanout["results"][str(sizes[0])]:
                continue
            ax.plot(sizes, [fanout["results"][str(n)][variant]["median_s"] for n in sizes],
                    marker=marker, label=FANOUT_LABELS.get(variant, variant))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("clients (N)")
        ax.set_ylabel("seconds to the last client (median)")
        ax.set_title("One publish to N local WebSocket clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "fanout.png", dpi=110)
        plt.close(fig)
        made["fanout"] = "img/fanout.png"
    latency = data["latency"]
    if latency and latency["latencies_ms"]:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.hist(latency["latencies_ms"], bins=60, color="tab:blue", alpha=0.8)
        for name, style in (("p50_ms", "--"), ("p99_ms", ":")):
            ax.axvline(latency[name], color="black", linestyle=style,
                       label=f"{name[:3]} {latency[name]:.1f} ms")
        ax.set_xlabel("publish-to-delivery latency (ms)")
        ax.set_ylabel("deliveries")
        ax.set_title(f"{latency['rate_per_s']:g} publishes/s to {latency['subscribers']} "
                     "subscribers")
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "latency.png", dpi=110)
        plt.close(fig)
        made["latency"] = "img/latency.png"
    cpu = data["sender_cpu"]
    if cpu:
        names = list(cpu["paths"])
        values = [cpu["paths"][n]["median"] for n in names]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.barh(names, values, color="tab:green")
        ax.invert_yaxis()
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.0f}", va="center")
        ax.set_xlabel("client CPU per delivery (us, median)")
        ax.set_title("CPU per @connections delivery")
        fig.tight_layout()
        fig.savefig(IMG / "sender_cpu.png", dpi=110)
        plt.close(fig)
        made["sender_cpu"] = "img/sender_cpu.png"
    return made


# --- sections --------------------------------------------------------------------------

def _goals(data: dict[str, dict[str, Any] | None]) -> list[str]:
    rows: list[list[str]] = []
    cpu = data["sender_cpu"]
    if cpu:
        fast = cpu["paths"].get("FastSender", {})
        ratio = fast.get("ratio_vs_boto3")
        rows.append([f"CPU per delivery at least {SENDER_MIN_RATIO:g}x below boto3",
                     f"FastSender {_f(fast.get('median'), 1)} us vs boto3 "
                     f"{_f(cpu['paths']['boto3 post_to_connection']['median'], 1)} us: "
                     f"{_f(ratio)}x",
                     _verdict(ratio is not None and ratio >= SENDER_MIN_RATIO)])
    else:
        rows.append([f"CPU per delivery at least {SENDER_MIN_RATIO:g}x below boto3", "-",
                     _verdict(None)])
    fanout = data["fanout"]
    row = fanout["results"].get(str(FANOUT_N)) if fanout else None
    if row:
        rows += _fanout_goals(row)
    else:
        rows.append([f"fan-out to {FANOUT_N:,} (both goals, both Streamer variants)", "-",
                     _verdict(None)])
    cost = data["dynamodb_cost"]
    rows.append(["no Scan", "Scan issued" if cost and cost["scan_issued"] else
                 ("no Scan in any operation" if cost else "-"),
                 _verdict(None if cost is None else not cost["scan_issued"])])
    rows += _cold_goals(data["cold_start"])
    cap = data["capacity"]
    rows.append([f"the local gateway holds {CAPACITY_CONNECTIONS:,} connections",
                 f"{_f(cap['held_server_connections'])} held" if cap else "-",
                 _verdict(None if cap is None
                          else cap["held_server_connections"] >= CAPACITY_CONNECTIONS)])
    return ["## Goals", "", *_table(["goal", "measured", "verdict"], rows)]


def _fanout_goals(row: dict[str, Any]) -> list[list[str]]:
    """Both fan-out goals for both Streamer variants, the worker-process one (AWS's
    shape) first; a variant not run is reported as such."""
    sequential = row["sequential send loop"]["median_s"]
    raw = row["raw aiohttp broadcast"]["median_s"]
    rows: list[list[str]] = []
    for variant, prefix, where in (
        (PROCESSES, "processes_", "fan-out workers in processes of their own, as Lambda "
                                  "instances on AWS"),
        (THREADS, "", "fan-out workers in threads of the gateway's process"),
    ):
        seconds = row.get(variant, {}).get("median_s")
        ran = seconds is not None and not math.isnan(seconds)
        speedup = row.get(f"{prefix}speedup_vs_sequential")
        times_raw = row.get(f"{prefix}times_raw")
        rows.append([f"fan-out to {FANOUT_N:,} at least {FANOUT_MIN_SPEEDUP_VS_SEQUENTIAL:g}x "
                     f"faster than the sequential loop: "
                     f"{FANOUT_LABELS.get(variant, variant)} ({where})",
                     f"{_f(seconds)} s vs {_f(sequential)} s: {_f(speedup)}x" if ran else "-",
                     _verdict(speedup >= FANOUT_MIN_SPEEDUP_VS_SEQUENTIAL
                              if ran and speedup is not None else None)])
        rows.append([f"fan-out to {FANOUT_N:,} within {FANOUT_MAX_TIMES_RAW:g}x of the raw "
                     f"broadcast: {FANOUT_LABELS.get(variant, variant)}",
                     f"{_f(seconds)} s vs {_f(raw, 3)} s: {_f(times_raw)}x" if ran else "-",
                     _verdict(times_raw <= FANOUT_MAX_TIMES_RAW
                              if ran and times_raw is not None else None)])
    return rows


def _sender_cpu(cpu: dict[str, Any] | None, img: str | None) -> list[str]:
    out = ["## CPU per delivery (bench/sender_cpu.py)", ""]
    if not cpu:
        return [*out, "Not run.", ""]
    rows = [[name, _f(p["median"], 1), _f(min(p["samples"]), 1), _f(max(p["samples"]), 1),
             f"{_f(p['ratio_vs_boto3'])}x"] for name, p in cpu["paths"].items()]
    out += _table(["path", "median us", "min", "max", "x below boto3"], rows)
    out += [f"{cpu['runs']} runs of {cpu['posts_per_run']:,} sequential posts of "
            f"{cpu['payload_bytes']} bytes each, after a warm-up, against a sink in another "
            "process; client CPU by `time.process_time`. See bench/README.md.", ""]
    if img:
        out += [f"![CPU per delivery]({img})", ""]
    return out


def _fanout(fanout: dict[str, Any] | None, img: str | None) -> list[str]:
    out = ["## Fan-out: one publish to N clients (bench/fanout.py)", ""]
    if not fanout:
        return [*out, "Not run.", ""]
    rows = []
    for n in fanout["sizes"]:
        r = fanout["results"][str(n)]
        reps = "/".join(str(len(r[v]["samples_s"])) for v in FANOUT_VARIANTS if v in r)
        proc = r.get(PROCESSES, {}).get("median_s")
        rows.append([_f(n), _f(proc, 3), _f(r[THREADS]["median_s"], 3),
                     _f(r["sequential send loop"]["median_s"], 3),
                     _f(r["raw aiohttp broadcast"]["median_s"], 3),
                     f"{_f(r.get('processes_speedup_vs_sequential'))}x",
                     f"{_f(r.get('processes_times_raw'))}x",
                     f"{_f(r['speedup_vs_sequential'])}x", f"{_f(r['times_raw'])}x", reps])
    out += _table(["N", "Streamer, worker processes s", "Streamer, worker threads s",
                   "sequential loop s", "raw broadcast s", "sequential / processes",
                   "processes / raw", "sequential / threads", "threads / raw", "runs"], rows)
    settings = fanout["settings"]
    shown = ", ".join(f"`{k}={settings[k]}`" for k in
                      ("SUBSCRIPTION_SHARDS", "FANOUT_WORKER_THRESHOLD", "FANOUT_FUNCTION_NAME",
                       "FANOUT_SHARDS_PER_WORKER",
                       "FANOUT_CONCURRENCY", "SENDER") if k in settings)
    complete = all(d == n for n in fanout["sizes"] for v in FANOUT_VARIANTS
                   for d in fanout["results"][str(n)].get(v, {}).get("delivered", [n]))
    coverage = ("every run delivered to all N clients" if complete else
                "**some runs did not reach every client: see build/bench/fanout.json**")
    loops = fanout.get("loops", {})
    loop_text = ("Event loops: " + ", ".join(f"{k} on {v}" for k, v in loops.items()) + ". "
                 if loops else "")
    out += [
        f"Medians of the runs shown ({coverage}); runs per size in the order of the "
        f"columns. Streamer's settings, chosen to show it at its best: {shown}, the "
        f"gateway's Lambda pool at 64, {fanout.get('processes', '?')} worker processes in "
        f"the worker-process variant. {loop_text}"
        + " ".join(f"{line}." for line in fanout.get("log", [])),
        "",
    ]
    if img:
        out += [f"![fan-out time vs N]({img})", ""]
    return out


def _latency(lat: dict[str, Any] | None, img: str | None) -> list[str]:
    out = ["## Publish-to-delivery latency (bench/latency.py)", ""]
    if not lat:
        return [*out, "Not run.", ""]
    out += _table(["publishes/s", "subscribers", "deliveries", "p50 ms", "p90 ms", "p99 ms",
                   "max ms"],
                  [[_f(lat["rate_per_s"], 0), _f(lat["subscribers"]),
                    f"{_f(lat['deliveries'])} of {_f(lat['expected'])}", _f(lat["p50_ms"], 1),
                    _f(lat["p90_ms"], 1), _f(lat["p99_ms"], 1), _f(lat["max_ms"], 1)]])
    out += [f"{lat['seconds']:g} s at {lat['rate_per_s']:g} publishes/s (achieved "
            f"{lat['achieved_rate_per_s']:.1f}) after a 1 s warm-up; storage: "
            f"{lat['store']}. Latency = arrival at a client - the moment its publish frame "
            "was sent.", ""]
    if img:
        out += [f"![latency distribution]({img})", ""]
    return out


def _dynamodb(cost: dict[str, Any] | None) -> list[str]:
    out = ["## DynamoDB requests and capacity (bench/dynamodb_cost.py)", ""]
    if not cost:
        return [*out, "Not run.", ""]
    rows = []
    for name, p in cost["phases"].items():
        ops = ", ".join(f"{op} x{n:g}" for op, n in p["requests"].items())
        rows.append([name, _f(p["total_requests"], 1), _f(p["read_units"], 1),
                     _f(p["write_units"], 1), _f(p["total_moto_reported_units"], 1), ops])
    out += _table(["operation", "requests", "RCU", "WCU", "moto's ConsumedCapacity",
                   "requests by API"], rows)
    out += [
        f"Mean per operation, `SUBSCRIPTION_SHARDS={cost['shards']}`, on {cost['store']}. "
        "Publishes are inline (no `FANOUT_FUNCTION_NAME`); the publisher's own connection "
        "is read once (consistent `GetItem`), then one `Query` per shard. RCU/WCU are "
        "computed by AWS's rules from the items involved (a `Query` is charged for whole "
        "items read, before projection and filter, summed then rounded up to 4 KB, halved "
        "for eventual consistency; transactional writes count double); moto does return "
        "`ConsumedCapacity` (requested with `ReturnConsumedCapacity=TOTAL`) but not by those "
        "rules, so it is shown only for comparison. Largest rows: "
        + ", ".join(f"{k.split('_', 1)[1]} {v} bytes" for k, v in
                    cost["largest_row_bytes"].items()) + ". "
        "Operations issued in the whole run: "
        + ", ".join(f"{k} {v}" for k, v in sorted(cost["operations_seen"].items()))
        + (". **A Scan was issued.**" if cost["scan_issued"] else "; no `Scan`."),
        "",
    ]
    return out + _continuity_cost(cost)


def _continuity_cost(cost: dict[str, Any]) -> list[str]:
    """The extra cost of offsets and history per publish, beside a publish without."""
    history = cost.get("publish_history")
    if not history:
        return []
    out = [f"### Continuity's cost per publish (HISTORY_SIZE={cost['history_size']} beside 0)",
           ""]
    rows = []
    for row in history:
        off, on = row["without"], row["with"]
        rows.append([f"{row['subscribers']:,}",
                     f"{_f(off['total_requests'], 1)} / {_f(on['total_requests'], 1)}",
                     f"{_f(off['read_units'], 1)} / {_f(on['read_units'], 1)}",
                     f"{_f(off['write_units'], 1)} / {_f(on['write_units'], 1)}",
                     f"{_f(off['median_ms'], 1)} / {_f(on['median_ms'], 1)}",
                     _f(row["time_ratio"], 2)])
    out += _table(["subscribers", "requests (off / on)", "RCU (off / on)", "WCU (off / on)",
                   "median ms (off / on)", "time on/off"], rows)
    out += [
        "Both columns are measured in the same run, on the same moto server, with the "
        "channel's offset already past HISTORY_SIZE (the steady state). With history on, a "
        "publish adds a consistent `GetItem` of the channel's position (1 RCU) and one "
        "`TransactWriteItems` (6 WCU: the position's conditional Put, the history row's "
        "Put and the Delete of the row that falls out of the window, each doubled as "
        "transactional writes are). Times are moto's, not DynamoDB's: moto copies tables "
        "per transaction, so the added milliseconds are an upper bound; with many "
        "subscribers the posts to @connections dominate and the ratio tends to 1.",
        "",
    ]
    return out


# The figure the first-invocation rows were asked for (an outside run, before the
# lazy-client changes): Streamer's import + first call.
OUTSIDE_RUN_MS = (431, 449)
COLD_PING, COLD_FLOOR, COLD_BARE = ("app.py message (ping)", "bare handler + botocore GetItem",
                                    "bare Chalice handler")


def _cold_goals(cold: dict[str, Any] | None) -> list[list[str]]:
    first = cold.get("first_call") if cold else None
    ratio = first["ping_over_floor"] if first else None
    return [
        [f"app.py import at most {COLD_IMPORT_GOAL_MS:g} ms above a bare Chalice app",
         f"+{_f(cold['app_minus_bare_import_ms'], 1)} ms" if cold else "-",
         _verdict(None if cold is None
                  else cold["app_minus_bare_import_ms"] <= COLD_IMPORT_GOAL_MS)],
        [f"cold ping (import + first call) at most {COLD_FIRST_CALL_GOAL_RATIO:g}x a bare "
         "handler's with a botocore GetItem (the floor)",
         f"{_f(first['medians'][COLD_PING]['import_plus_first_ms'], 1)} ms vs "
         f"{_f(first['medians'][COLD_FLOOR]['import_plus_first_ms'], 1)} ms: {_f(ratio)}x "
         f"(Streamer's own {first['ping_minus_floor_ms']:+,.1f} ms)" if first else "-",
         _verdict(None if ratio is None else ratio <= COLD_FIRST_CALL_GOAL_RATIO)],
    ]


def _cold(cold: dict[str, Any] | None) -> list[str]:
    out = ["## Cold start (bench/cold_start.py)", ""]
    if not cold:
        return [*out, "Not run.", ""]
    rows = [[name, _f(m["import_ms"], 1), _f(m["process_ms"], 1)]
            for name, m in cold["medians"].items()]
    out += _table(["fresh process", "import ms (median)", "process wall ms (median)"], rows)
    zip_info = cold["zip"]
    zip_text = (f"Deployment zip (`{zip_info['path']}`): {zip_info['bytes']:,} bytes "
                f"({zip_info['bytes'] / 2**20:.2f} MiB), {zip_info['files']} files."
                if zip_info["available"] else
                f"Deployment zip: not measured ({zip_info['reason']}).")
    out += [f"{cold['reps']} fresh interpreters per variant, interleaved, no AWS "
            "environment; each times its own import with `time.perf_counter`. app.py - bare "
            f"Chalice: {cold['app_minus_bare_import_ms']:+.1f} ms import, "
            f"{cold['app_minus_bare_process_ms']:+.1f} ms process wall time. {zip_text} "
            f"Run {cold.get('machine', {}).get('date', '?')}.", ""]
    first = cold.get("first_call")
    if first:
        out += _cold_first_call(first, cold["reps"])
    return out


def _cold_first_call(first: dict[str, Any], reps: int) -> list[str]:
    medians = first["medians"]
    bare = medians[COLD_BARE]["import_plus_first_ms"]
    rows = [[name, _f(m["import_ms"], 1), _f(m["first_call_ms"], 1),
             _f(m["import_plus_first_ms"], 1), f"{m['import_plus_first_ms'] - bare:+,.1f}",
             f"{_f(m['import_plus_first_ms'] / bare, 1)}x", _f(m["import_plus_first_cpu_ms"], 1),
             _f(m["second_call_ms"], 1)]
            for name, m in medians.items()]
    out = ["### First invocation: import + the first handler call", ""]
    out += _table(["fresh process", "import ms", "first call ms", "import + first call ms",
                   "extra ms vs bare", "x bare", "of it CPU ms", "second call ms"], rows)
    ping = medians[COLD_PING]["import_plus_first_ms"]
    floor_share = (ping - first["ping_minus_floor_ms"]) / ping
    low, high = OUTSIDE_RUN_MS
    out += [
        f"Medians of {reps} fresh interpreters per row, interleaved. Each times its import, "
        "then calls the handler as Lambda's runtime does (`app.message(event, context)`) "
        "with an API Gateway WebSocket event, then once more (the warm cost). Bare "
        "Chalice handler: `@app.on_ws_message()` returning `{\"statusCode\": 200}`. The "
        "floor: that handler building a botocore DynamoDB client at its first call and "
        "reading the connection row (`GetItem`): the least any app answering a ping from "
        "DynamoDB pays. Streamer's ping reads the row, then posts a pong to "
        "`@connections`; its connect verifies the JWT and writes the row. Servers: moto's "
        "DynamoDB server and a recording `@connections` sink on 127.0.0.1; the "
        "environment the deployment sets (`FANOUT_FUNCTION_NAME` included), dummy "
        "credentials; `cryptography` hidden, as the deployment zip has none. CPU: the "
        "child's own `time.process_time` (no server's time, no wait for a core).",
        "",
        f"Streamer's ping costs {first['ping_minus_bare_ms']:+,.1f} ms over the bare "
        f"handler: Python + botocore (the floor) {first['floor_minus_bare_ms']:+,.1f} ms and "
        f"Streamer's own {first['ping_minus_floor_ms']:+,.1f} ms "
        f"({first['ping_over_floor']:.2f}x the floor). An outside run measured "
        f"{low}-{high} ms for Streamer's import + first call, before the Lambda client, "
        "the idempotency store and the sender's credentials were made lazy or shared "
        f"(bench/README.md has this machine's before and after). The floor is "
        f"{floor_share:.0%} of Streamer's ping here, so of that figure at most about "
        f"{floor_share * low:.0f}-{floor_share * high:.0f} ms is Python, Chalice and "
        "botocore's client and GetItem (at most: Streamer's share was larger then) and "
        f"the rest, at least {(1 - floor_share) * low:.0f}-{(1 - floor_share) * high:.0f} "
        "ms, Streamer's own: the breakdown below says where.",
        "",
    ]
    if first.get("breakdown"):
        out += _cold_breakdown(first["breakdown"])
    return out


def _cold_breakdown(b: dict[str, Any]) -> list[str]:
    out = [f"Where Streamer's ping spends its first call (medians of {b['reps']} runs):", ""]
    out += _table(["imported during the first call (`-X importtime`, self times)", "ms"],
                  [[group, _f(ms, 1)] for group, ms in b["imports_ms"].items()])
    out += [f"Imports in all: {_f(b['imports_total_ms'], 1)} ms of a "
            f"{_f(b['first_call_ms_with_importtime'], 1)} ms first call under `-X importtime`; "
            "a stdlib module counts for the package that imported it first.", ""]
    out += _table(["first call under cProfile (inclusive; rows overlap)", "calls", "ms"],
                  [[label, _f(r["calls"]), _f(r["ms"], 1)] for label, r in b["profile"].items()])
    out += [f"Profiled first call: {_f(b['profiled_total_ms'], 1)} ms; cProfile slows "
            "Python-heavy code, so read its rows as shares.", ""]
    return out


def _capacity(cap: dict[str, Any] | None) -> list[str]:
    out = ["## Gateway capacity (bench/capacity.py)", ""]
    if not cap:
        return [*out, "Not run.", ""]
    out += _table(["clients", "held open", "connect s", "connections/s", "gateway RSS before",
                   "after", "per connection"],
                  [[_f(cap["clients"]), _f(cap["held_server_connections"]),
                    _f(cap["connect_s"], 1), _f(cap["connect_rate_per_s"], 0),
                    f"{cap['rss_before_kib'] / 1024:.0f} MiB",
                    f"{cap['rss_after_kib'] / 1024:.0f} MiB",
                    f"{cap['kib_per_connection']:.1f} KiB"]])
    out += [f"The real app behind the gateway in one process (in-memory storage: each "
            f"connection is a `$connect` invocation and a stored row); clients in another "
            f"process; held for {cap['hold_s']:g} s. Open-file limit per process: "
            f"{cap['open_files_limit_per_process']:,}."
            + (f" Stopped early: {cap['error']}." if cap.get("error") else ""), ""]
    return out


METHOD = """## Method and caveats

- Everything runs on loopback (127.0.0.1) on this one machine: servers and clients
  share its cores, so every figure includes the clients' own cost. Times are medians;
  ratios are between variants measured in the same run. The machine is noisy:
  compare ratios, not absolute times, across runs.
- Fan-out, latency and capacity use the real `app.py` behind the local gateway
  (`streamer_local.testing.GatewayThread` in a server process) with in-memory storage
  (`local.memory.MemoryStorage`): moto's `TransactWriteItems` deep-copies tables, so
  10,000 subscribes through moto would measure moto. Subscriptions are seeded straight
  into that store (the rows the subscribe action writes); connections are real
  `$connect`s with JWTs. The clients (websockets' asyncio client) run in the benchmark
  process.
- "Streamer, worker processes" models AWS: the `fanout` workers run in processes of
  their own (`GatewaySettings.lambda_processes`, two here), each with its own
  interpreter, GIL and sender, as each Lambda instance is; the gateway's process
  serves the WebSockets and `@connections`. The store stays in the gateway's process
  and is shared with the workers over a unix socket (`bench/shared_storage.py`, a
  `multiprocessing` manager): a worker reads its shards' subscribers in one round trip
  per shard (10,000 ids over 16 shards in about 10 ms from an idle client), where
  moto's `Query` (which sorts the table and serializes every item) took about 4 s and
  was all the variant measured. Those round trips are served by threads of the
  gateway's process, on its GIL; on AWS the workers read DynamoDB instead.
- "Streamer, worker threads" runs the same workers in threads of the gateway's
  process, as the local stack does by default: the gateway, the app and its fan-out
  workers share one GIL. What bounds it: every delivery is a signed HTTP POST the
  gateway parses before it writes the frame, which the raw broadcast does not do. The
  sender costs about 70 us of CPU (bench/sender_cpu.py) and the gateway's
  `@connections` fast path about 50 us (measured as its server CPU per POST, see
  streamer_local/connections_api.py; aiohttp's web layer took 166 us). In one process those
  run in series, about 120 us of one GIL per delivery, so 10,000 deliveries cannot
  take much under 1.2 s there, while the raw server writes a frame in about 0.03 ms.
  In the worker-process variant the same work runs on the two cores side by side.
  Settings barely move it: a sweep of `FANOUT_CONCURRENCY` (4, 8, 16) stayed within
  noise in both variants.
- The sequential baseline is `app.websocket_api.send` in a loop in the same server
  process (Chalice's own boto3 client; its endpoint is set to the gateway's http
  `@connections` URL because Chalice builds `https://` ones only). The raw baseline is a
  plain aiohttp WebSocket server in its own process writing the same frame bytes, on
  uvloop when it is installed; the fan-out section names the loop of each server, so
  the comparison with the gateway is loop for loop.
- Delivery time is the last client's arrival minus the moment the trigger left the
  benchmark process (a `publish` frame for Streamer, a pipe command for the baselines),
  both by `time.monotonic()`, which Linux shares across processes.
"""


def render(data: dict[str, dict[str, Any] | None], images: dict[str, str]) -> str:
    machine: dict[str, Any] = next(
        (d["machine"] for d in data.values() if d and isinstance(d.get("machine"), dict)),
        {})
    if not machine and data["sender_cpu"]:
        machine = {"python": data["sender_cpu"].get("python")}
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`; `python -m bench.report` "
        "rewrites this page from `build/bench/*.json`). Do not edit by hand.",
        "",
        f"Machine: {machine.get('nproc', '?')} cores, Python {machine.get('python', '?')}, "
        f"{machine.get('platform', '?')}, open files per process "
        f"{_f(machine.get('open_files_limit'))}; run {machine.get('date', '?')}.",
        "",
        *_goals(data),
        *_sender_cpu(data["sender_cpu"], images.get("sender_cpu")),
        *_fanout(data["fanout"], images.get("fanout")),
        *_latency(data["latency"], images.get("latency")),
        *_dynamodb(data["dynamodb_cost"]),
        *_cold(data["cold_start"]),
        *_capacity(data["capacity"]),
        METHOD,
        "## Reproduce",
        "",
        "    make bench          # about 7 minutes here; each benchmark has a time limit",
        "    .venv/bin/python -m bench.fanout --sizes 1000 --reps 3   # one benchmark",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    names = ("sender_cpu", "fanout", "latency", "dynamodb_cost", "cold_start", "capacity")
    data = {name: read_results(name) for name in names}
    images = _plots(data)
    DOC.write_text(render(data, images))
    print(f"wrote {DOC.relative_to(REPO_ROOT)} and {len(images)} plots in "
          f"{Path(IMG).relative_to(REPO_ROOT)}/")
    missing = [n for n, d in data.items() if d is None]
    if missing:
        print(f"not run: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
