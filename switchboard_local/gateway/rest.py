"""``@app.route`` handlers on the gateway's port, served by Chalice's own local gateway.

``chalice.local.LocalGateway`` turns an HTTP request into the API Gateway
proxy event (route matching, authorizers, CORS preflight, binary types) and
calls the app, exactly as ``chalice local`` does at the same paths; this
module only carries requests to it on the invocation pool and writes its
answers, with ``chalice local``'s statuses for its errors. Handlers run
concurrently, so the app's class gets ``chalice.local.LocalChalice``'s
thread-local ``current_request``, as ``chalice local`` gives it — the one
place the gateway depends on that (undocumented) class.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from chalice.local import LocalChalice, LocalGateway, LocalGatewayException

from switchboard_local.gateway.invoker import Invoker
from switchboard_local.project import ChaliceStage

REST_FUNCTION = "api_handler"


def thread_safe(app: Any) -> None:
    """Give ``app`` a thread-local ``current_request`` (once per app object)."""
    if not isinstance(app, LocalChalice):
        app.__class__ = type(f"Local{type(app).__name__}", (LocalChalice, type(app)), {})


def has_routes(app: Any) -> bool:
    return bool(getattr(app, "routes", None))


class RestRoutes:
    """The app's REST API at ``/``, or nothing when the app has no route."""

    def __init__(self, stage: ChaliceStage, invoker: Invoker) -> None:
        self._config = stage.function(REST_FUNCTION)
        self._invoker = invoker
        self._gateway: LocalGateway | None = None
        self._app: Any = None

    def use(self, app: Any) -> None:
        """Serve this app's routes (again after a reload)."""
        if has_routes(app):
            thread_safe(app)
            self._gateway, self._app = LocalGateway(app, self._config), app
        else:
            self._gateway = self._app = None

    @property
    def routes(self) -> list[str]:
        return sorted(self._app.routes) if self._app is not None else []

    def serves(self, path: str) -> bool:
        return path in self.routes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        gateway = self._gateway
        if gateway is None:
            raise web.HTTPNotFound()
        body = await request.read()
        headers = dict(request.headers)
        try:
            answer = await self._invoker.run(
                gateway.handle_request, request.method, request.path_qs, headers, body or None
            )
        except LocalGatewayException as error:
            return _response(error.CODE, dict(error.headers or {}), error.body)
        headers = dict(answer.get("headers") or {})
        multi = answer.get("multiValueHeaders") or {}
        payload = answer.get("body")
        if answer.get("isBase64Encoded") and payload is not None:
            payload = base64.b64decode(payload)
        response = _response(int(answer["statusCode"]), headers, payload)
        for name, values in multi.items():
            response.headers.popall(name, None)
            for value in values:
                response.headers.add(name, value)
        return response


def _response(status: int, headers: dict[str, Any], body: str | bytes | None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    data = body if isinstance(body, bytes) else str(body).encode("utf-8")
    headers.setdefault("Content-Type", "application/json")
    return web.Response(status=status, headers=headers, body=data)
