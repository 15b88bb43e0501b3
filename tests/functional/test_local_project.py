"""A Chalice project's stage environment and CloudFormation tables, as the emulator reads them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamer_local.project import (
    ProjectError,
    api_gateway_stage,
    create_tables,
    load_template,
    stage_environment,
    table_definitions,
)


def write_config(root: Path, config: dict[str, Any]) -> None:
    (root / ".chalice").mkdir()
    (root / ".chalice" / "config.json").write_text(json.dumps(config))


def test_stage_variables_override_the_top_level_ones(tmp_path: Path) -> None:
    """The stage's environment_variables win over the top-level ones, as in deploy."""
    write_config(tmp_path, {
        "version": "2.0", "app_name": "chat",
        "environment_variables": {"TABLE": "top", "ONLY_TOP": 1},
        "stages": {"dev": {"environment_variables": {"TABLE": "dev-table"}},
                   "prod": {}},
    })
    assert stage_environment(tmp_path, "dev") == {"TABLE": "dev-table", "ONLY_TOP": "1"}
    assert stage_environment(tmp_path, "prod") == {"TABLE": "top", "ONLY_TOP": "1"}


def test_an_unknown_stage_or_bad_json_is_a_clear_error(tmp_path: Path) -> None:
    """A stage the config lacks, or a config that is not JSON, names the file and why."""
    write_config(tmp_path, {"stages": {"dev": {}}})
    with pytest.raises(ProjectError, match="no stage 'qa' \\(stages: dev\\)"):
        stage_environment(tmp_path, "qa")
    (tmp_path / ".chalice" / "config.json").write_text("{nope")
    with pytest.raises(ProjectError, match="not JSON"):
        stage_environment(tmp_path, "dev")
    assert stage_environment(tmp_path / "missing", "dev") == {}


TEMPLATE: dict[str, Any] = {
    "Parameters": {"Prefix": {"Type": "String", "Default": "chat-"}},
    "Resources": {
        "Messages": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": {"Ref": "NameParam"},
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "room", "KeyType": "HASH"},
                          {"AttributeName": "ts", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "room", "AttributeType": "S"},
                                     {"AttributeName": "ts", "AttributeType": "N"}],
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"}}},
        "Users": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": "chat-users",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
    },
}


def test_table_resources_become_create_table_parameters() -> None:
    """Only DynamoDB tables are taken; names resolve from text, else the logical id;
    tables without a billing mode get on-demand capacity locally."""
    tables = {t["TableName"]: t for t in table_definitions(TEMPLATE)}
    assert sorted(tables) == ["Messages", "chat-users"]
    assert tables["Messages"]["StreamSpecification"] == {"StreamEnabled": True,
                                                         "StreamViewType": "NEW_IMAGE"}
    assert tables["chat-users"]["BillingMode"] == "PAY_PER_REQUEST"
    with pytest.raises(ProjectError, match="table Broken: KeySchema"):
        table_definitions({"Resources": {"Broken": {"Type": "AWS::DynamoDB::Table",
                                                    "Properties": {}}}})


def test_tables_are_created_on_the_dynamodb_server(dynamodb_client: Any,
                                                   tmp_path: Path) -> None:
    """create_tables makes each table once (a second call changes nothing) and returns
    the stream ARN of the tables that have a stream."""
    suffix = uuid.uuid4().hex[:8]
    template = json.loads(json.dumps(TEMPLATE))
    template["Resources"]["Users"]["Properties"]["TableName"] = f"users-{suffix}"
    template["Resources"]["Messages"]["Properties"]["TableName"] = f"messages-{suffix}"
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(template))
    definitions = table_definitions(load_template(path))
    arns = create_tables(dynamodb_client, definitions)
    assert create_tables(dynamodb_client, definitions) == arns
    assert list(arns) == [f"messages-{suffix}"]
    names = {name for page in dynamodb_client.get_paginator("list_tables").paginate()
             for name in page["TableNames"]}  # the session's server holds many tables
    assert {f"users-{suffix}", f"messages-{suffix}"} <= names
    for name in (f"users-{suffix}", f"messages-{suffix}"):
        dynamodb_client.delete_table(TableName=name)


def test_a_template_that_is_missing_or_not_json_is_a_clear_error(tmp_path: Path) -> None:
    """load_template names the file and what is wrong with it."""
    with pytest.raises(ProjectError, match="no such file"):
        load_template(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ProjectError, match="not a CloudFormation template"):
        load_template(tmp_path / "bad.json")


def test_api_gateway_stage_follows_the_config(tmp_path: Path) -> None:
    """The gateway's stage is the stage's api_gateway_stage, else the top-level one,
    else Chalice's default, api."""
    assert api_gateway_stage(tmp_path, "dev") == "api"
    write_config(tmp_path, {"api_gateway_stage": "v1",
                            "stages": {"dev": {"api_gateway_stage": "dev-api"}, "qa": {}}})
    assert api_gateway_stage(tmp_path, "dev") == "dev-api"
    assert api_gateway_stage(tmp_path, "qa") == "v1"


def test_the_emulator_package_imports_no_streamer_code() -> None:
    """streamer_local loads neither chalicelib nor local (Streamer's own), so a user's
    project can have its own chalicelib/."""
    import subprocess
    import sys

    code = ("import sys, pkgutil, importlib, streamer_local\n"
            "for m in pkgutil.iter_modules(streamer_local.__path__):\n"
            "    importlib.import_module('streamer_local.' + m.name)\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] in ('chalicelib', 'local')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]"
