"""The worker's HTTP endpoints, scraped from a running `log-ingest run` process."""

from __future__ import annotations

import asyncio
import signal
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.integration.test_cli_ops import new_tenant, start_worker, stop_process, stream
from tests.streams import create_topics, produce, wait_drained, wait_until, worker_env
from worker.devtools.embedded import EmbeddedKafka, free_port
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

__all__ = ["stream"]  # the fixture, shared with the CLI tests
pytestmark = pytest.mark.timeout(120)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


async def fetch(port: int, path: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(get, port, path)


async def test_not_ready_while_the_database_is_unreachable(stream: Settings) -> None:
    """Alive (/healthz 200), not ready (/readyz 503 and why) while PostgreSQL is unreachable."""
    port = free_port()
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    env = worker_env(stream, HTTP_PORT=str(port)) | {"DATABASE_URL": unreachable}
    process = await start_worker(env)
    try:

        async def serving() -> bool:
            return (await fetch(port, "/healthz"))[0] == 200

        await wait_until(serving, 30, "the health endpoint to answer")
        status, body = await fetch(port, "/readyz")
        assert status == 503
        assert orjson.loads(body) == {"ready": False, "reasons": ["starting"]}
        assert (await fetch(port, "/nope"))[0] == 404
    finally:
        await stop_process(process)


async def test_ready_and_metrics_while_ingesting(stream: Settings) -> None:
    """Assigned and connected: /readyz 200; /metrics counts the rows written and rejects."""
    port = free_port()
    env = worker_env(stream, HTTP_PORT=str(port))
    factory = EventFactory([await new_tenant(env)], seed=12)
    sent = await produce(stream, [factory.valid("audit", factory.audit()) for _ in range(40)])
    process = await start_worker(env)
    try:
        await wait_drained(stream, sent, timeout_s=60)

        async def ready() -> bool:
            return (await fetch(port, "/readyz"))[0] == 200

        await wait_until(ready, 30, "/readyz to say ready")
        status, body = await fetch(port, "/metrics")
        text = body.decode()
        assert status == 200
        assert 'log_ingest_rows_written_total{table="audit_logs"} 40.0' in text
        assert "log_ingest_events_consumed_total 40.0" in text
        assert "log_ingest_end_to_end_latency_seconds_count" in text
        assert 'log_ingest_consumer_lag{partition="0"' in text
        assert 'log_ingest_tenant_cache{stat="misses"} 1.0' in text
        assert "log_ingest_ready 1.0" in text
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)


async def test_waits_for_a_broker_that_is_not_there_yet(stream: Settings, tmp_path: Path) -> None:
    """No broker at start: not ready (broker_unavailable), no exit; once it comes, all is stored."""
    http_port, broker_port = free_port(), free_port()
    env = worker_env(stream, HTTP_PORT=str(http_port))
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{broker_port}"
    factory = EventFactory([await new_tenant(env)], seed=13)
    process = await start_worker(env)
    broker = EmbeddedKafka(port=broker_port, log_path=tmp_path / "broker.log")
    try:

        async def waiting_for_broker() -> bool:
            status, body = await fetch(http_port, "/readyz")
            return status == 503 and b"broker_unavailable" in body

        await wait_until(waiting_for_broker, 60, "/readyz to report the missing broker")
        assert process.returncode is None
        await asyncio.to_thread(broker.start)
        late = stream.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        await create_topics(broker.bootstrap_servers,
                            [late.kafka_action_topic, late.kafka_audit_topic], 2)  # fmt: skip
        sent = await produce(late, [factory.valid("audit", factory.audit()) for _ in range(20)])
        await wait_drained(late, sent, timeout_s=90)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        broker.stop()
    assert process.returncode == 0
