"""``@app.route`` handlers on the gateway's port, served as API Gateway's REST API would.

``chalice.local.LocalGateway`` turns an HTTP request into the API Gateway
proxy event (route matching, authorizers, CORS preflight) exactly as
``chalice local`` does at the same paths. Around it, this module does what
``chalice local`` does differently from API Gateway:

* a method a path does not define (and ``OPTIONS`` on a path without CORS)
  answers 403 ``Missing Authentication Token``, as an unknown path does —
  not Chalice's 405;
* a route with ``api_key_required`` answers 403 ``Forbidden`` to a request
  without an ``x-api-key`` header (any key is accepted: there are no usage
  plans locally);
* a base64-encoded answer is decoded only when the request's first
  ``Accept`` media type matches one of the app's binary types; otherwise
  the client gets the base64 text, as a browser does from API Gateway;
* the app runs as the ``api_handler`` function through the gateway's
  invoker (threads or containers, with its timeout and concurrency):
  a failed function answers 502, a throttled one 500, no answer within
  29 s 504 (``Endpoint request timed out``).

With threads, handlers run concurrently in one app object, so its class gets
``chalice.local.LocalChalice``'s thread-local ``current_request``, as
``chalice local`` gives it — the one place the gateway depends on that
(undocumented) class.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from chalice.local import LocalChalice, LocalGateway, LocalGatewayException, RouteMatcher

from switchboard_local import stage
from switchboard_local.gateway.connections import integrate
from switchboard_local.gateway.invoker import Invoker
from switchboard_local.lambda_runtime import REST_FUNCTION, Returned
from switchboard_local.project import ChaliceStage

_MISSING_TOKEN = (403, {"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
                  b'{"message":"Missing Authentication Token"}')
_FORBIDDEN = (403, {"x-amzn-ErrorType": "ForbiddenException"}, b'{"message":"Forbidden"}')


def thread_safe(app: Any) -> None:
    """Give ``app`` a thread-local ``current_request`` (once per app object)."""
    if not isinstance(app, LocalChalice):
        app.__class__ = type(f"Local{type(app).__name__}", (LocalChalice, type(app)), {})


def has_routes(app: Any) -> bool:
    return bool(getattr(app, "routes", None))


class IntegrationFailed(LocalGatewayException):
    """The ``api_handler`` function did not answer: API Gateway's own error answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__({"x-amzn-ErrorType": "InternalServerErrorException"},
                         json.dumps({"message": message}).encode())
        self.CODE = status


class _InvokedApp:
    """What ``LocalGateway`` calls as the app: the ``api_handler`` function, invoked."""

    def __init__(self, app: Any, invoke: Callable[[Any], stage.RouteOutcome]) -> None:
        self._app = app
        self._invoke = invoke

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __call__(self, event: Any, context: Any) -> Any:
        outcome = self._invoke(proxy_event(event))
        if isinstance(outcome, Returned):
            return outcome.value
        raise IntegrationFailed(*stage.integration_failure(outcome))


class RestRoutes:
    """The app's REST API at ``/``, or nothing when the app has no route."""

    def __init__(self, stage_config: ChaliceStage, invoker: Invoker, threads: bool = True
                 ) -> None:
        self._config = stage_config.function(REST_FUNCTION)
        self._invoker = invoker
        self._threads = threads
        self._gateway: LocalGateway | None = None
        self._matcher: RouteMatcher | None = None
        self._app: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def use(self, app: Any) -> None:
        """Serve this app's routes (again after a reload)."""
        if has_routes(app):
            if self._threads:
                thread_safe(app)
            invoked = _InvokedApp(app, self._invoke)
            self._gateway = LocalGateway(invoked, self._config)  # type: ignore[arg-type]
            self._app = app
            self._matcher = RouteMatcher(list(app.routes))
        else:
            self._gateway = self._app = self._matcher = None

    @property
    def routes(self) -> list[str]:
        return sorted(self._app.routes) if self._app is not None else []

    def serves(self, path: str) -> bool:
        return path in self.routes

    def _invoke(self, event: Any) -> stage.RouteOutcome:
        """On a pool thread: the function's invocation on the loop, with API Gateway's
        integration timeout."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._integrate(event), self._loop).result()

    async def _integrate(self, event: Any) -> stage.RouteOutcome:
        return await integrate(self._invoker.invoke(REST_FUNCTION, event), REST_FUNCTION)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        gateway = self._gateway
        if gateway is None:
            raise web.HTTPNotFound()
        self._loop = asyncio.get_running_loop()
        refusal = self._refusal(request)
        if refusal is not None:
            return _response(refusal[0], dict(refusal[1]), refusal[2])
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
        if answer.get("isBase64Encoded") and payload is not None and accepts_binary(
            request.headers.get("Accept"), self._app.api.binary_types
        ):
            payload = base64.b64decode(payload)
        response = _response(int(answer["statusCode"]), headers, payload)
        for name, values in multi.items():
            response.headers.popall(name, None)
            for value in values:
                response.headers.add(name, value)
        return response

    def _refusal(self, request: web.Request) -> tuple[int, dict[str, str], bytes] | None:
        """What API Gateway answers before any function runs: no such method, no API key."""
        assert self._matcher is not None
        try:
            route = self._matcher.match_route(request.path_qs).route
        except ValueError:
            return None  # LocalGateway answers an unknown path
        views = self._app.routes[route]
        method = request.method
        if method == "OPTIONS" and method not in views:
            if any(view.cors is not None for view in views.values()):
                return None  # CORS preflight: API Gateway's generated OPTIONS method
            return _MISSING_TOKEN
        view = views.get(method)
        if view is None:
            return _MISSING_TOKEN
        if view.api_key_required and not request.headers.get("x-api-key"):
            return _FORBIDDEN
        return None


def proxy_event(event: dict[str, Any]) -> dict[str, Any]:
    """Chalice's local event as API Gateway sends it: the body a string (``chalice
    local`` leaves a text body as bytes), base64 when it is not UTF-8."""
    body = event.get("body")
    if not isinstance(body, bytes):
        return event
    try:
        return {**event, "body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {**event, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def accepts_binary(accept: str | None, binary_types: list[str]) -> bool:
    """Whether API Gateway returns binary: the request's first ``Accept`` media type
    matches one of the API's binary media types (which may be wildcards)."""
    if not accept:
        return False
    first = accept.split(",")[0].split(";")[0].strip().lower()
    for binary in (t.lower() for t in binary_types):
        if binary == "*/*" or binary == first:
            return True
        if binary.endswith("/*") and first.startswith(binary[:-1]):
            return True
    return False


def _response(status: int, headers: dict[str, Any], body: str | bytes | None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    data = body if isinstance(body, bytes) else str(body).encode("utf-8")
    headers.setdefault("Content-Type", "application/json")
    return web.Response(status=status, headers=headers, body=data)

