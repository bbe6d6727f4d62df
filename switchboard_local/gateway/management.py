"""The management API, ``/<stage>/@connections/{id}``, answering as AWS does.

Errors name their type in ``x-amzn-ErrorType``: botocore maps it to the
modelled exception (``GoneException``, ``PayloadTooLargeException``), so a
plain ``apigatewaymanagementapi`` client, and Chalice's ``send``/``close``/
``info`` on top of it, behave as against AWS. Signatures are not checked.

:meth:`ManagementApi.answer` knows nothing of transports. Two reach it: the
HTTP routes, for any client on the machine, and :class:`InProcessRoute`, a
botocore ``before-send`` hook on the app's own management client, which skips
the loopback HTTP round trip (about half the gateway's CPU per reply) while
the request is still built, signed and its answer parsed by botocore.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from switchboard_local.events import MAX_POST_BYTES
from switchboard_local.gateway.connections import Connection, ConnectionTable
from switchboard_local.testing import connection_id_of, request_data, response

DELETE_CLOSE_CODE = 1000
IN_PROCESS_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    status: int
    payload: dict[str, Any] | None = None
    error_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error_type is not None:
            self.headers["x-amzn-ErrorType"] = self.error_type
        if self.payload is not None:
            self.headers["Content-Type"] = "application/json"

    @property
    def body(self) -> bytes:
        return b"" if self.payload is None else json.dumps(self.payload).encode()


def gone() -> Answer:
    return Answer(410, {"message": None}, "GoneException")


class ManagementApi:
    """POST (send), GET (describe) and DELETE (close) one connection."""

    def __init__(self, table: ConnectionTable) -> None:
        self.table = table

    async def answer(self, method: str, connection_id: str, data: bytes) -> Answer:
        connection = self.table.open(connection_id)
        if connection is None:
            return gone()
        if method == "POST":
            return await self._post(connection, data)
        if method == "GET":
            return Answer(200, describe(connection))
        if method == "DELETE":
            await connection.close(DELETE_CLOSE_CODE, "")
            return Answer(204)
        return Answer(405, {"message": f"{method} is not allowed"}, "MethodNotAllowed")

    async def _post(self, connection: Connection, data: bytes) -> Answer:
        if len(data) > MAX_POST_BYTES:
            return Answer(413, {"message": "Request entity too large"}, "PayloadTooLargeException")
        try:
            await connection.send(data.decode("utf-8", errors="replace"))
        except (ConnectionError, RuntimeError):
            return gone()
        return Answer(200)

    async def handle(self, request: web.Request) -> web.Response:
        """The HTTP route for POST, GET and DELETE."""
        data = await request.read()
        answer = await self.answer(request.method, request.match_info["connection_id"], data)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


class InProcessRoute:
    """Answers the app's own management calls on the gateway's loop, without HTTP.

    Registered as ``before-send`` on clients the app's session builds; called
    on a handler's worker thread, never on the loop itself.
    """

    def __init__(self, api: ManagementApi, loop: asyncio.AbstractEventLoop) -> None:
        self._api = api
        self._loop = loop

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        answer = asyncio.run_coroutine_threadsafe(
            self._api.answer(request.method, connection_id_of(request), request_data(request)),
            self._loop,
        ).result(IN_PROCESS_TIMEOUT_SECONDS)
        return response(request.url, answer.status, answer.body, answer.headers)


def describe(connection: Connection) -> dict[str, Any]:
    """GetConnection's answer: connectedAt, lastActiveAt and identity, ISO-8601 times."""
    return connection.context.description(connection.last_active)
