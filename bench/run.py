"""``make bench``: every benchmark, each in its own process with a time limit, then the report.

Each benchmark writes build/bench/<name>.json; bench.report turns those into
docs/benchmarks.md and docs/img/*.png. A benchmark that fails or overruns is reported
and the others still run; the exit status is 1 if any did.

    .venv/bin/python -m bench.run [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import REPO_ROOT, results_path

# (name, arguments, time limit in seconds): at most ~19 minutes in all if every one
# overran; a run takes about 4 here. Each benchmark also bounds its own loops.
PLAN: list[tuple[str, list[str], float]] = [
    ("sender_cpu", ["-m", "bench.sender_cpu", "--json", str(results_path("sender_cpu"))], 120),
    ("cold_start", ["-m", "bench.cold_start", "--json"], 240),
    ("dynamodb_cost", ["-m", "bench.dynamodb_cost", "--json"], 120),
    ("latency", ["-m", "bench.latency", "--json"], 90),
    ("capacity", ["-m", "bench.capacity", "--json"], 150),
    ("fanout", ["-m", "bench.fanout", "--json"], 540),
]
QUICK = {
    "sender_cpu": ["--runs", "2", "--posts", "500"],
    "cold_start": ["--reps", "3", "--no-package"],
    "latency": ["--seconds", "3"],
    "capacity": ["--clients", "1000", "--hold", "1"],
    "fanout": ["--sizes", "100", "500", "--reps", "1"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, to check the plumbing (the report says so)")
    parser.add_argument("--only", nargs="+", help="run only these benchmarks")
    args = parser.parse_args(argv)
    results_path("x").parent.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for name, command, limit in PLAN:
        if args.only and name not in args.only:
            continue
        extra = QUICK.get(name, []) if args.quick else []
        print(f"\n=== {name} (limit {limit:.0f} s) ===", flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, *command, *extra], cwd=REPO_ROOT,
                                  timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            print(f"{name}: stopped after {limit:.0f} s", flush=True)
            failed.append(name)
            continue
        if done.returncode != 0:
            print(f"{name}: exit status {done.returncode}", flush=True)
            failed.append(name)
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    print("\n=== report ===", flush=True)
    report = subprocess.run([sys.executable, "-m", "bench.report"], cwd=REPO_ROOT,
                            timeout=120, check=False)
    if report.returncode != 0:
        failed.append("report")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
