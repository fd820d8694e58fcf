"""A DATABASE_URL naming several hosts works for every command, as libpq's form says."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from tests.helpers import command_env, run_command, user_tables
from worker.devtools.embedded import free_port


def two_hosts(database_url: str) -> str:
    """The URL with a host where nothing listens first, then the real one, read-write only."""
    parts = urlsplit(database_url)
    credentials, _, host = parts.netloc.rpartition("@")
    netloc = f"{credentials}@127.0.0.1:{free_port()},{host}" if credentials else host
    return urlunsplit(parts._replace(netloc=netloc, query="target_session_attrs=read-write"))


async def test_migrate_and_commands_skip_a_dead_first_host(database_url: str) -> None:
    """migrate, migrate --check, alembic and the tenant commands reach the second host."""
    env = command_env(two_hosts(database_url))
    for argv in (("log-ingest", "migrate"), ("log-ingest", "migrate", "--check"),
                 ("alembic", "current"), ("log-ingest", "tenants", "create", "acme"),
                 ("log-ingest", "tenants", "list")):  # fmt: skip
        done = await run_command(*argv, env=env)
        assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
    assert "acme" in done.stdout
    assert "tenants" in await user_tables(database_url)


async def test_offline_sql_with_several_hosts() -> None:
    """`migrate --sql` prints the DDL for a multi-host URL (SQLAlchemy's parser refuses one)."""
    url = "postgresql://u:p@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write"
    done = await run_command("log-ingest", "migrate", "--sql", env=command_env(url))
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE tenants" in done.stdout
