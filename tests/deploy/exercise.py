"""Run one function's handler on events, in a fresh interpreter, and print its AWS operations.

``python -m tests.deploy.exercise`` reads ``{"handler": "<callable in app.py>",
"function": "<Chalice name>", "events": [...]}`` on stdin, imports ``app`` as a
new Lambda container would (the stage's variables come from the environment),
invokes the handler once per event with a Lambda context, and prints the
operations every botocore client made — data clients built from boto3's
default session and the management client built from
``app.websocket_api.session`` (``MANAGEMENT_TRANSPORT=botocore``) — as a JSON
list of ``service:Operation``. A handler that raises is part of the exercise:
its operations count too.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    request = json.load(sys.stdin)
    import boto3

    recorded: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        recorded.add(f"{model.service_model.service_name}:{model.name}")

    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call", record)

    import app
    from switchboard_local.lambda_runtime import LambdaContext

    app.app.websocket_api.session.events.register("before-call", record)
    handler = getattr(app, request["handler"])
    for event in request["events"]:
        try:
            handler(event, LambdaContext(request["function"]))
        except Exception as error:
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
    print(json.dumps(sorted(recorded)))


if __name__ == "__main__":
    main()
