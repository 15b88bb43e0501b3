"""The one description of Streamer's DynamoDB tables.

Everything that needs to know a table's shape reads it from here: the storage
adapter (attribute and index names), the test fixtures and the local stack (which
create the tables), and the deployment template (which is generated from and tested
against it). Change a table here and nowhere else.

Keys (see DESIGN.md, "Data model principles"):

- ``connections``: one row per WebSocket connection, by ``connection_id``; the
  ``by_user`` index finds a user's connections (``tenant#user``).
- ``subscriptions``: one row per (channel shard, connection). The partition key is
  ``tenant#channel#shard``, built on the server from the validated tenant claim, so
  fan-out reads one partition per shard; the ``by_connection`` index finds a
  connection's subscriptions for cleanup on disconnect.
- ``requests``: asynchronous requests, by ``request_id``; its stream drives the
  processor; ``by_connection`` finds a connection's requests to cancel them.
- ``channels``: one row per tenant#channel holding its ``offset`` counter and
  ``epoch`` (docs/protocol.md section 6); a publish moves it in one transaction with
  the ``history`` row it writes.
- ``history``: the last messages of each channel, by ``tenant#channel`` and
  ``position`` (the offset, zero-padded so string order is offset order), so a resume
  or a ``history`` read is one Query.
- ``idempotency``: Powertools' idempotency records, so a retried fan-out worker never
  delivers a shard group twice.

Streamer's own tables use ``expires_at`` (epoch seconds) as their TTL attribute, and
readers ignore rows whose ``expires_at`` has passed, because TTL deletion lags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TTL_ATTRIBUTE = "expires_at"

Projection = Literal["ALL", "KEYS_ONLY"]
StreamView = Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"]


@dataclass(frozen=True)
class Index:
    """A global secondary index: string keys only."""

    name: str
    partition_key: str
    sort_key: str | None = None
    projection: Projection = "KEYS_ONLY"


@dataclass(frozen=True)
class Table:
    """A table: string keys only, on-demand billing, TTL on ``expires_at``."""

    name: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[Index, ...] = field(default=())
    stream: StreamView | None = None
    point_in_time_recovery: bool = False
    ttl_attribute: str = TTL_ATTRIBUTE

    def physical_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def key_attributes(self) -> list[str]:
        names: list[str] = []
        for attr in (self.partition_key, self.sort_key):
            if attr is not None and attr not in names:
                names.append(attr)
        for index in self.indexes:
            for attr in (index.partition_key, index.sort_key):
                if attr is not None and attr not in names:
                    names.append(attr)
        return names


CONNECTIONS = Table(
    name="connections",
    partition_key="connection_id",
    indexes=(Index("by_user", partition_key="user_key", sort_key="connection_id",
                   projection="ALL"),),
)

SUBSCRIPTIONS = Table(
    name="subscriptions",
    partition_key="channel_key",
    sort_key="connection_id",
    indexes=(Index("by_connection", partition_key="connection_id", sort_key="channel_key"),),
)

REQUESTS = Table(
    name="requests",
    partition_key="request_id",
    indexes=(Index("by_connection", partition_key="connection_id", sort_key="request_id"),),
    stream="NEW_AND_OLD_IMAGES",
    point_in_time_recovery=True,
)

# Powertools' idempotency records for fan-out workers (one per message and shard
# group), in the schema its DynamoDBPersistenceLayer expects: key "id", TTL
# "expiration" (Powertools checks expiry itself on read).
IDEMPOTENCY = Table(name="idempotency", partition_key="id", ttl_attribute="expiration")

CHANNELS = Table(name="channels", partition_key="channel_key")

HISTORY = Table(name="history", partition_key="channel_key", sort_key="position")

TABLES: tuple[Table, ...] = (CONNECTIONS, SUBSCRIPTIONS, REQUESTS, IDEMPOTENCY, CHANNELS,
                             HISTORY)


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key is not None:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return schema


def create_table_request(table: Table, prefix: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments for ``table`` (boto3 client spelling)."""
    request: dict[str, Any] = {
        "TableName": table.physical_name(prefix),
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in table.key_attributes()
        ],
        "KeySchema": _key_schema(table.partition_key, table.sort_key),
    }
    if table.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in table.indexes
        ]
    if table.stream is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream}
    return request


def create_tables(client: Any, prefix: str) -> dict[str, str]:
    """Create every table (and its TTL) with a boto3 DynamoDB client.

    Returns the stream ARN of each table that has a stream, by logical name. Tables
    that exist already are left as they are. For the local stack and tests; AWS
    deployments use the generated template instead.
    """
    existing = {name for page in client.get_paginator("list_tables").paginate()
                for name in page.get("TableNames", [])}  # pages hold 100 names
    arns: dict[str, str] = {}
    for table in TABLES:
        name = table.physical_name(prefix)
        if name not in existing:
            client.create_table(**create_table_request(table, prefix))
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
        if table.stream is not None:
            description = client.describe_table(TableName=name)["Table"]
            arns[table.name] = description["LatestStreamArn"]
    return arns
