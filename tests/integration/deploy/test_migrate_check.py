"""`log-ingest migrate` and `migrate --check` as a pipeline sees them: exit codes, one line."""

from __future__ import annotations

import asyncpg
import pytest

from tests.helpers import Finished, command_env, run_command
from tests.integration.deploy.schema import (
    CONTRACT,
    EXPAND,
    HEAD,
    migrate_current,
    migrate_newer,
    records,
    version,
)
from tests.integration.test_least_privilege import as_user, run_sql
from worker.errors import MigrationError
from worker.settings import Settings


async def cli(settings: Settings, *argv: str) -> Finished:
    """`log-ingest migrate ...` as a process against the test's database."""
    return await run_command("log-ingest", "migrate", *argv, env=command_env(settings.database_url))


def last_line(done: Finished) -> str:
    """What `migrate` says last (alembic logs its steps on stderr before)."""
    return done.stderr.strip().splitlines()[-1]


async def test_check_follows_the_database_through_a_release(settings: Settings) -> None:
    """--check exits 10 on an empty database, 0 at head, 11 once a newer compatible one ran."""
    pending = await cli(settings, "--check")
    assert pending.returncode == 10, pending.stderr
    assert pending.stderr.strip() == (
        f"behind: database schema is at base but this build needs {HEAD}: "
        "run `log-ingest migrate` first"
    )
    assert (await cli(settings)).returncode == 0
    at_head = await cli(settings, "--check")
    assert (at_head.returncode, at_head.stderr.strip()) == (
        0,
        f"at head: database is at head {HEAD}",
    )
    await migrate_newer(settings, EXPAND)
    newer = await cli(settings, "--check")
    assert newer.returncode == 11, newer.stderr
    assert newer.stderr.strip().startswith(
        f"newer, compatible: database is at revision {EXPAND}, newer than this build's head {HEAD}"
    )


async def test_migrate_leaves_a_newer_compatible_schema_alone(settings: Settings) -> None:
    """A newer release already migrated: this build's migrate exits 0 with "nothing to do"."""
    await migrate_newer(settings, EXPAND)
    done = await cli(settings)
    assert done.returncode == 0, done.stderr
    assert last_line(done).startswith(f"nothing to do: database is at revision {EXPAND}")
    assert "Traceback" not in done.stderr
    assert await version(settings.database_url) == [(EXPAND,)]


async def test_incompatible_schema_fails_migrate_and_check(settings: Settings) -> None:
    """After a contracting migration, migrate and --check both exit 3 naming both revisions."""
    await migrate_newer(settings, CONTRACT)
    expected = f"database is at revision {CONTRACT}, incompatible with this build (head {HEAD})"
    check = await cli(settings, "--check")
    assert check.returncode == 3, check.stderr
    assert check.stderr.strip().startswith(f"incompatible: {expected}")
    assert len(check.stderr.strip().splitlines()) == 1
    done = await cli(settings)
    assert done.returncode == 3, done.stderr
    assert last_line(done).startswith(f"error: {expected}")
    assert f"deploy a build at least at {CONTRACT}" in done.stderr
    assert await version(settings.database_url) == [(CONTRACT,)]


async def test_record_is_written_in_the_migration_transaction(settings: Settings) -> None:
    """A migration that fails on a lock timeout leaves neither its version nor its record."""
    await migrate_current(settings)
    before = await records(settings.database_url)
    assert before[HEAD] == "001"
    blocker = await asyncpg.connect(settings.database_url)
    quick = settings.model_copy(update={"migration_lock_timeout_s": 1.0})
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE action_logs IN ACCESS SHARE MODE")
        with pytest.raises(MigrationError, match="lock_timeout"):
            await migrate_newer(quick, EXPAND)
        await transaction.rollback()
    finally:
        await blocker.close()
    assert await records(settings.database_url) == before
    assert await version(settings.database_url) == [(HEAD,)]


async def test_worker_role_needs_select_on_the_record(settings: Settings) -> None:
    """Under the least-privilege worker role the record must be readable: exit 3 until granted."""
    await run_sql(settings.database_url, "01_roles.sql")
    migrator = settings.model_copy(
        update={"database_url": as_user(settings.database_url, "log_ingest_migrator")}
    )
    await migrate_current(migrator)
    await run_sql(migrator.database_url, "02_worker_grants.sql")
    await migrate_newer(migrator, EXPAND)
    worker = settings.model_copy(
        update={"database_url": as_user(settings.database_url, "log_ingest_worker")}
    )
    db = await asyncpg.connect(migrator.database_url)
    try:
        await db.execute("REVOKE SELECT ON schema_compatibility FROM log_ingest_worker")
        denied = await cli(worker, "--check")
        await db.execute("GRANT SELECT ON schema_compatibility TO log_ingest_worker")
        granted = await cli(worker, "--check")
    finally:
        await db.close()
    assert denied.returncode == 3, denied.stderr
    assert "GRANT SELECT ON schema_compatibility" in last_line(denied)
    assert granted.returncode == 11, granted.stderr


async def test_check_without_a_database_fails_cleanly() -> None:
    """--check against a server that is not there: exit 1, one line, no traceback."""
    from worker.devtools.embedded import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    done = await run_command("log-ingest", "migrate", "--check", env=command_env(url))
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach PostgreSQL")
    assert "Traceback" not in done.stderr
