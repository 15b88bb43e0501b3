"""One ``chalice package`` per session (it downloads wheels from PyPI), shared by tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.package import ZipReport, package


@dataclass(frozen=True)
class Packaged:
    """What ``python -m infra.package --stage prod`` produced."""

    out: Path
    text: str
    template: dict[str, Any]
    report: ZipReport

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def of_type(self, kind: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packaged]:
    out = tmp_path_factory.mktemp("package") / "prod"
    report = package("prod", out)
    text = (out / "sam.json").read_text()
    yield Packaged(out, text, json.loads(text), report)


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint from this venv on one template."""
    exe = str(Path(sys.executable).parent / "cfn-lint")
    return subprocess.run([exe, str(path)], capture_output=True, text=True, check=False)


def with_expanded_event_sources(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with each SAM DynamoDB event as the EventSourceMapping SAM makes of it.

    cfn-lint checks SAM events only loosely (no SAM transform is installed), so the
    stream settings are linted as the ``AWS::Lambda::EventSourceMapping`` that SAM
    generates: ``Stream`` becomes ``EventSourceArn``, the other properties keep their
    names, and ``DestinationConfig.OnFailure`` loses SAM's ``Type``.
    """
    expanded: dict[str, Any] = json.loads(json.dumps(template))
    resources = expanded["Resources"]
    for name, resource in list(resources.items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event_name, event in resource["Properties"].pop("Events", {}).items():
            props = dict(event["Properties"])
            props["EventSourceArn"] = props.pop("Stream")
            props["FunctionName"] = {"Ref": name}
            on_failure = props.get("DestinationConfig", {}).get("OnFailure")
            if on_failure is not None:
                on_failure.pop("Type", None)
            resources[event_name] = {"Type": "AWS::Lambda::EventSourceMapping",
                                     "Properties": props}
    return expanded
