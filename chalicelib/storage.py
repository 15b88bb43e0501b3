"""Persistence: :class:`DynamoStorage`, the one adapter of :class:`chalicelib.interfaces.Storage`.

Every access is a GetItem, a Query or a batch by key (no Scan). Rows whose
``expires_at`` has passed are ignored on read, because DynamoDB's TTL deletes late.
Attribute maps are turned into records only in :func:`_connection_from_item`, and
botocore errors become :class:`StorageError` here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.dynamodb import (
    call,
    cancellation_codes,
    conditional,
    error_code,
    query,
    update_if,
)
from chalicelib.errors import LimitExceeded, StorageError
from chalicelib.model import Connection, channel_key, shard_of, user_key
from chalicelib.tables import CONNECTIONS, SUBSCRIPTIONS

BATCH_WRITE_LIMIT = 25
BATCH_RETRIES = 8


class DynamoStorage:
    """:class:`chalicelib.interfaces.Storage` on DynamoDB through a boto3 low-level client."""

    def __init__(self, client: Any, prefix: str, shards: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = client
        self._connections = CONNECTIONS.physical_name(prefix)
        self._subscriptions = SUBSCRIPTIONS.physical_name(prefix)
        self._shards = shards
        self._clock = clock

    # -- connections ---------------------------------------------------------

    def put_connection(self, connection: Connection) -> None:
        item = {
            "connection_id": {"S": connection.connection_id},
            "user_key": {"S": user_key(connection.tenant_id, connection.user_id)},
            "user_id": {"S": connection.user_id},
            "tenant_id": {"S": connection.tenant_id},
            "permissions": {"L": [{"S": p} for p in sorted(connection.permissions)]},
            "connected_at": {"N": str(connection.connected_at_ms)},
            "token_expires_at": {"N": str(connection.token_expires_at)},
            "expires_at": {"N": str(connection.expires_at)},
            "sub_count": {"N": str(connection.subscription_count)},
        }
        call(self._db, "put_item", TableName=self._connections, Item=item)

    def get_connection(self, connection_id: str) -> Connection | None:
        response = call(
            self._db, "get_item", TableName=self._connections,
            Key={"connection_id": {"S": connection_id}}, ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        connection = _connection_from_item(item)
        return connection if connection.expires_at > self._clock() else None

    def user_connections(self, tenant_id: str, user_id: str) -> list[str]:
        return [
            item["connection_id"]["S"]
            for item in query(self._db,
                TableName=self._connections, IndexName="by_user",
                KeyConditionExpression="user_key = :k",
                FilterExpression="expires_at > :now AND token_expires_at > :now",
                ProjectionExpression="connection_id",
                ExpressionAttributeValues={
                    ":k": {"S": user_key(tenant_id, user_id)},
                    ":now": {"N": str(int(self._clock()))},
                },
            )
        ]

    # -- subscriptions -------------------------------------------------------

    def _subscription_key(self, tenant_id: str, channel: str,
                          connection_id: str) -> dict[str, Any]:
        key = channel_key(tenant_id, channel, shard_of(connection_id, self._shards))
        return {"channel_key": {"S": key}, "connection_id": {"S": connection_id}}

    def subscribe(self, connection: Connection, channel: str, limit: int) -> bool:
        key = self._subscription_key(connection.tenant_id, channel, connection.connection_id)
        # One transaction keeps the per-connection count and the row in step, so
        # concurrent subscribes cannot pass the limit and a repeat is not counted.
        try:
            self._db.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self._connections,
                    "Key": {"connection_id": {"S": connection.connection_id}},
                    "UpdateExpression": "SET sub_count = if_not_exists(sub_count, :zero) + :one",
                    "ConditionExpression": "attribute_exists(connection_id) AND "
                                           "(attribute_not_exists(sub_count) OR sub_count < :max)",
                    "ExpressionAttributeValues": {
                        ":zero": {"N": "0"}, ":one": {"N": "1"}, ":max": {"N": str(limit)},
                    },
                }},
                {"Put": {
                    "TableName": self._subscriptions,
                    "Item": {
                        **key,
                        "tenant_id": {"S": connection.tenant_id},
                        "channel": {"S": channel},
                        "expires_at": {"N": str(connection.subscription_expires_at)},
                    },
                    "ConditionExpression": "attribute_not_exists(connection_id)",
                }},
            ])
        except ClientError as exc:
            reasons = cancellation_codes(exc)
            if reasons is None:
                raise StorageError(f"subscribe failed: {error_code(exc)}") from exc
            if reasons[1] == "ConditionalCheckFailed":
                return False  # already subscribed
            if reasons[0] == "ConditionalCheckFailed":
                raise LimitExceeded(f"at most {limit} subscriptions per connection") from None
            raise StorageError(f"subscribe cancelled: {reasons}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"subscribe failed: {type(exc).__name__}") from exc
        return True

    def unsubscribe(self, connection: Connection, channel: str) -> bool:
        key = self._subscription_key(connection.tenant_id, channel, connection.connection_id)
        try:
            self._db.transact_write_items(TransactItems=[
                {"Delete": {
                    "TableName": self._subscriptions, "Key": key,
                    "ConditionExpression": "attribute_exists(connection_id)",
                }},
                {"Update": {
                    "TableName": self._connections,
                    "Key": {"connection_id": {"S": connection.connection_id}},
                    "UpdateExpression": "SET sub_count = sub_count - :one",
                    "ConditionExpression": "attribute_exists(connection_id) AND sub_count > :zero",
                    "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}},
                }},
            ])
        except ClientError as exc:
            reasons = cancellation_codes(exc)
            if reasons is None:
                raise StorageError(f"unsubscribe failed: {error_code(exc)}") from exc
            if reasons[0] == "ConditionalCheckFailed":
                return False
            # The connection row is gone or its count is off: still drop the row.
            call(self._db, "delete_item", TableName=self._subscriptions, Key=key)
            return True
        except BotoCoreError as exc:
            raise StorageError(f"unsubscribe failed: {type(exc).__name__}") from exc
        return True

    @property
    def shards(self) -> int:
        return self._shards

    def subscribers(self, tenant_id: str, channel: str,
                    shards: list[int] | None = None) -> list[str]:
        now = str(int(self._clock()))
        ids: list[str] = []
        for shard in range(self._shards) if shards is None else shards:
            # Consistent: a subscriber acked before a publish is committed gets it,
            # which a resume relies on (chalicelib/continuity.py).
            for item in query(self._db,
                TableName=self._subscriptions, ConsistentRead=True,
                KeyConditionExpression="channel_key = :k",
                FilterExpression="expires_at > :now",
                ProjectionExpression="connection_id",
                ExpressionAttributeValues={
                    ":k": {"S": channel_key(tenant_id, channel, shard)},
                    ":now": {"N": now},
                },
            ):
                ids.append(item["connection_id"]["S"])
        return ids

    def refresh(self, connection: Connection, token_expires_at: int,
                permissions: frozenset[str]) -> Connection | None:
        response = conditional(
            self._db, "update_item", TableName=self._connections,
            Key={"connection_id": {"S": connection.connection_id}},
            UpdateExpression="SET token_expires_at = :t, #p = :p",
            ConditionExpression="attribute_exists(connection_id)",
            ExpressionAttributeNames={"#p": "permissions"},
            ExpressionAttributeValues={
                ":t": {"N": str(token_expires_at)},
                ":p": {"L": [{"S": p} for p in sorted(permissions)]}},
            ReturnValues="ALL_NEW")
        if response is None:
            return None  # the connection is gone
        updated = _connection_from_item(response["Attributes"])
        # Subscriptions expire with the token (fan-out skips them after): extend them.
        for item in query(self._db,
                TableName=self._subscriptions, IndexName="by_connection",
                KeyConditionExpression="connection_id = :c",
                ExpressionAttributeValues={":c": {"S": connection.connection_id}}):
            update_if(self._db, self._subscriptions,
                      {"channel_key": item["channel_key"], "connection_id": item["connection_id"]},
                      "SET expires_at = :e", "attribute_exists(connection_id)",
                      {":e": {"N": str(updated.subscription_expires_at)}})
        return updated

    def remove_connection(self, connection_id: str) -> Connection | None:
        # The connection row goes first: a subscribe racing this disconnect then fails
        # its transaction's attribute_exists condition instead of leaving an orphan.
        response = call(
            self._db, "delete_item", TableName=self._connections,
            Key={"connection_id": {"S": connection_id}}, ReturnValues="ALL_OLD",
        )
        keys = [
            {"channel_key": item["channel_key"], "connection_id": item["connection_id"]}
            for item in query(self._db,
                TableName=self._subscriptions, IndexName="by_connection",
                KeyConditionExpression="connection_id = :c",
                ExpressionAttributeValues={":c": {"S": connection_id}},
            )
        ]
        self._batch_delete(self._subscriptions, keys)
        old = response.get("Attributes")
        return _connection_from_item(old) if old else None

    # -- unfinished requests per connection ---------------------------------

    def reserve_request(self, connection_id: str, limit: int) -> bool:
        return update_if(
            self._db, self._connections, {"connection_id": {"S": connection_id}},
            "SET active_requests = if_not_exists(active_requests, :zero) + :one",
            "attribute_exists(connection_id) AND "
            "(attribute_not_exists(active_requests) OR active_requests < :max)",
            {":zero": {"N": "0"}, ":one": {"N": "1"}, ":max": {"N": str(limit)}},
        )

    def release_request(self, connection_id: str) -> None:
        update_if(
            self._db, self._connections, {"connection_id": {"S": connection_id}},
            "SET active_requests = active_requests - :one",
            "attribute_exists(connection_id) AND active_requests > :zero",
            {":zero": {"N": "0"}, ":one": {"N": "1"}},
        )

    # -- plumbing ------------------------------------------------------------

    def _batch_delete(self, table: str, keys: list[dict[str, Any]]) -> None:
        for start in range(0, len(keys), BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {
                table: [{"DeleteRequest": {"Key": key}}
                        for key in keys[start:start + BATCH_WRITE_LIMIT]]
            }
            for attempt in range(BATCH_RETRIES):
                response = call(self._db, "batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
            else:
                raise StorageError(f"BatchWriteItem left {len(pending[table])} items unprocessed")


def _connection_from_item(item: dict[str, Any]) -> Connection:
    """The one place a connection's attribute map becomes a record."""
    try:
        return Connection(
            connection_id=item["connection_id"]["S"],
            user_id=item["user_id"]["S"],
            tenant_id=item["tenant_id"]["S"],
            permissions=frozenset(p["S"] for p in item["permissions"]["L"]),
            connected_at_ms=int(item["connected_at"]["N"]),
            token_expires_at=int(item["token_expires_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            subscription_count=int(item.get("sub_count", {"N": "0"})["N"]),
        )
    except (KeyError, ValueError) as exc:
        raise StorageError(f"malformed connection row: {exc!r}") from exc
