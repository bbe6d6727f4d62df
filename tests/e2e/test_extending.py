"""docs/extending.md built as a team builds it, from the guide's own code.

The guide's files (every code block after a ``<!-- file: PATH -->`` marker) are
added to a copy of this project, a git repository, so the change a team makes
is what git sees. In the copy: the examples' own tests pass, on both engines;
``python -m deploy.generate`` derives the REST function's deployment files and
nothing else; and ``switchboard-local`` serves it, while real WebSocket and
HTTP clients react to a message, flood a room with cursors and announce into
it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.gateways import REPO, WAIT
from tests.switchboard_local.installed import Served, clean_env, serve_command, switchboard_copy

GUIDE = REPO / "docs" / "extending.md"
FILE = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.S)
# What the examples' tests need of this repository besides the app.
TEST_SUPPORT = ("harness", "tests/__init__.py", "tests/conftest.py", "tests/gateways.py",
                "tests/chalicelib/__init__.py", "tests/chalicelib/conftest.py",
                "tests/chalicelib/product", "tests/switchboard_local/__init__.py",
                "tests/switchboard_local/installed.py", "clients/js")


def guide_files() -> dict[str, str]:
    return dict(FILE.findall(GUIDE.read_text()))


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=team", "-c", "user.email=team@example.com", *args],
        cwd=project, check=True, capture_output=True, text=True, timeout=60,
    ).stdout


def run(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True,
                          timeout=timeout, env=env)


def changed(project: Path) -> set[str]:
    git(project, "add", "-A")
    return set(git(project, "diff", "--cached", "--name-only").split())


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of this project, committed, with the guide's files added (not committed)."""
    project = switchboard_copy(tmp_path_factory.mktemp("team"))
    for name in TEST_SUPPORT:
        source, target = REPO / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    (project / "node_modules").symlink_to(REPO / "node_modules")
    (project / ".gitignore").write_text("node_modules\n__pycache__/\n.switchboard-local/\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Switchboard")
    for path, code in guide_files().items():
        (project / path).write_text(code)
    yield project


def test_each_example_is_one_module_of_the_product_and_its_test(team: Path) -> None:
    files = set(guide_files())
    modules = {p for p in files if p.startswith("chalicelib/product/")}
    assert len(modules) == 3
    assert files == modules | {
        f"tests/chalicelib/product/test_{Path(p).name}" for p in modules
    }
    assert changed(team) == files


def test_the_examples_tests_pass_in_the_teams_project(team: Path) -> None:
    result = run(team, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/chalicelib/product")
    tests = sum(code.count("\ndef test_") for path, code in guide_files().items()
                if path.startswith("tests/"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{tests * 2} passed" in result.stdout  # each on moto and on dynalite


def test_the_route_gets_its_function_files_from_deploy_generate(team: Path) -> None:
    stale = run(team, "-m", "deploy.generate", "--check")
    assert stale.returncode == 1
    derived = set(re.findall(r"^(\S+) (?:differs|is missing)", stale.stdout, re.M))
    assert ".chalice/config.json" in derived
    assert run(team, "-m", "deploy.generate").returncode == 0
    assert run(team, "-m", "deploy.generate", "--check").returncode == 0
    assert changed(team) == set(guide_files()) | derived | {
        f".chalice/policy-{stage}-api_handler.json" for stage in ("dev", "prod")}
    policy = json.loads((team / ".chalice/policy-prod-api_handler.json").read_text())
    granted = {action: statement["Resource"] for statement in policy["Statement"]
               for action in statement["Action"]}
    # What the view's code does: store (UpdateItem, PutItem), read the room (Query),
    # find the endpoint (GetItem), post; and what the gate does: read the signing key.
    assert {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem",
            "ssm:GetParameter"} <= set(granted)
    assert granted["execute-api:ManageConnections"] == [
        "arn:aws:execute-api:*:*:*/prod/POST/@connections/*"]


# -- served, over real sockets -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(team: Path) -> Iterator[Served]:
    command = [sys.executable, "-m", "switchboard_local", "--port", "0", "--no-autoreload"]
    with serve_command(command, team, clean_env()) as gateway:
        yield gateway


def http(served: Served, path: str, body: Any = None, token: str | None = None
         ) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(served.base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def token(served: Served, user_id: str, *roles: str) -> str:
    query = urllib.parse.urlencode({"userId": user_id, "roles": ",".join(roles)})
    return str(http(served, f"/_local/token?{query}")[1]["token"])


@pytest.fixture
def member(served: Served) -> Iterator[Callable[[str], ClientConnection]]:
    opened: list[ClientConnection] = []

    def open_as(user_id: str) -> ClientConnection:
        url = served.first("WebSocket").split()[0]
        socket = connect(f"{url}?token={token(served, user_id)}", open_timeout=WAIT,
                         legacy=True)
        opened.append(socket)
        assert request(socket, {"action": "joinRoom", "room": "doc", "id": "j"})["type"] == "ack"
        return socket

    yield open_as
    for socket in opened:
        socket.close()


def receive(socket: ClientConnection, wanted: Callable[[dict[str, Any]], bool]
            ) -> dict[str, Any]:
    """The next frame ``wanted`` accepts (others are skipped); WAIT bounds liveness only."""
    while True:
        frame: dict[str, Any] = json.loads(socket.recv(timeout=WAIT))
        if wanted(frame):
            return frame


def request(socket: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    socket.send(json.dumps(frame))
    return receive(socket, lambda answer: answer.get("id") == frame["id"])


def test_reactions_cursors_and_an_announcement_over_real_sockets(
    served: Served, member: Callable[[str], ClientConnection]
) -> None:
    alice, bob = member("alice"), member("bob")
    sent = request(alice, {"action": "sendToRoom", "room": "doc", "text": "ship it", "id": "s"})
    react = {"action": "react", "room": "doc", "seq": sent["seq"], "emoji": "🎉", "id": "r"}
    assert request(bob, react)["annotations"] == {"reaction": {"🎉": 1}}
    assert receive(alice, lambda f: f["type"] == "reactions")["annotations"] == {
        "reaction": {"🎉": 1}}

    # Cursors are sent without waiting, in batches, until the limit answers once.
    limited = None
    for batch in range(20):
        for x in range(50):
            alice.send(json.dumps({"action": "cursor", "room": "doc", "x": x, "y": batch}))
        alice.send(json.dumps({"action": "ping", "id": f"p{batch}"}))
        answers = []
        while not answers or answers[-1].get("id") != f"p{batch}":
            answers.append(receive(alice, lambda f: f["type"] not in ("cursor", "presence")))
        errors = [a for a in answers if a["type"] == "error"]
        assert all(a["code"] == "rate_limited" and "id" not in a for a in errors), errors
        if errors:
            limited = errors[0]
            break
    assert limited is not None and 0 < limited["retryAfterMs"] <= 1000

    status, answer = http(served, "/rooms/doc/announcements", {"text": "Deploy at 17:00"},
                          token(served, "ops-bot", "announcer"))
    assert (status, answer) == (200, {"delivered": 2, "seq": sent["seq"] + 1})
    for socket in (alice, bob):
        frame = receive(socket, lambda f: f.get("kind") == "announcement")
        assert (frame["from"], frame["text"]) == ("ops-bot", "Deploy at 17:00")
    assert http(served, "/rooms/doc/announcements", {"text": "x"}, token(served, "eve"))[0] == 403
    history = request(bob, {"action": "history", "room": "doc", "id": "h"})["messages"]
    assert [(m["text"], m.get("annotations")) for m in history] == [
        ("ship it", {"reaction": {"🎉": 1}}), ("Deploy at 17:00", None)]
