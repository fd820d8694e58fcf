"""`log-ingest migrate` as a deploy job: racing jobs, a blocked migration, bad configuration."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.helpers import command_env, run_command, user_tables
from worker.db.migrations import head_revisions

HEAD = ", ".join(head_revisions())


async def test_three_racing_jobs_apply_once(database_url: str) -> None:
    """Three jobs started together all exit 0; exactly one applies the schema."""
    env = command_env(database_url)
    results = await asyncio.gather(
        *(run_command("log-ingest", "migrate", env=env) for _ in range(3))
    )
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    applied = [r for r in results if f"migrated: base -> {HEAD}" in r.stderr]
    idle = [r for r in results if f"already at head: {HEAD}" in r.stderr]
    assert (len(applied), len(idle)) == (1, 2)
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetch("SELECT version_num FROM alembic_version") == [(HEAD,)]
    finally:
        await connection.close()


async def test_blocked_migration_times_out_and_changes_nothing(database_url: str) -> None:
    """A migration stuck behind a table lock fails fast (exit 1) and leaves no partial schema."""
    env = command_env(database_url, MIGRATION_LOCK_TIMEOUT_S="1")
    assert (await run_command("log-ingest", "migrate", env=env)).returncode == 0
    assert (await run_command("alembic", "downgrade", "base", env=env)).returncode == 0
    blocker = await asyncpg.connect(database_url)
    try:
        # Reading the version still works, recording the new one cannot: the DDL before it
        # has already run in the same transaction when the lock wait times out.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE alembic_version IN EXCLUSIVE MODE")
        done = await run_command("log-ingest", "migrate", env=env, timeout_s=30)
        await transaction.rollback()
    finally:
        await blocker.close()
    assert done.returncode == 1
    assert "lock_timeout" in done.stderr
    assert "Traceback" not in done.stderr
    assert await user_tables(database_url) == {"alembic_version"}


async def test_bad_database_url_is_one_clear_line(database_url: str) -> None:
    """A non-PostgreSQL URL exits 2 naming DATABASE_URL, without the password or a traceback."""
    env = command_env("mysql://root:hunter2@localhost/x")
    done = await run_command("log-ingest", "migrate", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: invalid configuration: DATABASE_URL")
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr


async def test_alembic_itself_reports_a_bad_url(database_url: str) -> None:
    """Plain `alembic upgrade head` with a bad URL also names the variable."""
    done = await run_command("alembic", "upgrade", "head", env=command_env("sqlite:///x.db"))
    assert done.returncode != 0
    assert "DATABASE_URL" in done.stderr


async def test_unreachable_database_fails_cleanly(database_url: str) -> None:
    """No server at the URL: exit 1 with a one-line reason."""
    from worker.devtools.embedded import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    done = await run_command("log-ingest", "migrate", env=command_env(url))
    assert done.returncode == 1
    assert done.stderr.startswith("error:")
    assert "Traceback" not in done.stderr


async def test_offline_sql(database_url: str) -> None:
    """`log-ingest migrate --sql` prints the DDL and touches nothing."""
    done = await run_command("log-ingest", "migrate", "--sql", env=command_env(database_url))
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE tenants" in done.stdout
    assert "CREATE TYPE action_type_enum" in done.stdout
    assert await user_tables(database_url) == set()


async def test_libpq_parameters_in_the_url(database_url: str) -> None:
    """sslmode and other libpq parameters in DATABASE_URL work for migrate and alembic."""
    env = command_env(database_url + "?sslmode=disable&application_name=deploy-job")
    assert (await run_command("log-ingest", "migrate", env=env)).returncode == 0
    current = await run_command("alembic", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert "(head)" in current.stdout
