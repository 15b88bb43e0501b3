"""Fixtures shared by every test layer.

``dynamodb_endpoint`` is moto's DynamoDB server in a child process on a free loopback
port, one per test session; ``table_prefix`` gives each test its own freshly created
tables on it, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from chalicelib.tables import create_tables
from streamer_local.dynamodb_server import DynamoDBServer

# Dummy credentials and a region for boto3 talking to the local servers; set before
# any client is built. Real AWS is never reached from the tests.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

# Property tests assert what holds, never how fast: Hypothesis' default 200 ms deadline
# per example (and its too_slow health check) failed under load on 2 busy cores. Speed
# is measured in bench/, side by side with a baseline.
hypothesis_settings.register_profile(
    "streamer", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("streamer")


_ENVIRON = os.environ


@pytest.fixture(autouse=True)
def _real_environ() -> Iterator[None]:
    """Put the real os.environ back after each test. chalice.test's Client swaps
    os.environ for a copy during an invocation and back after; two invocations in
    threads at once (fan-out workers) restore in the wrong order and leave a plain dict
    copy there for good. botocore's providers keep reading the real object, so later
    tests' monkeypatched variables (AWS_CA_BUNDLE, say) never reached their clients."""
    yield
    if os.environ is not _ENVIRON:
        os.environ = _ENVIRON  # noqa: B003  (putting the real object back, on purpose)


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    with DynamoDBServer() as server:
        yield server.endpoint_url


@pytest.fixture(scope="session")
def dynamodb_client(dynamodb_endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)


@pytest.fixture
def table_prefix(dynamodb_client: Any) -> str:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    create_tables(dynamodb_client, prefix)
    return prefix
