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
