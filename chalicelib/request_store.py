"""Asynchronous requests' state machine on DynamoDB: :class:`DynamoRequestStore`.

The states and their moves are :class:`chalicelib.model.RequestState`'s; each move here
is one conditional update. A ``running`` request carries ``lease_until``, whose rule is
in chalicelib/leases.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from chalicelib.dynamodb import call, conditional, query, update_if
from chalicelib.errors import StorageError
from chalicelib.model import RequestRecord, RequestState
from chalicelib.tables import REQUESTS


class DynamoRequestStore:
    """:class:`chalicelib.interfaces.RequestStore` on the ``requests`` table."""

    def __init__(self, client: Any, prefix: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = client
        self._table = REQUESTS.physical_name(prefix)
        self._clock = clock

    def create(self, record: RequestRecord) -> None:
        item = {
            "request_id": {"S": record.request_id},
            "tenant_id": {"S": record.tenant_id},
            "user_id": {"S": record.user_id},
            "connection_id": {"S": record.connection_id},
            "kind": {"S": record.kind},
            "payload": {"S": json.dumps(record.payload, separators=(",", ":"))},
            "state": {"S": record.state},
            "endpoint": {"S": record.endpoint},
            "progress": {"N": "0"},
            "created_at": {"N": str(record.created_at_ms)},
            "expires_at": {"N": str(record.expires_at)},
        }
        call(self._db, "put_item", TableName=self._table, Item=item,
                   ConditionExpression="attribute_not_exists(request_id)")

    def get(self, request_id: str) -> RequestRecord | None:
        item = call(self._db, "get_item", TableName=self._table,
                          Key=_key(request_id), ConsistentRead=True).get("Item")
        if item is None:
            return None
        try:
            record = record_from_item(item)
        except ValueError as exc:
            # Only until the processor has abandoned it (see Processor.handle_batch).
            raise StorageError(f"request {request_id} is unreadable") from exc
        return record if record.expires_at > self._clock() else None

    def claim(self, request_id: str, lease_until: float) -> bool:
        return self._update(
            request_id, "SET #s = :running, lease_until = :lease", "#s = :pending",
            {":running": {"S": RequestState.RUNNING}, ":pending": {"S": RequestState.PENDING},
             ":lease": {"N": f"{lease_until:.3f}"}},
        )

    def set_progress(self, request_id: str, progress: float, *, seq: int = 0,
                     detail: dict[str, Any] | None = None) -> RequestRecord | None:
        return self._update_returning(
            request_id, "SET progress = :p, seq = :seq, detail = :d", "#s = :running",
            {":p": {"N": f"{progress:.6f}"}, ":running": {"S": RequestState.RUNNING},
             ":seq": {"N": str(seq)},
             ":d": {"S": json.dumps(detail or {}, separators=(",", ":"))}},
        )

    def detach(self, request_id: str, connection_id: str, until: float) -> bool:
        return self._update(
            request_id, "SET detached_until = :u",
            "#s IN (:pending, :running) AND connection_id = :c",
            {":u": {"N": f"{until:.3f}"}, ":c": {"S": connection_id},
             ":pending": {"S": RequestState.PENDING}, ":running": {"S": RequestState.RUNNING}},
        )

    def adopt(self, request_id: str, connection_id: str,
              endpoint: str) -> RequestRecord | None:
        return self._update_returning(
            request_id, "SET connection_id = :c, endpoint = :e REMOVE detached_until",
            "#s IN (:pending, :running)",
            {":c": {"S": connection_id}, ":e": {"S": endpoint},
             ":pending": {"S": RequestState.PENDING}, ":running": {"S": RequestState.RUNNING}},
        )

    def finish(self, request_id: str, state: RequestState, *, result: Any = None,
               error: tuple[str, str] | None = None, expires_at: int,
               only_if_lease_before: float | None = None, seq: int | None = None) -> bool:
        assert state in (RequestState.SUCCEEDED, RequestState.FAILED)
        sets = ["#s = :state", "expires_at = :exp"]
        values: dict[str, Any] = {":state": {"S": state}, ":running": {"S": RequestState.RUNNING},
                                  ":exp": {"N": str(expires_at)}}
        if seq is not None:
            sets.append("seq = :seq")
            values[":seq"] = {"N": str(seq)}
        if state == RequestState.SUCCEEDED:
            sets += ["progress = :one", "#r = :result"]
            values[":one"] = {"N": "1"}
            values[":result"] = {"S": json.dumps(result, separators=(",", ":"))}
        if error is not None:
            sets += ["error_code = :code", "error_message = :message"]
            values[":code"], values[":message"] = {"S": error[0]}, {"S": error[1]}
        condition = "#s = :running"
        if only_if_lease_before is not None:
            condition += " AND lease_until < :now"
            values[":now"] = {"N": f"{only_if_lease_before:.3f}"}
        return self._update(request_id, "SET " + ", ".join(sets), condition, values,
                            names={"#r": "result"} if state == RequestState.SUCCEEDED else None)

    def cancel(self, request_id: str) -> tuple[bool, RequestState | None]:
        changed = self._update(
            request_id, "SET #s = :cancelled", "#s IN (:pending, :running)",
            {":cancelled": {"S": RequestState.CANCELLED}, ":pending": {"S": RequestState.PENDING},
             ":running": {"S": RequestState.RUNNING}},
        )
        if changed:
            return True, RequestState.CANCELLED
        record = self.get(request_id)
        return False, None if record is None else record.state

    def abandon(self, request_id: str, message: str, expires_at: int) -> bool:
        return self._update(
            request_id,
            "SET #s = :failed, payload = :empty, error_code = :code, "
            "error_message = :message, expires_at = :exp",
            "#s IN (:pending, :running)",
            {":failed": {"S": RequestState.FAILED}, ":empty": {"S": "{}"}, ":code": {"S": "failed"},
             ":message": {"S": message}, ":exp": {"N": str(expires_at)},
             ":pending": {"S": RequestState.PENDING}, ":running": {"S": RequestState.RUNNING}},
        )

    def for_connection(self, connection_id: str) -> list[str]:
        return [item["request_id"]["S"] for item in query(self._db,
            TableName=self._table, IndexName="by_connection",
            KeyConditionExpression="connection_id = :c",
            ExpressionAttributeValues={":c": {"S": connection_id}},
        )]

    # -- plumbing ------------------------------------------------------------

    def _update(self, request_id: str, expression: str, condition: str,
                values: dict[str, Any], names: dict[str, str] | None = None) -> bool:
        return update_if(self._db, self._table, _key(request_id), expression,
                         f"attribute_exists(request_id) AND {condition}", values,
                         {"#s": "state", **(names or {})})


    def _update_returning(self, request_id: str, expression: str, condition: str,
                          values: dict[str, Any]) -> RequestRecord | None:
        response = conditional(
            self._db, "update_item", TableName=self._table, Key=_key(request_id),
            UpdateExpression=expression,
            ConditionExpression=f"attribute_exists(request_id) AND {condition}",
            ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW")
        return None if response is None else record_from_item(response["Attributes"])


def _key(request_id: str) -> dict[str, Any]:
    return {"request_id": {"S": request_id}}


def record_from_item(item: dict[str, Any]) -> RequestRecord:
    """The one place a request's attribute map (table row or stream image) becomes a
    record. Raises ``ValueError`` for a malformed one."""
    try:
        def text(name: str) -> str:
            return str(item[name]["S"])

        def optional(name: str, kind: str) -> Any:
            value = item.get(name)
            return None if value is None else value[kind]

        result = optional("result", "S")
        lease = optional("lease_until", "N")
        detail = optional("detail", "S")
        detached = optional("detached_until", "N")
        return RequestRecord(
            request_id=text("request_id"), tenant_id=text("tenant_id"),
            user_id=text("user_id"), connection_id=text("connection_id"),
            kind=text("kind"), payload=json.loads(text("payload")),
            state=RequestState(text("state")), endpoint=text("endpoint"),
            created_at_ms=int(item["created_at"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            progress=float(item.get("progress", {"N": "0"})["N"]),
            result=None if result is None else json.loads(result),
            error_code=optional("error_code", "S"),
            error_message=optional("error_message", "S"),
            lease_until=None if lease is None else float(lease),
            seq=int(item.get("seq", {"N": "0"})["N"]),
            detail=None if detail is None else json.loads(detail),
            detached_until=None if detached is None else float(detached),
        )
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        # The exception's text may quote the payload: only its type is kept.
        raise ValueError(f"malformed request row: {type(exc).__name__}") from exc
