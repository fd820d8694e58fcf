"""The worker runs under the least-privilege role of docs/sql, and the role is really least."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.checker import check_exactly_once
from tests.helpers import REPO_ROOT, command_env, run_command
from tests.integration.test_cli_ops import start_worker
from tests.streams import create_topics, produce, stream_settings, wait_drained, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

pytestmark = pytest.mark.timeout(180)
SQL = REPO_ROOT / "docs" / "sql"


def as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def run_sql(url: str, path: str) -> None:
    db = await asyncpg.connect(url)
    try:
        await db.execute((SQL / path).read_text())
    finally:
        await db.close()


async def test_worker_under_least_privilege_role(settings: Settings) -> None:
    """migrate as the owner role, ingest as the worker role: all stored; no DELETE, no DDL."""
    await run_sql(settings.database_url, "01_roles.sql")
    migrator = as_user(settings.database_url, "log_ingest_migrator")
    worker_url = as_user(settings.database_url, "log_ingest_worker")
    migrated = await run_command("log-ingest", "migrate", env=command_env(migrator))
    assert migrated.returncode == 0, migrated.stderr
    await run_sql(migrator, "02_worker_grants.sql")
    tenant = await asyncpg.connect(migrator)
    try:
        await tenant.execute(
            "INSERT INTO tenants (id, name, api_key) VALUES ($1, 'a', 'x')", TENANT
        )
    finally:
        await tenant.close()

    stream = stream_settings(settings.model_copy(update={"database_url": worker_url}))
    await create_topics(stream.kafka_bootstrap_servers,
                        [stream.kafka_action_topic, stream.kafka_audit_topic], 2)  # fmt: skip
    factory = EventFactory([TENANT], seed=31)
    sent = await produce(stream, factory.mixed(600, 0.05, stream.max_event_bytes))
    process = await start_worker(worker_env(stream))
    try:
        await wait_drained(stream.model_copy(update={"database_url": migrator}), sent, 60)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        assert process.stderr is not None
        errors = (await process.stderr.read()).decode()
    assert process.returncode == 0, errors[-2000:]
    await check_exactly_once(migrator, sent, stream.kafka_group_id)

    await forbidden(worker_url, FORBIDDEN)
    await retention_under_its_role(settings.database_url, migrator)


async def forbidden(url: str, statements: tuple[str, ...]) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(statement)
    finally:
        await connection.close()


async def retention_under_its_role(url: str, migrator: str) -> None:
    """Retention deletes and seals as log_ingest_retention, the chains still verify, and
    the role can neither change a row nor write a chain entry."""
    await run_sql(migrator, "03_retention_grants.sql")
    retention = as_user(url, "log_ingest_retention")
    env = command_env(retention)
    done = await run_command("log-ingest", "retention", "run", "--action-logs-days", "1",
                             "--audit-logs-days", "1", "--pause-ms", "0", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deleted"]["audit_logs"] > 0
    verified = await run_command("log-ingest", "audit", "verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    await forbidden(retention, RETENTION_FORBIDDEN)


FORBIDDEN = (
    "DELETE FROM action_logs",
    "DELETE FROM audit_logs",
    "UPDATE audit_logs SET action = 'x'",
    "DELETE FROM audit_chain",
    "UPDATE audit_chain SET seq = 0",
    "DELETE FROM audit_chain_seals",
    "UPDATE audit_chain_seals SET seq = 0",
    "DROP TABLE audit_logs",
    "UPDATE tenants SET is_active = false",
    "CREATE TABLE x (i int)",
)
RETENTION_FORBIDDEN = (
    "UPDATE audit_logs SET action = 'x'",
    "INSERT INTO audit_logs (id) VALUES (gen_random_uuid())",
    "UPDATE audit_chain SET seq = 0",
    "INSERT INTO audit_chain (seq) VALUES (1)",
    "UPDATE action_logs SET status = 'success'",
    "DELETE FROM tenants",
    "DELETE FROM ingest_offsets",
)
TENANT = uuid.UUID("7b7e6f1c-2f7e-4a51-9a4f-0f2c3c7d5e11")
