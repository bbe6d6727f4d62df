"""The chat page in a real headless Chromium: two pages exchange a direct and a room message.

Playwright drives the system Chromium (``/usr/bin/chromium``); it never downloads
a browser. Without one the test is skipped: ``make browser`` (or
``apt-get install chromium`` as root) installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Running, unique

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: run `make browser` (as root it runs "
            "`apt-get install -y chromium`), or set CHROMIUM to a Chromium binary"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_chat(browser: Any, running: Running, user: str) -> Any:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(running.gateway.page_url)
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#user", user)
    page.click("#connect")
    page.wait_for_selector("#status:has-text('connected as')")
    return page


def send(page: Any, kind: str, target: str, text: str) -> None:
    page.select_option("#target-kind", kind)
    page.fill("#target", target)
    page.fill("#text", text)
    page.click("#send")


def wait_for_frame(page: Any, text: str) -> None:
    page.wait_for_selector(f"#log li.in:has-text('{text}')")


def test_two_pages_exchange_direct_and_room_messages(
    browser: Any, switchboard_gateway: Running
) -> None:
    alice, bob, room = unique("alice"), unique("bob"), unique("room")
    alice_page = open_chat(browser, switchboard_gateway, alice)
    bob_page = open_chat(browser, switchboard_gateway, bob)
    try:
        send(alice_page, "user", bob, "hello bob")
        wait_for_frame(bob_page, "hello bob")
        wait_for_frame(alice_page, '"delivered":1')

        for page in (alice_page, bob_page):
            page.fill("#room", room)
            page.click("#join")
            page.wait_for_selector("#log li.in:has-text('joinRoom')")
        send(bob_page, "room", room, "hello room")
        wait_for_frame(alice_page, "hello room")

        send(bob_page, "room", "not-joined-room", "x")
        alice_page.fill("#raw", "not json")
        alice_page.click("#send-raw")
        alice_page.wait_for_selector("#log li.error:has-text('bad_json')")
        bob_page.wait_for_selector("#log li.error:has-text('forbidden')")
    finally:
        alice_page.close()
        bob_page.close()


def test_the_frame_console_of_a_project_without_a_page(
    browser: Any, tiny_gateway: Running
) -> None:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(tiny_gateway.gateway.page_url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.inner_text("#stage-url") == tiny_gateway.gateway.websocket_url
        page.fill("#query", "x=from-console")
        page.click("#connect")
        page.wait_for_selector("#status:has-text('connected')")
        page.fill("#text", "hello console")
        page.click("#send")
        page.wait_for_selector("#log li.out:has-text('hello console')")
        page.wait_for_selector("#log li.in:has-text('\"echo\": \"hello console\"')")
        page.click("#disconnect")
        page.wait_for_selector("#log li.info:has-text('closed: 1000')")
        connects = [
            e["event"] for e in tiny_gateway.events()
            if e["kind"] == "event" and e["event"]["requestContext"]["eventType"] == "CONNECT"
        ]
        assert connects[-1]["queryStringParameters"] == {"x": "from-console"}
    finally:
        page.close()
