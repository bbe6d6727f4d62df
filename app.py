"""Switchboard: a serverless WebSocket backend on API Gateway, Lambda and DynamoDB.

Each route delegates to :mod:`chalicelib.handlers`; the container's services
are built on the first event, so importing this module creates no AWS client.
The handlers (and with them PyJWT and cryptography) are imported on the first
event too: the Lambda init phase pays only for Chalice and boto3, which every
Chalice WebSocket app needs.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from chalice.app import Chalice, Response, WebsocketEvent

from chalicelib import aws
from chalicelib.delivery import WORKERS

if TYPE_CHECKING:
    from chalicelib.runtime import Services

app = Chalice(app_name="switchboard")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = aws.management_session(pool_size=WORKERS)


def _handlers() -> tuple[ModuleType, Services]:
    """The handlers module and the container's services, imported on first use."""
    from chalicelib import handlers, runtime

    return handlers, runtime.services(app.websocket_api)


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> Response:
    handlers, services = _handlers()
    response: Response = handlers.on_connect(event, services)
    return response


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> Response:
    handlers, services = _handlers()
    response: Response = handlers.on_disconnect(event, services)
    return response


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    handlers, services = _handlers()
    handlers.on_message(event, services)
