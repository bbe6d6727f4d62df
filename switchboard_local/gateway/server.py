"""The gateway: one aiohttp server for the stage's WebSocket URL, ``@connections``,
the chat page and the local-only token endpoint.

:class:`Gateway` runs on the caller's event loop (the CLI's);
:class:`GatewayThread` runs one on a loop of its own, for tests and embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from switchboard_local.events import ApiContext
from switchboard_local.gateway.config import (
    load_project_config,
    local_aws_defaults,
    process_environment,
)
from switchboard_local.gateway.connections import (
    GOING_AWAY,
    ConnectionTable,
    Lifecycle,
    Limits,
)
from switchboard_local.gateway.invoker import Invoker
from switchboard_local.gateway.loader import load_app, project_on_path
from switchboard_local.gateway.management import InProcessRoute, ManagementApi
from switchboard_local.gateway.session import LocalManagementSession, redirect_management
from switchboard_local.gateway.store import Store, TableSpec, default_specs
from switchboard_local.gateway.tokens import (
    DEFAULT_SECRET_VARIABLE,
    DEFAULT_SIGNER,
    TokenIssuer,
    TokensUnavailable,
    parse_roles,
)
from switchboard_local.gateway.websocket import WebsocketEndpoint

logger = logging.getLogger("switchboard_local.gateway")

PAGE_DIR_NAME = "web"
"""The project's page directory, served at ``/`` (``index.html``) and ``/_local/page/``."""
CLIENT_SCRIPT = Path("clients", "js", "switchboard.js")
"""The project's JavaScript client, served at ``/_local/switchboard.js`` for its page."""
API_ID = "local00001"
SHUTDOWN_GRACE_SECONDS = 30.0
# Management POSTs up to this size reach the handler, which answers 413 above 128 KiB.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass
class GatewayOptions:
    """Everything the CLI can set; the defaults are ``make run``'s."""

    project_dir: Path = field(default_factory=Path.cwd)
    stage: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    dynamodb_endpoint: str | None = None
    tables: list[str] | None = None
    limits: Limits = field(default_factory=Limits)
    token_signer: str = DEFAULT_SIGNER
    token_secret_variable: str = DEFAULT_SECRET_VARIABLE


