"""A Chalice project as the emulator reads it: its stage's environment and its tables.

- :func:`stage_environment` merges ``.chalice/config.json``'s top-level
  ``environment_variables`` with the stage's, as ``chalice deploy`` does (the stage's
  win).
- :func:`table_definitions` reads the ``AWS::DynamoDB::Table`` resources of a
  CloudFormation template (the ``resources.json`` a project gives
  ``chalice package --merge-template``, or any template), and :func:`create_tables`
  creates them on the local DynamoDB: the description the user already has, not a
  second one. ``Fn::Sub`` of plain text and ``Ref`` of a parameter with a default are
  resolved; a table whose name cannot be resolved is named after its logical id.

Why hand-written: Chalice reads its config only inside its deployer, and no library
turns CloudFormation table resources into ``CreateTable`` calls (moto's CloudFormation
emulation needs its own server and credentials flow, far more than these few keys).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The CreateTable parameters a CloudFormation table resource carries under the same name.
_PASSED = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes",
           "LocalSecondaryIndexes", "StreamSpecification", "ProvisionedThroughput")


class ProjectError(ValueError):
    """The project's config or template cannot be used; the message says which and why."""


def load_app(spec: str = "app:app", project_dir: Path | None = None) -> Any:
    """Import ``module:attr`` with ``project_dir`` (the one holding ``app.py``, the
    current directory by default) first on ``sys.path``; the Chalice app."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValueError(f"app spec must be module[:attr], got {spec!r}")
    root = str((project_dir or Path.cwd()).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app", None)
    if app is None or not hasattr(app, "websocket_handlers"):
        raise ValueError(f"{spec!r} does not name a Chalice app")
    return app


def stage_environment(project_dir: Path, stage: str) -> dict[str, str]:
    """The environment variables ``stage`` gives its functions, from .chalice/config.json."""
    path = project_dir / ".chalice" / "config.json"
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    stages = config.get("stages") or {}
    if stage not in stages:
        raise ProjectError(f"{path}: no stage {stage!r} (stages: {', '.join(stages) or 'none'})")
    merged: dict[str, Any] = {**(config.get("environment_variables") or {}),
                              **(stages[stage].get("environment_variables") or {})}
    return {str(key): str(value) for key, value in merged.items()}


def api_gateway_stage(project_dir: Path, stage: str) -> str:
    """The API Gateway stage name a Chalice stage deploys to (``api_gateway_stage``,
    the stage's over the top-level one; Chalice's default is ``api``)."""
    path = project_dir / ".chalice" / "config.json"
    if not path.exists():
        return "api"
    config = json.loads(path.read_text())
    chosen = ((config.get("stages") or {}).get(stage) or {}).get("api_gateway_stage")
    return str(chosen or config.get("api_gateway_stage") or "api")


def table_definitions(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``CreateTable`` parameters for each ``AWS::DynamoDB::Table`` in ``template``."""
    parameters = template.get("Parameters") or {}
    tables = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource.get("Properties") or {}
        name = _resolve(props.get("TableName"), parameters) or logical_id
        params: dict[str, Any] = {"TableName": name}
        params.update({key: props[key] for key in _PASSED if key in props})
        if "StreamSpecification" in params:  # CloudFormation implies what the API asks
            params["StreamSpecification"] = {"StreamEnabled": True,
                                             **params["StreamSpecification"]}
        if "KeySchema" not in params or "AttributeDefinitions" not in params:
            raise ProjectError(f"table {logical_id}: KeySchema and AttributeDefinitions "
                               "are required")
        if props.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
            params["BillingMode"] = "PAY_PER_REQUEST"
        elif "ProvisionedThroughput" not in params:
            params["BillingMode"] = "PAY_PER_REQUEST"  # a local table needs no capacity
        tables.append(params)
    return tables


def _resolve(value: Any, parameters: Mapping[str, Any]) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        default = (parameters.get(value["Ref"]) or {}).get("Default")
        return str(default) if default is not None else None
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text: str = value["Fn::Sub"]
        return None if "${" in text else text
    return None


def load_template(path: Path) -> dict[str, Any]:
    try:
        template = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProjectError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(template, dict):
        raise ProjectError(f"{path}: not a CloudFormation template (an object)")
    return template


def create_tables(client: Any, definitions: list[dict[str, Any]]) -> dict[str, str]:
    """Create each table not there yet; the stream ARN of each table that has one."""
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    arns = {}
    for params in definitions:
        if params["TableName"] not in existing:
            client.create_table(**params)
        described = client.describe_table(TableName=params["TableName"])["Table"]
        if "LatestStreamArn" in described:
            arns[params["TableName"]] = described["LatestStreamArn"]
    return arns
