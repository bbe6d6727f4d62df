"""The smallest useful Chalice WebSocket app: the cold-start baseline.

It does what every Chalice WebSocket app must (a boto3 session for
``websocket_api``, the three handlers) and nothing else.
"""

import boto3
from chalice import Chalice

app = Chalice(app_name="minimal")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()


@app.on_ws_connect()
def connect(event):  # type: ignore[no-untyped-def]
    pass


@app.on_ws_message()
def message(event):  # type: ignore[no-untyped-def]
    app.websocket_api.send(event.connection_id, event.body)


@app.on_ws_disconnect()
def disconnect(event):  # type: ignore[no-untyped-def]
    pass
