"""The app as Chalice deploys it: the one place ``deploy/`` reads the Chalice config and ``app.py``.

Nothing here is typed by hand. Each stage is resolved by Chalice's own
configuration loader (top level, then the stage, then a function's
``lambda_functions`` entry), and its functions are listed by Chalice's own
application graph (``ApplicationGraphBuilder``, what ``chalice deploy`` and
``chalice package`` plan from): their names, handlers, event sources and
settings. Adding a function, a schedule, a queue consumer or a REST route to
``app.py`` adds it to every list in ``deploy/`` — log groups, alarms, the
dashboard, the IAM policies, the templates' overrides.

``app.py`` reads some decorator arguments from the stage's variables (the
queue the worker consumes, its maximum concurrency), as ``chalice deploy``
loads it with those variables set; so each stage loads its own copy of the
module, with the stage's variables set for the time of the import.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from chalice.config import Config
from chalice.deploy import models
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
from chalice.utils import to_cfn_resource_name

PROJECT = Path(__file__).resolve().parent.parent
CONFIG_FILE = Path(".chalice") / "config.json"
# What `chalice deploy` assumes when .chalice/config.json says nothing (CLIFactory).
CHALICE_DEFAULTS = {"api_gateway_stage": "api", "api_gateway_endpoint_type": "EDGE",
                    "autogen_policy": True}
# `chalice package` renames the REST API's function (package.py, SAMTemplateGenerator).
CFN_REST_HANDLER = "APIHandler"
REST_HANDLER = "api_handler"


class StageError(ValueError):
    """The stage or the project cannot be read; the message says why."""


@dataclass(frozen=True)
class QueueSubscription:
    """An ``@app.on_sqs_message`` event source."""

    resource_name: str
    """Chalice's name for the event source mapping (``fanout_worker-sqs-event-source``)."""
    queue: str
    batch_size: int
    maximum_concurrency: int | None


@dataclass(frozen=True)
class Function:
    """One Lambda function of a stage, named as Chalice names it in each format."""

    name: str
    """Chalice's name: ``websocket_connect``, ``push``, ``api_handler``... (Terraform's too)."""
    function_name: str
    """The deployed name, ``<app>-<stage>-<name>`` (``chalice deploy``, Terraform, and
    the CloudFormation path, whose merge template sets it)."""
    handler: str
    """``app.<callable>``."""
    roots: tuple[str, ...]
    """The functions an invocation starts in (every route's view for REST): names in
    ``app.py``, dotted names elsewhere (a blueprint's view: ``chalicelib.product.x.view``)."""
    environment: Mapping[str, str]
    timeout: int
    memory_size: int
    reserved_concurrency: int | None
    policy_file: str | None
    """``iam_policy_file`` as the function's configuration resolves it."""
    subscription: QueueSubscription | None = None
    schedule: str | None = None
    websocket_route: str | None = None
    """``$connect``, ``$default`` or ``$disconnect`` for the WebSocket handlers."""

    @property
    def logical_id(self) -> str:
        """The function's resource in the template ``chalice package`` writes."""
        if self.name == REST_HANDLER:
            return CFN_REST_HANDLER
        return str(to_cfn_resource_name(self.name))

    @property
    def role_logical_id(self) -> str:
        return str(to_cfn_resource_name(self.role_name))

    @property
    def role_name(self) -> str:
        """Chalice's resource name for the function's own role (``<name>_role``)."""
        return f"{self.name}_role"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.function_name}"


@dataclass(frozen=True)
class Stage:
    """One stage of the project, as ``chalice deploy --stage NAME`` would deploy it."""

    name: str
    app_name: str
    api_gateway_stage: str
    environment: Mapping[str, str]
    """The stage's variables: top level overlaid by the stage's."""
    functions: tuple[Function, ...]
    websocket_api: bool

    def function(self, name: str) -> Function:
        for function in self.functions:
            if function.name == name:
                return function
        raise StageError(f"stage {self.name} has no function {name!r}")

    @property
    def function_prefix(self) -> str:
        return f"{self.app_name}-{self.name}-"


def stage_names(project_dir: Path = PROJECT) -> tuple[str, ...]:
    """The stages ``.chalice/config.json`` declares."""
    return tuple(_config_from_disk(project_dir).get("stages") or {})


def every_stage(project_dir: Path = PROJECT) -> list[Stage]:
    """Every stage of the project, in the order ``.chalice/config.json`` lists them."""
    stages = [load(name, project_dir) for name in stage_names(project_dir)]
    if not stages:
        raise StageError(f"{Path(project_dir) / CONFIG_FILE} declares no stage")
    names = {stage.name: [f.name for f in stage.functions] for stage in stages}
    if len({tuple(functions) for functions in names.values()}) != 1:
        raise StageError(f"the stages' functions differ: {names}")
    return stages


