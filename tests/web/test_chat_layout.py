"""The chat page's layout and labels in real Chromium: it fits the screen from 1280 px down
to 360 px (nothing wider than the window, a full-page screenshot exactly as wide as it),
long messages wrap across the conversation's width, and every field says what it is.

``SCREENSHOTS=docs/img`` (a directory) saves the screenshots the README shows; without it
they are taken in a temporary directory and only measured.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.gateways import REPO, Running, unique

from .chat import IMAGES, connect, enter, join, message, png_size, ready, screenshot, send_as

HEIGHT = 800
LONG_WORD = "https://example.com/" + "/".join(f"a-long-path-segment-{n}" for n in range(6))
LONG_TEXT = " ".join(["a long message that wraps across the width of the conversation"] * 6)

# Elements whose right edge is beyond the window, in the page's own terms.
OVERFLOWING = """
() => [...document.querySelectorAll("body *")]
  .filter((element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && box.right > window.innerWidth + 0.5
      && !element.closest("#messages, #log");  // scrolled boxes clip what they hold
  })
  .map((element) => `${element.tagName.toLowerCase()}#${element.id}.${element.className}`)
"""

# The width of the long message's text and of the conversation, read at one moment.
WIDTHS = """
(text) => {
  const shown = [...document.querySelectorAll("#messages li.mine .text")]
    .find((item) => item.textContent === text);
  return [shown.getBoundingClientRect().width, document.getElementById("messages").clientWidth];
}
"""


@pytest.mark.parametrize("width", [1280, 390, 360])
def test_the_page_fits_the_window_and_long_messages_wrap_across_it(
    gateway: Running, new_page: Callable[[str], Any], tmp_path: Path, width: int
) -> None:
    user, friend, room = unique("alice"), unique("bob"), unique("a-rather-long-room-name")
    page = new_page(gateway.gateway.page_url + "?backoffBase=400")
    page.set_viewport_size({"width": width, "height": HEIGHT})
    ready(page)
    connect(page, user)
    join(page, room)
    send_as(gateway, friend, {"action": "joinRoom", "room": room},
            {"action": "sendToRoom", "room": room, "text": f"hi {user}, what's new?"})
    send_as(gateway, friend, {"action": "sendMessage", "targetUserId": user, "text": "psst"})
    page.wait_for_selector(f"#conversations li[data-key='user:{friend}'] .unread")
    enter(page, "#text", LONG_TEXT)
    enter(page, "#text", LONG_WORD)
    message(page, LONG_TEXT, "mine")
    message(page, LONG_WORD, "mine")

    fits(page, width)
    # A long message uses the conversation's width: not a word a line.
    shown, list_width = page.evaluate(WIDTHS, LONG_TEXT)
    assert shown >= 0.6 * list_width, (shown, list_width)
    # The whole page, screenshot: exactly as wide as the window.
    assert png_size(screenshot(page, f"chat-{width}.png", tmp_path))[0] == width
    # The frame log, open, fits too.
    page.click("#toggle-frames")
    page.wait_for_selector("#frames", state="visible")
    fits(page, width)


def fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate(OVERFLOWING) == []


def test_every_field_says_what_it_is(gateway: Running, new_page: Callable[[str], Any]) -> None:
    page = ready(new_page(gateway.gateway.page_url))
    fields = page.eval_on_selector_all(
        "input",
        """inputs => inputs.map((input) => ({
          id: input.id,
          label: [...input.labels].map((label) => label.textContent.trim()).join(" "),
          placeholder: input.placeholder,
        }))""",
    )
    labels = [field["label"] for field in fields]
    assert all(labels), fields
    assert len(set(labels)) == len(labels), labels  # no two fields are both "User"
    by_id = {field["id"]: field for field in fields}
    assert by_id["user"]["label"] == "Your user id"
    assert by_id["dm-user"]["label"] == "Message a user"
    # A placeholder describes what to type; it never looks like a value already typed.
    assert by_id["roles"]["placeholder"] == ""
    assert "admin" in page.inner_text("#roles-hint")
    for field in fields:
        assert not re.fullmatch(r"[a-z]+", field["placeholder"]), field


def test_the_readme_shows_the_page_at_both_widths_and_after_a_reload() -> None:
    readme = (REPO / "README.md").read_text()
    for name, width in (("chat-1280.png", 1280), ("chat-390.png", 390),
                        ("chat-reload.png", 1280)):
        assert f"(docs/img/{name})" in readme, name
        assert png_size(IMAGES / name)[0] == width, name

