"""The JavaScript client's Node suite (``clients/js/test/``), run with Node's own test runner.

It covers the ordering Stream on the shared cases and the client's state machine on an
in-memory WebSocket; the browser and real-socket tests are in ``test_js_browser.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.gateways import Running

from .node import node, websocket_flags

JS = Path(__file__).parents[2] / "clients" / "js"
NODE_CLIENT = Path(__file__).parent / "node_client.mjs"


def test_the_node_suite_passes() -> None:
    suites = sorted(str(path.relative_to(JS)) for path in (JS / "test").glob("*.test.js"))
    assert suites, "no Node suites found"
    result = subprocess.run(
        [node(), "--test", *suites], cwd=JS, capture_output=True, text=True, timeout=300
    )
    report = result.stdout + result.stderr
    failed = "\n".join(line for line in report.splitlines() if line.startswith("not ok"))
    assert result.returncode == 0, failed or report[-4000:]
    passed = re.search(r"^# pass (\d+)$", report, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) >= 60, report[-2000:]
    assert re.search(r"^# fail 0$", report, re.MULTILINE)


def test_the_js_client_runs_in_node_against_the_gateway(gateway: Running) -> None:
    """Node's own WebSocket (behind a flag before Node 22) is all the client needs there."""
    urls = [gateway.gateway.page_url, gateway.gateway.websocket_url, gateway.gateway.management_url]
    result = subprocess.run(
        [node(), *websocket_flags(), str(NODE_CLIENT), *urls],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    messages = [e for e in report["events"] if e["type"] == "message"]
    # In order within each stream (the room's, the personal one), not across them.
    assert [m["text"] for m in messages if m.get("room") == report["room"]] == ["one", "two"]
    assert [m["text"] for m in messages if "room" not in m] == ["direct"]
    states = [e["state"] for e in report["events"] if e["type"] == "state"]
    assert states[:2] == ["connecting", "open"] and "reconnecting" in states
    assert report["stats"]["connections"] == 2
