"""The ``log-ingest`` command line: one entry point for ops, the deploy pipeline and developers.

Exit codes a pipeline can rely on: 0 success, 1 the operation failed
(migration rolled back, ...), 2 bad configuration or usage, 3 the database
schema does not match this build.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from worker.errors import ConfigError, IngestError, SchemaError
from worker.settings import load_settings

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_SCHEMA = 3

app = typer.Typer(
    name="log-ingest",
    help="Ingest action and audit events from Kafka into PostgreSQL, exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def migrate(
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it.")
    ] = False,
) -> None:
    """Bring the database schema to head (safe when several jobs start at once)."""
    from worker.migrations import migrate as run_migrate

    result = run_migrate(load_settings(), sql=sql)
    if sql:
        return
    after = ", ".join(result.after)
    if result.applied:
        before = ", ".join(result.before) or "base"
        typer.echo(f"migrated: {before} -> {after}", err=True)
    else:
        typer.echo(f"already at head: {after}", err=True)


@app.command()
def dev(
    exit_after_demo: Annotated[
        bool, typer.Option("--exit-after-demo", help="Stop once set up instead of running.")
    ] = False,
) -> None:
    """Start the embedded stack (PostgreSQL under .dev/, broker), migrate, and show it."""
    from worker.dev import run_dev

    run_dev(exit_after_demo=exit_after_demo)


def main() -> None:
    """Console-script entry: turn our errors into one line and an exit code."""
    try:
        app()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except SchemaError as exc:
        _fail(str(exc), EXIT_SCHEMA)
    except IngestError as exc:
        _fail(str(exc), EXIT_FAILED)


def _fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
