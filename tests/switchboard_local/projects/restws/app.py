"""Sample project: REST routes and WebSocket handlers in one app."""

from chalice import Chalice

app = Chalice(app_name="restws")
app.experimental_feature_flags.update(["WEBSOCKETS"])


@app.route("/")
def index():
    return {"hello": "world"}


@app.route("/items/{item_id}", methods=["GET", "PUT"], cors=True)
def item(item_id):
    request = app.current_request
    return {"id": item_id, "method": request.method, "body": request.json_body,
            "query": request.query_params}


@app.on_ws_message()
def message(event):
    app.websocket_api.send(event.connection_id, event.body.upper())
