"""``--expose``: what other machines reach, and what stays for loopback peers only.

The gateway listens on 0.0.0.0 inside a network namespace of its own (``unshare
--net``, as root: CI runs as root) whose loopback interface also holds a
non-loopback address, so the peers are real non-loopback addresses and nothing
is reachable from outside the namespace (:mod:`.exposed` runs there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.gateways import REPO

from .exposed import REMOTE


@pytest.fixture(scope="module")
def probed() -> dict[str, Any]:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("a network namespace needs root, unshare and ip (CI runs as root)")
    script = (f"ip link set lo up && ip addr add {REMOTE}/32 dev lo && "
              f"exec {sys.executable} -m tests.switchboard_local.exposed")
    result = subprocess.run(["unshare", "--net", "bash", "-c", script], cwd=REPO,
                            capture_output=True, text=True, timeout=180, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    return dict(json.loads(lines[0].removeprefix("RESULTS ")))


def test_the_banner_says_what_becomes_reachable(probed: dict[str, Any]) -> None:
    assert probed["banner"] == [
        "listening on 0.0.0.0: other machines reach the WebSocket stage, @connections (send "
        "to and close any connection), /_local/invoke (run any lambda function), the REST "
        "routes and the pages",
        "/_local/token and the store answer loopback peers only",
        f"Host names accepted besides localhost, 127.0.0.1 and [::1]: {REMOTE}",
    ]


def test_other_machines_get_no_token_whatever_host_they_name(probed: dict[str, Any]) -> None:
    for probe in ("remote token", "remote token, loopback Host"):
        status, answer = probed[probe]
        assert status == 403
        assert answer["message"] == (
            f"tokens are served to loopback peers only, not to {REMOTE}")
    status, config = probed["remote config"]
    assert status == 200 and config["tokens"] is False
    assert config["websocketUrl"].startswith(f"ws://{REMOTE}:")


def test_other_machines_cannot_reach_the_store(probed: dict[str, Any]) -> None:
    assert probed["remote store at its address"] == ["refused", None]  # it listens on 127.0.0.1
    status, answer = probed["remote store, loopback Host"]
    assert status == 403 and answer["message"] == (
        f"the store answers loopback peers only, not {REMOTE}")
    assert probed["local store"] == "/switchboard/dev/token-secret"


def test_what_expose_opens_works_and_foreign_hosts_stay_refused(probed: dict[str, Any]) -> None:
    assert probed["remote post to a connection"] == [200, {"from": "remote"}]
    status, answer = probed["remote foreign Host"]
    assert status == 403 and answer["message"].startswith("Host 'evil.example' is not allowed")
