"""The product's code stays in pieces a reader can hold in mind: no module over 500 lines, no
function over 120 (the limits the design sets; `engine.train.run` was 333 lines before it was
split). Read from the source with `ast`, so a function is measured from its `def` to its end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "engine", "forge_api", "forge_cli", "forge_client", "forged", "tui")
MODULE_LINES = 500
FUNCTION_LINES = 120


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES
    }
    assert not long, f"modules over {MODULE_LINES} lines: {long}"


FUNCTION_LENGTHS = """
import ast, json, sys
out = []
for path in sys.argv[1:]:
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append([path, node.lineno, node.name, node.end_lineno - node.lineno + 1])
print(json.dumps(out))
"""
"""Run in a process of its own: CPython 3.11.7's `ast.parse` raises SystemError ("AST
constructor recursion depth mismatch") in a process that has caught a RecursionError before,
as the protocol tests' deeply nested JSON does in the same pytest worker."""


def test_no_function_is_over_120_lines() -> None:
    paths = [str(p) for p in modules()]
    found = subprocess.run(
        [sys.executable, "-c", FUNCTION_LENGTHS, *paths], capture_output=True, text=True, check=True
    )
    long = {
        f"{Path(path).relative_to(ROOT)}:{line} {name}": n
        for path, line, name, n in json.loads(found.stdout)
        if n > FUNCTION_LINES
    }
    assert not long, f"functions over {FUNCTION_LINES} lines: {long}"
