"""docs/backend.md's examples, run as written against the ``server_api`` function.

Each ``<!-- example: ... -->`` marker is followed by the event and the answer;
they run in the guide's order on the stage the guide describes, and each
answer must be the documented one, where ``"..."`` matches any value.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from chalicelib.server_api import METHOD_NAMES
from switchboard_local.testing import LambdaContext, WebsocketTestClient
from tests.e2e.readme import matches
from tests.gateways import REPO

GUIDE = REPO / "docs" / "backend.md"
EXAMPLE = re.compile(r"<!-- example: (.*?) -->\n```json\n(.*?)```\n```json\n(.*?)```", re.S)


def examples() -> list[tuple[str, Any, Any]]:
    return [(name, json.loads(event), json.loads(answer))
            for name, event, answer in EXAMPLE.findall(GUIDE.read_text())]


def test_the_guide_has_an_example_of_every_method() -> None:
    shown = {event["method"] for _, event, _ in examples()}
    assert shown == set(METHOD_NAMES)


def test_every_example_answers_as_documented(
    app_module: Any, client: WebsocketTestClient, connect: Any, token: Any
) -> None:
    phone, laptop, bob = connect("alice"), connect("alice"), connect("bob")
    mallory = client.connect(query={"token": token("mallory", now=time.time() - 60)})
    connect("carol")
    for member in (phone, laptop, bob, mallory):
        assert member.request({"action": "joinRoom", "room": "lobby"})["type"] == "ack"
    bob.request({"action": "sendToRoom", "room": "lobby", "text": "hello"})

    for name, event, documented in examples():
        answer = app_module.server_api(event, LambdaContext("server_api"))
        assert matches(documented, answer), (name, answer)
