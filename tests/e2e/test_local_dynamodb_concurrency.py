"""The local DynamoDB server under concurrent writers: moto is not thread-safe."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

WRITERS = 40
ROUNDS = 3


def test_concurrent_writes_all_succeed(dynamodb_endpoint: str, table_prefix: str) -> None:
    """Forty threads writing at once (transactions and single puts) never get an error."""
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                    max_pool_connections=WRITERS, connect_timeout=5, read_timeout=30)
    client: Any = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, config=config)
    table = f"{table_prefix}idempotency"
    start = threading.Barrier(WRITERS, timeout=30)

    def write(writer: int) -> None:
        start.wait()
        for round_ in range(ROUNDS):
            key = f"w{writer}-r{round_}"
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "Item": {"id": {"S": f"{key}-{n}"}}}}
                for n in range(3)
            ])
            client.put_item(TableName=table, Item={"id": {"S": f"{key}-single"}})

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            futures = [pool.submit(write, writer) for writer in range(WRITERS)]
            errors = [repr(e) for e in (f.exception(timeout=60) for f in futures) if e]
        assert errors == []
        count = client.scan(TableName=table, Select="COUNT")["Count"]
        assert count == WRITERS * ROUNDS * 4
    finally:
        client.close()
