"""The layout's rules, checked: the product never imports devtools, and rooms stay small."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('worker.devtools'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "worker.cli" in modules
    assert json.loads(result.stdout) == []


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
