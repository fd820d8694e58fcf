"""Audit rows an older build writes after migration 006 (no chain entry) are `inserted`
until the window is closed, then counted as written before the chain began."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from tests.helpers import command_env, run_command
from tests.integration.audit.chains import cli_verify, write_chains
from tests.integration.write.events import add_tenant
from worker.audit.ingest import AuditChain
from worker.settings import Settings
from worker.write.sink import PostgresSink

pytestmark = pytest.mark.timeout(90)


async def test_rows_of_an_older_build_are_before_the_chain_once_the_window_closes(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old worker (no chaining) beside a new one; `audit close-window` ends the window."""
    tenant = await add_tenant(pool)
    old = PostgresSink(pool, group_id="g", reject_raw_max_bytes=16)

    async def chains_nothing(*_: object) -> None:
        """What a build at 005 does: no chain entries."""

    monkeypatch.setattr(AuditChain, "append", chains_nothing)
    await write_chains(old, [tenant], per_chain=3, at=datetime.now(UTC))  # the old build's rows
    monkeypatch.undo()
    new = PostgresSink(pool, group_id="g", reject_raw_max_bytes=16)
    await write_chains(new, [tenant], per_chain=3, start=3, at=datetime.now(UTC))

    code, report = await cli_verify(settings.database_url)
    breaks = report["breaks"]
    assert isinstance(breaks, list)
    assert (code, [b["kind"] for b in breaks]) == (1, ["inserted"])
    closed = await run_command("log-ingest", "audit", "close-window",
                               env=command_env(settings.database_url))  # fmt: skip
    assert closed.returncode == 0, closed.stderr
    code, report = await cli_verify(settings.database_url)
    assert (code, report["before_chain"], report["entries"]) == (0, 6, 6)
