"""The ``chalice deploy`` flow, scripted: tables first, then the app, then teardown.

    python -m infra.deploy tables --stage prod   # CloudFormation stack of the tables
    python -m infra.deploy app --stage prod      # chalice deploy (JWT secret from env)
    python -m infra.deploy delete --stage prod   # chalice delete, then the tables stack

``tables`` creates ``streamer-<stage>-tables`` from the tables-only template (the same
description as everything else), then writes ``TABLE_PREFIX`` and
``REQUESTS_STREAM_ARN`` into the stage's ``environment_variables`` in
``.chalice/config.json`` and a least-privilege policy with literal ARNs into
``build/policy-<stage>.json`` (where the stage's ``iam_policy_file`` points).

``app`` reads the JWT secret from ``STREAMER_JWT_SECRET`` and never writes it into
the repository: Chalice takes environment variables only from config.json, so the
deploy runs from a private temporary copy of the project whose config carries the
secret; ``.chalice/deployed/<stage>.json`` is copied back. After the first deploy it
learns the API id, narrows the policy to that API, sets ``WS_ENDPOINT_URL`` and
deploys once more. Last, it applies the stream settings Chalice cannot express
(partial batch failures, bisect, retries, on-failure queue) to the event source
mapping. ``--dry-run`` prints what would change and touches no AWS. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.tables import TABLES, Table
from infra.package import chalice_executable, policy_path
from infra.template import (
    CONFIG_PATH,
    PROJECT_DIR,
    STAGES,
    Function,
    Stage,
    app_functions,
    load_stage,
    policy_document,
    policy_statements,
    render,
    stream_event_properties,
    tables_template,
)

SECRET_ENV = "STREAMER_JWT_SECRET"


def tables_stack_name(stage: Stage) -> str:
    return f"streamer-{stage.name}-tables"


@dataclass(frozen=True)
class LiteralArns:
    """ARNs spelt out from the tables stack's outputs (the ``chalice deploy`` flow)."""

    stage: Stage
    partition: str
    region: str
    account: str
    stream_arn: str
    failure_queue_arn: str
    api_id: str = "*"  # unknown before the first deploy creates the API

    def table(self, table: Table) -> Any:
        return (f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:"
                f"table/{table.physical_name(self.stage.table_prefix)}")

    def index(self, table: Table, index: str) -> Any:
        return f"{self.table(table)}/index/{index}"

    def stream(self, table: Table) -> Any:
        return self.stream_arn

    def streams(self, table: Table) -> Any:
        return f"{self.table(table)}/stream/*"

    def log_groups(self, functions: Sequence[Function]) -> Any:
        return [f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:"
                f"/aws/lambda/{self.stage.function_name(f)}:*" for f in functions]

    def connections(self) -> Any:
        return (f"arn:{self.partition}:execute-api:{self.region}:{self.account}:"
                f"{self.api_id}/{self.stage.api_stage}/POST/@connections/*")

    def function(self, name: str) -> Any:
        return (f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:"
                f"{self.stage.function_name(name)}")

    def failure_queue(self) -> Any:
        return self.failure_queue_arn

    @classmethod
    def from_outputs(cls, stage: Stage, outputs: Mapping[str, str],
                     api_id: str = "*") -> LiteralArns:
        # arn:<partition>:dynamodb:<region>:<account>:table/<name>/stream/<label>
        _, partition, _, region, account, _ = outputs["RequestsStreamArn"].split(":", 5)
        return cls(stage, partition, region, account, outputs["RequestsStreamArn"],
                   outputs["ProcessFailureQueueArn"], api_id)


def deploy_policy(arns: LiteralArns) -> dict[str, Any]:
    """One policy for every function (Chalice gives them all the same policy file)."""
    return policy_document(policy_statements(app_functions(), arns.stage, arns,
                                             create_log_groups=True))


