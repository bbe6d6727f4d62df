"""The README's first ten minutes, run as written against ``make run``; the smoke script too.

"Talk to it" is read from the README (:mod:`tests.e2e.readme` says how it
is run); the banner must print the token URL and lines that work when pasted;
``python -m deploy.smoke`` must pass against the same ``make run``, on its local
target and on its AWS target (SSM from the gateway's store, Lambda's Invoke
API from a stand-in that hands the event to the gateway's push).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.aws_stub import aws_stub
from tests.gateways import REPO, WAIT
from tests.switchboard_local.installed import Served

from .readme import README, Client, block, matches, shell_env, talk


def test_talk_to_it_runs_as_written(make_run: Served, client_factory: Any) -> None:
    assert not any(":8000" in line for line in block("commands") + block("push"))
    client = client_factory("\n".join(block("commands")))
    talk(client)

    [push] = block("push")
    result = subprocess.run(["bash", "-c", push], cwd=REPO, env=shell_env(make_run),
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "delivered": 1, "queued": 0, "gone": 0,
                                         "failed": 0}
    shown = re.search(r"the client shows\s+`< (\{.*?\})`", README.read_text(), re.S)
    assert shown, "the README says what the push looks like"
    [_, *_, pushed] = client.wait_for(len(block("answers")) + 1)
    assert matches(json.loads(shown.group(1)), pushed), pushed


def test_the_banner_prints_the_token_url_and_lines_that_run_as_printed(
    make_run: Served, client_factory: Any
) -> None:
    """On a port other than the default, the lines name it; they run from a terminal
    without PORT, with the venv's commands (not on its PATH) written as paths."""
    base = make_run.base
    tokens, expiry = make_run.banner["Tokens"]
    assert tokens == f"{base}/_local/token?userId=NAME&roles=a,b"
    assert expiry == ("expire (a handshake with an expired one is refused, often 401 or 403): "
                      f"`.venv/bin/switchboard-local token NAME --url {base}` gives a fresh "
                      "one, `--lifetime SECONDS` a longer one")
    url, python, wscat = make_run.banner["Try"]
    assert url == f"URL=$(.venv/bin/switchboard-local token alice --websocket --url {base})"
    assert python == '.venv/bin/python -m websockets "$URL"'
    assert wscat == 'npx wscat -c "$URL"'
    env_free = {k: v for k, v in shell_env(make_run).items() if k not in ("HOST", "PORT")}
    client = Client.start(f"{url}\n{python}", env_free)
    try:
        client.send('{"action": "ping", "id": "banner"}')
        assert client.wait_for(1) == [{"type": "pong", "id": "banner"}]
        invokes = {line.split()[2]: line for line in make_run.banner["Invoke"]}
        assert set(invokes) == {"push", "server_api"}  # the app's two lambda functions
        invoke = invokes["push"]
        command, _, post = invoke.partition("  (POST ")
        assert command == f".venv/bin/switchboard-local invoke push '{{...}}' --url {base}"
        assert post == f"{base}/_local/invoke/push)"
        event = json.dumps({"userId": "alice", "data": {"from": "banner"}})
        result = subprocess.run(["bash", "-c", command.replace("{...}", event)], cwd=REPO,
                                env=env_free, capture_output=True, text=True, timeout=WAIT)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["delivered"] == 1
        assert client.wait_for(2)[1]["data"] == {"from": "banner"}
    finally:
        client.stop()


def smoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.smoke", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=env if env is not None else dict(os.environ))


def test_the_smoke_script_passes_against_make_run(make_run: Served) -> None:
    result = smoke("--local", make_run.base)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Smoke test of the local gateway at {make_run.base}"
    assert [line.split()[:2] for line in lines[1:5]] == [
        ["ok", "connect"], ["ok", "ping"], ["ok", "message"], ["ok", "push"]]
    assert '{"type":"pong","id":"smoke-ping"}' in lines[2]
    assert '"type":"push"' in lines[4] and '"delivered": 1' in lines[4]
    assert lines[-1] == "4 of 4 checks passed"


