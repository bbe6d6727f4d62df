"""The frame console in a real headless Chromium (the ``browser`` fixture of
``tests/conftest.py``); the chat page's tests are in ``tests/web/test_chat_page.py``.
"""

from __future__ import annotations

from typing import Any

from tests.gateways import Running

TIMEOUT_MS = 15_000


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
