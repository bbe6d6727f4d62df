"""The chat page (``web/``) in real headless Chromium: two users, a room with presence,
direct messages, a forced drop with visible reconnection and recovered messages, the
frame log, and Enter in every field.

Alice's page reaches the gateway through :class:`TcpProxy`, so the test can take
the gateway away from her (HTTP and WebSocket alike) while Bob keeps talking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.clients.proxy import TcpProxy
from tests.gateways import Running, unique

# Slow enough backoff for the countdown to be seen, fast enough for a test.
QUERY = "?backoffBase=400&backoffCap=1500&gapTimeout=500"


@pytest.fixture
def open_chat(new_page: Callable[[str], Any]) -> Callable[[str], Any]:
    def open_at(base: str) -> Any:
        page = new_page(base + QUERY)
        page.wait_for_selector("body[data-ready=true]")
        page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
        return page

    return open_at


def enter(page: Any, field: str, text: str) -> None:
    page.fill(field, text)
    page.press(field, "Enter")
    assert page.evaluate("window.loadedOnce") is True, f"Enter in {field} reloaded the page"


def message(page: Any, text: str, *classes: str) -> Any:
    selector = "#messages li.message" + "".join(f".{c}" for c in classes)
    return page.wait_for_selector(f"{selector}:has-text('{text}')")


def test_two_users_chat_through_drops_with_every_field_on_enter(
    gateway: Running, proxy: TcpProxy, open_chat: Callable[[str], Any]
) -> None:
    alice, bob, room = unique("alice"), unique("bob"), unique("room")
    alice_page = open_chat(proxy.url("/"))
    bob_page = open_chat(gateway.gateway.page_url)

    # Connect: Enter in the user field, and in the roles field.
    enter(alice_page, "#user", alice)
    bob_page.fill("#user", bob)
    enter(bob_page, "#roles", "")
    for page, user in ((alice_page, alice), (bob_page, bob)):
        page.wait_for_selector("#status[data-state=open]")
        assert page.inner_text("#status") == f"open as {user}"

    # A room, joined with Enter; the members panel fills from presence.
    for page in (alice_page, bob_page):
        enter(page, "#room", room)
        page.wait_for_selector(f"#conversations li[data-key='room:{room}'].current")
    for page in (alice_page, bob_page):
        page.wait_for_selector(f"#members li[data-user='{alice}']")
        page.wait_for_selector(f"#members li[data-user='{bob}']")

    # A room message, sent with Enter.
    enter(alice_page, "#text", "hello room")
    message(bob_page, "hello room")
    message(alice_page, "hello room", "mine")

    # A direct conversation, opened with Enter; Bob sees it arrive as unread.
    enter(alice_page, "#dm-user", bob)
    alice_page.wait_for_selector(f"#conversations li[data-key='user:{bob}'].current")
    enter(alice_page, "#text", "hello bob")
    bob_page.wait_for_selector(f"#conversations li[data-key='user:{alice}'] .unread")
    bob_page.click(f"#conversations li[data-key='user:{alice}'] button")
    message(bob_page, "hello bob")

    # The frame log is a toggle; a raw frame is sent with Enter and its answer logged.
    assert alice_page.is_hidden("#frames")
    alice_page.click("#toggle-frames")
    assert alice_page.is_visible("#frames")
    enter(alice_page, "#raw", '{"action":"whoami","id":"raw-1"}')
    alice_page.wait_for_selector("#log li.in:has-text('\"id\":\"raw-1\"')")
    enter(alice_page, "#raw", "not json")
    alice_page.wait_for_selector("#log li.error:has-text('bad_json')")

    # A forced drop: the gateway is unreachable for Alice while Bob talks in the room.
    for page in (alice_page, bob_page):
        page.click(f"#conversations li[data-key='room:{room}'] button")
    with proxy.down():
        alice_page.wait_for_selector("#status[data-state=reconnecting]")
        alice_page.wait_for_function(
            "document.getElementById('status').textContent.includes('gateway unreachable')"
        )
        status = alice_page.inner_text("#status")
        assert "reconnecting in" in status and "authentic" not in status
        bob_page.wait_for_selector(f"#members li[data-user='{alice}']", state="detached")
        for number in range(3):
            enter(bob_page, "#text", f"while you were away {number}")
            message(bob_page, f"while you were away {number}", "mine")
    alice_page.wait_for_selector("#status[data-state=open]")
    for number in range(3):
        message(alice_page, f"while you were away {number}", "recovered")
    bob_page.wait_for_selector(f"#members li[data-user='{alice}']")

    # After the drop the room works as before, and nothing arrived twice.
    enter(alice_page, "#text", "back again")
    message(bob_page, "back again")
    texts = alice_page.eval_on_selector_all(
        "#messages li.message:not(.system) .text", "items => items.map(i => i.textContent)"
    )
    assert texts == ["hello room"] + [f"while you were away {n}" for n in range(3)] + [
        "back again"
    ]
