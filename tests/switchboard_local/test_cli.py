"""The command line: help, clear errors, token and invoke clients, a real process and Ctrl-C."""

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
from switchboard_local import cli
from tests.gateways import REPO, WAIT, Running

from .conftest import make_tiny_project


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
                   "--merge-template", "--parameter", "--state-dir", "--no-autoreload",
                   "--idle-timeout", "--max-duration", "--expose", "--allow-host",
                   "--containers", "--no-containers", "--concurrency"):
        assert option in result.stdout


def test_unknown_stage_is_a_clear_error() -> None:
    result = run_cli("--stage", "nope", "--port", "0")
    assert result.returncode == 2 and "stage 'nope' is not in .chalice/config.json" in result.stderr


def test_a_directory_without_app_py_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("--port", "0", cwd=tmp_path)
    assert result.returncode == 2 and "is not a Chalice project" in result.stderr


def test_listening_beyond_loopback_needs_expose(tmp_path: Path) -> None:
    """Refused before anything listens, with what --expose would open."""
    make_tiny_project(tmp_path)
    result = run_cli("--host", "0.0.0.0", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: 0.0.0.0 is not a loopback address: other machines could send to and close any "
        "connection, invoke any function and reach the REST routes. Pass --expose to listen "
        "there anyway (/_local/token and the store stay loopback-only)\n")


def test_a_bad_parameter_is_refused_by_the_parser() -> None:
    result = run_cli("--parameter", "novalue")
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


@pytest.mark.parametrize(("value", "message"), [("0", "must be at least 1"),
                                                  ("many", "is not a whole number")])
def test_a_bad_concurrency_limit_is_refused_by_the_parser(value: str, message: str) -> None:
    result = run_cli("--concurrency", value)
    assert result.returncode == 2 and "--concurrency" in result.stderr
    assert message in result.stderr


def test_clients_explain_when_no_gateway_answers(
    capsys: pytest.CaptureFixture[str], unused_url: str
) -> None:
    assert cli.main(["invoke", "push", "{}", "--url", unused_url]) == 2
    assert "no gateway answers" in capsys.readouterr().err
    assert cli.main(["token", "alice", "--url", unused_url]) == 2


@pytest.fixture
def unused_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_token_client_prints_a_token_the_app_verifies(
    switchboard_gateway: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    url = switchboard_gateway.gateway.page_url
    assert cli.main(["token", "alice", "--roles", "admin,ops", "--url", url]) == 0
    token = capsys.readouterr().out.strip()
    from switchboard_local.gateway.resources import read_signing_keys

    keys = read_signing_keys("/switchboard/dev/token-secret")
    identity = TokenVerifier(keys).verify(token)
    assert (identity.user_id, identity.roles) == ("alice", ("admin", "ops"))


def test_ctrl_c_closes_sockets_runs_disconnect_and_exits(tmp_path: Path) -> None:
    make_tiny_project(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard_local.gateway", "--project-dir", str(tmp_path),
         "--port", "0", "--no-autoreload"],
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
        assert re.search(r"Console\s+http://127\.0\.0\.1:\d+/", banner)
        assert re.search(r"Management\s+http://127\.0\.0\.1:\d+/v1/@connections/", banner)
        assert "Tokens" not in banner and "Chat page" not in banner
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
