"""The chat page's fixtures: the JavaScript client's (the gateway running this app, the relay
that cuts connections, pages in headless Chromium: ``tests/clients/conftest.py``), and the
chat page opened on a gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.clients.conftest import gateway, new_page, proxy

from .chat import QUERY, ready

__all__ = ["gateway", "new_page", "open_chat", "proxy"]


@pytest.fixture
def open_chat(new_page: Callable[[str], Any]) -> Callable[..., Any]:
    """Open the chat page at ``base`` (with the test's query string, plus ``extra``)."""

    def open_at(base: str, extra: str = "") -> Any:
        return ready(new_page(base + QUERY + extra))

    return open_at
