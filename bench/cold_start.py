"""Cold start: importing ``app.py`` in a fresh process vs a bare Chalice app; the zip size.

Each sample is a new interpreter (what a Lambda cold start pays) that times its own
import with ``time.perf_counter`` and prints it; the process's wall clock is recorded
too. Variants run interleaved, so drift on this noisy machine hits them alike. The
environment is stripped of AWS settings: ``app.py`` must import with none.

The deployment zip is read from ``build/package-<stage>/deployment.zip`` when
``make package`` has run, else built with ``python -m infra.package`` (needs PyPI
for ``chalice package``'s dependency download); when that fails, the report says so.

    .venv/bin/python -m bench.cold_start [--reps 15] [--json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, format_table, median, write_results

GOAL_MS = 30.0
SNIPPETS = {
    "python (nothing)": "pass",
    "bare Chalice app": "from chalice import Chalice\napp = Chalice(app_name='bare')",
    "app.py": "import app",
}
APP, BARE = "app.py", "bare Chalice app"


def _timed(snippet: str) -> str:
    return ("import time\n_t = time.perf_counter()\n" + snippet
            + "\nprint(time.perf_counter() - _t)")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "JWT_", "DYNAMODB_", "WS_", "REQUESTS_"))}


def sample(snippet: str) -> tuple[float, float]:
    """(import seconds measured inside, process wall seconds) of one fresh interpreter."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _timed(snippet)], cwd=REPO_ROOT, env=_env(),
                         capture_output=True, text=True, check=True, timeout=60)
    wall = time.perf_counter() - start
    return float(out.stdout.strip().splitlines()[-1]), wall


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


def run(reps: int, package: bool = True) -> dict[str, Any]:
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
        "reps": reps,
        "medians": medians,
        "samples_import_ms": imports,
        "samples_process_ms": walls,
        "app_minus_bare_import_ms": diff,
        "app_minus_bare_process_ms": medians[APP]["process_ms"] - medians[BARE]["process_ms"],
        "goal": {"max_ms_above_bare": GOAL_MS, "met": diff <= GOAL_MS},
        "zip": deployment_zip() if package else {"available": False, "reason": "skipped"},
    }


def table(report: dict[str, Any]) -> str:
    rows = [[name, m["import_ms"], m["process_ms"]] for name, m in report["medians"].items()]
    return format_table(["fresh process", "import ms (median)", "process wall ms (median)"],
                        rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--no-package", action="store_true", help="skip the zip size")
    parser.add_argument("--json", action="store_true", help="write build/bench/cold_start.json")
    args = parser.parse_args(argv)
    report = run(args.reps, package=not args.no_package)
    print(f"cold start, {args.reps} fresh processes each:")
    print(table(report))
    verdict = "met" if report["goal"]["met"] else "MISSED"
    print(f"app.py - bare Chalice: {report['app_minus_bare_import_ms']:.1f} ms import "
          f"(goal <= {GOAL_MS:g} ms: {verdict})")
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
