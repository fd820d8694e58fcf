"""Crash-only supervision, end to end: a failure injected into a background task or a rebalance
callback ends `log-ingest run` within seconds, exit 1, with the traceback in its JSON log; a
write that never returns while events wait ends it with exit 5 (the stall watch)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import run_command
from tests.integration.test_cli_ops import stream
from tests.streams import produce, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

__all__ = ["stream"]  # the fixture, shared with the CLI tests
pytestmark = pytest.mark.timeout(60)

# The worker as deployed (`log-ingest run`), with one method replaced from outside:
# production code has no test hooks.
RUN_WITH_FAULT = """
import sys
from worker import cli
import {module} as target

{kind}def broken(*args, **kwargs):
    raise RuntimeError("injected by the test")

setattr(target.{owner}, "{method}", broken)
sys.argv = ["log-ingest", "run"]
cli.main()
"""

# The sink's write replaced by one that never returns: a wedged write, events waiting.
RUN_WITH_HANGING_WRITE = """
import asyncio, sys
from worker import cli
from worker.write.sink import PostgresSink

async def hang(*args, **kwargs):
    await asyncio.Event().wait()

PostgresSink.write = hang
sys.argv = ["log-ingest", "run"]
cli.main()
"""


async def run_with_fault(
    stream: Settings, module: str, owner: str, method: str, kind: str = ""
) -> tuple[int, str]:
    """`log-ingest run` with ``owner.method`` raising (``kind``: "async " for a coroutine)."""
    code = RUN_WITH_FAULT.format(module=module, owner=owner, method=method, kind=kind)
    done = await run_command("python", "-c", code, env=worker_env(stream), timeout_s=30)
    return done.returncode, done.stderr


async def test_a_failing_tenant_listener_ends_the_worker(stream: Settings) -> None:
    """The tenant listener's task raises: fatal_error logged with its traceback, exit 1."""
    code, stderr = await run_with_fault(
        stream, "worker.tenants.cache", "TenantListener", "run", kind="async "
    )
    assert code == 1, stderr[-3000:]
    assert '"event": "fatal_error"' in stderr, stderr[-3000:]
    assert '"where": "tenant_listener"' in stderr
    assert "injected by the test" in stderr  # the traceback, in the log line
    assert stderr.rstrip().splitlines()[-1].startswith("error: tenant_listener failed")


async def test_a_failing_rebalance_callback_ends_the_worker(stream: Settings) -> None:
    """An error in partitions_assigned (aiokafka would swallow it) ends the worker, exit 1."""
    code, stderr = await run_with_fault(
        stream, "worker.pipeline", "Pipeline", "partitions_assigned"
    )
    assert code == 1, stderr[-3000:]
    assert '"where": "rebalance_partitions_assigned"' in stderr
    assert "injected by the test" in stderr
    assert '"event": "worker_stopped"' in stderr  # the orderly stop ran first


async def test_a_stalled_partition_ends_the_worker_with_exit_5(stream: Settings) -> None:
    """Events waiting, every write hanging: partitions_stalled logged, then exit 5, in seconds."""
    factory = EventFactory([uuid.uuid4()], seed=5)
    await produce(stream, factory.mixed(50, 0.0, stream.max_event_bytes))
    env = worker_env(stream, STALL_TIMEOUT_S="1", STALL_EXIT_S="3", SHUTDOWN_GRACE_S="1")
    done = await run_command("python", "-c", RUN_WITH_HANGING_WRITE, env=env, timeout_s=40)
    assert done.returncode == 5, done.stderr[-3000:]
    assert '"event": "partitions_stalled"' in done.stderr, done.stderr[-3000:]
    assert '"event": "stalled_exit"' in done.stderr
    assert '"event": "fatal_error"' not in done.stderr  # its own exit code, not a crash
    assert done.stderr.rstrip().splitlines()[-1].startswith("error: ")
