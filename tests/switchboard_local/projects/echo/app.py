"""Sample project: every message is posted back to its sender, prefixed."""

from chalice import Chalice

app = Chalice(app_name="echo")
app.experimental_feature_flags.update(["WEBSOCKETS"])


@app.on_ws_message()
def message(event):
    app.websocket_api.send(event.connection_id, "echo: " + event.body)
