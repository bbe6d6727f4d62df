"""The README's "Talk to it" with wscat, which it offers to users with Node.

A module of its own, so that it gets a fresh ``make run``: the README shows the
``seq`` of a first message, which a second run on the same store would not see.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateways import REPO
from tests.switchboard_local.installed import Served

from .readme import README, block, talk

WSCAT = REPO / "node_modules" / ".bin" / "wscat"


@pytest.mark.skipif(not WSCAT.exists(), reason="wscat comes with `npm ci` (make test)")
def test_wscat_takes_the_same_url(make_run: Served, client_factory: Any) -> None:
    url, client_line = block("commands")
    assert "npx wscat -c` takes the same URL" in README.read_text()
    wscat = client_line.replace(".venv/bin/python -m websockets", "npx wscat -c")
    client = client_factory(f"{url}\n{wscat}")
    client.ready()
    talk(client)
