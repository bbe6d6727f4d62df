"""The installed ``switchboard-local`` command on sample Chalice projects, from their directories.

Each sample (``tests/switchboard_local/projects/``) is copied to a temporary directory
and served by the command installed from a wheel into a fresh virtual
environment (see :mod:`.installed`), then driven with real sockets and HTTP.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.sync.client import connect

from tests.gateways import WAIT, eventually

from .installed import (
    Installed,
    clean_env,
    copy_project,
    install,
    serve,
    switchboard_copy,
)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("switchboard-local"))


def http(url: str, data: Any = None, method: str | None = None) -> tuple[int, Any]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            raw = answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def invoke_cli(installed: Installed, base: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed.command, "invoke", *args, "--url", base], capture_output=True, text=True,
        timeout=120, env=clean_env(), check=False,
    )


def test_the_wheel_needs_nothing_from_this_checkout(installed: Installed, tmp_path: Path) -> None:
    probe = subprocess.run(
        [installed.python, "-c",
         "import importlib.util, switchboard_local.cli, switchboard_local.gateway.server as s; "
         "print(switchboard_local.cli.__file__); print(importlib.util.find_spec('chalicelib')); "
         "print(sorted(p.name for p in s.CONSOLE_DIR.iterdir()))"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=120, check=False,
    )
    assert probe.returncode == 0, probe.stderr
    module, chalicelib, console = probe.stdout.splitlines()
    assert module.startswith(str(installed.bin.parent)), module
    assert chalicelib == "None"
    assert console == "['console.css', 'console.js', 'index.html']"
    helped = subprocess.run([installed.command, "--help"], capture_output=True, text=True,
                            env=clean_env(), timeout=60, check=False)
    for option in ("--stage", "--port", "--merge-template", "--parameter", "--state-dir",
                   "--no-autoreload", "invoke NAME"):
        assert option in helped.stdout, option


def test_an_echo_project_gets_only_what_it_has(installed: Installed, tmp_path: Path) -> None:
    project = copy_project("echo", tmp_path)
    with serve(installed, project) as served:
        assert set(served.banner) == {"WebSocket", "Management", "Console", "Functions", "Store",
                                      "Reload"}
        url = served.first("WebSocket")
        assert url.endswith("/api")
        for stage_url in (url, url + "/"):  # the URL Chalice prints ends with a slash
            with connect(stage_url, open_timeout=WAIT) as client:
                client.send("hi")
                assert client.recv(timeout=WAIT) == "echo: hi"
        status, page = http(served.base + "/")
        assert status == 200 and "Frame console" in page and "chat.js" not in page
        assert http(served.base + "/_local/console/console.js")[0] == 200
        assert http(served.base + "/api")[0] == 426  # plain HTTP to the WebSocket URL
        status, answer = http(served.base + "/_local/token?userId=alice")
        assert status == 404 and "token-signer" in answer["message"]


def test_the_installed_command_runs_functions_in_containers(
    installed: Installed, tmp_path: Path
) -> None:
    """The zygote and its containers start from the wheel alone, in the project's directory,
    and stop with the command (Ctrl-C reaches the command's group, not theirs)."""
    project = copy_project("echo", tmp_path)
    with serve(installed, project, "--containers") as served:
        assert served.first("Functions").startswith("in containers")
        with connect(served.first("WebSocket"), open_timeout=WAIT) as client:
            client.send("hi")
            assert client.recv(timeout=WAIT) == "echo: hi"
    assert served.process.returncode == 0
    assert served.process.stdout is not None
    logged = served.process.stdout.read()  # what came after the banner
    assert "websocket_message: cold start, container" in logged, logged


def test_a_chat_whose_table_is_only_in_its_merge_template(
    installed: Installed, tmp_path: Path
) -> None:
    project = copy_project("chat", tmp_path)
    with serve(installed, project, "--merge-template", "template.json") as served:
        assert "table chat-dev-ChatTable (created)" in served.banner["Created"]
        url = served.first("WebSocket")
        with connect(f"{url}?name=alice", open_timeout=WAIT) as alice, \
                connect(f"{url}?name=bob", open_timeout=WAIT) as bob:
            for client in (alice, bob):
                client.send(json.dumps({"action": "join", "room": "lobby"}))
                assert json.loads(client.recv(timeout=WAIT)) == {"joined": "lobby"}
            alice.send(json.dumps({"action": "say", "text": "hello"}))
            expected = {"from": "alice", "room": "lobby", "text": "hello"}
            assert json.loads(bob.recv(timeout=WAIT)) == expected
            assert json.loads(alice.recv(timeout=WAIT)) == expected


def test_lambda_functions_and_an_sqs_consumer(installed: Installed, tmp_path: Path) -> None:
    project = copy_project("worker", tmp_path)
    with serve(installed, project) as served:
        assert served.banner["SQS"] == [
            "worker-dev-jobs → work (batch 5, partial batch responses)"
        ]
        assert {"table worker-dev-done (created)", "queue worker-dev-jobs-dlq (created)",
                "queue worker-dev-jobs (created)"} <= set(served.banner["Created"])
        assert any("Uploads (AWS::S3::Bucket) is not created locally" in w
                   for w in served.banner["Warning"])
        assert "WebSocket" not in served.banner and "Console" not in served.banner
        base = served.base
        assert http(f"{base}/api")[0] == 404  # no WebSocket API: the stage path is not one

        queued = invoke_cli(installed, base, "enqueue", '{"jobs": ["a", "b", "fail"]}')
        assert queued.returncode == 0, queued.stderr
        assert json.loads(queued.stdout) == {"queued": 3, "function": "worker-dev-enqueue"}
        eventually(lambda: http(f"{base}/_local/invoke/results", {})[1] == ["a", "b"])

        store = served.first("Store")
        sqs = boto3.client("sqs", endpoint_url=store, region_name="us-east-1")
        dlq = sqs.get_queue_url(QueueName="worker-dev-jobs-dlq")["QueueUrl"]

        def dead_letters() -> list[str]:
            messages = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
            return [m["Body"] for m in messages]

        assert eventually(dead_letters, timeout=30) == ["fail"]

        status, error = http(f"{base}/_local/invoke/explode", {"job": 7})
        assert status == 500
        assert (error["errorType"], error["errorMessage"]) == ("ValueError", "no such job: 7")
        failed = invoke_cli(installed, base, "explode", "{}")
        assert failed.returncode == 1 and "ValueError" in failed.stderr
        assert http(f"{base}/_local/invoke/nope", {})[0] == 404
        assert http(f"{base}/_local/invoke/work", {})[0] == 404  # a consumer, not invocable
        request = urllib.request.Request(f"{base}/_local/invoke/enqueue", data=b"{not json",
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(request, timeout=WAIT)
        assert bad.value.code == 400
        assert invoke_cli(installed, base, "enqueue", "{not json").returncode == 2


def test_rest_routes_beside_websocket_handlers(installed: Installed, tmp_path: Path) -> None:
    project = copy_project("restws", tmp_path)
    with serve(installed, project) as served:
        base = served.base
        assert served.first("REST API") == f"{base}/ (/, /items/{{item_id}})"
        assert served.first("Console") == f"{base}/_local/"  # the app's own route owns /
        assert http(base + "/") == (200, {"hello": "world"})
        status, answer = http(base + "/items/7?x=1", {"a": 1}, method="PUT")
        assert status == 200
        assert answer == {"id": "7", "method": "PUT", "body": {"a": 1}, "query": {"x": "1"}}
        assert http(base + "/nope") == (403, {"message": "Missing Authentication Token"})
        preflight = urllib.request.Request(base + "/items/7", method="OPTIONS")
        with urllib.request.urlopen(preflight, timeout=WAIT) as answer_:
            assert "PUT" in answer_.headers["Access-Control-Allow-Methods"]
        status, console = http(base + "/_local/")
        assert status == 200 and "Frame console" in console
        with connect(served.first("WebSocket"), open_timeout=WAIT) as client:
            client.send("shout")
            assert client.recv(timeout=WAIT) == "SHOUT"


def test_a_saved_handler_answers_on_the_same_socket(installed: Installed, tmp_path: Path) -> None:
    project = copy_project("echo", tmp_path)
    with serve(installed, project) as served, \
            connect(served.first("WebSocket"), open_timeout=WAIT) as client:
        client.send("before")
        assert client.recv(timeout=WAIT) == "echo: before"
        app = project / "app.py"
        app.write_text(app.read_text().replace('"echo: "', '"reloaded: "'))

        def answered_by_new_code() -> bool:
            client.send("after")
            return client.recv(timeout=WAIT) == "reloaded: after"

        eventually(answered_by_new_code, timeout=30)
        app.write_text(app.read_text().replace("def message(event):", "def message(event:"))
        time.sleep(1.0)  # a broken save is logged; the previous code keeps serving
        client.send("still")
        assert client.recv(timeout=WAIT) == "reloaded: still"
    assert "reload failed" in served.stop() + "".join(served.output)


def test_the_state_dir_keeps_the_store_across_restarts(
    installed: Installed, tmp_path: Path
) -> None:
    project = copy_project("worker", tmp_path)
    state = tmp_path / "state"

    def results(base: str) -> Any:
        return http(f"{base}/_local/invoke/results", {})[1]

    with serve(installed, project, "--state-dir", str(state), "--no-autoreload") as served:
        assert invoke_cli(installed, served.base, "enqueue", '{"jobs": ["kept"]}').returncode == 0
        eventually(lambda: results(served.base) == ["kept"])
    assert (state / "store.json").is_file()
    with serve(installed, project, "--state-dir", str(state)) as served:
        assert any(line.startswith("restored 1 tables (1 items)")
                   for line in served.banner["Created"])
        assert "table worker-dev-done (kept)" in served.banner["Created"]
        assert results(served.base) == ["kept"]


def test_a_large_room_send_goes_through_the_queue_and_fanout_worker(
    installed: Installed, tmp_path: Path
) -> None:
    project = switchboard_copy(tmp_path, threshold=2)
    with serve(installed, project, "--no-autoreload") as served:
        assert served.banner["SQS"] == [
            "switchboard-dev-fanout → fanout_worker (batch 10, partial batch responses)"
        ]
        base, url = served.base, served.first("WebSocket")

        def join(user: str) -> Any:
            token = http(f"{base}/_local/token?userId={user}")[1]["token"]
            client = connect(f"{url}?token={token}", open_timeout=WAIT, legacy=True)
            client.send(json.dumps({"action": "joinRoom", "room": "stadium"}))
            assert json.loads(client.recv(timeout=WAIT))["type"] == "ack"
            return client

        def next_not_presence(client: Any) -> dict[str, Any]:
            """The next frame but the presence events of members who joined after this one."""
            while (frame := json.loads(client.recv(timeout=WAIT)))["type"] == "presence":
                pass
            return dict(frame)

        sender, *members = [join(f"fan-{n}") for n in range(4)]
        try:
            sender.send(json.dumps({"action": "sendToRoom", "room": "stadium", "text": "goal"}))
            ack = next_not_presence(sender)
            assert (ack["delivered"], ack["queued"]) == (0, 3)
            for member in members:
                frame = next_not_presence(member)
                assert (frame["type"], frame["text"]) == ("message", "goal")
        finally:
            for client in (sender, *members):
                client.close()
