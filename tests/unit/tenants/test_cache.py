"""The tenant cache: one lookup per batch for misses, TTLs, the LRU bound, and invalidation."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from worker.records import Accepted, AuditRow, RawRecord, Reject, RejectReason
from worker.tenants.cache import TenantCache, TenantStatus, apply_tenants


class FakeSource:
    def __init__(self, tenants: dict[uuid.UUID, bool]) -> None:
        self.tenants = tenants
        self.queries: list[set[uuid.UUID]] = []

    async def fetch(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, bool]:
        self.queries.append(set(ids))
        return {i: self.tenants[i] for i in ids if i in self.tenants}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_cache(source: FakeSource, clock: Clock, max_size: int = 100) -> TenantCache:
    return TenantCache(source, max_size=max_size, ttl_s=60, negative_ttl_s=5, clock=clock)


async def test_misses_are_fetched_in_one_query_then_hit() -> None:
    """All unknown ids of a batch go to the database together; the next batch hits the cache."""
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source = FakeSource({a: True, b: False})
    cache = make_cache(source, Clock())
    assert await cache.resolve([a, b, c, a]) == {
        a: TenantStatus.ACTIVE,
        b: TenantStatus.INACTIVE,
        c: TenantStatus.UNKNOWN,
    }
    await cache.resolve([a, b, c])
    assert source.queries == [{a, b, c}]
    assert (cache.hits, cache.misses) == (3, 3)


async def test_unknown_ids_expire_sooner() -> None:
    """A tenant created after a miss is seen once the negative TTL has passed."""
    a = uuid.uuid4()
    source, clock = FakeSource({}), Clock()
    cache = make_cache(source, clock)
    assert await cache.resolve([a]) == {a: TenantStatus.UNKNOWN}
    source.tenants[a] = True
    clock.now = 4.0
    assert await cache.resolve([a]) == {a: TenantStatus.UNKNOWN}
    clock.now = 5.5
    assert await cache.resolve([a]) == {a: TenantStatus.ACTIVE}


async def test_invalidate_forces_a_fresh_lookup() -> None:
    """After a NOTIFY-driven invalidation the new state is read at once."""
    a = uuid.uuid4()
    source = FakeSource({a: True})
    cache = make_cache(source, Clock())
    await cache.resolve([a])
    source.tenants[a] = False
    cache.invalidate(a)
    assert await cache.resolve([a]) == {a: TenantStatus.INACTIVE}


async def test_size_is_bounded() -> None:
    """The least recently used entries go first."""
    ids = [uuid.uuid4() for _ in range(5)]
    cache = make_cache(FakeSource(dict.fromkeys(ids, True)), Clock(), max_size=3)
    await cache.resolve(ids)
    assert len(cache) == 3


def test_apply_tenants_turns_unknown_and_inactive_into_rejects() -> None:
    """Events keep their record; the reason says which case it was."""
    active, inactive, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    items = []
    for offset, tenant in enumerate((active, inactive, unknown)):
        row = AuditRow(
            uuid.uuid4(), tenant, None, "login", "user", "u1", None, None, None, None, now
        )
        items.append(Accepted(row, RawRecord("audit-events", 0, offset, None, b"{}", 0)))
    statuses = {active: TenantStatus.ACTIVE, inactive: TenantStatus.INACTIVE}
    result = apply_tenants(items, statuses)  # type: ignore[arg-type]
    assert result[0] is items[0]
    assert isinstance(result[1], Reject)
    assert result[1].reason is RejectReason.INACTIVE_TENANT
    assert isinstance(result[2], Reject)
    assert result[2].reason is RejectReason.UNKNOWN_TENANT
    assert [r.record.offset for r in result] == [0, 1, 2]
