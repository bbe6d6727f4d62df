"""The gateway: one aiohttp server for everything a Chalice project has.

On one port: the WebSocket stage (``/<stage>``, with or without a trailing
slash) and its ``@connections`` API, the app's REST routes where ``chalice
local`` serves them, ``POST /_local/invoke/NAME`` for its
``@app.lambda_function`` and ``@app.schedule`` functions, the project's page
(or the generic frame console) and, to loopback peers only, ``/_local/token``;
every request passes :mod:`.guard` first. Its SQS consumers poll the store's
queues, its schedules fire, its code reloads on save. Functions run in
containers (:mod:`.containers`) or on threads of this process (:mod:`.invoker`).

:class:`Gateway` runs on the caller's event loop (the CLI's);
:class:`GatewayThread` runs one on a loop of its own, for tests and embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from switchboard_local import stage as stage_core
from switchboard_local.events import ApiContext
from switchboard_local.gateway import state, zygote
from switchboard_local.gateway.concurrency import DEFAULT_ACCOUNT_LIMIT, Concurrency
from switchboard_local.gateway.connections import Lifecycle, Limits, Table
from switchboard_local.gateway.consumers import DEFAULT_BATCHES, Consumer, Consumers, queue_name
from switchboard_local.gateway.containers import (
    DEFAULT_IDLE_SECONDS,
    ContainerInvoker,
    ContainerSettings,
)
from switchboard_local.gateway.discovery import DEFAULT_ADDRESS, client_address
from switchboard_local.gateway.environment import (
    current_region,
    lambda_variables,
    local_aws_defaults,
    merge_functions,
    process_environment,
)
from switchboard_local.gateway.guard import (
    PARSER_HEADERS,
    PARSER_LINE_BYTES,
    Guard,
    check_exposure,
    exposure,
    is_loopback,
)
from switchboard_local.gateway.invoker import Invoker, ThreadInvoker
from switchboard_local.gateway.loader import ProjectApp, project_on_path
from switchboard_local.gateway.management import InProcessRoute, ManagementApi
from switchboard_local.gateway.reload import Reloader
from switchboard_local.gateway.resources import create_declared, ensure_signing_key
from switchboard_local.gateway.rest import RestRoutes
from switchboard_local.gateway.scheduler import Scheduled, Scheduler, expression_of
from switchboard_local.gateway.session import redirect_management
from switchboard_local.gateway.store import Store
from switchboard_local.gateway.tokens import (
    TokenIssuer,
    TokensUnavailable,
    parse_roles,
    token_options,
)
from switchboard_local.gateway.websocket import WebsocketEndpoint
from switchboard_local.lambda_runtime import Raised, Returned, Throttled, TimedOut
from switchboard_local.project import LocalSettings, ProjectError, read_stage
from switchboard_local.template import Template, function_logical_id

logger = logging.getLogger("switchboard_local.gateway")

API_ID = "local00001"
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
SHUTDOWN_GRACE_SECONDS = 30.0
# Management POSTs up to this size reach the handler, which answers 413 above 128 KiB.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
INVOCABLE = ("lambda", "schedule")
"""The kinds of function ``/_local/invoke/NAME`` runs by name."""


@dataclass
class GatewayOptions:
    """Everything the command line can set; the defaults are ``make run``'s."""

    project_dir: Path = field(default_factory=Path.cwd)
    stage: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    merge_template: Path | None = None
    """Overrides the project's ``[tool.switchboard-local] merge-template``."""
    parameters: dict[str, str] = field(default_factory=dict)
    state_dir: Path | None = None
    autoreload: bool = True
    dynamodb_endpoint: str | None = None
    limits: Limits = field(default_factory=Limits)
    expose: bool = False
    """Listen on a non-loopback ``host`` (refused without it)."""
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` names answered beyond loopback names and the address listened on."""
    containers: bool = False
    """Run functions in containers (processes of their own) rather than on threads."""
    concurrency: int = DEFAULT_ACCOUNT_LIMIT
    """The account's concurrency limit (``--concurrency``)."""
    container_idle_seconds: float = DEFAULT_IDLE_SECONDS


class Gateway:
    """Loads the app, starts its store, serves everything; :meth:`stop` undoes it all."""

    def __init__(self, options: GatewayOptions) -> None:
        check_exposure(options.host, options.expose)
        self.options = options
        self.guard = Guard(options.host, options.allowed_hosts)
        self.project = read_stage(options.project_dir, options.stage)
        self.settings = LocalSettings.read(self.project.project_dir)
        self.api = ApiContext(api_id=API_ID, stage=self.project.api_gateway_stage)
        self.table: Table = stage_core.ConnectionTable()
        self.faults = stage_core.Faults()
        self.store: Store | None = None
        self.template: Template | None = None
        self.app: ProjectApp | None = None
        self.tokens: TokenIssuer | None = None
        self.warnings: list[str] = []
        self.created: list[str] = []
        self.consumers_started: list[str] = []
        self.schedules_started: list[str] = []
        self._environment: dict[str, str] = {}
        self._started_with = dict(os.environ)
        """The variables this process had before the gateway set any: every container's base."""
        self._container_defaults: dict[str, str] = {}
        self._exit = ExitStack()
        self._runner: web.AppRunner | None = None
        self._websocket: WebsocketEndpoint | None = None
        self._lifecycle: Lifecycle | None = None
        self._invoker: Invoker | None = None
        self._consumers: Consumers | None = None
        self._scheduler: Scheduler | None = None
        self._reloader: Reloader | None = None
        self._in_process: InProcessRoute | None = None
        self._management: ManagementApi | None = None
        self.rest: RestRoutes | None = None
        self._serving = False

    # -- URLs ------------------------------------------------------------------

    @property
    def base(self) -> str:
        """``HOST:PORT`` as bound (the real port when 0 was asked for)."""
        return self.api.domain_name

    @property
    def local_url(self) -> str:
        """``http://HOST:PORT`` as this machine reaches it (loopback for a wildcard bind)."""
        host, _, port = self.base.rpartition(":")
        return client_address(host, int(port))

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.base}/{self.api.stage}"

    @property
    def management_url(self) -> str:
        return f"http://{self.base}/{self.api.stage}"

    @property
    def page_url(self) -> str:
        return f"http://{self.base}/"

    @property
    def tables(self) -> list[str]:
        """The tables the template declared, by local name."""
        return [line.split()[1] for line in self.created if line.startswith("table ")]

    @property
    def serves_tokens(self) -> bool:
        """Tokens are served (to loopback peers: see :mod:`.guard`)."""
        return self.tokens is not None and self.tokens.available

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        sock = _bind(self.options.host, self.options.port)
        host, port = sock.getsockname()[:2]
        self.api = ApiContext(api_id=API_ID, stage=self.api.stage, domain_name=f"{host}:{port}")
        self._management = ManagementApi(self.table, self.faults)
        self._in_process = InProcessRoute(self._management, asyncio.get_running_loop())
        try:
            self._prepare()
            # No access log: the query string of a handshake carries the user's token.
            self._runner = web.AppRunner(
                self._web_app(), handle_signals=False, access_log=None,
                max_line_size=PARSER_LINE_BYTES, max_field_size=PARSER_LINE_BYTES,
                max_headers=PARSER_HEADERS,
            )
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            assert self._invoker is not None
            if isinstance(self._invoker, ContainerInvoker):
                self._invoker.start()
            self._consumers = Consumers(self._invoker, current_region(), self.warn)
            self.consumers_started = await self._consumers.start(self._consumer_specs())
            self._scheduler = Scheduler(self._invoker.invoke, current_region(), self.warn)
            self.schedules_started = self._scheduler.start(self._schedules())
            if self.options.autoreload:
                self._reloader = Reloader(self.project.project_dir, self.reload)
                self._reloader.start()
            self._serving = True
        except BaseException:
            sock.close()
            await self._release()
            raise

    def _prepare(self) -> None:
        """Environment, store, declared resources, then the app (which may read all of them)."""
        defaults = local_aws_defaults()
        self._exit.enter_context(process_environment({**defaults, **self.project.environment}))
        self.store = Store(self.options.dynamodb_endpoint)
        self._container_defaults = {**defaults, **self.store.endpoints()}
        self._exit.enter_context(process_environment(self.store.endpoints()))
        if self.options.state_dir is not None:
            restored = state.restore(self.options.state_dir)
            if restored:
                self.created.append(restored)
        self.template = self._load_template()
        if self.template is not None:
            self.created += create_declared(self.template)
        environment = self._function_environment()
        self._exit.enter_context(process_environment(environment))
        self._environment = {**self.project.environment, **environment}
        parameter = self._environment.get(self.settings.token_key_parameter or "")
        if parameter:
            self.created.append(ensure_signing_key(parameter, self.project.project_dir))
        self.store.recover_with(self._recreate)
        self.tokens = TokenIssuer(
            self.settings.token_signer, self.settings.token_key_parameter, self._environment
        )
        if self.template is not None:
            for warning in self.template.warnings:
                self.warn(warning)
        self._exit.enter_context(project_on_path(self.project.project_dir))
        self._invoker = self._make_invoker()
        self.rest = RestRoutes(self.project, self._invoker, threads=not self.containers)
        self.app = ProjectApp(self.project, self._prepare_app)
        self.app.load()
        self._invoker.concurrency.reserved.update(self._reserved_concurrency())
        for warning in self._invoker.concurrency.warnings():
            self.warn(warning)
        self._lifecycle = Lifecycle(self._invoker, self.table, self.options.limits)

    def _recreate(self) -> list[str]:
        """Create what the store lost (the template's resources, the signing key); a line
        for each created."""
        assert self.store is not None
        lines = []
        if self.template is not None:
            lines = create_declared(self.template, dynamodb_endpoint=self.store.endpoint)
        created = [line for line in lines if line.endswith("(created)")]
        parameter = self._environment.get(self.settings.token_key_parameter or "")
        if parameter:
            key = ensure_signing_key(parameter, self.project.project_dir)
            created += [] if key.endswith("(kept)") else [key]
        return created

    @property
    def containers(self) -> bool:
        """Whether functions run in containers (asked for, and possible here)."""
        return self.options.containers and zygote.supported()

    def _make_invoker(self) -> Invoker:
        concurrency = Concurrency(self.options.concurrency)
        functions = lambda: self._app().functions  # noqa: E731
        if not self.containers:
            if self.options.containers:
                self.warn("containers need fork(): functions run on threads of the gateway")
            return ThreadInvoker(functions, concurrency)
        assert self._management is not None
        settings = ContainerSettings(
            project_dir=str(self.project.project_dir),
            management_url=lambda: self.management_url,
            environment=self._container_environment,
            idle_seconds=self.options.container_idle_seconds,
        )
        return ContainerInvoker(functions, settings, self._management, concurrency)

    def _container_environment(self, name: str) -> dict[str, str]:
        """One function's environment in its containers, and nothing of another's."""
        overlays = self.template.function_environments() if self.template is not None else {}
        config = self.project.function(name)
        return {
            **self._started_with,
            **self._container_defaults,
            **self.project.function_environment(name),
            **overlays.get(function_logical_id(name), {}),
            **lambda_variables(self._app().functions.function_name(name),
                               int(config.lambda_memory_size or 128),
                               str(self.project.project_dir)),
        }

    def _reserved_concurrency(self) -> dict[str, int]:
        reserved = {}
        for name in self._app().functions.functions:
            value = self.project.function(name).reserved_concurrency
            if value is not None:
                reserved[name] = int(value)
        return reserved

    def _app(self) -> ProjectApp:
        assert self.app is not None
        return self.app

    def _prepare_app(self, app: Any) -> None:
        """Each imported app (the first and every reload) before it serves."""
        redirect_management(app, lambda: self.management_url, self._in_process)
        assert self.rest is not None
        self.rest.use(app)

    def _load_template(self) -> Template | None:
        path = self.options.merge_template
        if path is None and self.settings.merge_template:
            path = self.project.project_dir / self.settings.merge_template
        if path is None:
            return None
        if not path.is_absolute():
            path = Path.cwd() / path
        return Template.load(
            path, stage=self.project.name, app_name=self.project.app_name,
            region=current_region(), parameter_values=self.options.parameters,
        )

    def _function_environment(self) -> dict[str, str]:
        """What each function gets beyond the stage: its config entry, then the template's."""
        configured = self.project.config.config_from_disk
        names = set(configured.get("lambda_functions") or {})
        names |= set(
            ((configured.get("stages") or {}).get(self.project.name) or {}).get(
                "lambda_functions"
            ) or {}
        )
        functions = {
            name: self.project.function_environment(name) for name in sorted(names)
        }
        if self.template is not None:
            for logical_id, variables in self.template.function_environments().items():
                functions[logical_id] = {**functions.get(logical_id, {}), **variables}
        merged, warnings = merge_functions({}, functions)
        if not self.containers:  # containers each get their own
            for warning in warnings:
                self.warn(warning)
        return {k: v for k, v in merged.items() if self.project.environment.get(k) != v}

    def _consumer_specs(self) -> list[Consumer]:
        functions = self._app().functions
        return [
            Consumer(
                function=spec.name,
                queue=queue_name(spec.source),
                batch_size=int(spec.source.batch_size or 1),
                window_seconds=float(spec.source.maximum_batching_window_in_seconds or 0),
                report_failures=self.template is not None
                and self.template.reports_batch_item_failures(spec.name),
                concurrency=int(getattr(spec.source, "maximum_concurrency", None)
                                or DEFAULT_BATCHES),
            )
            for spec in functions.of_kind("sqs")
        ]

    def _schedules(self) -> list[Scheduled]:
        functions = self._app().functions
        return [
            Scheduled(spec.name, expression_of(spec.source),
                      f"{functions.function_name(spec.name)}-event")
            for spec in functions.of_kind("schedule")
        ]

    async def reload(self) -> None:
        """Import the changed code; sockets, store and queues stay as they are, warm
        containers stop (the next event cold-starts on the new code)."""
        assert self._invoker is not None and self._consumers is not None
        if await self._invoker.run(self._app().reload):
            self._invoker.retire()
            await self._consumers.start(self._consumer_specs())
            if self._scheduler is not None:
                self._scheduler.start(self._schedules())

    def warn(self, message: str) -> None:
        """One warning per distinct message: in the banner at start, logged once serving."""
        if message not in self.warnings:
            self.warnings.append(message)
            if self._serving:
                logger.warning("%s", message)

    def _web_app(self) -> web.Application:
        assert self._lifecycle is not None and self.rest is not None
        websocket = self._websocket = WebsocketEndpoint(
            self.api, self._lifecycle, self._stage_http, lambda: bool(self._app().functions.routes)
        )
        management = self._management
        assert management is not None
        app = web.Application(
            client_max_size=MAX_REQUEST_BYTES, middlewares=[self.guard.middleware]
        )
        stage = self.api.stage
        connection = f"/{stage}/@connections/{{connection_id:.+}}"
        routes = [
            web.get(f"/{stage}", websocket.handle),
            web.get(f"/{stage}/", websocket.handle),
            web.post(connection, management.handle),
            web.get(connection, management.handle),
            web.delete(connection, management.handle),
            web.get("/_local/config", self._config),
            web.post("/_local/invoke/{name}", self._invoke),
            web.get("/_local/", self._page),
            web.get("/_local/token", self._token),
        ]
        for url, file in self.settings.static.items():
            routes.append(web.get(url, _file(self.project.project_dir / file)))
        app.add_routes(routes)
        if self._page_dir is not None:
            app.router.add_static("/_local/page", self._page_dir)
        app.router.add_static("/_local/console", CONSOLE_DIR)
        app.router.add_route("*", "/{tail:.*}", self._rest_or_page)
        return app

    @property
    def _page_dir(self) -> Path | None:
        if self.settings.page is None:
            return None
        directory = self.project.project_dir / self.settings.page
        return directory if directory.is_dir() else None

    async def stop(self) -> None:
        """Refuse new handshakes, close every socket with 1001, run each ``$disconnect``,
        save, stop the store."""
        open_connections = self.table.stop_accepting()
        if self._reloader is not None:
            await self._reloader.stop()
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._consumers is not None:
            await self._consumers.stop()
        await asyncio.gather(
            *(c.carry_out(c.close(stage_core.GOING_AWAY_CLOSE)) for c in open_connections),
            return_exceptions=True,
        )
        waits = [c.finished.wait() for c in open_connections]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), SHUTDOWN_GRACE_SECONDS)
        await self._release()

    def refuse_new_connections(self) -> None:
        """From now on handshakes are refused with 503 (the first step of :meth:`stop`)."""
        self.table.stop_accepting()

    async def _release(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._invoker is not None:
            await self._invoker.shutdown()
            self._invoker = None
        if self.store is not None:
            if self.options.state_dir is not None and self.app is not None:
                try:
                    state.save(self.options.state_dir)
                except Exception:
                    logger.exception("the store could not be saved to %s", self.options.state_dir)
            self.store.stop()
            self.store = None
        self._exit.close()

    # -- what the banner lists -----------------------------------------------------

    def banner(self, command: str = "switchboard-local", python: str = "python") -> list[
        tuple[str, str]
    ]:
        """Only what the project has, one (label, value) a line.

        ``command`` and ``python`` are how the user runs ``switchboard-local``
        and this interpreter, for the lines to copy that talk to the stage.
        """
        functions = self._app().functions
        lines: list[tuple[str, str]] = []
        if functions.routes:
            lines.append(("WebSocket", self.websocket_url))
            lines.append(("Management", f"{self.management_url}/@connections/{{connectionId}}"))
        if self.rest is not None and self.rest.routes:
            lines.append(("REST API", f"http://{self.base}/ ({', '.join(self.rest.routes)})"))
        page = self.page_url if not self._rest_serves_root() else f"http://{self.base}/_local/"
        if self._page_dir is not None:
            lines.append(("Chat page", page))
        elif functions.routes:
            lines.append(("Console", page))
        lines += [("Exposed", line) for line in exposure(
            self.options.host, self.options.allowed_hosts
        )]
        local, url = self.local_url, self._url_option()
        if self.serves_tokens:
            lines.append(("Tokens", f"{local}/_local/token?userId=NAME&roles=a,b"))
            lines.append(("Tokens", "expire (a handshake with an expired one is refused, "
                                    f"often 401 or 403): `{command} token NAME{url}` gives a "
                                    "fresh one, `--lifetime SECONDS` a longer one"))
            if functions.routes:
                lines += [("Try", line) for line in self.try_lines(command, python)]
        for spec in functions.of_kind("lambda"):
            lines.append(("Invoke", f"{command} invoke {spec.name} '{{...}}'{url}  (POST "
                                    f"{local}/_local/invoke/{spec.name})"))
        for line in self.consumers_started:
            lines.append(("SQS", line))
        for line in self.schedules_started:
            lines.append(("Schedule", line))
        lines.append(("Functions", self._functions_line()))
        assert self.store is not None
        store = self.store.embedded_endpoint
        if not self.store.embedded:
            store = f"DynamoDB {self.store.endpoint}, other services {store}"
        lines.append(("Store", store))
        for line in self.created:
            lines.append(("Created", line))
        if self.options.state_dir is not None:
            lines.append(("State", str(self.options.state_dir)))
        lines.append(("Reload", "on save" if self.options.autoreload else "off"))
        lines += [("Warning", warning) for warning in self.warnings]
        return lines

    def _functions_line(self) -> str:
        limit = f"account concurrency {self.options.concurrency}"
        if self.containers:
            return (f"in containers: one event at a time each, cold start on first use, "
                    f"{limit}")
        return f"on threads of the gateway (shared module state and environment), {limit}"

    def try_lines(self, command: str, python: str) -> list[str]:
        """The stage's URL with a token for a user, then terminal clients: lines to paste."""
        lines = [f"URL=$({command} token alice --websocket{self._url_option()})"]
        if importlib.util.find_spec("websockets") is not None:
            lines.append(f'{python} -m websockets "$URL"')
        lines.append('npx wscat -c "$URL"')
        return lines

    def _url_option(self) -> str:
        """``--url`` for the client commands, unless they find the gateway at the default."""
        return "" if self.local_url == f"http://{DEFAULT_ADDRESS}" else f" --url {self.local_url}"

    def _rest_serves_root(self) -> bool:
        return self.rest is not None and self.rest.serves("/")

    # -- local-only pages ------------------------------------------------------

    async def _stage_http(self, request: web.Request) -> web.StreamResponse:
        """A plain HTTP request to the stage URL: a REST route of the app, or a hint."""
        if self.rest is not None and self.rest.routes:
            return await self.rest.handle(request)
        if self._app().functions.routes:
            return web.Response(status=426, text="This is a WebSocket URL: connect with ws://\n")
        raise web.HTTPNotFound(text="Not found: this app has no WebSocket handler\n")

    async def _rest_or_page(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/" and request.method == "GET" and not self._rest_serves_root():
            return await self._page(request)
        if self.rest is not None and self.rest.routes:
            return await self.rest.handle(request)
        raise web.HTTPNotFound(text="Not found: this app has no REST route\n")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if self._page_dir is not None and (self._page_dir / "index.html").is_file():
            return web.FileResponse(self._page_dir / "index.html")
        return web.FileResponse(CONSOLE_DIR / "index.html")

    async def _config(self, request: web.Request) -> web.Response:
        """The URLs under the name the page was loaded with (the guard allowed its Host)."""
        host = request.headers.get("Host", self.base)
        return web.json_response(
            {
                "stage": self.api.stage,
                "websocketUrl": f"ws://{host}/{self.api.stage}",
                "managementUrl": f"http://{host}/{self.api.stage}",
                "tokens": self.serves_tokens and is_loopback(request.remote or ""),
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        """A token from the project's signer (loopback peers only: see :mod:`.guard`)."""
        assert self.tokens is not None and self._invoker is not None
        user_id = request.query.get("userId", "")
        roles = parse_roles(request.query.getall("roles", []))
        try:
            claims = token_options(request.query)
            token = await self._invoker.run(partial(self.tokens.issue, **claims), user_id, roles)
        except ValueError as error:
            return web.json_response({"message": str(error)}, status=400)
        except TokensUnavailable as error:
            return web.json_response({"message": str(error)}, status=404)
        return web.Response(text=json.dumps({"token": token}), content_type="application/json")

    async def _invoke(self, request: web.Request) -> web.Response:
        """``@app.lambda_function`` (or ``@app.schedule``) NAME with the body as its event;
        its answer as JSON. A schedule's event is the one its rule sends now, with the
        body's fields over it."""
        assert self._invoker is not None and self._scheduler is not None
        name = request.match_info["name"]
        functions = self._app().functions
        spec = functions.functions.get(name)
        if spec is None or spec.kind not in INVOCABLE:
            known = ", ".join(s.name for s in functions.functions.values()
                              if s.kind in INVOCABLE) or "none"
            return web.json_response(
                {"message": f"the app has no lambda_function or schedule {name!r} "
                            f"(it has: {known})"},
                status=404,
            )
        body = await request.text()
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as error:
            return web.json_response({"message": f"the event must be JSON: {error}"}, status=400)
        if spec.kind == "schedule":
            if not isinstance(event, dict):
                return web.json_response({"message": "a schedule's event must be a JSON object"},
                                         status=400)
            [scheduled] = [s for s in self._schedules() if s.function == name]
            event = {**self._scheduler.event(scheduled), **event}
        outcome = await self._invoker.invoke(name, event)
        if isinstance(outcome, Returned):
            return web.Response(text=json.dumps(outcome.value), content_type="application/json")
        status = 429 if isinstance(outcome, Throttled) else 500
        assert isinstance(outcome, (Raised, TimedOut, Throttled))
        return web.json_response(outcome.payload(), status=status)


def _file(path: Path) -> Any:
    async def serve(request: web.Request) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound(text=f"{path} does not exist\n")
        return web.FileResponse(path)

    return serve


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

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the gateway's loop and wait for it (tests: ``reload()``)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), self._loop).result()
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


__all__ = ["Gateway", "GatewayOptions", "GatewayThread", "ProjectError", "is_loopback"]
