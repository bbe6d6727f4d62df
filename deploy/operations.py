"""Which AWS operations each function makes, found by reading the code: the only code that knows.

A function's operations are those reachable from its handler in ``app.py``
(:attr:`deploy.project.Function.roots`, plus the app's middleware) through the
code it calls in ``app.py``, ``chalicelib/`` and Chalice's ``WebsocketAPI``
(``send``, ``close`` and ``info`` post to, delete and read connections through
the management API). Nothing is declared per function, so a new function, a
new action or a new call is picked up by reading the code again.

The reading is a call graph over names, made to over-approximate rather than
miss:

* a name (``forget_gone(...)``, ``PARSERS``'s handlers) reaches the function
  or class it denotes in its module or through an import; ``module.name``
  reaches that module's definition;
* any other attribute called or passed as an argument
  (``services.registry.add_connection(...)``, ``Cleanup(registry, presence.departures)``)
  reaches every method of that name in the code read; one only read is a field
  (``departure.user_id``), unless a property has its name;
* an attribute named after an operation of a service the code builds a client
  for (``boto3.client("dynamodb")``, ``session.client("apigatewaymanagementapi")``),
  read from an object whose name says it is a client (``self._client.put_item``,
  ``aws.ssm_client().get_parameter``, ``client.post_to_connection``), is that
  operation.

``tests/deploy/test_policy.py`` keeps the reading honest from both sides:
every operation call in the code is reached from some function, and each
function's handler run against moto makes no operation outside its set.
"""

from __future__ import annotations

import ast
import collections
import functools
import inspect
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

from deploy.project import PROJECT, Function

CHALICE_MODULE = "chalice.app"
# Chalice's management client: its source is read with the app's.
CHALICE_CLASSES = ("WebsocketAPI",)
TRANSACT_ITEMS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                  "ConditionCheck": "ConditionCheckItem"}
"""DynamoDB authorises each item of a ``TransactWriteItems`` as its single-item action."""
MIDDLEWARE = "middleware"
CONSTRUCTORS = ("__init__", "__post_init__", "__new__")
BUILTIN_METHODS = frozenset(
    name for kind in (list, dict, set, frozenset, str, bytes, tuple, int, float,
                      collections.deque, logging.Logger)
    for name in dir(kind) if not name.startswith("_")
)
"""Method names builtin objects share with ours: ``x.append`` is a list's unless ``x`` is
named after one of our classes (``streams.append``)."""


@dataclass(frozen=True, order=True)
class Operation:
    """One AWS API operation: the botocore service name and the operation's name."""

    service: str
    name: str

    def __str__(self) -> str:
        return f"{self.service}:{self.name}"


@dataclass(frozen=True)
class Definition:
    """A function, a method, or a module-level name bound to a value (a table of handlers)."""

    module: str
    qualname: str
    node: ast.AST

    def __str__(self) -> str:
        return f"{self.module}.{self.qualname}"

    @property
    def class_name(self) -> str:
        return self.qualname.rpartition(".")[0]


@dataclass
class Module:
    name: str
    tree: ast.Module
    functions: dict[str, Definition]
    classes: dict[str, list[Definition]]
    aliases: dict[str, str]
    """Local names of modules: ``from chalicelib import handlers`` -> chalicelib.handlers."""
    imported: dict[str, tuple[str, str]]
    """Local names of imported definitions: ``forget_gone`` -> (chalicelib.fanout, forget_gone)."""