def forwarding_lambda(base: str) -> Any:
    """Lambda's Invoke, answered by the gateway's push (or a failure for 'broken')."""
    invoked: list[str] = []

    def handle(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        name = path.split("/functions/")[1].split("/")[0]
        invoked.append(name)
        if name == "broken":
            return 200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorMessage": "boom"}'
        request = urllib.request.Request(f"{base}/_local/invoke/push", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return 200, {"X-Amz-Executed-Version": "$LATEST"}, answer.read()

    return handle, invoked


def aws_env(make_run: Served, lambda_endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    return {**env, "AWS_ENDPOINT_URL_SSM": make_run.first("Store"),
            "AWS_ENDPOINT_URL_LAMBDA": lambda_endpoint, "AWS_ACCESS_KEY_ID": "smoke",
            "AWS_SECRET_ACCESS_KEY": "smoke", "AWS_REGION": "us-east-1"}


def test_the_smoke_script_on_aws_mints_from_ssm_and_invokes_push(make_run: Served) -> None:
    """The AWS path over HTTP: the key from the stage's SSM parameter (the gateway's
    store holds it under the dev stage's name), push through Lambda's Invoke API."""
    handle, invoked = forwarding_lambda(make_run.base)
    with aws_stub(handle) as endpoint:
        result = smoke("--stage", "dev", "--url", make_run.first("WebSocket"),
                       "--push-function", "switchboard-dev-push",
                       env=aws_env(make_run, endpoint))
        broken = smoke("--stage", "dev", "--url", make_run.first("WebSocket"),
                       "--push-function", "broken", env=aws_env(make_run, endpoint))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "Smoke test of stage dev in us-east-1"
    assert "4 of 4 checks passed" in result.stdout
    assert invoked == ["switchboard-dev-push", "broken"]
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "FAILED push      the push function failed: {'errorMessage': 'boom'}" in broken.stdout
    assert "3 of 4 checks passed" in broken.stdout


def test_the_smoke_script_says_in_one_line_what_it_cannot_reach(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{_closed_port()}"
    result = smoke("--local", closed)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: no gateway answers at {closed}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = smoke("--stage", "prod", env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or give "
        "your AWS profile a region (aws configure)"]


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_make_run_installs_less_than_make_test() -> None:
    """`make run` depends only on the run requirements; the dev ones come with `make test`."""
    makefile = (REPO / "Makefile").read_text()
    run_stamp = re.search(r"^\$\(RUN_STAMP\):(.*)$", makefile, re.M)
    local_stamp = re.search(r"^\$\(LOCAL_STAMP\):(.*)$", makefile, re.M)
    assert run_stamp and local_stamp
    assert "requirements-dev.txt" not in run_stamp.group(1)
    assert "$(STAMP)" not in local_stamp.group(1).split()
    assert shutil.which("make")
    dry = subprocess.run(["make", "-n", "--no-print-directory", "-B", "run", "PORT=0"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "requirements-dev.txt" not in dry.stdout, dry.stdout
    assert "-r requirements.txt -r requirements-local.txt" in dry.stdout


GATEWAY_SESSION = """
import json, sys, urllib.request
from importlib import metadata
from pathlib import Path
from switchboard_local.gateway.server import GatewayOptions, GatewayThread
from websockets.sync.client import connect

thread = GatewayThread(GatewayOptions(project_dir=Path("."), port=0, autoreload=False))
gateway = thread.start()
base = gateway.page_url.rstrip("/")
with urllib.request.urlopen(base + "/_local/token?userId=alice") as answer:
    token = json.load(answer)["token"]
with connect(gateway.websocket_url + "?token=" + token) as socket:
    for frame in ({"action": "joinRoom", "room": "lobby", "since": {"epoch": "x", "seq": 0}},
                  {"action": "sendToRoom", "room": "lobby", "text": "hi"},
                  {"action": "sendMessage", "targetUserId": "alice", "text": "me"},
                  {"action": "history", "room": "lobby"}, {"action": "fly"}):
        socket.send(json.dumps(frame))
        socket.recv(timeout=15)
    request = urllib.request.Request(base + "/_local/invoke/push",
                                     data=b'{"all": true, "data": {"n": 1}}',
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
thread.stop()
owners = metadata.packages_distributions()
print(json.dumps(sorted({dist for name in list(sys.modules)
                         for dist in owners.get(name.partition(".")[0], [])})))
"""


def test_make_run_needs_nothing_beyond_its_requirements() -> None:
    """A gateway session (tokens, rooms, history, push) imports only distributions that
    requirements.txt and requirements-local.txt bring, so `make run` may install only those."""
    from tests.deploy.offline import requirement_closure

    result = subprocess.run([sys.executable, "-c", GATEWAY_SESSION], cwd=REPO,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "POWERTOOLS_METRICS_DISABLED": "true"})
    assert result.returncode == 0, result.stderr
    loaded = {name.lower().replace("_", "-") for name in json.loads(result.stdout.splitlines()[-1])}
    allowed = {name.lower().replace("_", "-") for name in requirement_closure(
        REPO / "requirements.txt", REPO / "requirements-local.txt")}
    allowed.add("switchboard-local")  # this checkout, installed editable by make run
    assert loaded <= allowed, loaded - allowed
    assert {"moto", "aiohttp", "chalice", "pyjwt"} <= loaded
