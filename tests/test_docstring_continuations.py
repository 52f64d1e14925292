"""Docstrings that become --help text keep the shell line continuations of their example
commands: a backslash at a line's end inside a normal (not raw) string literal joins the lines
and prints the example as one line with a run of blanks (tools/train_head.py and
tools/train_in_loop.py did)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("edgelearn", "tools", "bench", "firmware_sim")
                 for p in (ROOT / d).rglob("*.py"))


def _docstrings(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                yield body[0].value


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_docstring_line_ends_in_a_swallowed_backslash(path):
    src = path.read_text()
    lines = src.splitlines()
    for doc in _docstrings(ast.parse(src)):
        head = lines[doc.lineno - 1][doc.col_offset:doc.col_offset + 4].lower()
        if head.startswith(("r", "br", "rb")):
            continue                                   # a raw string keeps its backslashes
        for k in range(doc.lineno - 1, doc.end_lineno - 1):
            text = lines[k].rstrip()
            tail = len(text) - len(text.rstrip("\\"))
            assert tail % 2 == 0, f"{path.relative_to(ROOT)}:{k + 1} ends in '\\' (write '\\\\')"
