"""Local AWS engines in processes of their own: the only code that starts one.

moto's server and dynalite each run as a child process on a free loopback
port, never sharing the caller's GIL, and are handed out once they answer.
The benchmarks (``bench.scale``) and the tests (the dynalite engine of
``tests/conftest.py``, the frozen engine of the hung-dependency tests) use
these; an engine that does not start fails with its own output.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
DYNALITE = ROOT / "node_modules" / ".bin" / "dynalite"
START_SECONDS = 30.0


class EngineError(RuntimeError):
    """An engine could not be started; the message says why and what it printed."""


class EngineProcess:
    """A running engine: its ``endpoint``, and its process to freeze, thaw, restart or stop."""

    def __init__(self, command: list[str], service: str, log: IO[bytes]) -> None:
        self.service = service
        self._log = log
        self._command = command
        self.process = self._spawn()
        self.endpoint = ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_until_answering(self, endpoint: str) -> None:
        self.endpoint = endpoint
        client: Any = boto3.client(  # type: ignore[call-overload]
            self.service, endpoint_url=endpoint,
            config=Config(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 0}),
        )
        probe = client.list_queues if self.service == "sqs" else client.list_tables
        started = time.monotonic()
        while True:
            try:
                probe()
                return
            except Exception:
                if time.monotonic() - started > START_SECONDS or self.process.poll() is not None:
                    self.stop()
                    raise EngineError(
                        f"the local {self.service} engine did not answer on {endpoint}:\n"
                        + self.output()
                    ) from None
                time.sleep(0.1)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def freeze(self) -> None:
        """Stop the process (SIGSTOP): connections are accepted, nothing is answered."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop the engine and start it again on the same port (an in-memory one comes back
        empty); returns once it answers."""
        self.stop()
        self.process = self._spawn()
        self.wait_until_answering(self.endpoint)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_process() -> Iterator[EngineProcess]:
    """moto's server (every service), e.g. SQS for the scale figure or a DynamoDB to freeze."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _running(command, "sqs", port) as engine:
        yield engine


@contextmanager
def dynalite_process() -> Iterator[EngineProcess]:
    """dynalite in memory, tables created and deleted at once (``make engines`` installs it)."""
    if not DYNALITE.exists():
        raise EngineError(
            f"{DYNALITE.relative_to(ROOT)} is missing: run `make engines` "
            "(npm ci --no-audit --no-fund)"
        )
    port = free_port()
    command = [
        str(DYNALITE), "--host", "127.0.0.1", "--port", str(port),
        "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0",
    ]
    with _running(command, "dynamodb", port) as engine:
        yield engine


@contextmanager
def _running(command: list[str], service: str, port: int) -> Iterator[EngineProcess]:
    with tempfile.TemporaryFile() as log:
        engine = EngineProcess(command, service, log)
        try:
            engine.wait_until_answering(f"http://127.0.0.1:{port}")
            yield engine
        finally:
            engine.stop()
