"""An echo Chalice WebSocket app: each message is posted back to its sender.

The local gateway runs it for the gateway figure. Its management client gets
an HTTP pool as large as the gateway's invoker pool (64 concurrent
invocations): with botocore's default of 10 connections, concurrent echoes
would open and discard connections, measuring urllib3's churn instead.
"""

import boto3
import botocore.session
from botocore.config import Config
from chalice import Chalice

INVOKER_CONCURRENCY = 64

app = Chalice(app_name="echo")
app.experimental_feature_flags.update(["WEBSOCKETS"])
_core = botocore.session.get_session()
_core.set_default_client_config(Config(max_pool_connections=INVOKER_CONCURRENCY))
app.websocket_api.session = boto3.session.Session(botocore_session=_core)


@app.on_ws_message()
def message(event):  # type: ignore[no-untyped-def]
    app.websocket_api.send(event.connection_id, event.body)
