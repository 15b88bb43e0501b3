"""``chalice package`` with the merge template, then a look inside the zip.

``python -m infra.package --stage prod`` (or ``make package STAGE=prod``) writes
``build/package-<stage>/`` with ``sam.json`` and ``deployment.zip``, and prints the
zip's size. The merge template is generated first, into
``build/merge-template.<stage>.json``. It fails when boto3 or botocore (already in the
Lambda runtime) were vendored into the zip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.template import (
    PROJECT_DIR,
    STAGES,
    load_stage,
    merge_template,
    render,
)

# Provided by the Lambda Python runtime; vendoring them only bloats the zip.
FORBIDDEN_PACKAGES = frozenset({"boto3", "botocore", "s3transfer"})
BUILD_DIR = PROJECT_DIR / "build"
# Overridden role by role by the merge template; chalice package only needs a file.
PLACEHOLDER_POLICY = {"Version": "2012-10-17", "Statement": []}


@dataclass(frozen=True)
class ZipReport:
    path: Path
    size_bytes: int
    files: int
    top_level: frozenset[str]

    @property
    def forbidden(self) -> frozenset[str]:
        return self.top_level & FORBIDDEN_PACKAGES

    def summary(self) -> str:
        vendored = ", ".join(sorted(self.forbidden)) or "none"
        return (f"{self.path}: {self.size_bytes:,} bytes ({self.size_bytes / 2**20:.2f} MiB), "
                f"{self.files} files; boto3/botocore vendored: {vendored}")


def inspect_zip(path: Path) -> ZipReport:
    """Size, file count and top-level package names of a deployment zip."""
    with zipfile.ZipFile(path) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
    top = frozenset(n.split("/", 1)[0].removesuffix(".py") for n in names)
    return ZipReport(path, path.stat().st_size, len(names), top)


def policy_path(stage: str) -> Path:
    """Where ``.chalice/config.json``'s ``iam_policy_file`` points for ``stage``."""
    return BUILD_DIR / f"policy-{stage}.json"


def chalice_executable() -> str:
    return str(Path(sys.executable).parent / "chalice")


def package(stage: str, out: Path) -> ZipReport:
    """Run ``chalice package`` for ``stage`` into ``out``; raise if anything is off."""
    template_path = BUILD_DIR / f"merge-template.{stage}.json"
    template_path.parent.mkdir(parents=True, exist_ok=True)
    template_path.write_text(render(merge_template(load_stage(stage))))
    policy = policy_path(stage)
    if not policy.exists():  # infra/deploy.py writes a real one for `chalice deploy`
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(json.dumps(PLACEHOLDER_POLICY, indent=2) + "\n")
    env = dict(os.environ)
    # Chalice wants a region to build; the template itself uses ${AWS::Region}.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    done = subprocess.run(
        [chalice_executable(), "--project-dir", str(PROJECT_DIR), "package",
         "--stage", stage, "--merge-template", str(template_path), str(out)],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False,
    )
    log = BUILD_DIR / f"package-{stage}.log"
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(failure_message(done.returncode, done.stdout + done.stderr, log))
    report = inspect_zip(out / "deployment.zip")
    if report.forbidden:
        raise RuntimeError(f"vendored into the zip: {sorted(report.forbidden)}")
    return report


def failure_message(returncode: int, output: str, log: Path) -> str:
    """One line for a failed ``chalice package`` (its traceback goes to ``log``)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return (f"chalice package exited {returncode}: {last[:200]}. On first use it "
            "downloads the Lambda package's dependencies (PyJWT, aws-lambda-powertools) "
            f"from PyPI, so it needs access to PyPI (or PIP_INDEX_URL); full output in {log}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__)
    parser.add_argument("--stage", default="dev", choices=STAGES)
    parser.add_argument("--out", type=Path, help="default: build/package-<stage>")
    args = parser.parse_args(argv)
    out: Path = args.out or BUILD_DIR / f"package-{args.stage}"
    try:
        report = package(args.stage, out)
    except RuntimeError as exc:
        print(f"package failed: {exc}", file=sys.stderr)
        return 1
    print(f"template: {out / 'sam.json'}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
