"""The layers of the repository, read from every module's imports.

* ``app.py`` and ``chalicelib/`` ship to Lambda: they import the standard
  library, ``requirements.txt``'s packages (and what those bring) and
  ``chalicelib`` — never a tool of this repository;
* ``switchboard_local/`` is a tool for any Chalice project: nothing of this app;
* ``deploy/`` deploys the app: it may read ``chalicelib``, never the local gateway;
* ``harness/`` (stand-ins for AWS) knows nothing of the app or its tools;
* nothing but the tests imports ``tests``;
* no code but ``chalicelib/registry.py`` and ``chalicelib/streams.py`` spells a key of the
  table (tests included): the others call their key helpers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"switchboard_local", "deploy", "bench", "harness", "tests", "switchboard_client"}
FORBIDDEN = {
    "chalicelib": TOOLS | {"app"},
    "app.py": TOOLS,
    "switchboard_local": {"chalicelib", "app", "deploy", "bench", "harness", "tests"},
    "harness": {"chalicelib", "app", "switchboard_local", "deploy", "bench", "tests"},
    "deploy": {"switchboard_local", "bench", "harness", "tests"},
    "bench": {"tests"},
}


def modules(layer: str) -> Iterator[Path]:
    path = ROOT / layer
    yield from [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Top-level names of the modules ``path`` imports (relative imports stay home)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_what_it_may(layer: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules(layer)
        for line, name in imported(path)
        if name in FORBIDDEN[layer]
    ]
    assert found == []


def test_the_rules_have_teeth(tmp_path: Path) -> None:
    """A module that crossed a layer would be found (the reader sees every import form)."""
    module = tmp_path / "crossing.py"
    module.write_text(
        "import deploy.provision\nfrom switchboard_local.project import read_stage\n"
        "def late():\n    from bench import suite\n"
    )
    assert {name for _, name in imported(module)} == {"deploy", "switchboard_local", "bench"}


# -- key formats --------------------------------------------------------------------------------

KEY_OWNERS = ("chalicelib/registry.py", "chalicelib/streams.py")
"""The only modules that spell the table's keys (the others call their key helpers)."""


def key_prefixes() -> dict[str, str]:
    """Every key prefix the owners define (a module-level string constant ending in ``#``)."""
    found = {}
    for owner in KEY_OWNERS:
        for node in ast.parse((ROOT / owner).read_text()).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str) and node.value.value.endswith("#")):
                found[node.value.value] = owner
    return found


def string_pieces(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal of ``path``, f-strings' literal parts included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_the_owners_define_the_key_prefixes() -> None:
    assert {"CONN#", "ROOM#", "USER#", "HIST#", "INBOX#", "SEQ#", "REVOKED#", "IDEM#",
            "RATE#"} <= set(key_prefixes())


@pytest.mark.parametrize("layer", ["app.py", "chalicelib", "switchboard_local", "deploy",
                                   "bench", "harness", "tests", "clients/python"])
def test_no_code_but_the_owners_spells_a_key(layer: str) -> None:
    prefixes = key_prefixes()
    spelled = [
        f"{path.relative_to(ROOT)}:{line} {text[:40]!r}"
        for path in modules(layer)
        if str(path.relative_to(ROOT)) not in KEY_OWNERS and path != Path(__file__).resolve()
        for line, text in string_pieces(path)
        if any(text.startswith(prefix) for prefix in prefixes)
    ]
    assert spelled == [], "call the owners' key helpers instead"