class Code:
    """The code read: ``app.py``, ``chalicelib/`` and Chalice's management client."""

    def __init__(self, sources: Iterable[tuple[str, str]]) -> None:
        self.modules: dict[str, Module] = {}
        for name, text in sources:
            self.modules[name] = _index(name, ast.parse(text, name))
        self.methods: dict[str, list[Definition]] = {}
        for module in self.modules.values():
            for definitions in module.classes.values():
                for definition in definitions:
                    method = definition.qualname.rpartition(".")[2]
                    self.methods.setdefault(method, []).append(definition)
        self.services = frozenset(_client_services(m.tree for m in self.modules.values()))
        self.operation_names = _operation_names(self.services)
        self.own_names = frozenset(self.methods) | frozenset(
            name for module in self.modules.values() for name in module.functions)

    # -- reachability ---------------------------------------------------------------

    def reachable(self, module: str, names: Iterable[str]) -> set[Definition]:
        """Every definition reachable from these functions of ``module``."""
        pending = [self.modules[module].functions[name] for name in names]
        seen: set[Definition] = set()
        while pending:
            definition = pending.pop()
            if definition in seen:
                continue
            seen.add(definition)
            pending.extend(self._callees(definition))
        return seen

    def _callees(self, definition: Definition) -> Iterator[Definition]:
        module = self.modules[definition.module]
        nodes = list(_body_nodes(definition.node))
        local = _local_names(definition.node, nodes)
        called = {id(node.func) for node in nodes if isinstance(node, ast.Call)}
        # A method passed as an argument (a callback: Cleanup(registry, presence.departures))
        # runs later; a field read (departure.user_id) is not a method.
        passed = {id(value) for node in nodes if isinstance(node, ast.Call)
                  for value in (*node.args, *(k.value for k in node.keywords))}
        for node in nodes:
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load) and node.id not in local:
                    yield from self._named(module, node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in module.aliases \
                        and owner.id not in local:
                    target = self.modules.get(module.aliases[owner.id])
                    if target is not None:
                        yield from self._named(target, node.attr, imports=False)
                    continue
                if node.attr.startswith("__"):
                    continue  # super().__init__(...) and the like: the base is not ours
                methods = self._methods(definition, owner, node.attr)
                if id(node) in called or id(node) in passed:
                    yield from methods
                else:  # read, not called: a field (departure.user_id), or a property
                    yield from (m for m in methods if _is_property(m.node))

    def _methods(self, caller: Definition, owner: ast.expr, name: str) -> Iterator[Definition]:
        """The methods ``owner.name`` may run."""
        candidates = self.methods.get(name, [])
        if isinstance(owner, ast.Name) and owner.id == "self":
            own = [m for m in candidates if m.module == caller.module
                   and m.class_name == caller.class_name]
            if own:
                yield from own
                return
        for method in candidates:
            if method.module == CHALICE_MODULE and not _is_websocket_api(owner):
                continue
            if name in BUILTIN_METHODS and _own_name(owner).strip("_") not in (
                    method.class_name.lower(), method.class_name.lower() + "s"):
                continue  # frames.append(...) is a list's, services.streams.append a Streams'
            yield method

    def _named(self, module: Module, name: str, imports: bool = True) -> Iterator[Definition]:
        if name in module.functions:
            yield module.functions[name]
        elif name in module.classes:
            # Calling a class runs its constructor; its methods are reached by name.
            yield from (d for d in module.classes[name]
                        if d.qualname.rpartition(".")[2] in CONSTRUCTORS)
        elif imports and name in module.imported:
            source, original = module.imported[name]
            if source in self.modules:
                yield from self._named(self.modules[source], original, imports=False)

    # -- operations -----------------------------------------------------------------

    @functools.cache  # noqa: B019 (one Code per project, kept for the run)
    def operations_from(self, roots: tuple[str, ...]) -> frozenset[Operation]:
        """The operations reachable from these functions of ``app.py``."""
        return frozenset(self.operations(self.reachable("app", roots)))

    def operations(self, definitions: Iterable[Definition]) -> set[Operation]:
        """The operations these definitions call on clients."""
        found: set[Operation] = set()
        for definition in definitions:
            found |= self._calls(definition.node, client_receivers_only=True)
        return found

    def all_operations(self) -> set[Operation]:
        """Every operation-named attribute in the project's code, on any receiver not ours.

        Broader than :meth:`operations`: a client held under a name that does
        not say so (``sqs.send_message``) is found here and not there.
        """
        found: set[Operation] = set()
        for module in self.modules.values():
            if module.name != CHALICE_MODULE:
                found |= self._calls(module.tree, client_receivers_only=False)
        return found

    def _calls(self, tree: ast.AST, client_receivers_only: bool) -> set[Operation]:
        found: set[Operation] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or node.attr not in self.operation_names:
                continue
            if not _is_client(node.value) and (client_receivers_only
                                               or node.attr in self.own_names):
                continue
            for operation in self.operation_names[node.attr]:
                if operation == Operation("dynamodb", "TransactWriteItems"):
                    found |= {Operation("dynamodb", TRANSACT_ITEMS[kind])
                              for kind in _dict_keys(tree) & set(TRANSACT_ITEMS)}
                else:
                    found.add(operation)
        return found


def operations(function: Function, code: Code | None = None) -> set[Operation]:
    """The operations ``function``'s code can make."""
    code = code or read()
    return set(code.operations_from((*function.roots, *middleware(code))))


def middleware(code: Code) -> list[str]:
    """The app's middleware (``@app.middleware(...)``): it runs in every function."""
    found = []
    for node in code.modules["app"].tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
            and d.func.attr == MIDDLEWARE for d in node.decorator_list
        ):
            found.append(node.name)
    return found


