"""Asynchronous Lambda invocations in worker processes (``--lambda-processes``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from chalicelib import runtime
from chalicelib.tables import TABLES
from local.stack import app_environment, load_app
from streamer_local.settings import GatewaySettings
from streamer_local.testing import GatewayThread
from tests.e2e.streamer_fixtures import SECRET, StreamerStack, wait_until

CLIENTS = 40


def test_large_publish_is_delivered_once_by_worker_processes(
    dynamodb_endpoint: str, dynamodb_client: Any, table_prefix: str
) -> None:
    """A publish above the worker threshold reaches each subscriber once, from other pids."""
    lambda_env: dict[str, str] = {}  # filled once the port is known; copied at first use
    gateway = GatewayThread(load_app("app:app"), settings=GatewaySettings(lambda_processes=2),
                            app_spec="app:app", lambda_env=lambda_env).start()
    stack = StreamerStack(gateway, table_prefix, dynamodb_client)
    pids: list[int] = []
    try:
        lambda_env.update(app_environment(
            dynamodb_endpoint_url=dynamodb_endpoint, table_prefix=table_prefix,
            ws_endpoint_url=gateway.connections_url, secret=SECRET, stream_arns={},
        ))
        lambda_env.update({
            "LAMBDA_ENDPOINT_URL": gateway.http_url, "FANOUT_FUNCTION_NAME": "fanout",
            "FANOUT_WORKER_THRESHOLD": "8", "SUBSCRIPTION_SHARDS": "4",
            "FANOUT_SHARDS_PER_WORKER": "2", "SEND_BACKOFF_SECONDS": "0.01",
            "LOG_LEVEL": "WARNING",
        })
        runtime.configure(runtime.build(lambda_env))
        receivers = [stack.client(user=f"r{i}", permissions=("read",)) for i in range(CLIENTS)]
        for receiver in receivers:
            receiver.subscribe("big")
        publisher = stack.client(user="pub")
        started = time.monotonic()
        ack = publisher.call({"action": "publish", "id": "p1", "channel": "big",
                              "data": {"n": 1}}, timeout=30)
        assert ack["type"] == "ack", ack
        for receiver in receivers:
            receiver.wait_for(lambda f: f.get("type") == "message", timeout=60)
        assert time.monotonic() - started < 60
        for receiver in receivers:
            receiver.drain(0.05)
        time.sleep(0.5)
        for receiver in receivers:
            receiver.drain(0.05)
            assert len(receiver.messages("big")) == 1, receiver.frames
        processes = gateway.gateway.processes
        assert processes is not None
        wait_until(lambda: sum(processes.pids.values()) >= 2, what="both worker invocations")
        pids = list(processes.pids)
        assert pids and os.getpid() not in pids, pids
    finally:
        stack.close_all()
        gateway.stop()
        runtime.reset()
        # Leave the session's moto server as it was: create_tables reads one page of
        # ListTables (100 names), so each extra set of tables brings that limit closer.
        for table in TABLES:
            dynamodb_client.delete_table(TableName=table.physical_name(table_prefix))
    for pid in pids:  # stopped and reaped: no orphans
        assert not Path(f"/proc/{pid}").exists(), f"worker process {pid} still running"
