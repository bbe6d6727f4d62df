"""The front of an external DynamoDB engine: the only code that notices it came back empty.

With ``--dynamodb-endpoint`` the app's DynamoDB requests reach the engine
through this front, a loopback HTTP server on a thread of its own that passes
each request on as it is and the engine's answer back as it is (signature,
checksum and all). An in-memory engine (dynalite, DynamoDB Local with
``-inMemory``) that restarts comes back without a table, and every request
then answers ``ResourceNotFoundException``. On that answer the front calls
``recreate`` (the gateway recreates what its template declares, which keeps
what exists); when something was created, it logs what and sends the request
again, so even the request that noticed gets its real answer. Requests that
notice while a recovery runs wait for it. While the engine does not answer,
requests get a 503 naming it (botocore retries those).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import web

logger = logging.getLogger("switchboard_local.gateway")

Recreate = Callable[[], list[str]]
"""Create what is missing; returns a line per resource it created (none: nothing was)."""
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_MAX_REQUEST_BYTES = 32 * 1024 * 1024
_ENGINE_TIMEOUT = aiohttp.ClientTimeout(total=60)
_NOT_FOUND = b"ResourceNotFoundException"


class EngineFront:
    """``start()`` returns the front's endpoint; ``stop()`` ends it."""

    def __init__(self, engine: str) -> None:
        self.engine = engine.rstrip("/")
        self.recreate: Recreate | None = None
        self.endpoint = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._recovery: asyncio.Lock | None = None
        self._recoveries = 0
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(sock, ready),), name="dynamodb-front",
            daemon=True,
        )
        self._thread.start()
        ready.wait()
        return self.endpoint

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._recovery = asyncio.Lock()
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        async with aiohttp.ClientSession(auto_decompress=False, timeout=_ENGINE_TIMEOUT) as session:
            self._session = session
            await runner.setup()
            await web.SockSite(runner, sock).start()
            ready.set()
            try:
                await self._stopping.wait()
            finally:
                await runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = _end_to_end(request.headers)
        status, answer_headers, data = await self._send(request, headers, body)
        if status == 400 and _NOT_FOUND in data and await self._recovered():
            status, answer_headers, data = await self._send(request, headers, body)
        return web.Response(status=status, body=data, headers=answer_headers)

    async def _send(
        self, request: web.Request, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        try:
            async with self._session.request(
                request.method, self.engine + request.path_qs, headers=headers, data=body
            ) as answer:
                return answer.status, _end_to_end(answer.headers), await answer.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            message = f"the DynamoDB engine at {self.engine} does not answer: {error}"
            return 503, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(
                {"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                 "message": message}
            ).encode()

    async def _recovered(self) -> bool:
        """Recreate what the gateway declared; whether anything was missing."""
        assert self._recovery is not None
        if self.recreate is None:
            return False
        seen = self._recoveries
        async with self._recovery:
            if self._recoveries != seen:  # recovered while this request waited
                return True
            try:
                created = await asyncio.get_running_loop().run_in_executor(None, self.recreate)
            except Exception:
                logger.exception("the DynamoDB engine at %s lost resources; recreating them "
                                 "failed", self.engine)
                return False
            if created:
                self._recoveries += 1
                logger.warning("the DynamoDB engine at %s came back empty (restarted?): "
                               "recreated %s", self.engine, ", ".join(created))
        return bool(created)


def _end_to_end(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in _HOP_BY_HOP}
