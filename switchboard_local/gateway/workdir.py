"""The project's ``.switchboard-local/`` directory: the only code that creates it.

It holds what the gateway keeps on the developer's machine (the local signing
key, the record of the running gateway) and ignores itself in git, whatever
the project's ``.gitignore`` says. Light on purpose: the client commands read
it without loading the gateway.
"""

from __future__ import annotations

from pathlib import Path

LOCAL_DIR = ".switchboard-local"


def local_dir(project_dir: Path) -> Path:
    """``.switchboard-local/`` in the project, created with its ``.gitignore`` when missing."""
    directory = project_dir / LOCAL_DIR
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Local state of switchboard-local: never commit it.\n*\n")
    return directory
