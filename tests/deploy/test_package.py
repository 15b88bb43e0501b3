"""The packaged CloudFormation template and zip, as ``make package`` builds them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from infra.package import FORBIDDEN_PACKAGES, inspect_zip
from infra.template import JWT_PARAMETER, STREAM_MAX_RETRY_ATTEMPTS
from tests.deploy.conftest import Packaged, cfn_lint, with_expanded_event_sources

DEV_SECRET = "streamer-local-development-secret-never-deploy"
HANDLERS = {
    "WebsocketConnect": "app.connect",
    "WebsocketMessage": "app.message",
    "WebsocketDisconnect": "app.disconnect",
    "Publish": "app.publish",
    "Process": "app.process",
}
MAX_ZIP_BYTES = 5 * 2**20


def _functions(packaged: Packaged) -> dict[str, Any]:
    return packaged.of_type("AWS::Serverless::Function")


def test_cfn_lint_passes(packaged: Packaged) -> None:
    """cfn-lint reports nothing on the packaged template."""
    result = cfn_lint(packaged.out / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_passes_on_the_expanded_mapping(packaged: Packaged, tmp_path: Path) -> None:
    """The stream event source, as the EventSourceMapping SAM makes of it, lints clean."""
    path = tmp_path / "expanded.json"
    path.write_text(json.dumps(with_expanded_event_sources(packaged.template)))
    result = cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_mapping(packaged: Packaged, tmp_path: Path) -> None:
    """The expanded check can fail: a misspelt mapping setting is a lint error."""
    broken = json.loads(packaged.text)
    events = broken["Resources"]["Process"]["Properties"]["Events"]
    next(iter(events.values()))["Properties"]["BisectBatchOnFunctionErrors"] = True
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(with_expanded_event_sources(broken)))
    result = cfn_lint(path)
    assert result.returncode != 0
    assert "BisectBatchOnFunctionErrors" in result.stdout


def test_handlers_and_publish_exist(packaged: Packaged) -> None:
    """Each WebSocket handler, ``publish`` and ``process`` is a function with its handler."""
    functions = _functions(packaged)
    for logical_id, handler in HANDLERS.items():
        assert functions[logical_id]["Properties"]["Handler"] == handler
    routes = {r["Properties"]["RouteKey"] for r in packaged.of_type(
        "AWS::ApiGatewayV2::Route").values()}
    assert routes == {"$connect", "$default", "$disconnect"}


def test_tables_have_ttl_stream_and_recovery(packaged: Packaged) -> None:
    """The packaged tables carry TTL, the requests stream and point-in-time recovery."""
    tables = packaged.of_type("AWS::DynamoDB::Table")
    for table in tables.values():
        assert table["Properties"]["TimeToLiveSpecification"]["Enabled"] is True
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    requests = tables["RequestsTable"]["Properties"]
    assert requests["TableName"] == "streamer_prod_requests"
    assert requests["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert requests["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert tables["RequestsTable"]["DeletionPolicy"] == "Retain"


def test_stream_mapping_settings(packaged: Packaged) -> None:
    """The stream event source reads the requests stream with failure handling on."""
    events = _functions(packaged)["Process"]["Properties"]["Events"]
    (source,) = events.values()
    props = source["Properties"]
    assert source["Type"] == "DynamoDB"
    assert props["Stream"] == {"Fn::GetAtt": ["RequestsTable", "StreamArn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == STREAM_MAX_RETRY_ATTEMPTS
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ProcessFailureQueue", "Arn"]}
    assert packaged.resources["ProcessFailureQueue"]["Type"] == "AWS::SQS::Queue"
    assert (props["BatchSize"], props["StartingPosition"]) == (10, "TRIM_HORIZON")


def test_every_function_gets_its_environment(packaged: Packaged) -> None:
    """Every function gets the secret by reference, the table prefix and the endpoint."""
    for logical_id, function in _functions(packaged).items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["JWT_SECRET"] == {"Ref": JWT_PARAMETER}, logical_id
        assert env["TABLE_PREFIX"] == "streamer_prod_", logical_id
        assert "${WebsocketAPI}" in env["WS_ENDPOINT_URL"]["Fn::Sub"], logical_id
        assert env["WS_ENDPOINT_URL"]["Fn::Sub"].endswith("/prod"), logical_id
        assert function["Properties"]["FunctionName"].startswith("streamer-prod-")


def test_no_secret_value_in_the_template(packaged: Packaged) -> None:
    """The JWT secret is a NoEcho parameter; no secret value is written anywhere."""
    parameter = packaged.template["Parameters"][JWT_PARAMETER]
    assert parameter["NoEcho"] is True
    assert "Default" not in parameter
    assert DEV_SECRET not in packaged.text
    assert not re.search(r'"JWT_SECRET"\s*:\s*"', packaged.text)
    config = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"
    assert "JWT_SECRET" not in config.read_text()


def test_zip_is_lean(packaged: Packaged) -> None:
    """boto3 and botocore are not vendored; the app is; the zip stays small."""
    report = inspect_zip(packaged.out / "deployment.zip")
    print(report.summary())
    assert not report.top_level & FORBIDDEN_PACKAGES
    assert {"app", "chalicelib", "jwt", "aws_lambda_powertools"} <= report.top_level
    assert 0 < report.size_bytes < MAX_ZIP_BYTES


def test_zip_holds_no_test_kit_or_local_tooling(packaged: Packaged) -> None:
    """The test kit (local/testapp.py, local/testkit.py) and the rest of local/ and
    tests/ stay out of the Lambda package."""
    import zipfile

    with zipfile.ZipFile(packaged.out / "deployment.zip") as archive:
        names = archive.namelist()
    assert "chalicelib/custom.py" in names
    assert not [n for n in names if n.startswith(("local/", "tests/", "bench/"))
                or n in ("chalicelib/testing.py", "chalicelib/testkit.py")]


def test_a_failed_package_is_one_line_naming_what_it_needs(tmp_path: Path) -> None:
    """chalice package's failure (offline, say) is reported in one line that names
    PyPI and the log holding the traceback, not as the traceback."""
    from infra.package import failure_message

    output = "Traceback (most recent call last):\n  File ...\nchalice.deploy.packager.X: boom\n"
    message = failure_message(2, output, tmp_path / "package-dev.log")
    assert "\n" not in message
    assert "exited 2: chalice.deploy.packager.X: boom" in message
    assert "PyPI" in message and str(tmp_path / "package-dev.log") in message
