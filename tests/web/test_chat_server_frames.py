"""The chat page shows what the server decides, in real Chromium: a large room's occupancy,
a push, a subscription or an unsubscription made by a backend, and a disconnect that does not
come back.

The server on ``main`` does not send these frames yet, so the test places itself between
page and gateway with Playwright's WebSocket routing: every frame passes both ways, and the
test adds the server's frames of the contract (``docs/clients.md``) where it needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.conftest import PAGE_TIMEOUT_MS
from tests.gateways import Running, unique

from .chat import QUERY, connect, join, message, ready


class Routed:
    """The page's current WebSocket, connected through to the gateway."""

    def __init__(self) -> None:
        self.route: Any = None

    def handle(self, route: Any) -> None:
        route.connect_to_server()  # frames pass both ways unchanged
        self.route = route

    def server_says(self, frame: dict[str, Any]) -> None:
        assert self.route is not None, "the page has no WebSocket yet"
        self.route.send(json.dumps(frame))


@pytest.fixture
def routed_page(browser: Any, gateway: Running) -> Iterator[tuple[Any, Routed]]:
    page = browser.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    routed = Routed()
    page.route_web_socket(re.compile(r"/dev(\?|$)"), routed.handle)
    page.goto(gateway.gateway.page_url + QUERY)
    yield ready(page), routed
    page.close()


def test_occupancy_subscriptions_and_a_final_disconnect_show_on_the_page(
    routed_page: tuple[Any, Routed],
) -> None:
    page, routed = routed_page
    user, room = unique("hana"), unique("big")
    connect(page, user)
    join(page, room)

    routed.server_says({"type": "occupancy", "room": room, "users": 1200, "connections": 1500})
    page.wait_for_selector("#occupancy:has-text('1,200 users, 1,500 connections')")

    routed.server_says({"type": "push", "data": {"order": 42}, "sentAt": "2026-01-01T00:00:00Z"})
    page.click("#conversations li[data-key='all:'] button")
    message(page, '{"order":42}')

    routed.server_says({"type": "subscribed", "room": "news", "seq": 0, "epoch": "E"})
    page.wait_for_selector("#conversations li[data-key='room:news']")
    page.click("#conversations li[data-key='room:news'] button")
    message(page, "a service added you to this room", "system")
    assert page.is_visible("#leave")

    routed.server_says({"type": "unsubscribed", "room": "news", "reason": "moderated"})
    message(page, "you were removed from this room: moderated", "system")
    page.wait_for_selector("#conversations li.left[data-key='room:news']")
    assert page.is_hidden("#leave") and page.is_disabled("#text")
    assert page.inner_text("#members-note") == "You are not in news."

    routed.server_says({"type": "disconnect", "reason": "account closed", "reconnect": False})
    page.wait_for_selector("#status[data-state=closed]")
    assert page.inner_text("#status") == "closed: the server disconnected: account closed"
    assert page.inner_text("#notice-text") == "the server disconnected: account closed"
    assert page.inner_text("#members-note").startswith("Not connected")
    assert page.is_enabled("#connect")
