"""The Lambda side of the local stream poller: event shape, context, response.

What AWS Lambda's DynamoDB event source mapping does between a stream and a function,
minus the I/O: turn a DynamoDB Streams record (as boto3 returns it) into the JSON record
Lambda hands a function, give the function a context object, and read the function's
answer the way Lambda does with ``ReportBatchItemFailures`` turned on. No boto3 here;
:mod:`streamer_local.poller` does the reading and the bookkeeping.

The event Lambda sends (one per batch, records in stream order)::

    {"Records": [{
        "eventID": "...", "eventName": "INSERT" | "MODIFY" | "REMOVE",
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1700000000.0,   # epoch seconds, whole
            "Keys": {...}, "NewImage": {...}, "OldImage": {...},  # typed: {"S": "x"}
            "SequenceNumber": "1100...", "SizeBytes": 59,
            "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": "<the stream ARN the handler was registered with>"}]}

JSON types only: binary attributes (``B``, ``BS``) are base64 text, numbers stay
strings, as in the JSON Lambda delivers.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVENT_VERSION = "1.1"
EVENT_SOURCE = "aws:dynamodb"

# arn:aws:dynamodb:REGION:ACCOUNT:table/<TableName>/stream/<label>
_STREAM_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:dynamodb:(?P<region>[^:]*):(?P<account>[^:]*):"
    r"table/(?P<table>[^/]+)/stream/(?P<label>.+)$"
)


def table_name_from_stream_arn(stream_arn: str) -> str:
    """The table name inside a DynamoDB stream ARN; ``ValueError`` if it is not one."""
    match = _STREAM_ARN.match(stream_arn)
    if match is None:
        raise ValueError(
            f"not a DynamoDB stream ARN (want arn:aws:dynamodb:REGION:ACCOUNT:"
            f"table/NAME/stream/LABEL): {stream_arn!r}"
        )
    return match.group("table")


def _json_value(value: Any) -> Any:
    """``value`` with bytes as base64 text, so it survives ``json.dumps``."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_value(item) for item in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return value


def _epoch_seconds(value: Any) -> float:
    """Stream records carry the creation time rounded down to the second."""
    if isinstance(value, datetime.datetime):
        return float(int(value.timestamp()))
    if isinstance(value, int | float):
        return float(int(value))
    raise TypeError(f"unexpected ApproximateCreationDateTime: {value!r}")


def lambda_record(record: Mapping[str, Any], event_source_arn: str) -> dict[str, Any]:
    """One Lambda-shaped, JSON-typed record from one boto3 ``GetRecords`` record."""
    stream = record["dynamodb"]
    dynamodb: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in stream:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(
            stream["ApproximateCreationDateTime"]
        )
    for key in ("Keys", "NewImage", "OldImage"):
        if key in stream:
            dynamodb[key] = _json_value(stream[key])
    dynamodb["SequenceNumber"] = stream["SequenceNumber"]
    dynamodb["SizeBytes"] = int(stream["SizeBytes"])
    dynamodb["StreamViewType"] = stream["StreamViewType"]
    result: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": EVENT_VERSION,
        "eventSource": EVENT_SOURCE,
        "awsRegion": record["awsRegion"],
        "dynamodb": dynamodb,
        "eventSourceARN": event_source_arn,
    }
    if "userIdentity" in record:  # TTL deletions name the DynamoDB service
        result["userIdentity"] = _json_value(record["userIdentity"])
    return result


def lambda_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A fresh event for one invocation: a JSON round trip, as Lambda would deliver.

    Fresh because a handler may mutate its event, and a retry must not see that.
    """
    event: dict[str, Any] = json.loads(json.dumps({"Records": list(records)}))
    return event


def record_size(record: Mapping[str, Any]) -> int:
    """Bytes ``record`` adds to an invocation payload (Lambda caps a batch at 6 MB)."""
    return len(json.dumps(record, separators=(",", ":")).encode("utf-8"))


def first_failed_index(response: Any, sequence_numbers: Sequence[str]) -> int | None:
    """Where to resume after an invocation answered ``response``; ``None`` is success.

    Lambda's rules for ``ReportBatchItemFailures``: no answer, a non-object, or an
    object whose ``batchItemFailures`` is missing, null or empty is complete success.
    Otherwise the checkpoint is the failed record with the lowest sequence number and
    everything from it on is retried. An empty, null or misspelt ``itemIdentifier`` is
    a complete failure (index 0); so, here, is one that names no record of the batch
    (a local strictness: it is a handler bug either way).
    """
    if not isinstance(response, Mapping):
        return None
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    if not isinstance(failures, list):
        return 0
    positions = {sequence: index for index, sequence in enumerate(sequence_numbers)}
    first: int | None = None
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return 0
        index = positions[identifier]
        first = index if first is None else min(first, index)
    return first


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers use, for one invocation."""

    function_name: str
    invoked_function_arn: str
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 128
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
