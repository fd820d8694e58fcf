"""The operator CLI as a process: run and SIGTERM, tenants, rejects, schema refusal, the breaker;
and, in this process, the worker replacing a consumer that lost its group for good."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from tests.checker import check_exactly_once
from tests.helpers import BIN_DIR, REPO_ROOT, run_command
from tests.integration.test_migrations import alembic
from tests.streams import (
    create_topics,
    produce,
    stream_settings,
    wait_drained,
    wait_until,
    worker_env,
)
from worker.consume import kafka_config
from worker.devtools.eventgen import EventFactory
from worker.ops.admin import create_tenant
from worker.records import RejectReason
from worker.service.app import run_worker
from worker.settings import Settings

pytestmark = pytest.mark.timeout(180)
# Longer than a join on the embedded broker (several seconds), so that the replacement's own
# join is not taken for another stuck consumer.
REJOIN_TIMEOUT_S = 12.0


@pytest.fixture
async def stream(settings: Settings) -> Settings:
    await alembic(settings, "upgrade", "head")
    configured = stream_settings(settings)
    topics = [configured.kafka_action_topic, configured.kafka_audit_topic]
    await create_topics(configured.kafka_bootstrap_servers, topics, partitions=2)
    return configured


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN_DIR / "log-ingest"), "run", cwd=REPO_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def new_tenant(env: dict[str, str]) -> uuid.UUID:
    done = await run_command("log-ingest", "tenants", "create", "Acme Corp", env=env)
    assert done.returncode == 0, done.stderr
    return uuid.UUID(done.stdout.split("id: ")[1].split()[0])


async def test_run_then_sigterm_exits_zero_with_everything_stored(stream: Settings) -> None:
    """`log-ingest run` drains the topics; SIGTERM makes it leave cleanly with exit 0."""
    env = worker_env(stream)
    tenant = await new_tenant(env)
    factory = EventFactory([tenant], seed=2)
    sent = await produce(stream, factory.mixed(2000, 0.0, stream.max_event_bytes))
    process = await start_worker(env)
    try:
        await wait_drained(stream, sent, timeout_s=60)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), stream.shutdown_grace_s + 10)
    finally:
        await stop_process(process)
    assert process.returncode == 0
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert '"event": "worker_stopped"' in stderr


async def test_worker_refuses_a_schema_behind(stream: Settings) -> None:
    """Against a database not at head, `log-ingest run` exits 3 and says to migrate."""
    await alembic(stream, "downgrade", "001")
    done = await run_command("log-ingest", "run", env=worker_env(stream), timeout_s=60)
    assert done.returncode == 3
    assert "log-ingest migrate" in done.stderr


async def test_breaker_stops_the_worker_on_garbage(stream: Settings) -> None:
    """A producer sending only garbage trips the breaker: exit 4, the tripping batch unwritten."""
    env = worker_env(stream, REJECT_BREAKER_MIN="100", BATCH_MAX_EVENTS="50")
    factory = EventFactory([uuid.uuid4()], seed=8)
    garbage = [factory.invalid(RejectReason.INVALID_JSON, 1000) for _ in range(300)]
    await produce(stream, garbage)
    done = await run_command("log-ingest", "run", env=env, timeout_s=90)
    assert done.returncode == 4
    assert "rejected" in done.stderr
    db = await asyncpg.connect(stream.database_url)
    try:
        stored = await db.fetchval("SELECT count(*) FROM ingest_rejects")
    finally:
        await db.close()
    assert stored < 300  # stopped instead of draining the topic into rejects


def break_membership(consumer: AIOKafkaConsumer) -> None:
    """Lose the group as a rejected commit does, then never complete the rejoin (aiokafka's hang).

    The coordinator revokes the partitions and waits in the join until the consumer is stopped.
    """
    coordinator = consumer._coordinator

    async def never_rejoin(_subscription: object) -> bool:
        await coordinator._closing
        return False

    coordinator._do_rejoin_group = never_rejoin
    coordinator.reset_generation()


async def test_a_consumer_that_never_rejoins_is_replaced(
    stream: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of its group past the rejoin timeout, the consumer is replaced: none lost or doubled."""
    made: list[AIOKafkaConsumer] = []

    class Recorded(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self, **options: object) -> None:
            super().__init__(**options)
            made.append(self)

    monkeypatch.setattr(kafka_config, "AIOKafkaConsumer", Recorded)
    settings = stream.model_copy(update={"kafka_rejoin_timeout_s": REJOIN_TIMEOUT_S})
    factory = EventFactory([(await create_tenant(settings, "Acme")).tenant_id], seed=12)
    sent = await produce(settings, factory.mixed(500, 0.0, settings.max_event_bytes))
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        await wait_drained(settings, sent, timeout_s=60)
        break_membership(made[0])
        sent += await produce(settings, factory.mixed(500, 0.0, settings.max_event_bytes))
        await wait_drained(settings, sent, timeout_s=REJOIN_TIMEOUT_S * 4)
    finally:
        stop.set()
        stats = await asyncio.wait_for(worker, 60)
    assert len(made) == 2
    assert stats.metrics.registry.get_sample_value("log_ingest_consumer_replacements_total") == 1
    await check_exactly_once(settings.database_url, sent, settings.kafka_group_id)


async def test_tenant_commands(stream: Settings) -> None:
    """create prints a key once and stores its digest; deactivate, activate, rotate-key, list."""
    env = worker_env(stream)
    created = await run_command("log-ingest", "tenants", "create", "Acme", env=env)
    tenant_id = created.stdout.split("id: ")[1].split()[0]
    api_key = created.stdout.split("api_key: ")[1].split()[0]
    db = await asyncpg.connect(stream.database_url)
    try:
        stored = await db.fetchval(
            "SELECT api_key FROM tenants WHERE id = $1", uuid.UUID(tenant_id)
        )
        assert stored != api_key
        assert len(stored) == 64
        for command in ("deactivate", "activate", "rotate-key"):
            done = await run_command("log-ingest", "tenants", command, tenant_id, env=env)
            assert done.returncode == 0, done.stderr
        rotated = await db.fetchval(
            "SELECT api_key FROM tenants WHERE id = $1", uuid.UUID(tenant_id)
        )
        assert rotated != stored
    finally:
        await db.close()
    listed = await run_command("log-ingest", "tenants", "list", env=env)
    assert f"{tenant_id}  active" in listed.stdout
    missing = await run_command("log-ingest", "tenants", "deactivate", str(uuid.uuid4()), env=env)
    assert missing.returncode == 1
    assert "no tenant" in missing.stderr


async def test_rejects_list_and_replay(stream: Settings) -> None:
    """Rejects are listed by reason; replay re-publishes them and, once fixed, they are stored."""
    env = worker_env(stream, TENANT_NEGATIVE_TTL_S="0.1")
    factory = EventFactory([uuid.uuid4()], seed=6)  # a tenant that does not exist yet
    event = factory.audit()
    sent = await produce(stream, [factory.valid("audit", event)])
    process = await start_worker(env)
    try:
        await wait_drained(stream, sent, timeout_s=60)
        listed = await run_command(
            "log-ingest", "rejects", "list", "--reason", "unknown_tenant", env=env
        )
        assert "unknown_tenant" in listed.stdout
        assert str(event["resource_id"]) not in listed.stdout
        db = await asyncpg.connect(stream.database_url)
        try:
            await db.execute("INSERT INTO tenants (id, name, api_key) VALUES ($1, 'late', 'x')",
                             uuid.UUID(str(event["tenant_id"])))  # fmt: skip
            replay = await run_command("log-ingest", "rejects", "replay", env=env)
            assert "replayed 1" in replay.stdout

            async def stored() -> bool:
                return bool(await db.fetchval("SELECT count(*) FROM audit_logs"))

            await wait_until(stored, 30, "the replayed event to be stored")
            row = await db.fetchrow("SELECT resource_id FROM audit_logs")
        finally:
            await db.close()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    assert row["resource_id"] == event["resource_id"]


async def test_schemas_export_matches_committed_files(tmp_path: Path) -> None:
    """`log-ingest schemas export DIR` writes the same files that are committed in schemas/."""
    done = await run_command("log-ingest", "schemas", "export", str(tmp_path), env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    for name in ("action_event.schema.json", "audit_event.schema.json"):
        committed = (REPO_ROOT / "schemas" / name).read_text()
        assert (tmp_path / name).read_text() == committed
