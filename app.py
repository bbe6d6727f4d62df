"""Switchboard: a serverless WebSocket backend on API Gateway, Lambda and DynamoDB.

Each function delegates to :mod:`chalicelib`; the container's services are
built on the first event, so importing this module creates no AWS client.

* ``websocket_connect`` / ``websocket_message`` / ``websocket_disconnect``: the routes.
* ``push``: invoked by other services to reach users, rooms or everyone.
* ``fanout_worker``: delivers the batches large audiences are split into.
"""

from typing import Any

from chalice.app import Chalice, Response, SQSEvent, WebsocketEvent

from chalicelib import aws, fanout, handlers, runtime
from chalicelib import push as push_module
from chalicelib.delivery import WORKERS, Deadline
from chalicelib.settings import fanout_queue_name

app = Chalice(app_name="switchboard")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = aws.management_session(pool_size=WORKERS)

FANOUT_BATCH_SIZE = 10


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> Response:
    return handlers.on_connect(event, runtime.services(app.websocket_api))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> Response:
    return handlers.on_disconnect(event, runtime.services(app.websocket_api))


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    handlers.on_message(event, runtime.services(app.websocket_api))


@app.lambda_function(name="push")
def push(event: Any, context: Any) -> dict[str, Any]:
    return push_module.handle(event, context, runtime.services(app.websocket_api))


@app.on_sqs_message(queue=fanout_queue_name(), batch_size=FANOUT_BATCH_SIZE, name="fanout_worker")
def fanout_worker(event: SQSEvent) -> dict[str, Any]:
    deadline = Deadline.for_invocation(event.context)
    return fanout.handle_batch(list(event), runtime.services(app.websocket_api), deadline)
