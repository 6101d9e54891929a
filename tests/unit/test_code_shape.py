"""The reconcile core stays readable: no function in it grows past 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

RECONCILE = Path(__file__).resolve().parents[2] / "src" / "aidbox_operator" / "reconcile"
MAX_LINES = 60


def test_reconcile_functions_are_short() -> None:
    long = []
    for path in sorted(RECONCILE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines: " + ", ".join(long)
