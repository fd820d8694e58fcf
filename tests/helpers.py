"""Small helpers shared by tests: run the CLI as a process, inspect a database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def command_env(database_url: str, **extra: str) -> dict[str, str]:
    """The current environment with this test's database (and extras) in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_"))}
    env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


async def run_command(*argv: str, env: dict[str, str], timeout_s: float = 60) -> Finished:
    """Run one of the project's console scripts from the repo root and wait for it."""
    process = await asyncio.create_subprocess_exec(
        str(BIN_DIR / argv[0]), *argv[1:], cwd=REPO_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    # Read on tasks of our own, so that a process that overruns still shows what it logged.
    outputs = [asyncio.ensure_future(stream.read()) for stream in (process.stdout, process.stderr)]
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        logged = (await asyncio.gather(*outputs))[1].decode(errors="replace")
        raise TimeoutError(
            f"{' '.join(argv)} still running after {timeout_s} s; its stderr ended with:\n"
            + logged[-6000:]
        ) from None
    stdout, stderr = await asyncio.gather(*outputs)
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


async def user_tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def enum_values(url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
            "ORDER BY t.typname, e.enumsortorder"
        )
    finally:
        await connection.close()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["typname"], []).append(row["enumlabel"])
    return found


def modules_loaded_by(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of ``packages`` that importing ``modules`` loads, in a fresh interpreter
    (this one has imported everything already)."""
    script = (
        "import importlib, json, sys\n"
        f"packages = {packages!r}\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if any(m == p or m.startswith(p + '.') for p in packages))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded
