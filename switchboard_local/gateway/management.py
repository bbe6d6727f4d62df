"""The management API, ``/<stage>/@connections/{id}``, answering as AWS does.

Errors name their type in ``x-amzn-ErrorType``: botocore maps it to the
modelled exception (``GoneException``, ``PayloadTooLargeException``), so a
plain ``apigatewaymanagementapi`` client, and Chalice's ``send``/``close``/
``info`` on top of it, behave as against AWS. Signatures are not checked.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from switchboard_local.events import MAX_POST_BYTES
from switchboard_local.gateway.connections import Connection, ConnectionTable

DELETE_CLOSE_CODE = 1000


class ManagementApi:
    """POST (send), GET (describe) and DELETE (close) one connection."""

    def __init__(self, table: ConnectionTable) -> None:
        self.table = table

    async def post(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        data = await request.read()
        if connection is None:
            return error(410, "GoneException")
        if len(data) > MAX_POST_BYTES:
            return error(413, "PayloadTooLargeException", "Request entity too large")
        try:
            await connection.send(data.decode("utf-8", errors="replace"))
        except (ConnectionError, RuntimeError):
            return error(410, "GoneException")
        return web.Response(status=200)

    async def get(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None:
            return error(410, "GoneException")
        return web.json_response(describe(connection))

    async def delete(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None:
            return error(410, "GoneException")
        await connection.close(DELETE_CLOSE_CODE, "")
        return web.Response(status=204)

    def _connection(self, request: web.Request) -> Connection | None:
        return self.table.open(request.match_info["connection_id"])


def describe(connection: Connection) -> dict[str, Any]:
    """GetConnection's answer: connectedAt, lastActiveAt and identity, ISO-8601 times."""
    return connection.context.description(connection.last_active)


def error(status: int, error_type: str, message: str | None = None) -> web.Response:
    """An error botocore's rest-json parser maps to ``error_type``'s exception class."""
    return web.Response(
        status=status,
        text=json.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": error_type},
    )
