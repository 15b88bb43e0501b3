"""CloudFormation for Streamer, generated from ``chalicelib.tables`` and the stage config.

Two templates come out of here, both built from the same table description the
local stack and the tests use, so the deployed tables cannot drift from them:

- the **merge template** for ``chalice package --merge-template``: the tables, a
  NoEcho ``JwtSecret`` parameter, each function's environment, name and
  least-privilege role, the stream event source settings Chalice does not expose
  (the requests table's stream, partial batch failures, bisect, capped retries, an
  on-failure queue), log groups with retention;
- the **tables template** for the ``chalice deploy`` flow, which creates only the
  tables and outputs what ``.chalice/config.json`` needs (see ``infra/deploy.py``).

Stage values (table prefix, API Gateway stage) are read from ``.chalice/config.json``,
the file Chalice itself reads, and the functions from ``app.py``'s ``app``. Nothing is
committed in generated form: ``infra/package.py`` writes the merge template into
``build/`` each time, so it cannot go stale. ``python -m infra.template --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chalice.utils import to_cfn_resource_name

from app import app
from chalicelib.tables import TABLES, Table, create_table_request

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_PATH = PROJECT_DIR / ".chalice" / "config.json"
APP_NAME = "streamer"
DEFAULT_TABLE_PREFIX = "streamer_"  # chalicelib.settings' default
STAGES = ("dev", "prod")

# The DynamoDB IAM actions chalicelib's adapters call (tests/deploy/test_iam.py reads
# the code and fails when this list and the code disagree). TransactWriteItems has no
# IAM action of its own: each Put/Update/Delete inside it is authorized as that item
# action, and ConditionCheck (unused) would need dynamodb:ConditionCheckItem.
DYNAMODB_DATA_ACTIONS: tuple[str, ...] = (
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
STREAM_READ_ACTIONS: tuple[str, ...] = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
)
LOG_ACTIONS: tuple[str, ...] = ("logs:CreateLogStream", "logs:PutLogEvents")

# Stream event source settings Chalice's decorator cannot express.
STREAM_MAX_RETRY_ATTEMPTS = 5
STREAM_MAX_RECORD_AGE_SECONDS = 6 * 3600


# Chalice's names for the WebSocket handlers' functions, by route.
WEBSOCKET_FUNCTIONS = {
    "$connect": "websocket_connect",
    "$default": "websocket_message",
    "$disconnect": "websocket_disconnect",
}
# Functions that never post to @connections: API Gateway refuses posts during
# $connect, and at $disconnect the connection is already gone. Every other function
# may publish, so it may post and may hand work to the fan-out workers.
NON_SENDING = frozenset({"websocket_connect", "websocket_disconnect"})
# Functions the app invokes asynchronously, by the setting that carries their name.
WORKER_FUNCTIONS = {"fanout": "FANOUT_FUNCTION_NAME"}


@dataclass(frozen=True)
class Function:
    """One Lambda function of app.py, as ``chalice package`` names it."""

    name: str  # Chalice's name; ``chalice deploy`` calls it <app>-<stage>-<name>
    stream_event: str | None = None  # its DynamoDB event source, for the stream handler

    @property
    def logical_id(self) -> str:
        return to_cfn_resource_name(self.name)

    @property
    def sends(self) -> bool:
        return self.name not in NON_SENDING


def app_functions(chalice_app: Any = app) -> tuple[Function, ...]:
    """Every function ``chalice package`` generates for ``chalice_app``, by name."""
    functions = [Function(WEBSOCKET_FUNCTIONS[route]) for route in chalice_app.websocket_handlers]
    functions += [Function(f.name) for f in chalice_app.pure_lambda_functions]
    for source in chalice_app.event_sources:
        if source.name not in (f.name for f in functions):
            functions.append(Function(source.name))
        if type(source).__name__ == "DynamoDBEventConfig":
            functions = [
                Function(f.name, to_cfn_resource_name(f"{f.name}-dynamodb-event-source"))
                if f.name == source.name else f
                for f in functions
            ]
    return tuple(sorted(functions, key=lambda f: f.name))


WEBSOCKET_API = "WebsocketAPI"
FAILURE_QUEUE = "ProcessFailureQueue"
JWT_PARAMETER = "JwtSecret"
STREAM_TABLE = next(t for t in TABLES if t.stream is not None)


@dataclass(frozen=True)
class Stage:
    """What differs between stages, read from ``.chalice/config.json``."""

    name: str
    table_prefix: str
    api_stage: str

    @property
    def retain_data(self) -> bool:
        """Tables with point-in-time recovery outlive a deleted prod stack."""
        return self.name == "prod"

    def function_name(self, function: Function | str) -> str:
        name = function if isinstance(function, str) else function.name
        return f"{APP_NAME}-{self.name}-{name}"


def load_stage(name: str, config: Mapping[str, Any] | None = None) -> Stage:
    """The stage ``name`` from Chalice's config (read from disk when not given)."""
    if config is None:
        config = json.loads(CONFIG_PATH.read_text())
    stages = config.get("stages", {})
    if name not in stages:
        raise ValueError(f"stage {name!r} is not in .chalice/config.json ({sorted(stages)})")
    stage = stages[name]
    env = {**config.get("environment_variables", {}), **stage.get("environment_variables", {})}
    return Stage(
        name=name,
        table_prefix=env.get("TABLE_PREFIX") or DEFAULT_TABLE_PREFIX,
        api_stage=stage.get("api_gateway_stage", config.get("api_gateway_stage", "api")),
    )


