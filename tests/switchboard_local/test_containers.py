"""Lambda's execution model in the gateway: containers, timeouts, concurrency, environments.

Each test starts a tiny gateway (its own project directory and configuration)
and drives it over real sockets. The behaviours come from the Lambda
developer guide: "Lambda execution environment lifecycle" (a container
handles one event at a time, is reused while warm, keeps module state),
"Configure Lambda function timeout" (a function past its timeout is
stopped), "Lambda function scaling" and "Configuring reserved concurrency"
(throttles), "Defined runtime environment variables"; and from API Gateway
(an integration that fails sends ``Internal server error``, one that does
not answer in 29 s ``Endpoint request timed out``, aws/chalice#1406).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from switchboard_local.stage import Limits
from tests.gateways import WAIT, Running, eventually, stop

from .conftest import start_tiny


@pytest.fixture
def in_containers(tiny_factory: Any) -> Any:
    """Tiny gateways whose functions run in containers."""
    return partial(tiny_factory, containers=True)


@pytest.fixture(autouse=True)
def gateway_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The gateway's INFO lines (cold starts, stopped containers) in ``caplog``."""
    caplog.set_level(logging.INFO, logger="switchboard_local.gateway")


def ask(client: Any, body: str) -> dict[str, Any]:
    client.send(body)
    return dict(json.loads(client.recv(timeout=WAIT)))


def in_background(client: Any, body: str) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """Send ``body`` and collect its answer on a thread (the handler is slow)."""
    answers: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: answers.append(ask(client, body)))
    thread.start()
    return thread, answers


def busy(running: Running, body: str) -> None:
    """Wait until the app is handling ``body`` (its event is recorded)."""
    eventually(lambda: [e for e in running.events()
                        if e["kind"] == "event" and e["event"].get("body") == body])


def test_module_state_is_per_container(in_containers: Any) -> None:
    """A global counter counts the invocations of its container, not of the function."""
    running = in_containers()
    with running.connect() as slow, running.connect() as other:
        sleeper, slept = in_background(slow, "sleep:1")
        busy(running, "sleep:1")
        counts = [ask(other, "count") for _ in range(3)]  # the sleeper's container is busy
        sleeper.join(WAIT)
        after_sleep = ask(slow, "count")
    assert slept[0]["echo"] == "sleep:1"
    assert [c["count"] for c in counts] == [1, 2, 3]
    assert len({c["pid"] for c in counts}) == 1
    assert after_sleep["pid"] != counts[0]["pid"]
    assert after_sleep["count"] == 2  # the sleep, then this: the same container again


def test_without_containers_module_state_is_shared(tiny_factory: Any) -> None:
    """On threads (--no-containers) every invocation shares one module: the difference."""
    running = tiny_factory(containers=False)
    with running.connect() as first, running.connect() as second:
        counts = [ask(first, "count"), ask(second, "count"), ask(first, "count")]
    assert [c["count"] for c in counts] == [1, 2, 3]
    assert len({c["pid"] for c in counts}) == 1


