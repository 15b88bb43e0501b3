"""The generated templates match the one table description and the stage config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.tables import TABLES, create_table_request
from infra import template
from infra.template import Stage, load_stage, merge_template, table_logical_id, tables_template

CONFIG: dict[str, Any] = {
    "environment_variables": {"TABLE_PREFIX": "global_"},
    "stages": {"a": {"api_gateway_stage": "v1"},
               "b": {"environment_variables": {"TABLE_PREFIX": "b_"}}},
}


def test_tables_match_the_local_stack_description() -> None:
    """Keys, attributes and indexes equal what the local stack's CreateTable uses."""
    stage = load_stage("dev")
    resources = tables_template(stage)["Resources"]
    for table in TABLES:
        props = resources[table_logical_id(table)]["Properties"]
        request = create_table_request(table, stage.table_prefix)
        for key in ("TableName", "BillingMode", "AttributeDefinitions", "KeySchema"):
            assert props[key] == request[key], (table.name, key)
        assert props.get("GlobalSecondaryIndexes") == request.get("GlobalSecondaryIndexes")
        assert props["TimeToLiveSpecification"] == {
            "AttributeName": table.ttl_attribute, "Enabled": True}


def test_only_described_streams_and_recovery() -> None:
    """A table has a stream or point-in-time recovery only if the description says so."""
    resources = tables_template(load_stage("dev"))["Resources"]
    for table in TABLES:
        props = resources[table_logical_id(table)]["Properties"]
        stream = props.get("StreamSpecification", {}).get("StreamViewType")
        assert stream == table.stream
        recovery = props.get("PointInTimeRecoverySpecification", {})
        assert recovery.get("PointInTimeRecoveryEnabled", False) is table.point_in_time_recovery


def test_prod_retains_recoverable_tables_and_dev_does_not() -> None:
    """Prod keeps tables with recovery on stack deletion; dev deletes everything."""
    for stage, kept in (("prod", "Retain"), ("dev", "Delete")):
        resources = tables_template(load_stage(stage))["Resources"]
        for table in TABLES:
            expected = kept if table.point_in_time_recovery else "Delete"
            assert resources[table_logical_id(table)]["DeletionPolicy"] == expected


def test_stage_values_come_from_chalice_config() -> None:
    """The table prefix and API stage are read from config.json, stage over global."""
    assert load_stage("a", CONFIG) == Stage("a", "global_", "v1")
    assert load_stage("b", CONFIG) == Stage("b", "b_", "api")
    assert load_stage("prod").table_prefix == "streamer_prod_"
    assert load_stage("dev").table_prefix == "streamer_"


def test_unknown_stage_is_refused() -> None:
    """A stage missing from config.json is an error naming the known stages."""
    with pytest.raises(ValueError, match="'a', 'b'"):
        load_stage("staging", CONFIG)


def test_functions_are_read_from_the_app() -> None:
    """Every function of app.py is found, and the stream handler's event source named."""
    functions = {f.name: f for f in template.app_functions()}
    assert {"websocket_connect", "websocket_message", "websocket_disconnect", "publish",
            "process"} <= set(functions)
    assert functions["process"].stream_event == "ProcessDynamodbEventSource"
    assert functions["websocket_connect"].logical_id == "WebsocketConnect"


def test_merge_template_covers_every_function() -> None:
    """The merge template names, configures and gives a role to every app function."""
    resources = merge_template(load_stage("dev"))["Resources"]
    for function in template.app_functions():
        assert resources[function.logical_id]["Properties"]["FunctionName"] == (
            f"streamer-dev-{function.name}")
        assert f"{function.logical_id}Role" in resources


def test_tables_template_outputs_what_config_needs() -> None:
    """The tables-only stack outputs the stream ARN, prefix and failure queue."""
    outputs = tables_template(load_stage("prod"))["Outputs"]
    assert outputs["RequestsStreamArn"]["Value"] == {
        "Fn::GetAtt": ["RequestsTable", "StreamArn"]}
    assert outputs["TablePrefix"]["Value"] == "streamer_prod_"
    assert "ProcessFailureQueueArn" in outputs


def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m infra.template tables`` prints a parseable template."""
    assert template.main(["tables", "--stage", "prod"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == tables_template(load_stage("prod"))
