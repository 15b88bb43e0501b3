"""The pure core imports no adapter: loading it leaves boto3 and botocore unloaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ("protocol", "dispatch", "actions", "request_actions", "model", "errors",
        "settings", "tasks", "interfaces", "leases", "auth", "events")


@pytest.mark.parametrize("module", CORE)
def test_core_module_loads_without_boto3_or_botocore(module: str) -> None:
    """Importing one core module, in a fresh interpreter, loads neither boto3 nor botocore."""
    code = (f"import sys, chalicelib.{module}\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
            "print(','.join(loaded))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.strip()
    assert loaded == ""
