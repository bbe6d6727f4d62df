"""Where a running gateway is: the only code that knows the record a gateway leaves behind.

The serving command writes ``.switchboard-local/gateway.json`` in its project
once it serves (its URL as this machine reaches it, its stage and process id)
and removes it when it stops; the most recently started gateway of a project
owns the record. The client commands (``token``, ``invoke``) find a gateway
in this order: ``--url``; ``HOST``/``PORT``, the variables the serving command
reads, so ``PORT=9000`` means the same to both; the record of the nearest
directory at or above the current one, when its process still runs;
``http://127.0.0.1:8000``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from switchboard_local.gateway.workdir import LOCAL_DIR, local_dir

DEFAULT_ADDRESS = "127.0.0.1:8000"
"""Where the client commands look when nothing else says where a gateway is."""
RECORD = "gateway.json"


@dataclass(frozen=True)
class Record:
    """A serving gateway, as its record says."""

    url: str
    stage: str
    pid: int


@dataclass(frozen=True)
class Located:
    """A gateway's URL and how it was found (for the error when nothing answers there)."""

    url: str
    how: str


def client_address(host: str, port: int) -> str:
    """``http://HOST:PORT`` as a client on this machine reaches a gateway bound to ``host``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write(project_dir: Path, record: Record) -> Path:
    """Record a serving gateway (replacing any earlier record at once)."""
    path = local_dir(project_dir) / RECORD
    draft = path.with_name(f".{RECORD}.{record.pid}")
    draft.write_text(json.dumps(asdict(record)) + "\n")
    draft.replace(path)
    return path


def remove(project_dir: Path, pid: int) -> None:
    """Remove the record if it is still this process's (a later gateway may own it)."""
    path = project_dir / LOCAL_DIR / RECORD
    record = read(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def read(path: Path) -> Record | None:
    try:
        data = json.loads(path.read_text())
        return Record(url=str(data["url"]), stage=str(data["stage"]), pid=int(data["pid"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def locate(url: str | None, environ: Mapping[str, str], cwd: Path) -> Located:
    """The gateway the client commands talk to (see the module's docstring for the order)."""
    if url:
        return Located(url.rstrip("/"), "--url")
    host, port = environ.get("HOST"), environ.get("PORT")
    if host or port:
        if port and not (port.isascii() and port.isdigit()):
            raise ValueError(f"PORT must be a port number, not {port!r}")
        return Located(client_address(host or "127.0.0.1", int(port or 8000)), "HOST/PORT")
    for directory in (cwd, *cwd.parents):
        path = directory / LOCAL_DIR / RECORD
        if path.is_file():
            record = read(path)
            if record is not None and _running(record.pid):
                return Located(record.url, f"recorded in {path}")
            return Located(
                f"http://{DEFAULT_ADDRESS}",
                f"the default: {path} names no running gateway (a gateway that was killed)",
            )
    return Located(
        f"http://{DEFAULT_ADDRESS}",
        f"the default: no --url, no HOST or PORT, no {LOCAL_DIR}/{RECORD} here or above",
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