# -- tables -------------------------------------------------------------------


def table_logical_id(table: Table) -> str:
    return f"{table.name.capitalize()}Table"


def table_resource(table: Table, stage: Stage) -> dict[str, Any]:
    """An ``AWS::DynamoDB::Table`` with the same keys and indexes the local stack creates."""
    request = create_table_request(table, stage.table_prefix)
    properties: dict[str, Any] = {
        "TableName": request["TableName"],
        "BillingMode": request["BillingMode"],
        "AttributeDefinitions": request["AttributeDefinitions"],
        "KeySchema": request["KeySchema"],
    }
    if "GlobalSecondaryIndexes" in request:
        properties["GlobalSecondaryIndexes"] = request["GlobalSecondaryIndexes"]
    if "StreamSpecification" in request:
        # CloudFormation spells an enabled stream by its view type alone.
        properties["StreamSpecification"] = {
            "StreamViewType": request["StreamSpecification"]["StreamViewType"]}
    properties["TimeToLiveSpecification"] = {
        "AttributeName": table.ttl_attribute, "Enabled": True}
    if table.point_in_time_recovery:
        properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    policy = "Retain" if stage.retain_data and table.point_in_time_recovery else "Delete"
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": policy,
        "UpdateReplacePolicy": policy,
        "Properties": properties,
    }


def table_resources(stage: Stage) -> dict[str, Any]:
    return {table_logical_id(t): table_resource(t, stage) for t in TABLES}


def failure_queue_resource() -> dict[str, Any]:
    """Where the stream's event source mapping sends what it gave up on (14 days)."""
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {"MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": True},
    }


def tables_template(stage: Stage) -> dict[str, Any]:
    """Only the tables, for the ``chalice deploy`` flow; outputs feed config.json."""
    outputs: dict[str, Any] = {
        "TablePrefix": {"Value": stage.table_prefix},
        "RequestsStreamArn": {
            "Value": {"Fn::GetAtt": [table_logical_id(STREAM_TABLE), "StreamArn"]}},
    }
    for table in TABLES:
        outputs[f"{table_logical_id(table)}Arn"] = {
            "Value": {"Fn::GetAtt": [table_logical_id(table), "Arn"]}}
    outputs["ProcessFailureQueueArn"] = {"Value": {"Fn::GetAtt": [FAILURE_QUEUE, "Arn"]}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Streamer {stage.name}: DynamoDB tables (from chalicelib/tables.py)",
        "Resources": {**table_resources(stage), FAILURE_QUEUE: failure_queue_resource()},
        "Outputs": outputs,
    }


