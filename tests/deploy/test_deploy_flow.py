"""The ``chalice deploy`` flow's offline parts: policy, config update, API discovery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.tables import TABLES
from infra import deploy
from infra.deploy import LiteralArns, deploy_policy, websocket_api_id, with_stage_env
from infra.template import CONFIG_PATH, load_stage

STREAM = ("arn:aws:dynamodb:eu-west-1:123456789012:table/streamer_prod_requests/"
          "stream/2026-01-01T00:00:00.000")
OUTPUTS = {"RequestsStreamArn": STREAM, "TablePrefix": "streamer_prod_",
           "ProcessFailureQueueArn": "arn:aws:sqs:eu-west-1:123456789012:q"}


def _statements(policy: dict[str, Any]) -> dict[str, Any]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_policy_names_this_accounts_tables_only() -> None:
    """The deploy policy lists the stage's table and index ARNs in this account and region."""
    stage = load_stage("prod")
    statements = _statements(deploy_policy(LiteralArns.from_outputs(stage, OUTPUTS)))
    prefix = "arn:aws:dynamodb:eu-west-1:123456789012:table/streamer_prod_"
    assert statements["Tables"]["Resource"] == [f"{prefix}{t.name}" for t in TABLES]
    assert all(r.startswith(prefix) and "/index/" in r
               for r in statements["Indexes"]["Resource"])
    assert statements["Stream"]["Resource"] == STREAM
    assert "*" not in json.dumps(statements["Tables"])


def test_policy_narrows_to_the_api_once_known() -> None:
    """Before the first deploy any API of the stage; afterwards only the created one."""
    stage = load_stage("prod")
    before = _statements(deploy_policy(LiteralArns.from_outputs(stage, OUTPUTS)))
    after = _statements(deploy_policy(LiteralArns.from_outputs(stage, OUTPUTS, "abc123")))
    assert before["Connections"]["Resource"].endswith(":*/prod/POST/@connections/*")
    assert after["Connections"]["Resource"] == (
        "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/@connections/*")


def test_stage_env_is_updated_in_a_copy() -> None:
    """Writing stage variables leaves the original config and other stages alone."""
    config = json.loads(CONFIG_PATH.read_text())
    updated = with_stage_env(config, "prod", {"REQUESTS_STREAM_ARN": STREAM})
    assert updated["stages"]["prod"]["environment_variables"]["REQUESTS_STREAM_ARN"] == STREAM
    assert "REQUESTS_STREAM_ARN" not in config["stages"]["prod"]["environment_variables"]
    assert updated["stages"]["dev"] == config["stages"]["dev"]


def test_websocket_api_id_is_read_from_deployed_json() -> None:
    """The API id comes from Chalice's deployed record, and is None before a deploy."""
    deployed = {"resources": [{"resource_type": "lambda_function", "name": "x"},
                              {"resource_type": "websocket_api", "websocket_api_id": "abc"}]}
    assert websocket_api_id(deployed) == "abc"
    assert websocket_api_id({"resources": []}) is None


def test_app_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``app`` stops before any AWS call when the secret is missing or short."""
    monkeypatch.setenv(deploy.SECRET_ENV, "short")
    with pytest.raises(SystemExit, match=deploy.SECRET_ENV):
        deploy.main(["app", "--stage", "dev", "--dry-run"])


def test_dry_run_tables_prints_the_tables_template(capsys: pytest.CaptureFixture[str]) -> None:
    """``tables --dry-run`` prints the CloudFormation command and template, nothing else."""
    assert deploy.main(["tables", "--stage", "prod", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "streamer-prod-tables" in out
    assert '"StreamViewType": "NEW_AND_OLD_IMAGES"' in out
