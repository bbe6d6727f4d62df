"""Import a Chalice project's ``app.py`` — and import it again when its code changes.

The module is imported under a name of its own, so two projects (or a test's
copy of this one) never share an ``app`` object or its management client.
Handlers are resolved by :class:`switchboard_local.stage.AppFunctions` the
way Chalice's deployment does. :meth:`ProjectApp.reload` forgets every module
imported from the project's files and imports ``app.py`` afresh; until that
succeeds the previous app keeps serving.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from switchboard_local.lambda_runtime import AppFunctions
from switchboard_local.project import ChaliceStage, ProjectError

logger = logging.getLogger("switchboard_local.gateway")

DEFAULT_LAMBDA_TIMEOUT = 60.0  # chalice deploy's default
# Directories under a project whose modules are not the project's own code.
_NOT_PROJECT_CODE = ("site-packages", "dist-packages", ".venv", "venv", "node_modules")


class ProjectApp:
    """The project's current app module, app object and functions."""

    def __init__(self, stage: ChaliceStage, prepare: Callable[[Any], None]) -> None:
        """``prepare(app)`` runs on every newly imported app before it serves."""
        self.stage = stage
        self._prepare = prepare
        self._lock = threading.Lock()
        self.module: ModuleType | None = None
        self.app: Any = None
        self._functions: AppFunctions | None = None
        self.generation = 0

    @property
    def functions(self) -> AppFunctions:
        assert self._functions is not None, "load() first"
        return self._functions

    def load(self) -> None:
        """The first import; its errors propagate (the gateway cannot start without it)."""
        _forget_shadowed_modules(self.stage.project_dir)
        self._install(_import_app_module(self.stage.project_dir))

    def reload(self) -> bool:
        """Import the changed code; False (the old app still serving) when it fails."""
        with self._lock:
            saved = _forget_project_modules(self.stage.project_dir)
            try:
                module = _import_app_module(self.stage.project_dir)
                self._install(module)
            except Exception:
                logger.exception("reload failed; the previous code keeps serving")
                sys.modules.update(saved)
                return False
        logger.info("reloaded %s", self.stage.project_dir / "app.py")
        return True

    def _install(self, module: ModuleType) -> None:
        app = getattr(module, "app", None)
        if app is None or not hasattr(app, "websocket_handlers"):
            raise ProjectError(f"{self.stage.project_dir / 'app.py'} defines no Chalice "
                               "object named 'app'")
        self._prepare(app)
        functions = AppFunctions(app, module, self.stage.function_prefix)
        functions.budgets.update({
            name: self.stage.lambda_timeout(name) or DEFAULT_LAMBDA_TIMEOUT
            for name in functions.functions
        })
        self.module, self.app, self._functions = module, app, functions
        self.generation += 1


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
    digest = hashlib.sha256(str(project_dir).encode()).hexdigest()[:12]
    name = f"_chalice_gateway_app_{digest}"
    spec = importlib.util.spec_from_file_location(name, project_dir / "app.py")
    if spec is None or spec.loader is None:
        raise ProjectError(f"cannot import {project_dir / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def _is_project_code(origin: str, project_dir: Path) -> bool:
    path = Path(origin).resolve()
    if not path.is_relative_to(project_dir):
        return False
    return not any(part in _NOT_PROJECT_CODE for part in path.relative_to(project_dir).parts)


def _forget_project_modules(project_dir: Path) -> dict[str, ModuleType]:
    """Drop every cached module loaded from the project's own files; returns them."""
    dropped = {
        name: module for name, module in list(sys.modules.items())
        if _is_project_code(getattr(module, "__file__", None) or "/", project_dir)
    }
    for name in dropped:
        del sys.modules[name]
    return dropped


def _forget_shadowed_modules(project_dir: Path) -> None:
    """Drop cached modules that the project's own files of the same name replace.

    A project's ``chalicelib`` must win over another project's already imported
    one (an embedding test run's): modules that hold references keep them, and
    the app imports its own.
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
