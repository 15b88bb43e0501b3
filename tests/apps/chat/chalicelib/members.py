"""The chat's own library: who is in the room, in DynamoDB."""

from typing import Any


class Members:
    def __init__(self, client: Any, table: str) -> None:
        self._db, self._table = client, table

    def join(self, connection_id: str) -> None:
        self._db.put_item(TableName=self._table, Item={"connection_id": {"S": connection_id}})

    def leave(self, connection_id: str) -> None:
        self._db.delete_item(TableName=self._table,
                             Key={"connection_id": {"S": connection_id}})

    def everyone(self) -> list[str]:
        items = self._db.scan(TableName=self._table)["Items"]
        return [item["connection_id"]["S"] for item in items]
