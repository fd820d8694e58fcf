"""``log-ingest dev``: the whole thing working on one machine with nothing but pip packages.

Starts embedded PostgreSQL (data kept under ``.dev/``, so a second run finds
the first one's rows) and the embedded broker (memory only: it starts empty),
creates the topics, migrates, makes a demo tenant if there is none, runs the
worker, publishes demo events with a progress bar, and prints what landed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from worker.db.migrations import migrate
from worker.devtools.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from worker.devtools.loadgen import Produced, generate, publish
from worker.ops.admin import create_tenant
from worker.service.app import run_worker
from worker.service.logs import configure_logging
from worker.settings import Settings, load_settings

DEV_DATABASE = "transform_army"
DEMO_TENANT = "demo"
TABLES = ("tenants", "action_logs", "audit_logs")
PARTITIONS = 3


def run_dev(*, data_dir: Path, demo: int, exit_after_demo: bool) -> None:
    """Start everything, run the demo, summarize; then wait for Ctrl-C unless told to exit."""
    console = Console()
    postgres = EmbeddedPostgres(data_dir / "postgres")
    broker = EmbeddedKafka(log_path=data_dir / "broker.log")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with console.status("starting embedded PostgreSQL and broker"):
            postgres.start()
            broker.start()
            settings = _dev_settings(postgres, broker)
            asyncio.run(_ensure_database(postgres.url(), DEV_DATABASE))
            result = migrate(settings)
        console.print(f"schema at revision {', '.join(result.after)}")
        asyncio.run(_demo(settings, console, demo, exit_after_demo))
    finally:
        broker.stop()
        postgres.stop()


def _dev_settings(postgres: EmbeddedPostgres, broker: EmbeddedKafka) -> Settings:
    return load_settings(
        database_url=postgres.url(DEV_DATABASE),
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_enable_idempotence=False,  # the embedded broker has no idempotent producer
        kafka_group_id="log-ingest-dev",
        http_port=free_port(),
        max_event_bytes=64 * 1024,  # small enough that the demo's oversized events stay cheap
        log_format="console",
        log_level="WARNING",
    )


async def _demo(settings: Settings, console: Console, demo: int, exit_after: bool) -> None:
    configure_logging(settings)
    await _prepare(settings)
    tenant = await _demo_tenant(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        with console.status("waiting for the worker to join its group"):
            await _wait_ready(settings.http_port, worker)
        started = time.monotonic()
        produced = await _publish_demo(settings, console, tenant, demo)
        await _wait_drained(settings, produced.events, worker)
        await _print_summary(settings, console, produced, time.monotonic() - started)
        if not exit_after:
            await _until_interrupted(console)
    finally:
        stop.set()
        await worker


async def _prepare(settings: Settings) -> None:
    """Topics of the fresh broker, and no offsets left from an earlier broker's life."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = (settings.kafka_action_topic, settings.kafka_audit_topic)
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        await admin.close()
    db = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        # The embedded broker keeps nothing across runs: positions in its earlier logs are
        # void, and new messages will reuse them.
        await db.execute("DELETE FROM ingest_offsets WHERE group_id = $1", settings.kafka_group_id)
        await db.execute("DELETE FROM ingest_rejects")
    finally:
        await db.close()


async def _demo_tenant(settings: Settings) -> uuid.UUID:
    db = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        found = await db.fetchval("SELECT id FROM tenants WHERE name = $1", DEMO_TENANT)
    finally:
        await db.close()
    if isinstance(found, uuid.UUID):
        return found
    return (await create_tenant(settings, DEMO_TENANT)).tenant_id


async def _publish_demo(
    settings: Settings, console: Console, tenant: uuid.UUID, count: int
) -> Produced:
    events = generate("mixed", [tenant], count, 0.02, settings.max_event_bytes)
    with Progress(console=console) as progress:
        return await publish(settings, events, None, progress)


async def _wait_drained(settings: Settings, count: int, worker: asyncio.Task[object]) -> None:
    """Until the stored offsets cover every published event (all partitions start at 0)."""
    db = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        while not worker.done():
            stored = await db.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets WHERE group_id = $1",
                settings.kafka_group_id,
            )
            if stored >= count:
                return
            await asyncio.sleep(0.1)
    finally:
        await db.close()
    await worker  # it stopped on its own: raise what stopped it


async def _wait_ready(port: int, worker: asyncio.Task[object]) -> None:
    """Poll /readyz until the worker says it is ready (or stops)."""
    while not worker.done():
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: dev\r\n\r\n")
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        await asyncio.sleep(0.1)
    await worker


async def _print_summary(
    settings: Settings, console: Console, produced: Produced, seconds: float
) -> None:
    db = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        counts = {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
        rejects = await db.fetch(
            "SELECT reason, count(*) AS n FROM ingest_rejects GROUP BY reason ORDER BY reason"
        )
    finally:
        await db.close()
    table = Table(title="log-ingest dev: what is in the database")
    table.add_column("table / reject reason")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, str(rows))
    for row in rejects:
        table.add_row(f"ingest_rejects: {row['reason']}", str(row["n"]))
    console.print(table)
    rate = produced.events / seconds if seconds else 0.0
    console.print(f"this run: {produced.events} events published ({produced.invalid} invalid), "
                  f"all stored in {seconds:.1f}s: {rate:,.0f} events/s")  # fmt: skip
    console.print(f"psql {settings.asyncpg_dsn}")
    console.print(f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}")
    console.print(f"metrics: http://127.0.0.1:{settings.http_port}/metrics")


async def _until_interrupted(console: Console) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print("running; Ctrl-C stops everything")
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()


async def _ensure_database(admin_url: str, name: str) -> None:
    """Create the database if it does not exist yet."""
    connection = await asyncpg.connect(admin_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