def load(stage: str, project_dir: Path = PROJECT) -> Stage:
    """Read one stage: its settings and its functions, as Chalice resolves them."""
    return _load(stage, Path(project_dir).resolve())


@functools.cache
def _load(stage: str, root: Path) -> Stage:
    disk = _config_from_disk(root)
    stages = disk.get("stages") or {}
    if stage not in stages:
        raise StageError(f"stage {stage!r} is not in .chalice/config.json "
                         f"(stages: {', '.join(sorted(stages)) or 'none'})")
    defaults = {"project_dir": str(root), **CHALICE_DEFAULTS}
    bare = Config(chalice_stage=stage, config_from_disk=disk, default_params=defaults)
    environment = _strings(bare.environment_variables)
    app_module = _import_app(root, stage, environment)
    chalice_app = app_module.app
    config = Config(chalice_stage=stage, user_provided_params={"chalice_app": chalice_app},
                    config_from_disk=disk, default_params=defaults)
    graph = ApplicationGraphBuilder().build(config, stage)
    resources = DependencyBuilder().build_dependencies(graph)
    views = tuple(_root(entry.view_function, app_module.__name__)
                  for methods in chalice_app.routes.values() for entry in methods.values())
    functions: dict[str, Function] = {}
    extras: dict[str, dict[str, Any]] = {}
    for resource in resources:
        if isinstance(resource, models.SQSEventSource):
            queue = resource.queue if isinstance(resource.queue, str) else resource.queue.arn
            extras.setdefault(resource.lambda_function.resource_name, {})["subscription"] = (
                QueueSubscription(resource.resource_name, queue, resource.batch_size,
                                  resource.maximum_concurrency))
        elif isinstance(resource, models.ScheduledEvent):
            extras.setdefault(resource.lambda_function.resource_name, {})["schedule"] = (
                resource.schedule_expression)
        elif isinstance(resource, models.WebsocketAPI):
            for route, handler in (("$connect", resource.connect_function),
                                   ("$default", resource.message_function),
                                   ("$disconnect", resource.disconnect_function)):
                if handler is not None:
                    extras.setdefault(handler.resource_name, {})["websocket_route"] = route
    for resource in resources:
        if isinstance(resource, models.LambdaFunction):
            scoped = config.scope(stage, resource.resource_name)
            module_name, _, callable_name = resource.handler.rpartition(".")
            functions[resource.resource_name] = Function(
                name=resource.resource_name,
                function_name=resource.function_name,
                handler=resource.handler,
                roots=views if resource.resource_name == REST_HANDLER else (
                    callable_name if module_name == "app" else resource.handler,),
                environment=_strings(resource.environment_variables),
                timeout=int(resource.timeout),
                memory_size=int(resource.memory_size),
                reserved_concurrency=resource.reserved_concurrency,
                policy_file=scoped.iam_policy_file,
                **extras.get(resource.resource_name, {}),
            )
    return Stage(
        name=stage,
        app_name=str(config.app_name),
        api_gateway_stage=str(config.api_gateway_stage),
        environment=environment,
        functions=tuple(sorted(functions.values(), key=lambda f: f.name)),
        websocket_api=bool(chalice_app.websocket_handlers),
    )


def _config_from_disk(root: Path) -> dict[str, Any]:
    path = Path(root) / CONFIG_FILE
    try:
        loaded = json.loads(path.read_text())
    except OSError as error:
        raise StageError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise StageError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(loaded, dict):
        raise StageError(f"{path} must hold a JSON object")
    return loaded


def _root(function: Any, app_module: str) -> str:
    """A view's name in ``app.py``, or its dotted name in a module of its own (a blueprint's)."""
    if function.__module__ == app_module:
        return str(function.__name__)
    return f"{function.__module__}.{function.__name__}"


def _import_app(root: Path, stage: str, environment: Mapping[str, str]) -> Any:
    """A fresh copy of ``app.py`` imported with the stage's variables set, as Chalice does;
    returns the module."""
    path = root / "app.py"
    if not path.is_file():
        raise StageError(f"{root} is not a Chalice project: it has no app.py")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(f"_chalice_app_{stage}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, environment):  # restores every variable afterwards
        spec.loader.exec_module(module)
    return module


def _strings(variables: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(name): str(value) for name, value in (variables or {}).items()}
