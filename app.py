"""Switchboard: a serverless WebSocket backend on API Gateway, Lambda and DynamoDB.

Each function delegates to :mod:`chalicelib`; the container's services are
built on the first event, so importing this module creates no AWS client.
The modules behind the functions (and with them PyJWT and cryptography) are
imported on the first event too: the Lambda init phase pays only for Chalice
and boto3, which every Chalice WebSocket app needs.

* ``websocket_connect`` / ``websocket_message`` / ``websocket_disconnect``: the routes.
* ``push``: invoked by other services to reach users, rooms or everyone.
* ``fanout_worker``: delivers the batches large audiences are split into.

Every function's metrics are written when its invocation ends (the
middleware :func:`emit_metrics`; see :mod:`chalicelib.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice.app import Chalice, Response, SQSEvent, WebsocketEvent

from chalicelib import logs as _logs  # noqa: F401  (sets the operational log levels at init)
from chalicelib import metrics
from chalicelib.delivery import WORKERS
from chalicelib.management import ManagementSession
from chalicelib.settings import fanout_queue_name, fanout_worker_concurrency

if TYPE_CHECKING:
    from chalicelib.runtime import Services

app = Chalice(app_name="switchboard")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Chalice's documented hook for its management client: ours builds it once, with
# the stage's transport (MANAGEMENT_TRANSPORT), on the first post.
app.websocket_api.session = ManagementSession(pool_size=WORKERS)

FANOUT_BATCH_SIZE = 10


@app.middleware("all")
def emit_metrics(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Write what the invocation measured when it ends, however it ends."""
    try:
        return get_response(event)
    finally:
        metrics.flush()


def _services() -> Services:
    """The container's services; importing them is deferred to the first event."""
    from chalicelib import runtime

    return runtime.services(app.websocket_api)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> Response:
    from chalicelib import handlers

    return handlers.on_connect(event, _services())


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> Response:
    from chalicelib import handlers

    return handlers.on_disconnect(event, _services())


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    from chalicelib import handlers

    handlers.on_message(event, _services())


@app.lambda_function(name="push")
def push(event: Any, context: Any) -> dict[str, Any]:
    from chalicelib import push as push_module

    return push_module.handle(event, context, _services())


@app.on_sqs_message(queue=fanout_queue_name(), batch_size=FANOUT_BATCH_SIZE, name="fanout_worker",
                    maximum_concurrency=fanout_worker_concurrency())
def fanout_worker(event: SQSEvent) -> dict[str, Any]:
    from chalicelib import fanout, invocation

    with invocation.bound(event.context) as deadline:
        return fanout.handle_batch(list(event), _services(), deadline)