class Gateway:
    """Loads the app, starts its store, serves both URLs; :meth:`stop` undoes it all."""

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.project = load_project_config(options.project_dir, options.stage)
        self.api = ApiContext(api_id=API_ID, stage=self.project.api_gateway_stage)
        self.table = ConnectionTable()
        self.store: Store | None = None
        self._session: LocalManagementSession | None = None
        self._exit = ExitStack()
        self._runner: web.AppRunner | None = None
        self._lifecycle: Lifecycle | None = None
        self.tables: list[str] = []
        self.tokens = TokenIssuer(
            self.project.environment, options.token_signer, options.token_secret_variable
        )

    # -- URLs ------------------------------------------------------------------

    @property
    def base(self) -> str:
        """``HOST:PORT`` as bound (the real port when 0 was asked for)."""
        return self.api.domain_name

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.base}/{self.api.stage}"

    @property
    def management_url(self) -> str:
        return f"http://{self.base}/{self.api.stage}"

    @property
    def page_url(self) -> str:
        return f"http://{self.base}/"

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        sock = _bind(self.options.host, self.options.port)
        host, port = sock.getsockname()[:2]
        self.api = ApiContext(api_id=API_ID, stage=self.api.stage, domain_name=f"{host}:{port}")
        try:
            self._prepare_app()
            # No access log: the query string of a handshake carries the user's token.
            self._runner = web.AppRunner(self._web_app(), handle_signals=False, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self._release()
            raise

    def _prepare_app(self) -> None:
        """Environment first (the app may read it at import), then store, then the app."""
        self._exit.enter_context(
            process_environment({**local_aws_defaults(), **self.project.environment})
        )
        self.store = Store(self.options.dynamodb_endpoint)
        self._exit.enter_context(process_environment(self._aws_endpoints()))
        self._exit.enter_context(project_on_path(self.project.project_dir))
        loaded = load_app(self.project.project_dir)
        self._session = redirect_management(loaded.app, lambda: self.management_url)
        specs = (
            [TableSpec.parse(text) for text in self.options.tables]
            if self.options.tables is not None
            else default_specs(self.project.environment)
        )
        self.tables = self.store.create_tables(specs, self.project.environment)
        prefix = f"{self.project.app_name}-{self.project.chalice_stage}"
        invoker = Invoker(loaded.handlers, prefix)
        self._lifecycle = Lifecycle(invoker, self.table, self.options.limits)

    def _aws_endpoints(self) -> dict[str, str]:
        """DynamoDB goes to the store; with the embedded store, so does every other service.

        moto emulates SQS, SSM, S3 and the rest, so an app's other AWS calls stay
        on this machine instead of failing slowly against AWS with dummy
        credentials. Management API clients are unaffected: Chalice passes them
        an explicit endpoint, which the session hook replaces. A user's own
        ``AWS_ENDPOINT_URL`` is kept.
        """
        assert self.store is not None
        endpoints = {"AWS_ENDPOINT_URL_DYNAMODB": self.store.endpoint}
        if self.store.embedded and "AWS_ENDPOINT_URL" not in os.environ:
            endpoints["AWS_ENDPOINT_URL"] = self.store.endpoint
        return endpoints

    def _web_app(self) -> web.Application:
        assert self._lifecycle is not None
        websocket = WebsocketEndpoint(self.api, self._lifecycle)
        management = ManagementApi(self.table)
        assert self._session is not None
        self._session.in_process = InProcessRoute(management, asyncio.get_running_loop())
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        stage = self.api.stage
        connection = f"/{stage}/@connections/{{connection_id:.+}}"
        app.add_routes(
            [
                web.get(f"/{stage}", websocket.handle),
                web.post(connection, management.handle),
                web.get(connection, management.handle),
                web.delete(connection, management.handle),
                web.get("/", self._page),
                web.get("/_local/config", self._config),
                web.get("/_local/token", self._token),
                web.get("/_local/switchboard.js", self._client_script),
            ]
        )
        if self._page_dir.is_dir():
            app.router.add_static("/_local/page", self._page_dir)
        return app

    @property
    def _page_dir(self) -> Path:
        return self.project.project_dir / PAGE_DIR_NAME

    async def stop(self) -> None:
        """Close every socket with 1001, run each ``$disconnect``, then stop the store."""
        open_connections = self.table.all()
        await asyncio.gather(
            *(c.close(GOING_AWAY, "Going away") for c in open_connections),
            return_exceptions=True,
        )
        waits = [c.finished.wait() for c in open_connections]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), SHUTDOWN_GRACE_SECONDS)
        await self._release()

    async def _release(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._lifecycle is not None:
            self._lifecycle.invoker.shutdown()
            self._lifecycle = None
        if self.store is not None:
            self.store.stop()
            self.store = None
        self._exit.close()

    # -- local-only pages ------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        index = self._page_dir / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound(text=f"this project has no {PAGE_DIR_NAME}/index.html\n")
        return web.FileResponse(index)

    async def _client_script(self, request: web.Request) -> web.StreamResponse:
        script = self.project.project_dir / CLIENT_SCRIPT
        if not script.is_file():
            raise web.HTTPNotFound(text=f"this project has no {CLIENT_SCRIPT.as_posix()}\n")
        return web.FileResponse(script, headers={"Content-Type": "text/javascript"})

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "stage": self.api.stage,
                "websocketUrl": self.websocket_url,
                "managementUrl": self.management_url,
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        user_id = request.query.get("userId", "")
        roles = parse_roles(request.query.getall("roles", []))
        try:
            token = self.tokens.issue(user_id, roles)
        except ValueError as error:
            return web.json_response({"message": str(error)}, status=400)
        except TokensUnavailable as error:
            return web.json_response({"message": str(error)}, status=404)
        return web.Response(text=json.dumps({"token": token}), content_type="application/json")


def _bind(host: str, port: int) -> socket.socket:
    """Bind before serving, so the URLs (and the port, when 0) are known first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class GatewayThread:
    """A gateway on an event loop of its own thread: ``start()`` returns once it serves."""

    def __init__(self, options: GatewayOptions) -> None:
        self.gateway = Gateway(options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Gateway:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.gateway.start(), self._loop).result()
        except BaseException:
            self._end_loop()
            raise
        return self.gateway

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), self._loop).result()
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
