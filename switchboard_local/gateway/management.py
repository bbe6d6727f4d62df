"""The management API, ``/<stage>/@connections/{id}``, on the stage core's rules.

:func:`switchboard_local.stage.rule` decides; this module carries a ruling out
on the sockets (a POST writes, a DELETE closes with 1000) and answers. Errors
name their type in ``x-amzn-ErrorType``, so a plain ``apigatewaymanagementapi``
client, and Chalice's ``send``/``close``/``info`` on top of it, behave as
against AWS. Signatures are not checked.

Three transports reach :meth:`ManagementApi.answer`: the HTTP routes, for any
client on the machine; :class:`InProcessRoute`, a botocore ``before-send``
hook on the app's own management client when functions run on the
gateway's threads; and each container's channel (:mod:`.containers`). The
last two skip the loopback HTTP round trip (about half the gateway's CPU per
reply) while the request is still built, signed and its answer parsed by
botocore.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from switchboard_local import stage
from switchboard_local.botocore_hook import connection_id_of, request_data, response
from switchboard_local.gateway.connections import SocketConnection, Table

IN_PROCESS_TIMEOUT_SECONDS = 30.0


class ManagementApi:
    """POST (send), GET (describe) and DELETE (close) one connection."""

    def __init__(self, table: Table, faults: stage.Faults) -> None:
        self.table = table
        self.faults = faults

    async def answer(self, method: str, connection_id: str, data: bytes) -> stage.Answer:
        fault = self.faults.next(method, connection_id)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        ruling: stage.Ruling[SocketConnection] = stage.rule(
            self.table, method, connection_id, data, fault.status if fault else None
        )
        if isinstance(ruling, stage.Deliver):
            try:
                await ruling.connection.send(ruling.text)
            except (ConnectionError, RuntimeError):
                return stage.gone()
            return stage.OK
        if isinstance(ruling, stage.Drop):
            await ruling.connection.carry_out(ruling.connection.close(stage.DELETE_CLOSE))
            return stage.DELETED
        return ruling

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
