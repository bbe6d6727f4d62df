"""Switchboard: a serverless WebSocket backend on API Gateway, Lambda and DynamoDB.

Each route delegates to :mod:`chalicelib.handlers`; the container's services
are built on the first event, so importing this module creates no AWS client.
"""

from chalice.app import Chalice, Response, WebsocketEvent

from chalicelib import aws, handlers, runtime
from chalicelib.delivery import WORKERS

app = Chalice(app_name="switchboard")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = aws.management_session(pool_size=WORKERS)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> Response:
    return handlers.on_connect(event, runtime.services(app.websocket_api))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> Response:
    return handlers.on_disconnect(event, runtime.services(app.websocket_api))


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    handlers.on_message(event, runtime.services(app.websocket_api))
