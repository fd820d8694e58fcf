"""The in-memory tenant cache: active, inactive or unknown, with one query per batch for misses.

Entries expire after ``ttl_s`` (unknown ids after the shorter ``negative_ttl_s``),
and the LRU bound keeps memory flat. ``TenantListener`` evicts an entry as
soon as PostgreSQL NOTIFYs ``tenant_changed`` (triggers fire it on creation,
deactivation, re-activation, key rotation and delete); the TTL is the fallback
when the notification connection is down.

The guarantee, while the listener is connected: once it has received a tenant's
NOTIFY, no resolve that starts afterwards returns a status read before that
change. The entry is evicted; a lookup in flight at that moment does not store
what it read (``invalidate`` marks it; ``clear``, run on every reconnect, marks
every lookup in flight); and PostgreSQL delivers a NOTIFY only after its
transaction committed, so a query that starts later reads the change. The lookup
in flight still returns what it read to its own batch: that read came before the
change committed, so the batch is ordered before the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

import asyncpg
import structlog

from worker.db.errors import transient_as_error
from worker.db.pool_mode import fetch
from worker.db.timeline import StalePrimaryError
from worker.records import Accepted, Decoded, Reject, RejectReason

TENANT_CHANNEL = "tenant_changed"
# What makes the listener reconnect. Besides a lost connection: asyncpg's protocol state
# broken by a connection killed mid-exchange, and during a failover no host accepting
# writes yet (both InternalClientError), or only an old primary (worker.db.timeline).
_LISTENER_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    StalePrimaryError,
)
log = structlog.get_logger(__name__)


class TenantStatus(enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


class TenantSource(Protocol):
    """Where tenants are looked up on a miss."""

    async def fetch(self, ids: Collection[UUID]) -> dict[UUID, bool]:
        """is_active of each id that exists; missing ids are unknown."""


@dataclass(frozen=True, slots=True)
class _Entry:
    status: TenantStatus
    expires_at: float


@dataclass(eq=False, slots=True)
class _Lookup:
    """One fetch in flight: the ids it asked for, and which of them changed meanwhile."""

    ids: set[UUID]
    stale: set[UUID] = field(default_factory=set)
    cleared: bool = False

    def storable(self) -> set[UUID]:
        """The ids whose result may be cached: not invalidated since the fetch began."""
        return set() if self.cleared else self.ids - self.stale


class TenantCache:
    """A bounded, expiring map tenant id -> status, filled one batch at a time."""

    def __init__(
        self,
        source: TenantSource,
        *,
        max_size: int,
        ttl_s: float,
        negative_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._entries: OrderedDict[UUID, _Entry] = OrderedDict()
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._clock = clock
        # Few at a time (one per batch being resolved), so invalidate's scan is short.
        self._lookups: set[_Lookup] = set()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def resolve(self, ids: Iterable[UUID]) -> dict[UUID, TenantStatus]:
        """The status of every id; all misses are fetched in one query."""
        now = self._clock()
        found: dict[UUID, TenantStatus] = {}
        missing: set[UUID] = set()
        for tenant_id in set(ids):
            entry = self._entries.get(tenant_id)
            if entry is not None and entry.expires_at > now:
                self._entries.move_to_end(tenant_id)
                found[tenant_id] = entry.status
            else:
                missing.add(tenant_id)
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            found.update(await self._lookup(missing, now))
        return found

    def invalidate(self, tenant_id: UUID) -> None:
        """Evict one tenant, and keep every lookup in flight from caching what it read of it."""
        self._entries.pop(tenant_id, None)
        for lookup in self._lookups:
            if tenant_id in lookup.ids:
                lookup.stale.add(tenant_id)

    def clear(self) -> None:
        """Evict everything, and keep every lookup in flight from caching anything."""
        self._entries.clear()
        for lookup in self._lookups:
            lookup.cleared = True

    async def _lookup(self, missing: set[UUID], now: float) -> dict[UUID, TenantStatus]:
        lookup = _Lookup(missing)
        self._lookups.add(lookup)
        try:
            fetched = await self._source.fetch(missing)
        finally:
            self._lookups.discard(lookup)
        statuses = {tenant_id: _status(fetched.get(tenant_id)) for tenant_id in missing}
        for tenant_id in lookup.storable():
            self._store(tenant_id, statuses[tenant_id], now)
        return statuses

    def _store(self, tenant_id: UUID, status: TenantStatus, now: float) -> None:
        unknown = status is TenantStatus.UNKNOWN
        ttl = self._negative_ttl_s if unknown else self._ttl_s
        self._entries[tenant_id] = _Entry(status, now + ttl)
        self._entries.move_to_end(tenant_id)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)


def _status(is_active: bool | None) -> TenantStatus:
    if is_active is None:
        return TenantStatus.UNKNOWN
    return TenantStatus.ACTIVE if is_active else TenantStatus.INACTIVE


def apply_tenants(decoded: list[Decoded], statuses: dict[UUID, TenantStatus]) -> list[Decoded]:
    """Turn events of unknown or inactive tenants into rejects; keep the rest as they are."""
    active = TenantStatus.ACTIVE
    return [
        item
        if type(item) is not Accepted or statuses.get(item.row.tenant_id) is active
        else _refused(item, statuses.get(item.row.tenant_id, TenantStatus.UNKNOWN))
        for item in decoded
    ]


def _refused(item: Accepted, status: TenantStatus) -> Reject:
    if status is TenantStatus.INACTIVE:
        return Reject(item.record, RejectReason.INACTIVE_TENANT, "tenant_id: inactive")
    return Reject(item.record, RejectReason.UNKNOWN_TENANT, "tenant_id: no such tenant")


def tenant_ids(decoded: Iterable[Decoded]) -> set[UUID]:
    return {item.row.tenant_id for item in decoded if isinstance(item, Accepted)}


class PostgresTenantSource:
    """Looks tenants up in the ``tenants`` table (inside a transaction behind a
    transaction-mode pooler: ``worker.db.pool_mode``)."""

    def __init__(self, pool: asyncpg.Pool, *, in_transaction: bool = False) -> None:
        self._pool = pool
        self._in_transaction = in_transaction

    async def fetch(self, ids: Collection[UUID]) -> dict[UUID, bool]:
        with transient_as_error("looking up tenants"):
            rows = await fetch(
                self._pool,
                "SELECT id, is_active FROM tenants WHERE id = ANY($1::uuid[])",
                list(ids),
                in_transaction=self._in_transaction,
            )
        return {row["id"]: row["is_active"] for row in rows}


class TenantListener:
    """Keeps a LISTEN connection open and evicts tenants as PostgreSQL reports changes."""

    def __init__(
        self,
        dsn: str,
        cache: TenantCache,
        *,
        retry_s: float = 1.0,
        probe_every_s: float = 10.0,
        connect: Callable[[str], Awaitable[asyncpg.Connection]] = asyncpg.connect,
    ) -> None:
        self._dsn = dsn
        self._connect = connect
        self._cache = cache
        self._retry_s = retry_s
        self._probe_every_s = probe_every_s
        self.listening = asyncio.Event()
        # Notifications received since start: lets a caller wait until a change has arrived.
        self.notifications = 0

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a lost connection."""
        while True:
            try:
                await self._listen_once()
            except _LISTENER_DOWN as exc:
                log.warning("tenant_listener_down", error=type(exc).__name__)
            self.listening.clear()
            # Changes may have been missed while disconnected: start from a clean slate.
            self._cache.clear()
            await asyncio.sleep(self._retry_s)

    async def _listen_once(self) -> None:
        connection = await self._connect(self._dsn)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(TENANT_CHANNEL, self._on_notify)
            self._cache.clear()
            self.listening.set()
            while not lost.is_set():
                # A silent network would never fire the termination listener: probe it.
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can lose a
                # cancellation that arrives as its inner wait ends, which hangs shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._probe_every_s):
                        await lost.wait()
                await connection.execute("SELECT 1", timeout=self._probe_every_s)
        finally:
            await connection.close(timeout=2)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.notifications += 1
        try:
            self._cache.invalidate(UUID(str(payload)))
        except ValueError:
            self._cache.clear()
