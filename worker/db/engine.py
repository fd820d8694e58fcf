"""Engine and sessions, as the seed's usage examples expect them.

``get_db`` is a FastAPI-style dependency; ``DatabaseSession`` an async context
manager. Both use one lazily created engine built from ``Settings``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from worker.db.pool_mode import connect_options
from worker.settings import Settings, load_settings

_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None


def create_engine(settings: Settings, **options: Any) -> AsyncEngine:
    """An async engine with the pool sizes of the settings (or the given options).

    asyncpg itself parses the URL, so libpq parameters such as ``sslmode`` and
    ``sslrootcert`` work, and several hosts (``host1:5432,host2:5432``) with
    ``target_session_attrs``, all of which SQLAlchemy's URL handling would refuse.
    Behind a transaction-mode pooler neither asyncpg nor SQLAlchemy caches prepared
    statements (``worker.db.pool_mode``); SQLAlchemy runs every statement in a transaction.
    """
    dsn = settings.asyncpg_dsn
    connect = connect_options(settings)
    defaults: dict[str, Any] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_pre_ping": True,
    }
    engine: AsyncEngine | None = None

    def creator() -> Any:
        # async_creator cannot pass the dialect's own cache size: this is its documented
        # alternative, SQLAlchemy's wrapping of an asyncpg connection made by us.
        assert engine is not None
        return engine.sync_engine.dialect.dbapi.connect(  # type: ignore[union-attr]
            async_creator_fn=lambda: asyncpg.connect(dsn, **connect),
            prepared_statement_cache_size=0 if settings.transaction_pooling else 100,
        )

    engine = create_async_engine("postgresql+asyncpg://", creator=creator, **(options or defaults))
    return engine


def configure(settings: Settings | None = None) -> async_sessionmaker[AsyncSession]:
    """Build the shared engine once (from the environment unless settings are given)."""
    global _engine, _sessionmaker
    if _sessionmaker is None:
        _engine = create_engine(settings or load_settings())
        _sessionmaker = async_sessionmaker(_engine, expire_on_commit=False)
    return _sessionmaker


async def dispose() -> None:
    """Close the shared engine's connections; the next use builds a new one."""
    global _engine, _sessionmaker
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None


async def get_db() -> AsyncIterator[AsyncSession]:
    """Yield a session for one request; roll back if the request failed."""
    async with configure()() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise


class DatabaseSession:
    """``async with DatabaseSession() as db:`` gives a session, committed on success."""

    def __init__(self) -> None:
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> AsyncSession:
        self._session = configure()()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            if exc_type is None:
                await self._session.commit()
            else:
                await self._session.rollback()
        finally:
            await self._session.close()
