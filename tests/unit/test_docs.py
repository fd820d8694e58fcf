"""The docs match the code: settings tables list exactly ``Settings``, nothing points outside."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import PydanticUndefined

from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_TABLES = ("README.md", "docs/operations.md")
TABLE_HEADING = "## Configuration"
# Built from parts, so that this file does not contain what it looks for.
OUTSIDE_REFERENCES = (
    *(name + ".md" for name in ("SCHEMA", "DESIGN", "STYLE")),
    ".." + "/shared",
)
_ROW = re.compile(r"^\|(?P<variable>[^|]*)\|(?P<default>[^|]*)\|")
_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")
_LITERAL = re.compile(r"`([^`]*)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PLAIN_LITERALS = (str, int, float, bool, type(None))


def settings_table(relative: str) -> dict[str, str | None]:
    """Variable -> default text (None for ``unset``) of the table under ``## Configuration``."""
    lines = (ROOT / relative).read_text(encoding="utf-8").splitlines()
    if TABLE_HEADING not in lines:
        pytest.skip(f"{relative} has no {TABLE_HEADING!r} section")
    rows: dict[str, str | None] = {}
    for line in lines[lines.index(TABLE_HEADING) + 1 :]:
        if line.startswith("## "):
            break
        match = _ROW.match(line)
        if match is None or not _NAME.search(match["variable"]):
            continue
        names = _NAME.findall(match["variable"])
        assert len(names) == 1, f"{relative}: one variable per row, got {names} in {line!r}"
        assert names[0] not in rows, f"{relative}: {names[0]} appears twice"
        rows[names[0]] = _default_text(relative, names[0], match["default"].strip())
    return rows


def _default_text(relative: str, name: str, cell: str) -> str | None:
    if cell.startswith("unset"):
        return None
    literal = _LITERAL.search(cell)
    assert literal is not None, f"{relative}: {name}'s default is neither `...` nor unset"
    return literal[1]


def settings_defaults() -> dict[str, Any]:
    """Environment name -> default of every ``Settings`` field."""
    return {name.upper(): field.default for name, field in Settings.model_fields.items()}


def default_matches(text: str | None, default: object) -> bool:
    """Whether a table's default text says the field's default."""
    if default is None or text is None:
        return default is None and text is None
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text) == default
        except ValueError:
            return False
    return text == default


def repository_files() -> list[Path]:
    """Tracked files and new files not ignored (``git ls-files``), that exist."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git work tree ({type(exc).__name__})")
    paths = (ROOT / name for name in listed.decode().split("\0") if name)
    return [path for path in paths if path.is_file()]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@pytest.mark.parametrize("relative", SETTINGS_TABLES)
def test_settings_table_lists_exactly_the_settings(relative: str) -> None:
    """The table names every Settings field as its env variable, and nothing else."""
    documented = set(settings_table(relative))
    fields = set(settings_defaults())
    missing, extra = sorted(fields - documented), sorted(documented - fields)
    assert (missing, extra) == ([], []), (
        f"{relative}: missing from the table: {missing}; not settings: {extra}"
    )


@pytest.mark.parametrize("relative", SETTINGS_TABLES)
def test_settings_table_gives_the_defaults(relative: str) -> None:
    """Each documented default equals the field's default, where that is a plain literal."""
    defaults = settings_defaults()
    wrong = {
        name: (text, defaults[name])
        for name, text in settings_table(relative).items()
        if name in defaults
        and defaults[name] is not PydanticUndefined
        and isinstance(defaults[name], _PLAIN_LITERALS)
        and not default_matches(text, defaults[name])
    }
    assert not wrong, f"{relative}: documented default != Settings default: {wrong}"


def test_no_file_refers_to_files_outside_the_repository() -> None:
    """No text file of the repository names the team's notes kept outside it."""
    found = {
        str(path.relative_to(ROOT)): [ref for ref in OUTSIDE_REFERENCES if ref in text]
        for path in repository_files()
        if (text := text_of(path)) is not None
    }
    offending = {path: refs for path, refs in found.items() if refs}
    assert not offending, f"files that refer to files outside the repository: {offending}"


def test_markdown_links_point_inside_the_repository() -> None:
    """Every relative link of a Markdown file names a file or folder of the repository."""
    broken = []
    for path in repository_files():
        if path.suffix != ".md":
            continue
        for target in _LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
                continue  # a URL, or an anchor on the same page
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, f"links to nothing in the repository: {broken}"


def test_default_matching_reads_the_tables_literals() -> None:
    """The comparison takes `10` for 10.0, `true` for True, unset for None, and no more."""
    assert default_matches("10", 10.0)
    assert default_matches("1048576", 1024 * 1024)
    assert default_matches("true", True)
    assert default_matches(None, None)
    assert default_matches("json", "json")
    assert not default_matches("True", True)
    assert not default_matches("20", 10)
    assert not default_matches(None, "PLAIN")
    assert not default_matches("x", 1)


def test_architecture_names_every_product_module() -> None:
    """docs/architecture.md's layout table names every module of the product."""
    layout = (ROOT / "docs" / "architecture.md").read_text()
    modules = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "worker").rglob("*.py"))
        if "devtools" not in path.parts and path.name != "__init__.py"
    ]
    assert [module for module in modules if f"`{module}`" not in layout] == []