def with_stage_env(config: Mapping[str, Any], stage: str,
                   values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of Chalice's config with ``values`` in ``stage``'s environment variables."""
    updated: dict[str, Any] = json.loads(json.dumps(config))
    env = updated["stages"][stage].setdefault("environment_variables", {})
    env.update(values)
    return updated


def websocket_api_id(deployed: Mapping[str, Any]) -> str | None:
    """The WebSocket API id recorded in ``.chalice/deployed/<stage>.json``."""
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "websocket_api":
            api_id: str = resource["websocket_api_id"]
            return api_id
    return None


def endpoint_url(api_id: str, region: str, stage: Stage) -> str:
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage.api_stage}"


# -- the AWS side (thin; not run in tests) -------------------------------------------


def _write_config(config: Mapping[str, Any], dry_run: bool) -> None:
    text = json.dumps(config, indent=2) + "\n"
    if dry_run:
        print(f"would write {CONFIG_PATH}:\n{text}")
    else:
        CONFIG_PATH.write_text(text)


def _write_policy(stage: Stage, arns: LiteralArns, dry_run: bool) -> None:
    text = render(deploy_policy(arns))
    if dry_run:
        print(f"would write {policy_path(stage.name)}:\n{text}")
    else:
        policy_path(stage.name).parent.mkdir(parents=True, exist_ok=True)
        policy_path(stage.name).write_text(text)


def stack_outputs(stage: Stage) -> dict[str, str]:
    import boto3  # noqa: PLC0415  (only the AWS commands need it)

    stack = boto3.client("cloudformation").describe_stacks(
        StackName=tables_stack_name(stage))["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy_tables(stage: Stage, dry_run: bool) -> None:
    template = render(tables_template(stage))
    command = ["aws", "cloudformation", "deploy", "--stack-name", tables_stack_name(stage),
               "--template-file", "TEMPLATE", "--no-fail-on-empty-changeset"]
    if dry_run:
        print(" ".join(command), f"\nwith TEMPLATE:\n{template}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tables.json"
        path.write_text(template)
        subprocess.run([*command[:5], str(path), *command[6:]], check=True)
    outputs = stack_outputs(stage)
    config = json.loads(CONFIG_PATH.read_text())
    _write_config(with_stage_env(config, stage.name, {
        "TABLE_PREFIX": outputs["TablePrefix"],
        "REQUESTS_STREAM_ARN": outputs["RequestsStreamArn"],
    }), dry_run)
    _write_policy(stage, LiteralArns.from_outputs(stage, outputs), dry_run)


def _chalice_deploy(stage: Stage, secret: str) -> dict[str, Any]:
    """``chalice deploy`` from a private copy whose config alone carries the secret."""
    deployed_path = PROJECT_DIR / ".chalice" / "deployed" / f"{stage.name}.json"
    with tempfile.TemporaryDirectory() as tmp:  # mode 0700
        copy = Path(tmp)
        for name in ("app.py", "chalicelib", "requirements.txt", ".chalice"):
            source = PROJECT_DIR / name
            if source.is_dir():
                shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns(
                    "__pycache__", "deployments"))
            else:
                shutil.copy2(source, copy / name)
        (copy / "build").mkdir()
        shutil.copy2(policy_path(stage.name), copy / "build" / policy_path(stage.name).name)
        config = json.loads((copy / ".chalice" / "config.json").read_text())
        (copy / ".chalice" / "config.json").write_text(json.dumps(
            with_stage_env(config, stage.name, {"JWT_SECRET": secret})))
        subprocess.run([chalice_executable(), "--project-dir", str(copy), "deploy",
                        "--stage", stage.name], check=True)
        deployed_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(copy / ".chalice" / "deployed" / f"{stage.name}.json", deployed_path)
    deployed: dict[str, Any] = json.loads(deployed_path.read_text())
    return deployed


def apply_stream_settings(stage: Stage, failure_queue_arn: str) -> None:
    import boto3  # noqa: PLC0415

    client = boto3.client("lambda")
    function = next(f for f in app_functions() if f.stream_event)
    settings = stream_event_properties(failure_queue_arn)
    settings["DestinationConfig"]["OnFailure"].pop("Type")  # SAM's spelling only
    for mapping in client.list_event_source_mappings(
            FunctionName=stage.function_name(function))["EventSourceMappings"]:
        client.update_event_source_mapping(UUID=mapping["UUID"], **settings)


def deploy_app(stage: Stage, dry_run: bool) -> None:
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret.encode()) < 32:
        raise SystemExit(f"set {SECRET_ENV} to the JWT secret (at least 32 bytes)")
    if dry_run:
        print(f"would run chalice deploy --stage {stage.name} from a private copy with "
              f"JWT_SECRET from {SECRET_ENV}, then narrow the policy to the API, set "
              "WS_ENDPOINT_URL, deploy again and apply the stream settings")
        return
    outputs = stack_outputs(stage)
    deployed = _chalice_deploy(stage, secret)
    api_id = websocket_api_id(deployed)
    arns = LiteralArns.from_outputs(stage, outputs)
    config = json.loads(CONFIG_PATH.read_text())
    env = config["stages"][stage.name].get("environment_variables", {})
    if api_id is not None:
        url = endpoint_url(api_id, arns.region, stage)
        if env.get("WS_ENDPOINT_URL") != url or arns.api_id != api_id:
            _write_config(with_stage_env(config, stage.name, {"WS_ENDPOINT_URL": url}), False)
            _write_policy(stage, LiteralArns.from_outputs(stage, outputs, api_id), False)
            _chalice_deploy(stage, secret)
    apply_stream_settings(stage, outputs["ProcessFailureQueueArn"])


def delete(stage: Stage, dry_run: bool) -> None:
    commands = [
        [chalice_executable(), "--project-dir", str(PROJECT_DIR), "delete",
         "--stage", stage.name],
        ["aws", "cloudformation", "delete-stack", "--stack-name", tables_stack_name(stage)],
        ["aws", "cloudformation", "wait", "stack-delete-complete",
         "--stack-name", tables_stack_name(stage)],
    ]
    for command in commands:
        if dry_run:
            print(" ".join(command))
        else:
            subprocess.run(command, check=True)
    kept = [t.physical_name(stage.table_prefix) for t in TABLES
            if stage.retain_data and t.point_in_time_recovery]
    if kept:
        print(f"retained by DeletionPolicy (delete by hand if intended): {', '.join(kept)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy",
                                     description="The chalice deploy flow; see docs/deploy.md.")
    parser.add_argument("command", choices=("tables", "app", "delete"))
    parser.add_argument("--stage", default="dev", choices=STAGES)
    parser.add_argument("--dry-run", action="store_true", help="print, touch no AWS")
    args = parser.parse_args(argv)
    stage = load_stage(args.stage)
    {"tables": deploy_tables, "app": deploy_app, "delete": delete}[args.command](
        stage, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