# -- IAM ------------------------------------------------------------------------


class Arns(Protocol):
    """How a policy names its resources: CloudFormation references or literal ARNs."""

    def table(self, table: Table) -> Any: ...
    def index(self, table: Table, index: str) -> Any: ...
    def stream(self, table: Table) -> Any: ...
    def streams(self, table: Table) -> Any: ...
    def log_groups(self, functions: Sequence[Function]) -> Any: ...
    def connections(self) -> Any: ...
    def function(self, name: str) -> Any: ...
    def failure_queue(self) -> Any: ...


@dataclass(frozen=True)
class TemplateArns:
    """ARNs as references into the packaged template (the CloudFormation flow)."""

    stage: Stage

    def table(self, table: Table) -> Any:
        return {"Fn::GetAtt": [table_logical_id(table), "Arn"]}

    def index(self, table: Table, index: str) -> Any:
        return {"Fn::Sub": f"${{{table_logical_id(table)}.Arn}}/index/{index}"}

    def stream(self, table: Table) -> Any:
        return {"Fn::GetAtt": [table_logical_id(table), "StreamArn"]}

    def streams(self, table: Table) -> Any:
        # ListStreams is authorized on the table's streams, not on one stream.
        return {"Fn::Sub": f"${{{table_logical_id(table)}.Arn}}/stream/*"}

    def log_groups(self, functions: Sequence[Function]) -> Any:
        return [{"Fn::GetAtt": [f"{f.logical_id}LogGroup", "Arn"]} for f in functions]

    def connections(self) -> Any:
        return {"Fn::Sub": (
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
            f"${{{WEBSOCKET_API}}}/{self.stage.api_stage}/POST/@connections/*")}

    def function(self, name: str) -> Any:
        # By name, not GetAtt: a worker's own role may name it without a cycle.
        return {"Fn::Sub": ("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:"
                            f"function:{self.stage.function_name(name)}")}

    def failure_queue(self) -> Any:
        return {"Fn::GetAtt": [FAILURE_QUEUE, "Arn"]}


def policy_statements(functions: Sequence[Function], stage: Stage, arns: Arns,
                      *, create_log_groups: bool = False) -> list[dict[str, Any]]:
    """The least privilege that ``functions`` need, together, in ``stage``."""
    log_actions = ["logs:CreateLogGroup", *LOG_ACTIONS] if create_log_groups else LOG_ACTIONS
    statements: list[dict[str, Any]] = [
        {"Sid": "Logs", "Effect": "Allow", "Action": list(log_actions),
         "Resource": arns.log_groups(functions)},
        {"Sid": "Tables", "Effect": "Allow", "Action": list(DYNAMODB_DATA_ACTIONS),
         "Resource": [arns.table(t) for t in TABLES]},
    ]
    indexes = [arns.index(t, i.name) for t in TABLES for i in t.indexes]
    if indexes:  # only Query reads an index
        statements.append({"Sid": "Indexes", "Effect": "Allow", "Action": ["dynamodb:Query"],
                           "Resource": indexes})
    if any(f.sends for f in functions):
        statements.append({"Sid": "Connections", "Effect": "Allow",
                           "Action": ["execute-api:ManageConnections"],
                           "Resource": arns.connections()})
        workers = sorted(WORKER_FUNCTIONS.keys() & {f.name for f in app_functions()})
        if workers:
            statements.append({"Sid": "Workers", "Effect": "Allow",
                               "Action": ["lambda:InvokeFunction"],
                               "Resource": [arns.function(w) for w in workers]})
    if any(f.stream_event for f in functions):
        statements += [
            {"Sid": "Stream", "Effect": "Allow", "Action": list(STREAM_READ_ACTIONS),
             "Resource": arns.stream(STREAM_TABLE)},
            {"Sid": "ListStreams", "Effect": "Allow", "Action": ["dynamodb:ListStreams"],
             "Resource": arns.streams(STREAM_TABLE)},
            {"Sid": "OnFailure", "Effect": "Allow", "Action": ["sqs:SendMessage"],
             "Resource": arns.failure_queue()},
        ]
    return statements


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


