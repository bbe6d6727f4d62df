"""What Lambda does around a handler: the only code that knows how a function is called.

* :class:`LambdaContext` — the context object a handler gets, with its time budget;
* :func:`resolve` — a Chalice ``handler_string`` (``app.connect``) to the module
  attribute Lambda would call (Chalice's wrapper, middleware included);
* :class:`AppFunctions` — a Chalice app's functions as ``chalice deploy``
  creates them, read from the app's public registration lists, each called
  the way Lambda calls it;
* :data:`Outcome` — how one invocation ended, as the service that invoked it
  sees it: a value, an error (``errorType``/``errorMessage``/``stackTrace``,
  Lambda's error shape), a timeout, or a throttle.

Both ways the gateway runs functions (threads of its own process, or
containers: processes of their own) and the in-process test client use it.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

Handler = Callable[[Any, Any], Any]

# The Lambda functions ``chalice deploy`` creates for the three WebSocket routes.
ROUTE_FUNCTIONS = {
    "$connect": "websocket_connect",
    "$default": "websocket_message",
    "$disconnect": "websocket_disconnect",
}
REST_FUNCTION = "api_handler"
"""The one function ``chalice deploy`` creates for every ``@app.route``."""
DEFAULT_BUDGET_SECONDS = 30.0
DEFAULT_MEMORY_MB = 128
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

KINDS = ("websocket", "lambda", "sqs", "schedule", "rest")
"""``websocket`` (a route), ``lambda`` (``@app.lambda_function``), ``sqs``
(``@app.on_sqs_message``), ``schedule`` (``@app.schedule``), ``rest`` (the REST API)."""


class LambdaContext:
    """The context object Lambda passes a handler, with its time budget."""

    def __init__(
        self, function_name: str, budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        memory_limit_in_mb: int = DEFAULT_MEMORY_MB, request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + budget_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# -- outcomes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Returned:
    """The handler returned ``value``."""

    value: Any


@dataclass(frozen=True)
class Raised:
    """The invocation failed: Lambda's error shape (``Runtime.*`` for the runtime's own)."""

    error_type: str
    message: str
    stack_trace: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, error: BaseException) -> Raised:
        return cls(type(error).__name__, str(error), traceback.format_exception(error)[1:])

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Raised:
        """The failure :meth:`payload` describes (as it crossed a container's channel)."""
        return cls(payload["errorType"], payload["errorMessage"], payload.get("stackTrace") or [])

    def payload(self) -> dict[str, Any]:
        """What ``Invoke`` answers for a failed function (``errorType``, ...)."""
        answer: dict[str, Any] = {"errorType": self.error_type, "errorMessage": self.message}
        if self.stack_trace:
            answer["stackTrace"] = self.stack_trace
        return answer


@dataclass(frozen=True)
class TimedOut:
    """The function ran past its ``lambda_timeout``."""

    seconds: float

    def payload(self) -> dict[str, Any]:
        return {"errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {self.seconds:.2f} seconds"}


@dataclass(frozen=True)
class Throttled:
    """The invocation was refused: no concurrency left (Lambda's 429)."""

    reason: str
    """``ReservedFunctionConcurrentInvocationLimitExceeded`` or
    ``ConcurrentInvocationLimitExceeded`` (Lambda's ``Reason``)."""

    def payload(self) -> dict[str, Any]:
        return {"Type": "User", "Reason": self.reason,
                "message": "Rate Exceeded.", "errorType": "TooManyRequestsException"}


Outcome = Returned | Raised | TimedOut | Throttled


def marshal(value: Any) -> Outcome:
    """A returned value as Lambda serializes it: JSON, or ``Runtime.MarshalError``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        return unmarshallable(error)
    return Returned(value)


def unmarshallable(error: Exception) -> Raised:
    """``Runtime.MarshalError``: the value the handler returned is not JSON."""
    return Raised("Runtime.MarshalError", f"Unable to marshal response: {error}")


# -- functions ----------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function of a Chalice app, as ``chalice deploy`` would create it."""

    name: str
    """Chalice's name for it: ``websocket_message``, ``push``, ``fanout_worker``..."""
    handler: Handler
    kind: str
    """One of :data:`KINDS`."""
    source: Any = None
    """Chalice's registration object (the ``SQSEventConfig`` of a consumer, the
    ``ScheduledEventConfig`` of a schedule)."""


class AppFunctions:
    """A Chalice app's functions, resolved as Lambda calls them (middleware included).

    ``handler_string`` (``app.connect``) names a module attribute; ``module`` is
    the already imported app module that ``app`` means. Registrations are read
    from the app's public lists (``websocket_handlers``, ``pure_lambda_functions``,
    ``event_sources``, ``routes``), the ones Chalice's own packager reads.
    """

    def __init__(
        self, app: Any, module: ModuleType | None = None, prefix: str = "",
        budgets: Mapping[str, float] | None = None,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.budgets = dict(budgets or {})
        self.routes: dict[str, FunctionSpec] = {}
        self.functions: dict[str, FunctionSpec] = {}
        for route, config in getattr(app, "websocket_handlers", {}).items():
            spec = FunctionSpec(ROUTE_FUNCTIONS.get(route, route.strip("$")),
                                resolve(config.handler_string, module), "websocket", config)
            self.routes[route] = spec
            self.functions[spec.name] = spec
        for function in getattr(app, "pure_lambda_functions", []):
            self.functions[function.name] = FunctionSpec(
                function.name, resolve(function.handler_string, module), "lambda", function
            )
        for source in getattr(app, "event_sources", []):
            kind = {"SQSEventConfig": "sqs", "ScheduledEventConfig": "schedule"}.get(
                type(source).__name__
            )
            if kind is not None:
                self.functions[source.name] = FunctionSpec(
                    source.name, resolve(source.handler_string, module), kind, source
                )
        if getattr(app, "routes", None):
            self.functions[REST_FUNCTION] = FunctionSpec(REST_FUNCTION, app, "rest")

    def of_kind(self, kind: str) -> list[FunctionSpec]:
        return [spec for spec in self.functions.values() if spec.kind == kind]

    def function_name(self, name: str) -> str:
        """The deployed name: ``<app>-<stage>-<name>`` with the gateway's prefix."""
        return f"{self.prefix}{name}"

    def budget(self, name: str) -> float:
        """The function's ``lambda_timeout`` (``budgets``), else the default."""
        return self.budgets.get(name, DEFAULT_BUDGET_SECONDS)

    def context(self, name: str, budget_seconds: float | None = None) -> LambdaContext:
        budget = self.budget(name) if budget_seconds is None else budget_seconds
        return LambdaContext(self.function_name(name), budget)

    def call(self, spec: FunctionSpec, event: Any, budget_seconds: float | None = None) -> Any:
        """One invocation with a fresh context; the handler's exceptions propagate."""
        return spec.handler(event, self.context(spec.name, budget_seconds))

    def invoke_route(
        self, route: str, event: dict[str, Any], budget_seconds: float | None = None
    ) -> dict[str, Any]:
        """A WebSocket route's answer as a dict with ``statusCode``; errors propagate."""
        spec = self.routes.get(route)
        if spec is None:
            return {"statusCode": 200}
        return route_answer(self.call(spec, event, budget_seconds))


def route_answer(result: Any) -> dict[str, Any]:
    """What API Gateway reads from a route's answer: a dict with ``statusCode``.

    A route without a handler (or a handler returning nothing) answers 200, as
    a stage without that route behaves.
    """
    return result if isinstance(result, dict) else {"statusCode": 200}


def resolve(handler_string: str, module: ModuleType | None = None) -> Handler:
    """``app.connect`` → the ``connect`` attribute of the app module (or any importable one)."""
    module_name, _, attribute = handler_string.rpartition(".")
    if module is None or module_name != "app":
        module = importlib.import_module(module_name)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise LookupError(f"handler {handler_string!r} is not a callable of the app")
    return handler  # type: ignore[no-any-return]
