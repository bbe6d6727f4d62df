"""The fork server: containers start from a process that imported their runtime once.

A fresh interpreter that imports boto3 and Chalice takes most of a second;
a fork of one that already did takes milliseconds, and the container then
only imports the project's own ``app`` (its real init phase). The zygote
imports that shared runtime and nothing of the project, so its children
start as clean as a new Lambda execution environment: module state,
environment and working directory are theirs alone.

:class:`Zygote` (in the gateway) starts it with ``python -m`` in a session
of its own — a Ctrl-C in the terminal reaches the gateway, which stops the
containers itself, after their ``$disconnect`` ran — and asks it over a
socket pair for containers: each request is a container's spec, each answer
its pid and, passed as a file descriptor, the gateway's end of a new socket
pair whose other end the child keeps. Children are reaped by the kernel
(``SIGCHLD`` ignored); they exit when the gateway closes their channel, and
the zygote when the gateway closes its socket.

POSIX only (``fork`` and descriptor passing); elsewhere the gateway runs
functions on threads.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from switchboard_local.gateway.channel import Decoder, encode

PRELOAD = ("boto3", "botocore.session", "chalice.app", "switchboard_local.gateway.container")
"""What every container needs before the project's code: imported once, shared by fork."""
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# Run with ``-c``: the directory holding this package is put first on the path
# for the zygote's own imports only, and taken off before any container starts.
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from switchboard_local.gateway.zygote import main; sys.exit(main(sys.argv[1:]))")


def supported() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "send_fds")


class ZygoteError(RuntimeError):
    """The zygote is gone (it could not start, or was killed)."""


class Zygote:
    """The gateway's handle on its fork server; :meth:`fork` is safe from any thread."""

    def __init__(self, environment: dict[str, str] | None = None) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, PACKAGE_ROOT, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], start_new_session=True,
                env=dict(os.environ if environment is None else environment),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._socket = ours
        self._decoder = Decoder()
        self._lock = threading.Lock()

    def fork(self, spec: dict[str, Any]) -> tuple[int, socket.socket]:
        """A new container running ``spec``: its pid and the gateway's end of its channel."""
        with self._lock:
            try:
                self._socket.sendall(encode(spec))
                data, fds, _, _ = socket.recv_fds(self._socket, 1 << 16, 1)
            except OSError as error:
                raise ZygoteError(f"the zygote is gone: {error}") from error
            if not data or not fds:
                raise ZygoteError(f"the zygote is gone (exit status {self._process.poll()})")
            [(header, _)] = self._decoder.feed(data)
            return int(header["pid"]), socket.socket(fileno=fds[0])

    def stop(self) -> None:
        """Close its socket (it exits at once) and wait for it."""
        self._socket.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def main(argv: list[str]) -> int:
    """The zygote's own loop (``argv``: the package's directory, the socket's descriptor):
    preload, then fork on every request until EOF."""
    package_root, descriptor = argv
    control = socket.socket(fileno=int(descriptor))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the containers
    for name in PRELOAD:
        importlib.import_module(name)
    sys.path.remove(package_root)  # the first entry: ours
    gc.freeze()  # what is preloaded stays shared: the collector never writes to its pages
    decoder = Decoder()
    while True:
        data = control.recv(1 << 16)
        if not data:
            return 0
        for spec, _ in decoder.feed(data):
            _fork(control, spec)


def _fork(control: socket.socket, spec: dict[str, Any]) -> None:
    from switchboard_local.gateway import container
    from switchboard_local.gateway.channel import BlockingChannel

    gateway_end, container_end = socket.socketpair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the container
        try:
            control.close()
            gateway_end.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            container.serve(BlockingChannel(container_end), spec)
        finally:
            os._exit(1)
    container_end.close()
    socket.send_fds(control, [encode({"pid": pid})], [gateway_end.fileno()])
    gateway_end.close()

