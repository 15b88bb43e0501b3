"""The DynamoDB plumbing both adapters share: calls, paginated queries, conditional
updates, with botocore's errors translated into :class:`StorageError` here.

Only the adapters (storage, request_store, history_store) use it; nothing above the
adapters sees a botocore error or an attribute map.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import StorageError

CONDITION_FAILED = "ConditionalCheckFailedException"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def call(db: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """``db.<operation>(**kwargs)`` (boto3's snake_case name) with errors translated."""
    try:
        result: dict[str, Any] = getattr(db, operation)(**kwargs)
    except ClientError as exc:
        raise StorageError(f"{operation} failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{operation} failed: {type(exc).__name__}") from exc
    return result


def query(db: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query, page after page (pages are at most 1 MB)."""
    while True:
        page = call(db, "query", **kwargs)
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def conditional(db: Any, operation: str, **kwargs: Any) -> dict[str, Any] | None:
    """A conditional write: its response, or None if its condition failed."""
    try:
        result: dict[str, Any] = getattr(db, operation)(**kwargs)
    except ClientError as exc:
        if error_code(exc) == CONDITION_FAILED:
            return None
        raise StorageError(f"{operation} failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{operation} failed: {type(exc).__name__}") from exc
    return result


def update_if(db: Any, table: str, key: dict[str, Any], expression: str, condition: str,
              values: dict[str, Any], names: dict[str, str] | None = None) -> bool:
    """One conditional UpdateItem: True if applied, False if the condition failed."""
    extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
    return conditional(db, "update_item", TableName=table, Key=key,
                       UpdateExpression=expression, ConditionExpression=condition,
                       ExpressionAttributeValues=values, **extra) is not None


def cancellation_codes(exc: ClientError) -> list[str] | None:
    """The per-item reasons of a cancelled transaction (None: not a cancellation)."""
    if error_code(exc) != "TransactionCanceledException":
        return None
    return [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons") or []]
