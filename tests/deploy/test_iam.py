"""Least privilege: the roles grant what chalicelib calls, on Streamer's resources only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import botocore.session

from chalicelib.tables import TABLES
from infra.template import DYNAMODB_DATA_ACTIONS, NON_SENDING, table_logical_id
from tests.deploy.conftest import Packaged

CHALICELIB = Path(__file__).resolve().parents[2] / "chalicelib"
# Local-only helpers that never run in Lambda: table creation and the test kit.
NOT_DEPLOYED_CALLERS = {"tables.py", "testing.py"}
TRANSACTION_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem",
                            "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
# Powertools' DynamoDBPersistenceLayer (idempotency) calls these on its table.
POWERTOOLS_IDEMPOTENCY_ACTIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def dynamodb_actions_in_code() -> set[str]:
    """The IAM actions behind every DynamoDB operation chalicelib's deployed code names."""
    operations = botocore.session.get_session().get_service_model("dynamodb").operation_names
    found: set[str] = set()
    for path in CHALICELIB.glob("*.py"):
        if path.name in NOT_DEPLOYED_CALLERS:
            continue
        source = path.read_text()
        for op in operations:
            if re.search(rf'\.{_snake(op)}\(|"{op}"|"{_snake(op)}"', source):
                found.add(op)
        if "transact_write_items" in source:
            found |= {action for key, action in TRANSACTION_ITEM_ACTIONS.items()
                      if re.search(rf'"{key}"\s*:\s*{{', source)}
        if "DynamoDBPersistenceLayer" in source:
            found |= POWERTOOLS_IDEMPOTENCY_ACTIONS
    found.discard("TransactWriteItems")  # no IAM action of its own
    return {f"dynamodb:{op}" for op in found}


def _statements(packaged: Packaged, role: str) -> dict[str, dict[str, Any]]:
    policies = packaged.resources[role]["Properties"]["Policies"]
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def test_granted_actions_are_exactly_those_the_code_calls() -> None:
    """The DynamoDB actions granted equal the operations chalicelib calls, no more."""
    assert set(DYNAMODB_DATA_ACTIONS) == dynamodb_actions_in_code()


def test_every_role_is_replaced_by_the_merge_template(packaged: Packaged) -> None:
    """Each function has its own role with only our scoped policy: nothing is ``*``."""
    roles = packaged.of_type("AWS::IAM::Role")
    functions = packaged.of_type("AWS::Serverless::Function")
    assert {f"{name}Role" for name in functions} == set(roles)
    for role in roles:
        for statement in _statements(packaged, role).values():
            assert statement["Effect"] == "Allow"
            for resource in _resources(statement):
                assert isinstance(resource, dict), (role, resource)  # a reference, never "*"
                assert "*:*" not in str(resource) and "arn:*" not in str(resource)


def test_dynamodb_resources_are_the_tables_and_indexes(packaged: Packaged) -> None:
    """Table actions name the table ARNs; Query alone reaches the indexes by name."""
    tables = [{"Fn::GetAtt": [table_logical_id(t), "Arn"]} for t in TABLES]
    indexes = [{"Fn::Sub": f"${{{table_logical_id(t)}.Arn}}/index/{i.name}"}
               for t in TABLES for i in t.indexes]
    for role in packaged.of_type("AWS::IAM::Role"):
        statements = _statements(packaged, role)
        assert statements["Tables"]["Resource"] == tables
        assert statements["Indexes"]["Resource"] == indexes
        assert statements["Indexes"]["Action"] == ["dynamodb:Query"]
        dynamo = {sid for sid, s in statements.items()
                  if any(a.startswith("dynamodb:") for a in s["Action"])}
        assert dynamo <= {"Tables", "Indexes", "Stream", "ListStreams"}


def test_manage_connections_on_this_api_and_stage_only(packaged: Packaged) -> None:
    """Only functions that post may manage connections, and only on this API's stage."""
    for logical_id, function in packaged.of_type("AWS::Serverless::Function").items():
        statements = _statements(packaged, f"{logical_id}Role")
        handler = function["Properties"]["Handler"]
        if handler in {"app.connect", "app.disconnect"}:
            assert "Connections" not in statements, logical_id
            continue
        connections = statements["Connections"]
        assert connections["Action"] == ["execute-api:ManageConnections"]
        assert connections["Resource"]["Fn::Sub"].endswith(
            ":${WebsocketAPI}/prod/POST/@connections/*")
    assert {"websocket_connect", "websocket_disconnect"} == NON_SENDING


def test_only_the_stream_handler_reads_the_stream(packaged: Packaged) -> None:
    """Stream reads and the on-failure queue belong to the ``process`` role alone."""
    for role in packaged.of_type("AWS::IAM::Role"):
        statements = _statements(packaged, role)
        if role != "ProcessRole":
            assert not {"Stream", "ListStreams", "OnFailure"} & set(statements), role
            continue
        assert statements["Stream"]["Resource"] == {
            "Fn::GetAtt": ["RequestsTable", "StreamArn"]}
        assert statements["ListStreams"]["Resource"] == {
            "Fn::Sub": "${RequestsTable.Arn}/stream/*"}
        assert statements["OnFailure"] == {
            "Sid": "OnFailure", "Effect": "Allow", "Action": ["sqs:SendMessage"],
            "Resource": {"Fn::GetAtt": ["ProcessFailureQueue", "Arn"]}}


def test_logs_go_to_the_functions_own_group(packaged: Packaged) -> None:
    """Each role writes logs only to its function's log group, which has a retention."""
    for logical_id in packaged.of_type("AWS::Serverless::Function"):
        logs = _statements(packaged, f"{logical_id}Role")["Logs"]
        assert logs["Resource"] == [{"Fn::GetAtt": [f"{logical_id}LogGroup", "Arn"]}]
        group = packaged.resources[f"{logical_id}LogGroup"]["Properties"]
        assert group["RetentionInDays"] > 0
