"""A tiny Chalice WebSocket app for the gateway's tests: it records every event.

Events go to the JSON-lines file named by ``TINY_EVENTS`` (a stage variable);
every message is echoed with its event through the app's own management client.
Query parameters on ``$connect`` steer it: ``status=NNN`` answers that status,
``raise=1`` raises, ``sleep=S`` sleeps S seconds after trying to post to itself,
``env=NAME`` records that variable as ``$connect`` sees it.
A message ``raise`` raises, ``sleep:S`` sleeps first, ``info`` answers GetConnection,
``queues`` lists SQS queues (wherever the gateway points other AWS calls),
``count`` answers how many messages this module (its container) handled and its pid,
``env:NAME`` answers a variable, ``exit`` ends the process mid-invocation;
a long message is answered with its length only.
"""

import json
import os
import threading
import time

import boto3
from chalice.app import Chalice, Response, WebsocketDisconnectedError, WebsocketEvent

app = Chalice(app_name="tiny")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()

_lock = threading.Lock()
_handled = 0  # module state: per container


def record(kind: str, payload: dict) -> None:
    with _lock, open(os.environ["TINY_EVENTS"], "a", encoding="utf-8") as events:
        events.write(json.dumps({"kind": kind, **payload}) + "\n")


@app.on_ws_connect()
def connect(event: WebsocketEvent) -> Response:
    raw = event.to_dict()
    record("event", {"event": raw})
    query = raw.get("queryStringParameters") or {}
    if "sleep" in query:
        try:
            app.websocket_api.send(event.connection_id, "too early")
            outcome = "sent"
        except WebsocketDisconnectedError:
            outcome = "gone"
        record("early-post", {"connectionId": event.connection_id, "outcome": outcome})
        time.sleep(float(query["sleep"]))
    if "env" in query:
        record("connect-env", {"connectionId": event.connection_id, "name": query["env"],
                               "value": os.environ.get(query["env"])})
    if "raise" in query:
        raise RuntimeError("connect failed on purpose")
    record("connect-returned", {"connectionId": event.connection_id})
    return Response(body="", status_code=int(query.get("status", 200)))


@app.on_ws_message()
def message(event: WebsocketEvent) -> None:
    global _handled
    _handled += 1
    raw = event.to_dict()
    record("event", {"event": raw})
    body = event.body
    if body == "count":
        reply = {"count": _handled, "pid": os.getpid()}
        app.websocket_api.send(event.connection_id, json.dumps(reply))
        return
    if body.startswith("env:"):
        reply = {"env": os.environ.get(body[4:])}
        app.websocket_api.send(event.connection_id, json.dumps(reply))
        return
    if body == "exit":
        os._exit(3)
    if body == "raise":
        raise RuntimeError("message failed on purpose")
    if body.startswith("sleep:"):
        time.sleep(float(body.split(":", 1)[1]))
    if body == "queues":
        queues = boto3.client("sqs").list_queues().get("QueueUrls", [])
        app.websocket_api.send(event.connection_id, json.dumps({"queues": queues}))
        return
    if body == "info":
        info = app.websocket_api.info(event.connection_id)
        app.websocket_api.send(event.connection_id, json.dumps(info, default=str))
        return
    if len(body) > 1024:  # the echo must stay under the management API's 128 KiB
        app.websocket_api.send(event.connection_id, json.dumps({"length": len(body)}))
        return
    app.websocket_api.send(event.connection_id, json.dumps({"echo": body, "event": raw}))


@app.on_ws_disconnect()
def disconnect(event: WebsocketEvent) -> None:
    record("event", {"event": event.to_dict()})
