"""A cold container's first fan-out builds one management client, not one per worker.

Chalice's ``WebsocketAPI`` builds its client on first use without a lock;
found while benchmarking the fan-out (16 clients, ~1 s of CPU, for 200
targets). :class:`chalicelib.management.ManagementSession` builds one per
endpoint under its own lock, so Chalice's race hands every thread the same one.
"""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import Chalice

from chalicelib.delivery import Delivery
from chalicelib.invocation import Deadline
from chalicelib.management import ManagementSession
from switchboard_local.events import ApiContext, ConnectionContext
from switchboard_local.testing import ManagementEmulator, route_management_api


@pytest.mark.parametrize("transport", ["lean", "botocore"])
def test_the_first_fan_out_builds_one_client(transport: str) -> None:
    app = Chalice(app_name="cold")
    session = ManagementSession(pool_size=16, transport=transport)
    app.websocket_api.session = session
    built: list[Any] = []
    session.events.register(
        "creating-client-class.apigatewaymanagementapi", lambda **_: built.append(1)
    )
    emulator = ManagementEmulator()
    route_management_api(session, emulator)
    delivery = Delivery(app.websocket_api, workers=16)
    delivery.ensure_endpoint(lambda: "https://local00001.execute-api.us-east-1.amazonaws.com/api")
    targets = []
    for _ in range(80):
        context = ConnectionContext(ApiContext())
        emulator.open(context)
        targets.append(context.connection_id)
    report = delivery.post_all(targets, "{}", Deadline.after(30))
    report += delivery.post_all(targets, "{}", Deadline.after(30))
    assert report.delivered == emulator.posts == 160
    assert built == [1]
