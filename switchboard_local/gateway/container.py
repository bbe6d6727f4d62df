"""Inside one container: a process that runs one function, one event at a time.

Forked by the zygote (:mod:`.zygote`) with a channel to the gateway, it does
what Lambda's runtime does in a fresh execution environment: it takes the
function's own environment (and nothing of the gateway's), makes the
project its working directory and first import path, imports ``app`` — the
init phase, whose duration the gateway logs as the cold start — and then
serves invocations until the gateway closes the channel: each with a fresh
context and the function's time budget, its value (or its error, in
Lambda's shape) sent back as JSON. Module state lives as long as the
container, as in Lambda. The app's management API client is answered by
the gateway over the same channel (:class:`ChannelRoute`), with no HTTP in
between.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import time
from typing import Any, NoReturn

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from switchboard_local.botocore_hook import connection_id_of, request_data, response
from switchboard_local.gateway.channel import BlockingChannel, ChannelClosed, encode
from switchboard_local.gateway.session import redirect_management
from switchboard_local.lambda_runtime import AppFunctions, FunctionSpec, Raised, unmarshallable

APP_MODULE = "app"
IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError", "SyntaxError")
"""What Lambda reports as ``Runtime.ImportModuleError`` when the init phase raises it."""


class ChannelRoute:
    """The ``before-send`` route of the app's management client: ask the gateway."""

    def __init__(self, channel: BlockingChannel) -> None:
        self._channel = channel
        self._ids = itertools.count(1)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        request_id = next(self._ids)
        self._channel.send(
            {"op": "mgmt", "id": request_id, "method": request.method,
             "connection": connection_id_of(request)},
            request_data(request),
        )
        header, body = self._channel.answer(request_id)
        return response(request.url, int(header["status"]), body, header.get("headers"))


def serve(channel: BlockingChannel, spec: dict[str, Any]) -> NoReturn:
    """Initialize, then invoke until the channel closes; never returns."""
    try:
        started = time.perf_counter()
        function, functions = _initialize(channel, spec)
        channel.send({"op": "ready", "init_ms": (time.perf_counter() - started) * 1000})
    except BaseException as error:  # an app that does not import: Lambda's init error
        failure = Raised.of(error)
        if failure.error_type in IMPORT_ERRORS:
            failure = Raised("Runtime.ImportModuleError", failure.message, failure.stack_trace)
        channel.send({"op": "init_error", **failure.payload()})
        os._exit(1)
    while True:
        try:
            header, _ = channel.next_request()
        except ChannelClosed:
            os._exit(0)
        channel.send_encoded(_invoke(function, functions, header))


def _initialize(channel: BlockingChannel, spec: dict[str, Any]) -> tuple[
    FunctionSpec, AppFunctions
]:
    project_dir = spec["project_dir"]
    os.environ.clear()
    os.environ.update(spec["environment"])
    os.chdir(project_dir)
    sys.path.insert(0, project_dir)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    module = importlib.import_module(APP_MODULE)
    app = getattr(module, "app", None)
    if app is None or not hasattr(app, "websocket_handlers"):
        raise LookupError(f"{project_dir}/app.py defines no Chalice object named 'app'")
    management_url = spec["management_url"]
    redirect_management(app, lambda: management_url, ChannelRoute(channel))
    functions = AppFunctions(app, module, spec["prefix"], {spec["function"]: spec["budget"]})
    function = functions.functions.get(spec["function"])
    if function is None:
        raise LookupError(f"the app has no function {spec['function']!r} any more")
    return function, functions


def _invoke(function: FunctionSpec, functions: AppFunctions, header: dict[str, Any]) -> bytes:
    """One invocation's answer, encoded to send."""
    invocation = header["id"]
    try:
        value = functions.call(function, header["event"])
    except Exception as error:
        return encode({"op": "error", "id": invocation, **Raised.of(error).payload()})
    try:
        return encode({"op": "result", "id": invocation, "value": value})
    except (TypeError, ValueError) as error:
        return encode({"op": "error", "id": invocation, **unmarshallable(error).payload()})