@functools.cache
def read(project_dir: Path = PROJECT) -> Code:
    """The project's code and Chalice's management client, read once."""
    import chalice.app

    root = Path(project_dir)
    sources = [("app", (root / "app.py").read_text())]
    for path in sorted((root / "chalicelib").rglob("*.py")):
        dotted = ".".join(path.relative_to(root).with_suffix("").parts)
        sources.append((dotted.removesuffix(".__init__"), path.read_text()))
    chalice_source = "\n\n".join(inspect.getsource(getattr(chalice.app, name))
                                 for name in CHALICE_CLASSES)
    sources.append((CHALICE_MODULE, chalice_source))
    return Code(sources)


# -- reading one module ---------------------------------------------------------------


def _index(name: str, tree: ast.Module) -> Module:
    functions: dict[str, Definition] = {}
    classes: dict[str, list[Definition]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = Definition(name, node.name, node)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    functions[target.id] = Definition(name, target.id, node.value)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = [
                Definition(name, f"{node.name}.{item.name}", item) for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
    aliases: dict[str, str] = {}
    imported: dict[str, tuple[str, str]] = {}
    package = name.rpartition(".")[0]
    for found in ast.walk(tree):
        if isinstance(found, ast.Import):
            for alias in found.names:
                aliases[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0])
        elif isinstance(found, ast.ImportFrom):
            source = found.module or ""
            if found.level:
                source = ".".join(filter(None, [package, source]))
            for alias in found.names:
                local = alias.asname or alias.name
                # `from chalicelib import handlers` names a module; `from x import f`, a def.
                aliases[local] = f"{source}.{alias.name}"
                imported[local] = (source, alias.name)
    return Module(name, tree, functions, classes, aliases, imported)


def _body_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node of a definition's body (nested functions and lambdas included)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        for statement in node.body:
            yield from ast.walk(statement)
    else:
        yield from ast.walk(node)


def _local_names(node: ast.AST, nodes: Iterable[ast.AST]) -> set[str]:
    """Parameters and assigned names: a local ``message`` is not the function ``message``."""
    names = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names |= {n.arg for n in nodes if isinstance(n, ast.arg)}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        arguments = node.args
        names |= {a.arg for a in (*arguments.posonlyargs, *arguments.args,
                                  *arguments.kwonlyargs, arguments.vararg, arguments.kwarg)
                  if a is not None}
    return names


def _is_property(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
        (isinstance(d, ast.Name) and d.id in ("property", "cached_property"))
        or (isinstance(d, ast.Attribute) and d.attr == "cached_property")
        for d in node.decorator_list
    )


def _is_client(receiver: ast.expr) -> bool:
    """Whether an expression's own name says it is a client (``x._client``, ``ssm_client()``)."""
    return "client" in _own_name(receiver)


def _is_websocket_api(receiver: ast.expr) -> bool:
    """Whether an expression's own name says it is Chalice's WebsocketAPI (``app.websocket_api``,
    ``self._api``): its ``send``/``close``/``info`` share their names with loggers and sockets."""
    return _own_name(receiver).endswith("api")


def _own_name(receiver: ast.expr) -> str:
    while isinstance(receiver, ast.Call):
        receiver = receiver.func
    if isinstance(receiver, ast.Name):
        return receiver.id.lower()
    if isinstance(receiver, ast.Attribute):
        return receiver.attr.lower()
    return ""


def _client_services(trees: Iterable[ast.Module]) -> set[str]:
    """The services clients are built for: ``<anything>.client("<service>", ...)``."""
    return {
        node.args[0].value
        for tree in trees for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "client"
        and node.args and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


@functools.cache
def service_model(service: str) -> Any:
    """botocore's model of a service, loaded once."""
    return _botocore().get_service_model(service)


@functools.cache
def _botocore() -> Any:
    return botocore.session.get_session()


def _operation_names(services: Iterable[str]) -> dict[str, list[Operation]]:
    """Each client method name of these services, with the operations it may be."""
    names: dict[str, list[Operation]] = {}
    for service in sorted(services):
        model = service_model(service)
        for operation in model.operation_names:
            names.setdefault(xform_name(operation), []).append(Operation(service, operation))
    return names


def _dict_keys(tree: ast.AST) -> set[str]:
    return {key.value for node in ast.walk(tree) if isinstance(node, ast.Dict)
            for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}
