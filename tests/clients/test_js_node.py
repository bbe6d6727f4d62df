"""The JavaScript client's Node suite (``clients/js/test/``), run with Node's own test runner.

It covers the ordering Stream on the shared cases and the client's state machine on an
in-memory WebSocket; the browser and real-socket tests are in ``test_js_browser.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).parents[2] / "clients" / "js"


def test_the_node_suite_passes() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node is not installed (make test needs it for dynalite anyway)")
    suites = sorted(str(path.relative_to(JS)) for path in (JS / "test").glob("*.test.js"))
    assert suites, "no Node suites found"
    result = subprocess.run(
        [node, "--test", *suites], cwd=JS, capture_output=True, text=True, timeout=300
    )
    report = result.stdout + result.stderr
    failed = "\n".join(line for line in report.splitlines() if line.startswith("not ok"))
    assert result.returncode == 0, failed or report[-4000:]
    passed = re.search(r"^# pass (\d+)$", report, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) >= 40, report[-2000:]
    assert re.search(r"^# fail 0$", report, re.MULTILINE)
