"""Switchboard: a serverless WebSocket backend on API Gateway, Lambda and DynamoDB.

Every function has one shape: :func:`chalicelib.entry.run` gives it its
deadline, its event log line and its metrics, and calls its handler with the
few objects that handler uses, picked here out of the container's services.
The services are built on the first event, so importing this module creates
no AWS client; the modules behind the functions (and with them PyJWT and
cryptography) are imported on the first event too: the Lambda init phase pays
only for Chalice and boto3, which every Chalice WebSocket app needs.

* ``websocket_connect`` / ``websocket_message`` / ``websocket_disconnect``: the routes.
* ``push``: invoked by other services to reach users, rooms or everyone.
* ``fanout_worker``: delivers the batches large audiences are split into.

A team's own actions, REST routes and functions live in ``chalicelib/product/``:
:func:`chalicelib.loader.load` imports those modules here and registers their
blueprints, so they deploy with the app and no line of this file changes.
* ``server_api``: invoked by a team's own services: publish, moderation, reads.
* ``expire_connections``: every minute, closes connections whose token expired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Chalice, CloudWatchEvent, Rate, Response, SQSEvent, WebsocketEvent

from chalicelib import entry, loader
from chalicelib import logs as _logs  # noqa: F401  (sets the operational log levels at init)
from chalicelib.delivery import WORKERS
from chalicelib.management import ManagementSession
from chalicelib.settings import fanout_queue_name, fanout_worker_concurrency

if TYPE_CHECKING:
    from chalicelib.extend import Gate
    from chalicelib.runtime import Services

app = Chalice(app_name="switchboard")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Chalice's documented hook for its management client: ours builds it once, with
# the stage's transport (MANAGEMENT_TRANSPORT), on the first post.
app.websocket_api.session = ManagementSession(pool_size=WORKERS)

FANOUT_BATCH_SIZE = 10


def _services() -> Services:
    """The container's services; importing them is deferred to the first event."""
    from chalicelib import runtime

    return runtime.services(app.websocket_api)


def _backends() -> Gate:
    """How a team's REST routes reach connections (see :class:`chalicelib.extend.Routes`)."""
    return _services().backends


loader.load(app, _backends)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> Response:
    from chalicelib import handlers

    def handle(call: entry.Call) -> Response:
        s = _services()
        return handlers.on_connect(
            event, call, s.verifier, s.registry, s.settings.management_endpoint, s.revocations
        )

    return entry.run("$connect", event.connection_id, event.context, handle)


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> Response:
    from chalicelib import handlers

    return entry.run(
        "$disconnect", event.connection_id, event.context,
        lambda call: handlers.on_disconnect(event, call, _services().cleanup),
    )


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    from chalicelib import handlers

    def handle(call: entry.Call) -> None:
        s = _services()
        handlers.on_message(event, call, s.actions, s.delivery, s.closer)

    entry.run("$default", event.connection_id, event.context, handle)


@app.lambda_function(name="push")
def push(event: Any, context: Any) -> dict[str, Any]:
    from chalicelib import push as push_module

    def handle(call: entry.Call) -> dict[str, Any]:
        s = _services()
        return push_module.handle(event, call, s.publisher, s.outbox(call.deadline))

    return entry.run("push", "-", context, handle)


@app.on_sqs_message(queue=fanout_queue_name(), batch_size=FANOUT_BATCH_SIZE, name="fanout_worker",
                    maximum_concurrency=fanout_worker_concurrency())
def fanout_worker(event: SQSEvent) -> dict[str, Any]:
    return entry.run(
        "fanout_worker", "-", event.context,
        lambda call: _services().worker.handle_batch(list(event), call.deadline, call.log),
    )


@app.lambda_function(name="server_api")
def server_api(event: Any, context: Any) -> dict[str, Any]:
    from chalicelib import server_api as server_api_module

    return entry.run(
        "server_api", "-", context,
        lambda call: server_api_module.handle(event, call, _services().server_api),
    )


@app.schedule(Rate(1, unit=Rate.MINUTES), name="expire_connections")
def expire_connections(event: CloudWatchEvent) -> dict[str, Any]:
    return entry.run(
        "expire_connections", "-", event.context,
        lambda call: _services().expiry.run(call.deadline, call.log),
    )
