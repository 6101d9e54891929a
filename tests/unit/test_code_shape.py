"""The code stays readable: no function of the operator, the sandbox or the benchmark grows past
60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKED = ("src", "sandbox", "bench")
# Made by tools, not written: a virtualenv, build output, caches.
SKIPPED = {".venv", "venv", "build", "dist", "__pycache__", "node_modules"}
MAX_LINES = 60


def _sources() -> list[Path]:
    found = []
    for top in CHECKED:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).parts
            if SKIPPED.isdisjoint(parts) and not any(p.endswith(".egg-info") for p in parts):
                found.append(path)
    return found


def test_the_check_sees_every_tree() -> None:
    # Guards the walk itself: an empty or partial file list would pass everything below.
    seen = {p.relative_to(REPO).parts[0] for p in _sources()}
    assert seen == set(CHECKED)
    assert REPO / "src" / "aidbox_operator" / "reconcile" / "controller.py" in _sources()


def test_functions_are_short() -> None:
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    where = path.relative_to(REPO)
                    long.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_LINES} lines: " + ", ".join(long)


def _test_module_names() -> dict[str, list[str]]:
    # pytest imports a test file outside a package under its bare file name, so two such files
    # with one name break collection of the whole run (make test), while each suite alone passes.
    names: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name in ("__init__.py", "conftest.py") or "__pycache__" in path.parts:
            continue
        if (path.parent / "__init__.py").exists():
            continue
        names.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    return names


def test_test_modules_outside_packages_have_distinct_names() -> None:
    names = _test_module_names()
    assert "test_code_shape.py" in names  # the walk sees this very file
    clashes = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing a name (pytest cannot collect both): {clashes}"
