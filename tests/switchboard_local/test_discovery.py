"""``switchboard-local token`` and ``invoke`` find the running gateway, on any port.

A real gateway command serves a copy of this project on a free port (the copy
keeps its record apart from the other tests' gateways of this checkout); the
client commands run as processes from that project, as a second terminal would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from chalicelib.identity import issue_token
from harness.engines import free_port
from switchboard_local.gateway import discovery
from switchboard_local.gateway.resources import read_signing_keys
from tests.gateways import REPO, WAIT, Running, unique

from .installed import Served, clean_env, serve_command, switchboard_copy

RECORD = Path(".switchboard-local") / "gateway.json"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return switchboard_copy(tmp_path_factory.mktemp("discovery"))


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    command = [sys.executable, "-m", "switchboard_local", "--port", "0", "--no-autoreload"]
    with serve_command(command, project, clean_env(PYTHONPATH=str(REPO))) as running:
        yield running


def client(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A client command from a terminal without HOST or PORT (unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "switchboard_local", *args], cwd=cwd, capture_output=True,
        text=True, timeout=60, check=False, env=clean_env(PYTHONPATH=str(REPO), **env),
    )


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_the_gateway_records_where_it_serves(served: Served, project: Path) -> None:
    record = discovery.read(project / RECORD)
    assert record == discovery.Record(url=served.base, stage="dev", pid=served.process.pid)


def test_token_and_invoke_find_it_from_the_project_or_below(
    served: Served, project: Path
) -> None:
    user = unique("found")
    found = client("token", user, "--websocket", cwd=project / "chalicelib")
    assert found.returncode == 0, found.stderr
    url = found.stdout.strip()
    assert url.startswith(f"ws://{served.base.removeprefix('http://')}/dev?token=")
    with connect(url, open_timeout=WAIT) as socket:
        pushed = client("invoke", "push", json.dumps({"userId": user, "data": {"n": 1}}),
                        cwd=project)
        assert pushed.returncode == 0, pushed.stderr
        assert json.loads(pushed.stdout)["delivered"] == 1
        assert json.loads(socket.recv(timeout=WAIT))["data"] == {"n": 1}


def test_port_wins_over_the_record_and_says_so_when_nothing_answers(
    served: Served, project: Path
) -> None:
    unused_port = free_port()
    answered = client("token", "alice", cwd=project, PORT=served.base.rpartition(":")[2])
    assert answered.returncode == 0, answered.stderr
    missed = client("token", "alice", cwd=project, PORT=str(unused_port))
    assert missed.returncode == 2
    assert missed.stderr.startswith(
        f"error: no gateway answers at http://127.0.0.1:{unused_port} (HOST/PORT): ")
    wrong = client("invoke", "push", cwd=project, PORT="nine")
    assert (wrong.returncode, wrong.stderr) == (2, "error: PORT must be a port number, not "
                                                   "'nine'\n")


def test_a_token_lasts_as_long_as_asked(served: Served, project: Path) -> None:
    lasting = client("token", "alice", "--lifetime", "86400", cwd=project)
    assert lasting.returncode == 0, lasting.stderr
    issued = claims(lasting.stdout.strip())
    assert issued["exp"] - issued["iat"] == 86400
    refused = client("token", "alice", "--lifetime", "0", cwd=project)
    assert refused.returncode == 1
    assert refused.stderr == (f"error: the gateway at {served.base} answered 400: "
                              '{"message": "lifetime must be a number of seconds above 0, '
                              "not '0'\"}\n")


def test_an_expired_token_is_refused_as_the_readme_says(served: Served, project: Path) -> None:
    """Tokens expire: the terminal client says ``HTTP 403``, and the README says what to do."""
    os.environ["AWS_ENDPOINT_URL_SSM"] = served.first("Store")
    try:
        keys = read_signing_keys("/switchboard/dev/token-secret")
    finally:
        del os.environ["AWS_ENDPOINT_URL_SSM"]
    expired = issue_token(keys, "alice", now=0)
    url = f"ws://{served.base.removeprefix('http://')}/dev?token={expired}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=WAIT)
    assert refused.value.response.status_code == 403
    terminal = subprocess.run([sys.executable, "-m", "websockets", url], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert "HTTP 403" in terminal.stdout + terminal.stderr
    readme = (REPO / "README.md").read_text()
    assert "refused later with `HTTP 403` needs a fresh\none, so run the first line again" in readme
    assert "`token alice --lifetime 86400`" in readme


def test_the_record_goes_when_the_gateway_stops(tmp_path: Path) -> None:
    copy = switchboard_copy(tmp_path)
    command = [sys.executable, "-m", "switchboard_local", "--port", "0", "--no-autoreload"]
    with serve_command(command, copy, clean_env(PYTHONPATH=str(REPO))) as running:
        assert (copy / RECORD).is_file()
        running.stop()
    assert not (copy / RECORD).exists()


def test_a_record_left_by_a_killed_gateway_is_not_believed(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    discovery.write(tmp_path, discovery.Record("http://127.0.0.1:1", "dev", gone.pid))
    result = client("token", "alice", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: no gateway answers at http://127.0.0.1:8000 (the default: {tmp_path / RECORD} "
        "names no running gateway (a gateway that was killed)): ")
    (tmp_path / RECORD).write_text("{not json")
    assert discovery.locate(None, {}, tmp_path).url == "http://127.0.0.1:8000"


def test_the_order_url_then_host_port_then_record_then_default(tmp_path: Path) -> None:
    discovery.write(tmp_path, discovery.Record("http://127.0.0.1:9123", "dev", os.getpid()))
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    assert discovery.locate("http://x:1/", {"PORT": "2"}, below) == discovery.Located(
        "http://x:1", "--url")
    assert discovery.locate(None, {"HOST": "0.0.0.0"}, below).url == "http://127.0.0.1:8000"
    assert discovery.locate(None, {"HOST": "::", "PORT": "9"}, below).url == "http://[::1]:9"
    assert discovery.locate(None, {}, below) == discovery.Located(
        "http://127.0.0.1:9123", f"recorded in {tmp_path / RECORD}")
    discovery.remove(tmp_path, os.getpid() + 1)  # another's removal leaves it
    assert (tmp_path / RECORD).is_file()
    discovery.remove(tmp_path, os.getpid())
    assert discovery.locate(None, {}, below).how.startswith("the default: no --url")


def test_an_in_process_gateway_leaves_no_record(switchboard_gateway: Running) -> None:
    """Only the command records itself: a gateway embedded in tests or tools does not."""
    record = discovery.read(REPO / RECORD)
    assert record is None or record.url != switchboard_gateway.gateway.local_url
