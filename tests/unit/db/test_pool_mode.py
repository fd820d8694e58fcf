"""DATABASE_POOL_MODE: what the worker changes behind a transaction-mode pooler."""

from __future__ import annotations

import pytest

from worker.db.pool_mode import connect_options, listen_dsn
from worker.errors import ConfigError
from worker.settings import Settings, load_settings
from worker.write import sql

URL = "postgresql://u:p@pooler:6432/logs"
DIRECT = "postgresql+asyncpg://u:p@primary:5432/logs"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, database_url=URL, **values)  # type: ignore[arg-type]


def test_session_mode_changes_nothing() -> None:
    """By default the statement cache stays on and the listener uses DATABASE_URL."""
    default = settings()
    assert default.database_pool_mode == "session"
    assert connect_options(default) == {}
    assert listen_dsn(default) == URL


def test_transaction_mode_keeps_no_statements_and_listens_only_directly() -> None:
    """No statement cache; LISTEN on DATABASE_LISTEN_URL only, else nowhere (TTL only)."""
    pooled = settings(database_pool_mode="TRANSACTION")
    assert pooled.transaction_pooling
    assert connect_options(pooled) == {"statement_cache_size": 0}
    assert listen_dsn(pooled) is None
    direct = settings(database_pool_mode="transaction", database_listen_url=DIRECT)
    assert listen_dsn(direct) == "postgresql://u:p@primary:5432/logs"


def test_a_bad_pool_mode_or_listen_url_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown mode or a listen URL of another scheme names the variable."""
    monkeypatch.setenv("DATABASE_POOL_MODE", "statement")
    with pytest.raises(ConfigError, match="DATABASE_POOL_MODE"):
        load_settings(_env_file=None)
    monkeypatch.setenv("DATABASE_POOL_MODE", "transaction")
    monkeypatch.setenv("DATABASE_LISTEN_URL", "mysql://u:p@h/db")
    with pytest.raises(ConfigError, match="DATABASE_LISTEN_URL"):
        load_settings(_env_file=None)


def test_several_hosts_reach_asyncpg_as_written() -> None:
    """A libpq multi-host URL with target_session_attrs passes to asyncpg unchanged."""
    url = "postgresql+asyncpg://u:p@h1:5432,h2:5433/logs?target_session_attrs=read-write"
    multi = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    assert multi.asyncpg_dsn == url.replace("+asyncpg", "")
    assert multi.database_hosts == "h1:5432,h2:5433"


def test_staging_tables_of_a_transaction_drop_at_commit() -> None:
    """Each staging table has a per-transaction twin: the same columns, ON COMMIT DROP."""
    assert set(sql.STAGE_IN_TRANSACTION) == {sql.STAGE_ACTIONS, sql.STAGE_AUDITS}
    for name, statement in sql.STAGE_IN_TRANSACTION.items():
        assert statement.strip().endswith("ON COMMIT DROP")
        assert statement.replace("ON COMMIT DROP", "ON COMMIT DELETE ROWS") in sql.CREATE_STAGING
        assert f"EXISTS {name} (" in statement
