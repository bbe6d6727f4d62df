"""Driving the chat page (``web/``) in Chromium: what a person does, and what they see."""

from __future__ import annotations

import json
import os
import struct
import urllib.parse
from pathlib import Path
from typing import Any

from tests.gateways import REPO, WAIT, Running

# Slow enough backoff for the countdown to be seen, fast enough for a test.
QUERY = "?backoffBase=400&backoffCap=1500&gapTimeout=500"
IMAGES = REPO / "docs" / "img"


def enter(page: Any, field: str, text: str) -> None:
    """Type ``text`` into ``field`` and press Enter (the page must not reload)."""
    page.fill(field, text)
    page.press(field, "Enter")
    assert page.evaluate("window.loadedOnce") is True, f"Enter in {field} reloaded the page"


def ready(page: Any) -> Any:
    page.wait_for_selector("body[data-ready=true]")
    page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    return page


def connect(page: Any, user: str, roles: str = "") -> None:
    page.fill("#roles", roles)
    enter(page, "#user", user)
    page.wait_for_selector("#status[data-state=open]")


def join(page: Any, room: str) -> None:
    enter(page, "#room", room)
    page.wait_for_selector(f"#conversations li[data-key='room:{room}'].current")
    page.wait_for_selector("#members li")


def message(page: Any, text: str, *classes: str) -> Any:
    selector = "#messages li.message" + "".join(f".{c}" for c in classes)
    return page.wait_for_selector(f"{selector}:has-text({json.dumps(text)})")


def texts(page: Any, notices: bool = False) -> list[str]:
    """The open conversation's messages (and the page's own notices, if asked)."""
    selector = "#messages li.message" + ("" if notices else ":not(.system)") + " .text"
    found: list[str] = page.eval_on_selector_all(selector, "items => items.map(i => i.textContent)")
    return found


def conversation_keys(page: Any) -> list[str]:
    keys: list[str] = page.eval_on_selector_all(
        "#conversations li", "items => items.map(i => i.dataset.key)")
    return keys


def unread(page: Any, key: str) -> str | None:
    badge = page.query_selector(f"#conversations li[data-key='{key}'] .unread")
    return None if badge is None else str(badge.inner_text())


def send_as(gateway: Running, user: str, *frames: dict[str, Any]) -> dict[str, Any]:
    """Frames from another user's terminal (not a page), one connection; the last answer."""
    token = urllib.parse.urlencode({"token": gateway.token(user)})
    answer: dict[str, Any] = {}
    with gateway.connect(token) as socket:
        for number, frame in enumerate(frames):
            socket.send(json.dumps({**frame, "id": str(number)}))
            while answer.get("id") != str(number):
                answer = json.loads(socket.recv(timeout=WAIT))
    return answer


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def screenshot(page: Any, name: str, elsewhere: Path) -> Path:
    """A full-page screenshot named ``name``: in the directory ``SCREENSHOTS`` names
    (``SCREENSHOTS=docs/img`` refreshes the README's), else in ``elsewhere``."""
    path = Path(os.environ.get("SCREENSHOTS") or elsewhere) / name
    page.screenshot(path=str(path), full_page=True)
    return path