# -- the merge template -----------------------------------------------------------


def environment(stage: Stage, functions: Sequence[Function]) -> dict[str, Any]:
    """What every function gets on top of the stage's config.json variables."""
    env: dict[str, Any] = {
        "JWT_SECRET": {"Ref": JWT_PARAMETER},
        "TABLE_PREFIX": stage.table_prefix,
        # The @connections endpoint of this API: `publish` has no event to derive it
        # from, and it stays right behind a custom domain.
        "WS_ENDPOINT_URL": {"Fn::Sub": (
            f"https://${{{WEBSOCKET_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
            f"/{stage.api_stage}")},
    }
    for function in functions:
        if function.name in WORKER_FUNCTIONS:
            env[WORKER_FUNCTIONS[function.name]] = stage.function_name(function)
    return env


def stream_event_properties(failure_queue: Any) -> dict[str, Any]:
    """The event source mapping settings Chalice's decorator cannot express."""
    return {
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": STREAM_MAX_RETRY_ATTEMPTS,
        "MaximumRecordAgeInSeconds": STREAM_MAX_RECORD_AGE_SECONDS,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": failure_queue}},
    }


def merge_template(stage: Stage, functions: Sequence[Function] | None = None) -> dict[str, Any]:
    """The template ``chalice package --merge-template`` merges over its own."""
    functions = app_functions() if functions is None else functions
    arns = TemplateArns(stage)
    resources: dict[str, Any] = table_resources(stage)
    resources[FAILURE_QUEUE] = failure_queue_resource()
    log_retention = 30 if stage.name == "prod" else 7
    for function in functions:
        name = stage.function_name(function)
        resources[f"{function.logical_id}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {"LogGroupName": f"/aws/lambda/{name}",
                           "RetentionInDays": log_retention},
        }
        resources[f"{function.logical_id}Role"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {"Policies": [{
                "PolicyName": f"{function.logical_id}RolePolicy",
                "PolicyDocument": policy_document(policy_statements([function], stage, arns)),
            }]},
        }
        properties: dict[str, Any] = {
            "FunctionName": name,
            "Environment": {"Variables": environment(stage, functions)},
        }
        if function.stream_event:
            properties["Events"] = {function.stream_event: {
                "Type": "DynamoDB",
                "Properties": {"Stream": arns.stream(STREAM_TABLE),
                               **stream_event_properties(arns.failure_queue())},
            }}
        resources[function.logical_id] = {
            "Type": "AWS::Serverless::Function",
            # Lambda must not create the log group itself (without retention) first.
            "DependsOn": [f"{function.logical_id}LogGroup"],
            "Properties": properties,
        }
    outputs: dict[str, Any] = {
        "TablePrefix": {"Value": stage.table_prefix},
        "RequestsStreamArn": {
            "Value": {"Fn::GetAtt": [table_logical_id(STREAM_TABLE), "StreamArn"]}},
        "ProcessFailureQueueUrl": {"Value": {"Ref": FAILURE_QUEUE}},
        "PublishFunctionName": {"Value": {"Ref": "Publish"}},
        "ConnectionsEndpointURL": {"Value": environment(stage, functions)["WS_ENDPOINT_URL"]},
    }
    return {
        "Description": f"Streamer {stage.name}: Chalice app, tables, stream processing",
        "Parameters": {JWT_PARAMETER: {
            "Type": "String",
            "NoEcho": True,
            "MinLength": 32,
            "Description": "HMAC secret for client tokens (at least 32 bytes; 64 for HS512)",
        }},
        "Resources": resources,
        "Outputs": outputs,
    }


def render(template: Mapping[str, Any]) -> str:
    return json.dumps(template, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.template",
        description="Print (or write) the merge template or the tables-only template.")
    parser.add_argument("kind", nargs="?", choices=("merge", "tables"), default="merge")
    parser.add_argument("--stage", default="dev", choices=STAGES)
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    stage = load_stage(args.stage)
    text = render(merge_template(stage) if args.kind == "merge" else tables_template(stage))
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