def test_a_handler_past_its_timeout_is_stopped(
    in_containers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running = in_containers(functions={"websocket_message": {"lambda_timeout": 1}})
    with running.connect() as client:
        first = ask(client, "count")
        frame = ask(client, "sleep:5")
        assert frame["message"] == "Internal server error"  # a function that failed
        assert set(frame) == {"message", "connectionId", "requestId"}
        again = ask(client, "count")
    assert "websocket_message timed out after 1 s" in caplog.text
    assert again["pid"] != first["pid"] and again["count"] == 1  # a new container
    with pytest.raises(ProcessLookupError):
        os.kill(first["pid"], 0)


def test_no_answer_within_the_integration_timeout_is_endpoint_request_timed_out(
    in_containers: Any,
) -> None:
    """API Gateway stops waiting (29 s on AWS, 1 s here); the function runs on and its
    post still reaches the client."""
    running = in_containers(Limits(integration_timeout=1),
                           functions={"websocket_message": {"lambda_timeout": 10}})
    with running.connect() as client:
        client.send("sleep:2")
        timed_out = json.loads(client.recv(timeout=WAIT))
        late = json.loads(client.recv(timeout=WAIT))
    assert timed_out["message"] == "Endpoint request timed out"
    assert late["echo"] == "sleep:2"


def test_reserved_concurrency_throttles_the_function(
    in_containers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running = in_containers(functions={"websocket_message": {"reserved_concurrency": 1}})
    with running.connect() as slow, running.connect() as other:
        sleeper, _ = in_background(slow, "sleep:1")
        busy(running, "sleep:1")
        throttled = ask(other, "count")
        sleeper.join(WAIT)
        eventually(lambda: "count" in ask(other, "count"))  # its turn, once the sleep ended
    assert throttled["message"] == "Internal server error"
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in caplog.text


def test_the_account_limit_throttles_every_function(
    in_containers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running = in_containers(concurrency=1)
    with running.connect() as slow, running.connect() as other:
        sleeper, _ = in_background(slow, "sleep:1")
        busy(running, "sleep:1")
        assert ask(other, "count")["message"] == "Internal server error"
        assert running.refusal() == 500  # $connect is throttled too: a refused handshake
        sleeper.join(WAIT)
    assert "ConcurrentInvocationLimitExceeded" in caplog.text


def test_each_function_gets_only_its_own_environment(in_containers: Any) -> None:
    running = in_containers(functions={
        "websocket_message": {"environment_variables": {"ONLY_MESSAGE": "yes"}},
    })
    with running.connect("env=ONLY_MESSAGE") as client:
        assert ask(client, "env:ONLY_MESSAGE") == {"env": "yes"}
        assert ask(client, "env:TINY_FLAG") == {"env": "dev"}  # the stage's, for every one
        name = ask(client, "env:AWS_LAMBDA_FUNCTION_NAME")
    recorded = [e for e in running.events() if e["kind"] == "connect-env"]
    assert recorded[-1]["value"] is None  # $connect's container never had it
    assert name == {"env": "tiny-dev-websocket_message"}


def test_a_gateway_started_later_does_not_change_another_gateways_functions(
    tmp_path: Path,
) -> None:
    """Two gateways in one process (as in the tests): each one's functions keep their own
    variables, so a handler never writes where another gateway's stage points."""
    first_thread, first = start_tiny(tmp_path / "first", containers=True)
    second_thread, second = start_tiny(tmp_path / "second", containers=True)  # its TINY_EVENTS
    try:
        with first.connect() as client:
            assert ask(client, "hello")["echo"] == "hello"
    finally:
        stop(second_thread)
        stop(first_thread)
    assert [e["event"]["body"] for e in first.events()
            if e["kind"] == "event" and e["event"].get("body")] == ["hello"]
    assert not any(e.get("event", {}).get("body") for e in second.events())


def test_a_container_that_dies_fails_its_invocation(in_containers: Any) -> None:
    running = in_containers()
    with running.connect() as client:
        before = ask(client, "count")
        assert ask(client, "exit")["message"] == "Internal server error"
        after = ask(client, "count")
    assert after["pid"] != before["pid"] and after["count"] == 1


def test_cold_starts_are_logged_with_their_duration(
    in_containers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    running = in_containers()
    with running.connect() as client:
        ask(client, "count")
        ask(client, "count")  # warm: no second cold start
    lines = [r.getMessage() for r in caplog.records if "cold start" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == ["websocket_connect", "websocket_message"]
    assert all(" ready in " in line and " ms (init " in line for line in lines)


def test_idle_containers_are_stopped(in_containers: Any, caplog: pytest.LogCaptureFixture
                                     ) -> None:
    running = in_containers(container_idle_seconds=0.5)
    with running.connect() as client:
        first = ask(client, "count")
        eventually(lambda: "websocket_message: container" in caplog.text)  # "... stopped"
        second = ask(client, "count")
    assert second["pid"] != first["pid"] and second["count"] == 1


def test_a_reload_restarts_warm_containers(tmp_path: Path) -> None:
    thread, running = start_tiny(tmp_path, containers=True)
    try:
        with running.connect() as client:
            before = ask(client, "count")
            app = tmp_path / "app.py"
            app.write_text(app.read_text().replace('"pid": os.getpid()',
                                                   '"pid": os.getpid(), "reloaded": True'))
            thread.call(running.gateway.reload())
            after = ask(client, "count")
    finally:
        stop(thread)
    assert "reloaded" not in before
    assert after["reloaded"] is True and after["pid"] != before["pid"]
    assert after["count"] == 1


def test_a_slow_invocation_delays_another_by_moments_only(in_containers: Any) -> None:
    """Invocations beyond the ones running at once wait for one to end only while some
    keep ending: sleeping handlers do not hold the others up."""
    running = in_containers()
    clients = [running.connect() for _ in range(6)]
    try:
        sleepers = [in_background(c, "sleep:5")[0] for c in clients[:5]]
        eventually(lambda: len([e for e in running.events()
                                if e["kind"] == "event" and e["event"].get("body") == "sleep:5"]
                               ) == 5)
        assert ask(clients[5], "count")["count"] == 1  # a container of its own
        assert all(s.is_alive() for s in sleepers), "the sleepers held a quick message up"
        for sleeper in sleepers:
            sleeper.join(WAIT)
    finally:
        for client in clients:
            client.close()


def test_an_app_that_fails_its_init_fails_the_invocation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An import error in the container (here only websocket_message's: it depends on the
    function's environment) is Lambda's Runtime.ImportModuleError; the client gets the
    error frame, other functions go on."""
    thread, running = start_tiny(tmp_path, containers=True)
    try:
        app = tmp_path / "app.py"
        app.write_text(
            'import os\nif os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "").endswith('
            '"websocket_message"):\n    import a_module_only_this_function_lacks\n'
            + app.read_text()
        )
        thread.call(running.gateway.reload())
        with running.connect() as client:
            assert ask(client, "count")["message"] == "Internal server error"
    finally:
        stop(thread)
    assert "websocket_message failed: Runtime.ImportModuleError" in caplog.text


def test_a_zygote_that_died_is_replaced(tmp_path: Path) -> None:
    thread, running = start_tiny(tmp_path, containers=True)
    try:
        with running.connect() as client:
            before = ask(client, "count")
            for zygote in children_running("switchboard_local.gateway.zygote"):
                os.kill(zygote, signal.SIGKILL)
            thread.call(running.gateway.reload())  # the next event needs a new container
            after = ask(client, "count")
    finally:
        stop(thread)
    assert after["pid"] != before["pid"] and after["count"] == 1


def children_running(module: str) -> list[int]:
    """This process's children whose command line names ``module``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if parent == os.getpid() and module in command:
            found.append(int(entry.name))
    assert found, f"no child process runs {module}"
    return found
