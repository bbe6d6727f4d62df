"""Loading a team's modules with ``app.py``: the only code that finds them.

Every module of ``chalicelib/product/`` (subpackages included) is imported
when ``app.py`` is, so its actions are declared and its blueprints — any
Chalice ``Blueprint`` at a module's top level, :class:`chalicelib.extend.Routes`
included — are registered on the app, where ``chalice deploy``, the deployment
files and the local gateway find their routes and functions. Kept apart from
:mod:`chalicelib.extend` so that an app without modules of its own pays for
nothing more at import than listing an empty package.
"""

from __future__ import annotations

import importlib
import pkgutil
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType

from chalice.app import Blueprint, Chalice

PRODUCT_PACKAGE = "chalicelib.product"
"""Where a team's modules live."""

_gates: weakref.WeakKeyDictionary[Chalice, Callable[[], object]] = weakref.WeakKeyDictionary()


def load(app: Chalice, gate: Callable[[], object], package: str = PRODUCT_PACKAGE) -> list[str]:
    """Import every module of ``package`` and register its top-level blueprints on ``app``.

    Called once by ``app.py``; ``gate`` gives the app's REST routes the
    container's services when a request comes. Returns the modules loaded.
    """
    _gates[app] = gate
    loaded = []
    for module in _modules(package):
        loaded.append(module.__name__)
        for value in list(vars(module).values()):
            # Once per app (each stage's copy of app.py registers the same modules' blueprints).
            if isinstance(value, Blueprint) and getattr(value, "_current_app", None) is not app:
                app.register_blueprint(value)
    return loaded


def gate_of(app: Chalice) -> object:
    """The services of ``app``'s REST routes, as ``app.py`` handed them to :func:`load`
    (a :class:`chalicelib.extend.Gate`: what it is, :mod:`chalicelib.extend` knows)."""
    gate = _gates.get(app)
    if gate is None:
        raise RuntimeError("chalicelib.loader.load(app, gate) was not called for this app")
    return gate()


def _modules(package: str) -> Iterator[ModuleType]:
    root = importlib.import_module(package)
    yield root
    for found in sorted(pkgutil.walk_packages(root.__path__, f"{package}."),
                        key=lambda info: info.name):
        yield importlib.import_module(found.name)
