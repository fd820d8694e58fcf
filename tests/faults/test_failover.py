"""PostgreSQL failover: a standby promoted, a switchover, a primary demoted or back from the dead.

Each scenario runs on a primary and its asynchronous streaming standby
(``tests/faults/replication.py``), the worker on the two-host URL with
``target_session_attrs=read-write`` while events flow, and ends with the exactly-once
checker on the server that is the primary at the end.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.checker import Sent
from tests.faults.conftest import new_tenants, prepare_stream
from tests.faults.harness import WorkerProcess, Workers, progress, wait_progress_beyond
from tests.faults.replication import ReplicatedPair, execute, fetchval, started_pair
from tests.faults.test_database import finish
from tests.services import Services
from tests.streams import produce, wait_until, worker_env
from worker.devtools.embedded import EmbeddedPostgres
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

WRITING_AGAIN_WITHIN_S = 5.0  # of the new primary accepting writes


class Flow:
    """The stream on the pair, the events sent so far and the worker writing them."""

    def __init__(self, stream: Settings, factory: EventFactory, worker: WorkerProcess) -> None:
        self.stream = stream
        self.factory = factory
        self.worker = worker
        self.sent: list[Sent] = []

    async def produce(self, count: int) -> None:
        self.sent += await produce(
            self.stream, self.factory.mixed(count, 0.02, self.stream.max_event_bytes)
        )

    def on(self, pair: ReplicatedPair, server: EmbeddedPostgres) -> Settings:
        """The stream's settings reading one server only, for checks."""
        return self.stream.model_copy(update={"database_url": pair.direct_url(server)})


@pytest.fixture
def embedded(services: Services) -> Services:
    if services.embedded_postgres is None:
        pytest.skip("needs the embedded PostgreSQL, to run a primary and a standby")
    return services


async def flowing(pair: ReplicatedPair, services: Services, workers: Workers, seed: int) -> Flow:
    """Migrate and make tenants through the two-host URL, start the worker on it, send events."""
    base = Settings(_env_file=None, database_url=pair.url(),
                    kafka_bootstrap_servers=services.kafka_bootstrap)  # fmt: skip
    stream = await prepare_stream(base)
    factory = EventFactory(await new_tenants(stream, 3), seed=seed)
    flow = Flow(stream, factory, await workers.start(worker_env(stream)))
    await flow.produce(4000)
    await wait_progress_beyond(flow.on(pair, pair.first), 0, 60)
    return flow


async def promote_and_time(pair: ReplicatedPair, flow: Flow) -> tuple[int, float]:
    """Promote the standby: the offsets it holds then, and the seconds from its accepting
    writes to the worker's next commit on it."""
    new_primary = flow.on(pair, pair.second)
    kept = await progress(new_primary)  # a standby no longer fed: only the worker moves it now
    await asyncio.to_thread(pair.second.promote)
    promoted = time.monotonic()
    await wait_progress_beyond(new_primary, kept, 30)
    return kept, time.monotonic() - promoted


async def failing_on(flow: Flow, sqlstate: str, timeout_s: float) -> None:
    """Until the worker has retried a write that failed with ``sqlstate``."""

    async def seen() -> bool:
        assert flow.worker.alive, f"worker exited with {flow.worker.process.returncode}"
        return (
            '"event": "transient_failure"' in flow.worker.stderr and sqlstate in flow.worker.stderr
        )

    await wait_until(seen, timeout_s, f"the worker to retry after {sqlstate}")


@pytest.mark.timeout(180)
async def test_primary_killed_and_standby_promoted(embedded: Services, workers: Workers) -> None:
    """The primary crashes having committed batches the standby never received; the standby is
    promoted: the worker writes again within 5 s, and every event is stored exactly once."""
    async with started_pair() as pair:
        flow = await flowing(pair, embedded, workers, seed=901)
        await pair.cut_replication()
        await flow.produce(4000)
        old_primary = flow.on(pair, pair.first)
        await wait_progress_beyond(old_primary, await progress(flow.on(pair, pair.second)), 60)
        committed = await progress(old_primary)
        await asyncio.to_thread(pair.first.stop, "immediate")
        await flow.produce(2000)  # waiting for the worker while no server accepts writes
        kept, took = await promote_and_time(pair, flow)
        await flow.produce(2000)
        await finish(flow.on(pair, pair.second), flow.sent, flow.worker, 90)
    assert kept < committed  # the failover lost committed batches (their offsets with them)
    assert took < WRITING_AGAIN_WITHIN_S
    assert '"event": "transient_failure"' in flow.worker.stderr


@pytest.mark.timeout(180)
async def test_planned_switchover(embedded: Services, workers: Workers) -> None:
    """A fast shutdown of the primary, then the standby promoted: writing again within 5 s,
    without a restart, exactly once."""
    async with started_pair() as pair:
        flow = await flowing(pair, embedded, workers, seed=902)
        await flow.produce(4000)
        await asyncio.to_thread(pair.first.stop, "fast")
        await flow.produce(2000)
        _, took = await promote_and_time(pair, flow)
        await finish(flow.on(pair, pair.second), flow.sent, flow.worker, 90)
    assert took < WRITING_AGAIN_WITHIN_S


@pytest.mark.timeout(180)
async def test_primary_demoted_to_read_only(embedded: Services, workers: Workers) -> None:
    """The primary stays up but refuses writes (25006, default_transaction_read_only=on), then
    the standby is promoted: the worker drops its read-only connections and follows."""
    async with started_pair() as pair:
        flow = await flowing(pair, embedded, workers, seed=903)
        await execute(pair.first.url(), "ALTER SYSTEM SET default_transaction_read_only = on")
        await execute(pair.first.url(), "SELECT pg_reload_conf()")
        await flow.produce(4000)
        await failing_on(flow, "25006", 30)
        await pair.caught_up()
        _, took = await promote_and_time(pair, flow)
        await flow.produce(2000)
        await finish(flow.on(pair, pair.second), flow.sent, flow.worker, 90)
    assert took < WRITING_AGAIN_WITHIN_S


@pytest.mark.timeout(180)
async def test_old_primary_back_as_a_writable_server(embedded: Services, workers: Workers) -> None:
    """After a failover the old primary, first in the URL, starts again accepting writes (split
    brain): a worker whose connections are all dropped reconnects to the new primary, never to
    the old one, whose offsets stay where they were; exactly once on the new primary."""
    async with started_pair() as pair:
        flow = await flowing(pair, embedded, workers, seed=904)
        await asyncio.to_thread(pair.first.stop, "immediate")
        await flow.produce(2000)
        await promote_and_time(pair, flow)
        await asyncio.to_thread(pair.first.start)  # not fenced: both accept writes now
        old_primary, new_primary = flow.on(pair, pair.first), flow.on(pair, pair.second)
        stale = await progress(old_primary)
        await terminate_connections(pair.direct_url(pair.second, "postgres"), pair.database)
        await flow.produce(4000)
        await finish(new_primary, flow.sent, flow.worker, 90)
        assert await progress(old_primary) == stale
    assert '"event": "stale_primary_refused"' in flow.worker.stderr


async def terminate_connections(admin_url: str, database: str) -> None:
    """Every connection to ``database`` on that server, closed by the server."""
    await fetchval(
        admin_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
        database,
    )
