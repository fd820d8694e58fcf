"""``log-ingest dev``: the whole stack on one machine with nothing installed but pip packages.

PostgreSQL keeps its data under ``.dev/`` so that a second run finds the
first one's rows; the broker is memory-only and starts empty each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

from worker.embedded import EmbeddedKafka, EmbeddedPostgres
from worker.migrations import migrate
from worker.settings import load_settings

DEV_DIR = Path(".dev")
DEV_DATABASE = "transform_army"
TABLES = ("tenants", "action_logs", "audit_logs")


async def ensure_database(admin_url: str, name: str) -> None:
    """Create the database if it does not exist yet."""
    connection = await asyncpg.connect(admin_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def count_rows(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        return {
            table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES
        }
    finally:
        await connection.close()


def run_dev(*, exit_after_demo: bool) -> None:
    """Start, migrate, summarize; then wait for Ctrl-C unless told to exit."""
    console = Console()
    postgres = EmbeddedPostgres(DEV_DIR / "postgres")
    broker = EmbeddedKafka(log_path=DEV_DIR / "broker.log")
    try:
        with console.status("starting embedded PostgreSQL and broker"):
            postgres.start()
            broker.start()
        url = postgres.url(DEV_DATABASE)
        asyncio.run(ensure_database(postgres.url(), DEV_DATABASE))
        settings = load_settings(database_url=url, kafka_bootstrap_servers=broker.bootstrap_servers)
        result = migrate(settings)
        console.print(f"schema at {', '.join(result.after)}")
        _print_summary(console, asyncio.run(count_rows(url)), url, broker.bootstrap_servers)
        if not exit_after_demo:
            _wait_for_interrupt(console)
    finally:
        broker.stop()
        postgres.stop()


def _print_summary(console: Console, counts: dict[str, int], url: str, bootstrap: str) -> None:
    table = Table(title="log-ingest dev stack")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, str(rows))
    console.print(table)
    console.print(f"psql {url}")
    console.print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}")


def _wait_for_interrupt(console: Console) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print("running; Ctrl-C stops everything")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
