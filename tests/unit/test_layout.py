"""The layout's rules, checked: the product never imports devtools, and rooms stay small."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO_ROOT, modules_loaded_by

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
CHECKED_TREES = ("worker", "schemas", "alembic", "tests")


def _product_modules() -> list[str]:
    """Every module of the product: worker/ without devtools/, and the CLI."""
    names = []
    for path in sorted((REPO_ROOT / "worker").rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).with_suffix("")
        if "devtools" in relative.parts:
            continue
        names.append(".".join(relative.parts).removesuffix(".__init__"))
    return names


def _python_files() -> list[Path]:
    return [p for tree in CHECKED_TREES for p in sorted((REPO_ROOT / tree).rglob("*.py"))]


def test_the_product_never_imports_devtools() -> None:
    """Importing every product module (the CLI included) loads nothing of worker.devtools."""
    modules = _product_modules()
    assert "worker.cli" in modules
    assert modules_loaded_by(modules, ("worker.devtools",)) == []


def test_no_module_over_300_lines() -> None:
    """Every Python module of the repository is at most 300 lines long."""
    long = {
        str(p.relative_to(REPO_ROOT)): n
        for p in _python_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_over_60_lines() -> None:
    """Every function and method of the repository is at most 60 lines long."""
    long = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO_ROOT)}:{node.name}"] = length
    assert long == {}
