"""Import a Chalice project's ``app.py`` and find its WebSocket Lambda handlers.

Handlers are resolved the way Chalice's deployment does: each route's
``handler_string`` (``app.connect``) names the module attribute that Lambda
calls, the wrapped handler with the app's middleware. The module is imported
under a name of its own, so two projects (or a test's copy of this one) never
share an ``app`` object or its management client.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from switchboard_local.gateway.config import ConfigError

Handler = Callable[[dict[str, Any], Any], Any]
ROUTES = ("$connect", "$default", "$disconnect")


@dataclass(frozen=True)
class LoadedApp:
    module: ModuleType
    app: Any
    handlers: dict[str, Handler]


def load_app(project_dir: Path) -> LoadedApp:
    """Import ``app.py`` from the project and resolve its WebSocket handlers."""
    module = _import_app_module(project_dir)
    app = getattr(module, "app", None)
    if app is None or not hasattr(app, "websocket_handlers"):
        raise ConfigError(f"{project_dir / 'app.py'} defines no Chalice object named 'app'")
    handlers = {
        route: _resolve(module, config.handler_string)
        for route, config in app.websocket_handlers.items()
    }
    if "$connect" not in handlers and "$default" not in handlers:
        raise ConfigError(f"{project_dir / 'app.py'} registers no WebSocket handler")
    return LoadedApp(module=module, app=app, handlers=handlers)


@contextmanager
def project_on_path(project_dir: Path) -> Iterator[None]:
    """The project's directory first on ``sys.path`` while its app runs, as in Lambda.

    Removed afterwards, so an embedding process (a test run) does not go on
    importing the project's modules in place of its own.
    """
    directory = str(project_dir)
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def _import_app_module(project_dir: Path) -> ModuleType:
    """Import ``app.py``; the project must be on ``sys.path`` (:func:`project_on_path`)."""
    directory = str(project_dir)
    _forget_shadowed_modules(project_dir)
    digest = hashlib.sha256(directory.encode()).hexdigest()[:12]
    name = f"_chalice_gateway_app_{digest}"
    spec = importlib.util.spec_from_file_location(name, project_dir / "app.py")
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {project_dir / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _forget_shadowed_modules(project_dir: Path) -> None:
    """Drop cached modules that the project's own files of the same name replace.

    A project's ``chalicelib`` must win over another project's already imported
    one (this repository's, which the gateway itself uses): modules that hold
    references keep them, and the app imports its own.
    """
    for entry in project_dir.iterdir():
        name = entry.stem if entry.suffix == ".py" else entry.name
        if name == "app" or not (entry.suffix == ".py" or (entry / "__init__.py").is_file()):
            continue
        cached = sys.modules.get(name)
        origin = getattr(cached, "__file__", None) or ""
        if cached is not None and not Path(origin).resolve().is_relative_to(project_dir):
            for module_name in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[module_name]


def _resolve(module: ModuleType, handler_string: str) -> Handler:
    """``app.connect`` → the ``connect`` attribute of the project's app module."""
    module_name, _, attribute = handler_string.rpartition(".")
    if module_name != "app":
        module = importlib.import_module(module_name)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ConfigError(f"handler {handler_string!r} is not a callable in the project")
    return handler  # type: ignore[no-any-return]
