"""The README's "Talk to it", read from the README and run as a user pastes it.

The fenced blocks after its ``<!-- talk-to-it: ... -->`` markers are the
commands, the frames to type and the answers to expect. Commands run in
``bash`` from the repository root against ``PORT=N make run`` on a free port
other than the default, with ``PORT=N`` in the shell too, as the README says for
another port (the record a gateway leaves in its project, the other way the
commands find it, could name another test's gateway of this checkout: see
``tests/switchboard_local/test_discovery.py``). The commands run exactly as
written: none names a port. In the answers ``"..."`` stands for a value that
differs each run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.gateways import REPO, WAIT
from tests.switchboard_local.installed import Served

README = REPO / "README.md"
READY = "ready"


def block(marker: str) -> list[str]:
    """The lines of the fenced block after ``<!-- talk-to-it: marker -->``."""
    text = README.read_text()
    found = re.search(rf"<!-- talk-to-it: {marker} -->\n```\w*\n(.*?)```", text, re.S)
    assert found, f"the README has no talk-to-it {marker} block"
    return found.group(1).strip("\n").splitlines()


def matches(expected: Any, actual: Any) -> bool:
    """Equal, where ``"..."`` in ``expected`` matches any value."""
    if expected == "...":
        return True
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and set(expected) == set(actual)
                and all(matches(v, actual[k]) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(matches(e, a) for e, a in zip(expected, actual, strict=True)))
    return bool(expected == actual)


def address(served: Served) -> str:
    return served.base.removeprefix("http://")


def shell_env(served: Served) -> dict[str, str]:
    """A second terminal's environment, with the gateway's ``PORT``."""
    port = address(served).split(":")[1]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_ENDPOINT_URL") and k != "HOST"}
    return {**env, "PORT": port}


@dataclass
class Client:
    """A terminal client started by shell lines; reads the frames it prints."""

    process: subprocess.Popen[str]
    frames: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    connected: bool = False
    """A ``ready`` ping was answered (those answers are not kept in ``frames``)."""

    @classmethod
    def start(cls, script: str, env: dict[str, str]) -> Client:
        process = subprocess.Popen(
            ["bash", "-c", script], cwd=REPO, env=env, text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        client = cls(process)
        threading.Thread(target=client._read, daemon=True).start()
        return client

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line)
                text = re.sub(r"\x1b(\[[0-9;]*[A-Za-z]|[78])", "", line)
                start, end = text.find("{"), text.rfind("}")
                if start >= 0 and end > start:
                    with contextlib.suppress(ValueError):
                        frame = json.loads(text[start:end + 1])
                        if frame.get("id") == READY:
                            self.connected = True
                        else:
                            self.frames.append(frame)
                self.changed.notify_all()

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` frames, waiting for them to arrive."""
        deadline = time.monotonic() + WAIT
        with self.changed:
            while len(self.frames) < count and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            assert len(self.frames) >= count, "".join(self.lines)
            return self.frames[:count]

    def ready(self) -> None:
        """Ping until answered: a client may drop what is typed before it has connected.
        Under load several pings may be answered, late: none of their answers is a frame."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.send(json.dumps({"action": "ping", "id": READY}))
            time.sleep(0.3)
            with self.changed:
                if self.connected:
                    return
        raise AssertionError("the client never connected:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()


def talk(client: Client) -> None:
    """Type the README's frames and compare what comes back with its answers."""
    expected = [json.loads(line.removeprefix("< ")) for line in block("answers")]
    for frame in block("frames"):
        client.send(frame)
    answers = client.wait_for(len(expected))
    for want, got in zip(expected, answers, strict=True):
        assert matches(want, got), (want, got)
