"""The command line: help, tokens, and a real process started and stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chalicelib.identity import TokenVerifier

from .conftest import REPO, WAIT, make_tiny_project

DEV_SECRET = "dev-only-insecure-switchboard-signing-key-change-me"


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard_local.gateway", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_help_lists_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--project-dir", "--stage", "--dynamodb-endpoint",
                   "--table", "--idle-timeout", "--max-duration", "--print-token"):
        assert option in result.stdout


def test_print_token_signs_with_the_dev_key() -> None:
    result = run_cli("--print-token", "alice", "--roles", "admin")
    assert result.returncode == 0, result.stderr
    identity = TokenVerifier(DEV_SECRET).verify(result.stdout.strip())
    assert (identity.user_id, identity.roles) == ("alice", ("admin",))


def test_print_token_explains_a_project_without_a_key(tmp_path: Path) -> None:
    make_tiny_project(tmp_path)
    result = run_cli("--project-dir", str(tmp_path), "--print-token", "alice")
    assert result.returncode == 2
    assert "TOKEN_SECRET" in result.stderr


def test_unknown_stage_is_a_clear_error() -> None:
    result = run_cli("--stage", "nope", "--print-token", "x")
    assert result.returncode == 2 and "stage 'nope'" in result.stderr


def test_ctrl_c_closes_sockets_runs_disconnect_and_exits(tmp_path: Path) -> None:
    make_tiny_project(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard_local.gateway", "--project-dir", str(tmp_path),
         "--port", "0", "--no-tables"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        banner = "".join(lines)
        url = re.search(r"WebSocket\s+(ws://\S+)", banner)
        assert url, banner
        assert re.search(r"Chat page\s+http://127\.0\.0\.1:\d+/", banner)
        assert re.search(r"Management\s+http://127\.0\.0\.1:\d+/v1/@connections/", banner)
        with connect(url.group(1), open_timeout=WAIT) as client:
            client.send("hi")
            connection_id = json.loads(client.recv(timeout=WAIT))["event"]["requestContext"][
                "connectionId"
            ]
            process.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    disconnects = [
        e for e in events
        if e["kind"] == "event" and e["event"]["requestContext"]["eventType"] == "DISCONNECT"
    ]
    assert [d["event"]["requestContext"]["connectionId"] for d in disconnects] == [connection_id]
