"""The documentation's code runs as written, and speaks to its reader.

A fenced block right after a line ``<!-- runnable -->`` in any ``README.md`` of the
repository or any ``docs/*.md`` is run against ``make run`` (on a free port, as the
e2e tests run it), whoever wrote the page:

* ```` ```python ````: with this environment's Python (where ``pip install
  ./clients/python`` has put the client), from an empty directory;
* ```` ```js ````: with Node, as an ES module, from the repository root, where
  ``switchboard-client`` is the JavaScript client installed from ``clients/js``
  (as ``npm install ./clients/js`` installs it); Node 20 gets ``--experimental-websocket``.

``127.0.0.1:8000`` in a block stands for ``make run``'s address (the test's is a free
port). A block must exit with status 0 within a minute; a marker before anything but a
``python`` or ``js`` block fails. The blocks' own output is printed (``pytest -s``).

The pages also must not speak of the project's history in words a reader cannot place
(an issue number, the people or sessions that wrote them).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.node import node, websocket_flags
from tests.gateways import REPO
from tests.switchboard_local.installed import Served

from .readme import address

DEFAULT = "127.0.0.1:8000"
"""``make run``'s address as the docs print it."""

MARKER = "<!-- runnable -->"
LANGUAGES = ("python", "js")
RUN_SECONDS = 60.0  # a liveness bound for one block, never a performance assertion
# Words that place a sentence in the project's history rather than in the reader's world.
HISTORY_WORDS = (
    r"\bissues? \d+", r"\bengineers?\b", r"\bhelpers?\b.{0,20}\bsessions?\b",
    r"\bsessions? of\b", r"'s branch\b", r"\bmerged code\b", r"\bmain after\b",
)


def pages() -> list[Path]:
    """Every README.md of the repository (not of its dependencies) and every docs page."""
    skipped = {".venv", "node_modules", ".git"}
    readmes = [path for path in REPO.rglob("README.md")
               if not skipped & set(path.relative_to(REPO).parts)]
    return sorted(readmes + list((REPO / "docs").glob("*.md")))


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{shown(self.page)}:{self.line}"


def shown(page: Path) -> str:
    return page.relative_to(REPO).as_posix() if page.is_relative_to(REPO) else str(page)


def runnable_blocks(page: Path) -> list[Block]:
    """The blocks of ``page`` marked runnable; a marker not followed by a fence is an error."""
    lines = page.read_text().splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = re.fullmatch(r"```(\w*)", lines[number + 1].strip()) if number + 1 < len(
            lines) else None
        where = f"{shown(page)}:{number + 1}"
        assert fence, f"{where}: {MARKER} must be followed by a fenced code block"
        language = fence.group(1)
        assert language in LANGUAGES, f"{where}: runnable blocks are {LANGUAGES}, not {language!r}"
        end = lines.index("```", number + 2)
        blocks.append(Block(page, number + 2, language, "\n".join(lines[number + 2:end]) + "\n"))
    return blocks


BLOCKS = [block for page in pages() for block in runnable_blocks(page)]


def test_the_client_docs_mark_their_examples_runnable() -> None:
    """Not a vacuous suite: the clients' pages have runnable Python and JavaScript."""
    found = {(shown(block.page), block.language) for block in BLOCKS}
    for page in ("README.md", "docs/clients.md"):
        assert {(page, "python"), (page, "js")} <= found, page
    lines = (REPO / "docs" / "clients.md").read_text().splitlines()
    unmarked = [number + 1 for number, line in enumerate(lines)
                if line.strip() in ("```python", "```js") and lines[number - 1] != MARKER]
    assert unmarked == [], "every client example in docs/clients.md runs"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.name)
def test_a_runnable_block_runs_against_make_run(
    block: Block, make_run: Served, tmp_path: Path
) -> None:
    code = block.code.replace(DEFAULT, address(make_run))
    if block.language == "python":
        argv, cwd = [sys.executable, "-"], tmp_path
    else:
        argv, cwd = [node(), *websocket_flags(), "--input-type=module", "-"], REPO
    try:
        ran = subprocess.run(argv, input=code, cwd=cwd, capture_output=True, text=True,
                             timeout=RUN_SECONDS, check=False)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"{block.name} still ran after {RUN_SECONDS:g} s: "
                             f"{expired.stdout!r} {expired.stderr!r}") from None
    print(f"--- {block.name}\n{ran.stdout}")
    assert ran.returncode == 0, f"{block.name} failed:\n{ran.stdout}\n{ran.stderr}"


@pytest.mark.parametrize("page", pages(), ids=shown)
def test_a_page_speaks_to_its_reader_not_of_the_project_history(page: Path) -> None:
    found = [
        f"{shown(page)}:{number}: {line.strip()}"
        for number, line in enumerate(page.read_text().splitlines(), start=1)
        if any(re.search(pattern, line, re.IGNORECASE) for pattern in HISTORY_WORDS)
    ]
    assert found == []


def test_a_marker_must_precede_a_python_or_js_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"{MARKER}\n```sh\nmake run\n```\n")
    with pytest.raises(AssertionError, match="runnable blocks are"):
        runnable_blocks(page)
    page.write_text(f"{MARKER}\ntext\n")
    with pytest.raises(AssertionError, match="must be followed by a fenced code block"):
        runnable_blocks(page)
