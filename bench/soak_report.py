"""The soak's figures, worked out from the ledger, the clients, the log and the tables.

Pure functions over what :mod:`bench.soak` collected; no I/O. Definitions (docs/soak.md
has them in prose):

- A subscriber's *expected* deliveries are the acknowledged publishes of its tenant to
  a channel it subscribed to, sent after that subscription's ack arrived (the ack is
  posted after the subscription row is written, so a later publish must find it).
- A subscriber *stayed up* unless the server forgot it before the traffic ended (a 410
  on any post to it, seen in the log as ``stale connection removed``) or its socket
  closed during the run. Forgotten ones are reported apart: the 410 fault means to make
  them stop getting messages. A missing delivery is *lost* for a subscriber that stayed
  up, and for a forgotten one when its fan-out ended well before the forget
  (``FORGET_MARGIN_S``); the zero-loss goal counts both.
- Orphans are rows left in the connections and subscriptions tables once every client
  has closed: *excused* when the connection's ``$disconnect`` never ran (the fault
  drops some, as AWS may), *unexcused* when it ran and rows are left anyway.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import format_table, median, percentile
from bench.soak_clients import Client, Ledger, Publish
from bench.soak_stack import LogWatch

LIVE_STATES = frozenset({"pending", "running"})
# The app logs "stale connection removed" after it has deleted the connection's rows, three
# DynamoDB calls after the 410; a fan-out that read the channel in between legitimately
# misses the connection yet may log "published" first (seen: 0.34 s before, with moto
# queueing every call). A missing delivery to a forgotten subscriber whose fan-out ended
# less than this before that line is excused; earlier ones count as lost.
FORGET_MARGIN_S = 10.0


@dataclass(frozen=True)
class Goal:
    name: str
    value: Any
    goal: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "goal": self.goal, "met": self.met}


def distribution(values: Sequence[float]) -> dict[str, float | int]:
    return {"count": len(values), "p50": percentile(values, 0.50),
            "p99": percentile(values, 0.99), "max": max(values, default=math.nan),
            "median": median(values)}


# --- deliveries ------------------------------------------------------------------------

def acked_index(ledger: Ledger) -> dict[tuple[str, str], tuple[list[float], list[Publish]]]:
    """Acknowledged publishes by (tenant, channel), in send order, with their send times
    (for bisecting to those sent after a subscription's ack)."""
    grouped: dict[tuple[str, str], list[Publish]] = {}
    for publish in ledger.publishes.values():
        if publish.acked_mono is not None:
            grouped.setdefault((publish.tenant, publish.channel), []).append(publish)
    index = {}
    for key, publishes in grouped.items():
        publishes.sort(key=lambda p: p.sent_mono)
        index[key] = ([p.sent_mono for p in publishes], publishes)
    return index


@dataclass
class SubscriberTally:
    expected: int = 0
    received_expected: int = 0
    missing: int = 0
    # Of the missing: lost (fanned out, per the app's log, before the server forgot the
    # subscriber, or it never did), lost because the fan-out was never logged by the end
    # of the run, and excused (the fan-out ended after, or FORGET_MARGIN_S before, the
    # server forgot the subscriber).
    lost: int = 0
    lost_not_fanned_out: int = 0
    excused: int = 0
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    subscribers: int = 0

    def add(self, other: SubscriberTally) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class ServerView:
    """When, by the log's arrival times (monotonic), the app finished each fan-out and
    forgot each connection."""

    published_at: dict[str, float]  # message id -> its ``published`` line
    forgotten_at: dict[str, float]  # user id -> its ``stale connection removed`` line

    @classmethod
    def of(cls, watch: LogWatch) -> ServerView:
        with watch.lock:
            return cls(dict(watch.published),
                       {watch.user_of.get(cid, cid): at for cid, at in watch.forgotten.items()})


def tally(client: Client, index: dict[tuple[str, str], tuple[list[float], list[Publish]]],
          server: ServerView, missing_sample: list[dict[str, Any]]) -> SubscriberTally:
    result = SubscriberTally(subscribers=1, out_of_order=client.out_of_order)
    forgotten_at = server.forgotten_at.get(client.user)
    for channel, acked_at in client.subscribed.items():
        times, publishes = index.get((client.tenant, channel), ([], []))
        for publish in publishes[bisect.bisect_right(times, acked_at):]:
            result.expected += 1
            if client.count(publish.publisher, publish.seq):
                result.received_expected += 1
                continue
            result.missing += 1
            fanned_out = server.published_at.get(publish.message_id or "")
            if fanned_out is None:
                result.lost_not_fanned_out += 1
            elif forgotten_at is not None and fanned_out >= forgotten_at - FORGET_MARGIN_S:
                result.excused += 1
                continue
            else:
                result.lost += 1
            if len(missing_sample) < 20:
                missing_sample.append({"subscriber": client.user, "channel": channel,
                                       "publisher": publish.publisher, "seq": publish.seq,
                                       "message_id": publish.message_id,
                                       "fanned_out": fanned_out is not None,
                                       # seconds from the fan-out's end to the forget
                                       "forgotten_after_s": None if fanned_out is None
                                       or forgotten_at is None
                                       else round(forgotten_at - fanned_out, 3)})
    for counts in client.received.values():
        for count in counts:
            if count:
                result.received += count
                result.duplicates += count - 1
    return result


def deliveries(subscribers: Iterable[Client], ledger: Ledger, server: ServerView,
               forgotten_before: float) -> dict[str, Any]:
    """Expected against received. Subscribers the server forgot before ``forgotten_before``
    (the end of the run's traffic) are grouped apart; a missing delivery counts as lost
    in either group unless its fan-out ended after the subscriber was forgotten."""
    index = acked_index(ledger)
    groups = {"stayed_up": SubscriberTally(), "forgotten": SubscriberTally(),
              "closed_early": SubscriberTally()}
    sample: list[dict[str, Any]] = []
    cross_tenant = wrong_channel = never_joined = 0
    closes: Counter[str] = Counter()
    for client in subscribers:
        if client.ws is None:
            never_joined += 1  # its handshake failed or the ramp-up ended first
            continue
        if client.closed_early is not None:
            closes[client.closed_early] += 1
        forgotten_at = server.forgotten_at.get(client.user)
        if forgotten_at is not None and forgotten_at < forgotten_before:
            group = "forgotten"
        elif client.closed_early is not None:
            group = "closed_early"
        else:
            group = "stayed_up"
        groups[group].add(tally(client, index, server, sample))
        cross_tenant += client.cross_tenant
        wrong_channel += client.wrong_channel
    lost = sum(g.lost + g.lost_not_fanned_out for g in groups.values())
    return {**{name: vars(t) for name, t in groups.items()},
            "lost": lost, "missing_sample": sample,
            "cross_tenant": cross_tenant, "wrong_channel": wrong_channel,
            "never_joined": never_joined, "close_codes": dict(closes),
            "unknown_messages": ledger.unknown_messages,
            "gateway_errors": ledger.gateway_errors,
            "refused_without_410_in_log": sum(
                1 for c in subscribers if c.refused and c.user not in server.forgotten_at)}


def publishes(ledger: Ledger) -> dict[str, Any]:
    values = list(ledger.publishes.values())
    return {
        "sent": len(values),
        "acked": sum(p.acked_mono is not None for p in values),
        "acked_steady": sum(p.acked_mono is not None and p.steady for p in values),
        "refused": dict(Counter(p.error for p in values if p.error)),
        "unanswered": sum(p.acked_mono is None and p.error is None for p in values),
        "error_after_ack": dict(Counter(p.error_after_ack for p in values
                                        if p.error_after_ack)),
        "ack_ms": distribution([(p.acked_mono - p.sent_mono) * 1000 for p in values
                                if p.acked_mono is not None and p.steady]),
    }


# --- requests --------------------------------------------------------------------------

def requests(ledger: Ledger, sent: int, refused: Counter[str], rows: list[dict[str, Any]],
             rows_final: list[dict[str, Any]], watch: LogWatch) -> dict[str, Any]:
    """Requests as the clients saw them and as the requests table holds them.

    ``rows`` is the table after the grace period, while every requester was still
    connected (a disconnect cancels unfinished requests, which would hide a stuck one);
    ``rows_final`` after everyone left.
    """
    with watch.lock:
        succeeded = Counter(watch.succeeded)
        not_run_again = Counter(watch.not_run_again)
    tracked = [r for r in ledger.requests.values() if r.acked_mono is not None]
    states = Counter(row["state"]["S"] for row in rows)
    stuck = [row["request_id"]["S"] for row in rows if row["state"]["S"] in LIVE_STATES]
    twice = sorted({r.request_id for r in tracked
                    if r.results > 1 or any(n > 1 for n in r.steps.values())}
                   | {rid for rid, n in succeeded.items() if n > 1})
    result_after_cancel = [r.request_id for r in tracked
                           if r.cancel_state == "cancelled" and r.results]
    by_id = {row["request_id"]["S"]: row["state"]["S"] for row in rows}
    status_mismatch = [r.request_id for r in tracked if r.status_state is not None
                       and r.status_state != by_id.get(r.request_id, r.status_state)]
    return {
        "sent": sent, "acked": len(tracked), "refused": dict(refused),
        "cancels_sent": sum(r.cancel_sent for r in tracked),
        "cancel_acks": dict(Counter(r.cancel_state or "no ack" for r in tracked
                                    if r.cancel_sent)),
        "table_states": dict(states),
        "table_states_after_leave": dict(Counter(row["state"]["S"] for row in rows_final)),
        "stuck": stuck,
        "live_at_end": [row["request_id"]["S"] for row in rows_final
                        if row["state"]["S"] in LIVE_STATES],
        "ran_twice": twice,
        "result_after_cancel": result_after_cancel,
        "status_mismatch": status_mismatch,
        "no_final_frame": sum(r.final_mono is None for r in tracked),
        "redelivered_insert_skipped": sum(n for rid, n in not_run_again.items()
                                          if rid in ledger.requests
                                          and not ledger.requests[rid].cancel_sent),
        "completion_ms": distribution([(r.final_mono - r.acked_mono) * 1000 for r in tracked
                                       if r.final_mono is not None
                                       and r.acked_mono is not None
                                       and r.final_mono >= r.acked_mono]),
    }


# --- orphans ---------------------------------------------------------------------------

def orphans(connection_rows: list[dict[str, Any]], subscription_rows: list[dict[str, Any]],
            watch: LogWatch, never_opened: set[str]) -> dict[str, Any]:
    """Rows left once every client closed, excused (no $disconnect ran) or not.

    ``never_opened``: users whose handshake failed although ``$connect`` wrote their
    row (it finished after the gateway had given up on it); no ``$disconnect`` follows
    a connection that never opened, on AWS either, so those rows are counted apart.
    """
    with watch.lock:
        disconnected = set(watch.disconnected)
        user_of = dict(watch.user_of)
    subscribed_ids = Counter(row["connection_id"]["S"] for row in subscription_rows)
    connection_ids = {row["connection_id"]["S"] for row in connection_rows}
    excused = [cid for cid in connection_ids if cid not in disconnected]
    unexcused = [cid for cid in connection_ids if cid in disconnected]
    refused = [cid for cid in excused if user_of.get(cid) in never_opened]
    lone_subscriptions = sum(n for cid, n in subscribed_ids.items() if cid not in connection_ids)
    return {
        "connection_rows": len(connection_rows),
        "subscription_rows": len(subscription_rows),
        "excused_connections": len(excused),
        "of_which_handshake_failed": len(refused),
        "excused_subscriptions": sum(subscribed_ids[cid] for cid in excused),
        # Rows a channel publish can never reach: no subscription points at them.
        "excused_without_subscriptions": sum(1 for cid in excused if not subscribed_ids[cid]),
        "unexcused_connections": len(unexcused),
        "unexcused_subscriptions": sum(subscribed_ids[cid] for cid in unexcused)
                                   + lone_subscriptions,
        "subscriptions_without_connection": lone_subscriptions,
        "roles_of_excused": dict(Counter(_role(user_of.get(cid, "?")) for cid in excused)),
        "unexcused_sample": [{"connection_id": cid, "user": user_of.get(cid)}
                             for cid in unexcused[:10]],
    }


def _role(user: str) -> str:
    return {"s": "subscriber", "P": "publisher", "w": "sweeper"}.get(user[:1], user)


# --- memory ----------------------------------------------------------------------------

def rss_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """First, peak and last RSS per process, and the growth during the steady phase."""
    summary: dict[str, Any] = {}
    if not samples:
        return summary
    steady = [s for s in samples if s["phase"] == "steady"]
    for key in ("stack_kib", "dynamodb_kib", "soak_clients_kib"):
        name = key.removesuffix("_kib")
        values = [s[key] for s in samples]
        growth = math.nan
        if len(steady) >= 2 and steady[-1]["t_s"] > steady[0]["t_s"]:
            minutes = (steady[-1]["t_s"] - steady[0]["t_s"]) / 60
            growth = (steady[-1][key] - steady[0][key]) / 1024 / minutes
        summary[name] = {"first_mib": values[0] / 1024, "peak_mib": max(values) / 1024,
                         "last_mib": values[-1] / 1024,
                         "steady_growth_mib_per_min": growth}
    return summary


# --- goals and the table ---------------------------------------------------------------

def goals(report: dict[str, Any]) -> list[Goal]:
    d, r, o = report["deliveries"], report["requests"], report["orphans"]
    after = o.get("after_sweep") or o.get("before_sweep") or {}
    opened, wanted = report["connections"]["opened"], report["connections"]["wanted"]
    exercised = report["publishes"]["acked"] > 0 and d["stayed_up"]["expected"] > 0
    duplicates = sum(d[g]["duplicates"] for g in ("stayed_up", "forgotten", "closed_early"))
    errors = report["log"]["errors"]
    return [
        Goal("connections opened", f"{opened}/{wanted}", f"{wanted}", opened == wanted),
        Goal("acked publishes and expected deliveries", "yes" if exercised else "no",
             "> 0 (else nothing was tested)", exercised),
        Goal("lost deliveries (acked, to connections up)", d["lost"], "0", d["lost"] == 0),
        Goal("connections forgotten with no 410 logged", d["refused_without_410_in_log"], "0",
             d["refused_without_410_in_log"] == 0),
        Goal("duplicate deliveries", duplicates, "0", duplicates == 0),
        Goal("cross-tenant deliveries", d["cross_tenant"], "0", d["cross_tenant"] == 0),
        Goal("deliveries on a channel not subscribed", d["wrong_channel"], "0",
             d["wrong_channel"] == 0),
        Goal("connections closed by the server", d["closed_early"]["subscribers"], "0",
             d["closed_early"]["subscribers"] == 0),
        Goal("stuck requests (live after the grace)", len(r["stuck"]), "0", not r["stuck"]),
        Goal("requests run twice / result after cancel",
             len(r["ran_twice"]) + len(r["result_after_cancel"]), "0",
             not r["ran_twice"] and not r["result_after_cancel"]),
        Goal("orphan rows, $disconnect ran (after sweep)",
             after.get("unexcused_connections", 0) + after.get("unexcused_subscriptions", 0),
             "0", after.get("unexcused_connections", 0) + after.get(
                 "unexcused_subscriptions", 0) == 0),
        Goal("orphan subscriptions a sweep should reach (after sweep)",
             after.get("excused_subscriptions", 0), "0",
             after.get("excused_subscriptions", 0) == 0),
        Goal("ERROR lines in the stack's log", errors, "0", errors == 0),
    ]


def _verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def table(report: dict[str, Any], goal_list: list[Goal]) -> str:
    """The figures, each with its goal where it has one."""
    c, p, d = report["connections"], report["publishes"], report["deliveries"]
    r, o, lat = report["requests"], report["orphans"], report["latency_ms"]
    up, gone = d["stayed_up"], d["forgotten"]
    rows: list[list[Any]] = [
        ["connections opened / fully subscribed", f"{c['opened']:,} / {c['joined']:,} of "
         f"{c['wanted']:,} in {c['ramp_s']:.0f} s ({c['join_rate_per_s']:.1f}/s)", "", ""],
        ["subscribe ms, first / last 100", f"{c['subscribe_ms_first']:.0f} / "
         f"{c['subscribe_ms_last']:.0f}", "", ""],
        ["publishes sent / acked", f"{p['sent']:,} / {p['acked']:,}", "", ""],
        ["publishes refused / unanswered", f"{sum(p['refused'].values())} / {p['unanswered']}",
         "", ""],
        ["expected deliveries (stayed up)", f"{up['expected']:,} to {up['subscribers']:,} subs",
         "", ""],
        ["received of those", f"{up['received_expected']:,}", "", ""],
        ["lost: fanned out / never fanned out", f"{d['lost'] - _unfanned(d):,} / "
         f"{_unfanned(d):,}", "", ""],
        ["subscribers closed by the server", f"{d['closed_early']['subscribers']:,} "
         f"({_states(d['close_codes'])})", "", ""],
        ["'Internal server error' frames", f"{d['gateway_errors']:,}", "", ""],
        ["forgotten by a 410 (subscribers)", f"{gone['subscribers']:,} "
         f"({gone['subscribers'] / max(1, c['opened']):.1%}), "
         f"{gone['excused']:,} deliveries missing after it", "", ""],
        ["out of order (stayed up)", f"{up['out_of_order']:,}", "not promised", ""],
        ["latency ms p50 / p99, steady", f"{lat['steady']['p50']:.1f} / "
         f"{lat['steady']['p99']:.1f}", "", ""],
        ["latency ms p50 / p99, ramp-up", f"{lat['ramp']['p50']:.1f} / "
         f"{lat['ramp']['p99']:.1f}", "", ""],
        ["server 429 retries / sends failed", f"{report['server']['retries']:,} / "
         f"{report['server']['failed']:,}", "", ""],
        ["requests acked / cancels", f"{r['acked']:,} / {r['cancels_sent']:,}", "", ""],
        ["request states after the grace", _states(r["table_states"]), "", ""],
        ["request states at the end", _states(r["table_states_after_leave"]), "", ""],
        ["request completion ms p50 / p99", f"{r['completion_ms']['p50']:.0f} / "
         f"{r['completion_ms']['p99']:.0f}", "", ""],
    ]
    for name, mem in report["rss"]["summary"].items():
        rows.append([f"RSS MiB {name}: first / peak / last",
                     f"{mem['first_mib']:.0f} / {mem['peak_mib']:.0f} / {mem['last_mib']:.0f}"
                     f" ({mem['steady_growth_mib_per_min']:+.1f}/min steady)", "", ""])
    for stage in ("before_sweep", "after_sweep"):
        left = o.get(stage)
        if left:
            rows.append([f"rows left {stage.replace('_', ' ')}",
                         f"{left['connection_rows']} conn, {left['subscription_rows']} subs; "
                         f"no $disconnect: {left['excused_connections']} conn "
                         f"({left['excused_without_subscriptions']} without subs, "
                         f"{left['of_which_handshake_failed']} never opened)", "", ""])
    rows.append(["WARNING lines in the stack's log", report["log"]["levels"].get("WARNING", 0),
                 "", ""])
    rows += [[g.name, g.value, g.goal, _verdict(g.met)] for g in goal_list]
    return format_table(*_left(["figure", "value", "goal", ""], rows, columns=3))


def rss_table(samples: list[dict[str, Any]], every_s: float = 60.0) -> str:
    """RSS over time, about one sample a minute and the last, with each process's CPU
    use (percent of one core) since the previous row."""
    picked: list[dict[str, Any]] = []
    for sample in samples:
        if not picked or sample["t_s"] - picked[-1]["t_s"] >= every_s or sample is samples[-1]:
            picked.append(sample)
    rows: list[list[Any]] = []
    for before, now in zip([None, *picked], picked, strict=False):
        row: list[Any] = [now["t_s"], now["phase"], now["stack_kib"] / 1024,
                          now["dynamodb_kib"] / 1024, now["soak_clients_kib"] / 1024]
        for name in ("stack", "dynamodb", "soak_clients"):
            key = f"{name}_cpu_s"
            span = now["t_s"] - before["t_s"] if before else 0.0
            row.append(100 * (now.get(key, 0.0) - before.get(key, 0.0)) / span
                       if before and span > 0 else math.nan)
        rows.append(row)
    return format_table(
        ["t s", "phase", "stack MiB", "dynamodb MiB", "clients MiB", "stack CPU%",
         "dynamodb CPU%", "clients CPU%"], rows)


def _left(headers: list[str], rows: list[list[Any]],
          columns: int) -> tuple[list[str], list[list[Any]]]:
    """Pad the first ``columns`` columns on the right, so that format_table's
    right-justification leaves these text columns reading left to right."""
    texts = [[str(v) for v in row[:columns]] for row in rows]
    widths = [max(len(headers[i]), *(len(t[i]) for t in texts)) for i in range(columns)]
    padded = [[t[i].ljust(widths[i]) for i in range(columns)] + list(row[columns:])
              for t, row in zip(texts, rows, strict=True)]
    return [h.ljust(widths[i]) if i < columns else h for i, h in enumerate(headers)], padded


def _unfanned(d: dict[str, Any]) -> int:
    return sum(int(d[g]["lost_not_fanned_out"]) for g in ("stayed_up", "forgotten",
                                                          "closed_early"))


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "-"
