"""Sample project: a multi-room chat whose table exists only in its merge template.

Frames: {"action": "join", "room": R}, {"action": "say", "text": T}. The table's
name reaches the functions as {"Ref": "ChatTable"} in the template, nowhere else.
"""

import contextlib
import json
import os

import boto3
from boto3.dynamodb.conditions import Key
from chalice import Chalice, WebsocketDisconnectedError

app = Chalice(app_name="chat")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.websocket_api.session = boto3.session.Session()


def table():
    return boto3.resource("dynamodb").Table(os.environ["CHAT_TABLE"])


@app.on_ws_connect()
def connect(event):
    name = (event.to_dict().get("queryStringParameters") or {}).get("name", "anonymous")
    table().put_item(Item={"pk": "conn", "sk": event.connection_id, "name": name, "room": "-"})


@app.on_ws_disconnect()
def disconnect(event):
    table().delete_item(Key={"pk": "conn", "sk": event.connection_id})


@app.on_ws_message()
def message(event):
    frame = json.loads(event.body)
    me = table().get_item(Key={"pk": "conn", "sk": event.connection_id})["Item"]
    if frame["action"] == "join":
        table().update_item(Key={"pk": "conn", "sk": event.connection_id},
                            UpdateExpression="SET room = :r",
                            ExpressionAttributeValues={":r": frame["room"]})
        app.websocket_api.send(event.connection_id, json.dumps({"joined": frame["room"]}))
        return
    members = table().query(IndexName="byRoom", KeyConditionExpression=Key("room").eq(me["room"]))
    for member in members["Items"]:
        with contextlib.suppress(WebsocketDisconnectedError):
            app.websocket_api.send(member["sk"], json.dumps(
                {"from": me["name"], "room": me["room"], "text": frame["text"]}))
