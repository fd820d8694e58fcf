"""Crash-only supervision, end to end: a failure injected into a background task or a rebalance
callback ends `log-ingest run` within seconds, exit 1, with the traceback in its JSON log."""

from __future__ import annotations

import pytest

from tests.helpers import run_command
from tests.integration.test_cli_ops import stream
from tests.streams import worker_env
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
