"""Sample project: REST routes whose answers API Gateway shapes (binary, API keys, methods)."""

import os

from chalice import Chalice, Response

app = Chalice(app_name="rest")

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@app.route("/image")
def image():
    return Response(body=PNG, headers={"Content-Type": "image/png"})


@app.route("/secret", api_key_required=True)
def secret():
    return {"secret": True}


@app.route("/items", methods=["GET"])
def items():
    return {"items": []}


@app.route("/crash")
def crash():
    os._exit(3)  # the function's process dies: API Gateway answers 502
