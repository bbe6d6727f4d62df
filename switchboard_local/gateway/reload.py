"""Reload on save: code changes take effect for the next event, sockets stay open.

``watchfiles`` watches the project's code (inotify where there is one) for
changed Python files — the project's directory itself, and each of its
subdirectories but virtual environments, caches and hidden ones, so a
``.venv`` inside the project costs no watches; each burst of changes triggers one
:meth:`switchboard_local.gateway.loader.ProjectApp.reload`, run on the
invocation pool while the loop goes on serving. Connections, the store and
everything in it are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, awatch

logger = logging.getLogger("switchboard_local.gateway")

_SKIPPED_PARTS = {".git", ".chalice", ".venv", "venv", "node_modules", "__pycache__",
                  ".switchboard-local", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def is_code(change: Change, path: str) -> bool:
    parts = Path(path).parts
    return path.endswith(".py") and not _SKIPPED_PARTS.intersection(parts)


class Reloader:
    """Watches ``project_dir`` and calls ``reload()`` after each change to its code."""

    def __init__(self, project_dir: Path, reload: Callable[[], Awaitable[None]]) -> None:
        self._project_dir = project_dir
        self._reload = reload
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        subdirectories = [
            entry for entry in sorted(self._project_dir.iterdir())
            if entry.is_dir() and not entry.name.startswith(".")
            and entry.name not in _SKIPPED_PARTS
        ]
        self._tasks = [asyncio.create_task(self._watch([self._project_dir], recursive=False))]
        if subdirectories:
            self._tasks.append(asyncio.create_task(self._watch(subdirectories, recursive=True)))

    async def _watch(self, paths: list[Path], recursive: bool) -> None:
        async for changes in awatch(
            *paths, watch_filter=is_code, stop_event=self._stop, debounce=200, step=50,
            recursive=recursive,
        ):
            logger.info("changed: %s", ", ".join(sorted(Path(p).name for _, p in changes)))
            async with self._lock:
                await self._reload()

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
