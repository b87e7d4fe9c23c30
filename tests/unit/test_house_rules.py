"""The house rules for the test suite itself (../shared/STYLE.md): every test states its behaviour in a docstring,
and test modules have names unique across tests/unit and tests/integration (pytest imports them by basename)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def test_every_test_says_what_it_checks() -> None:
    """A test function without a docstring is listed, with its file and line, so the rule cannot rot."""
    missing = [
        f"{path.relative_to(TESTS)}:{node.lineno} {node.name}"
        for path in _test_modules()
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and not ast.get_docstring(node)
    ]
    assert missing == []


def test_test_module_names_are_unique_across_the_suites() -> None:
    """Two test files with one basename break collection (pytest imports them by basename): none may share one."""
    names = [path.name for path in _test_modules()]
    assert sorted({name for name in names if names.count(name) > 1}) == []
