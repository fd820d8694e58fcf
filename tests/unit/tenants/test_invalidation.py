"""Invalidations win over lookups in flight: what a lookup read before a change is not cached."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

import pytest

from tests.unit.tenants.test_cache import Clock
from worker.tenants.cache import TenantCache, TenantStatus

ACTIVE, INACTIVE, UNKNOWN = TenantStatus.ACTIVE, TenantStatus.INACTIVE, TenantStatus.UNKNOWN


class HeldSource:
    """A fake source whose fetch reads its tenants at once, then waits for ``gate`` if set."""

    def __init__(self, tenants: dict[uuid.UUID, bool]) -> None:
        self.tenants = tenants
        self.queries: list[set[uuid.UUID]] = []
        self.gate: asyncio.Event | None = None
        self.read = asyncio.Event()
        self.fail = False

    async def fetch(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, bool]:
        self.queries.append(set(ids))
        found = {i: self.tenants[i] for i in ids if i in self.tenants}
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("lookup failed")
        return found


def make_cache(source: HeldSource, clock: Clock) -> TenantCache:
    return TenantCache(source, max_size=100, ttl_s=60, negative_ttl_s=5, clock=clock)


async def held_lookup(
    cache: TenantCache, source: HeldSource, ids: list[uuid.UUID]
) -> tuple[asyncio.Task[dict[uuid.UUID, TenantStatus]], asyncio.Event]:
    """A resolve whose fetch has read the tenants and now waits for the returned gate."""
    source.gate, source.read = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(cache.resolve(ids))
    await source.read.wait()
    gate, source.gate = source.gate, None
    return task, gate


async def test_an_invalidation_during_a_lookup_is_not_cached() -> None:
    """The batch keeps what it read; the next resolve, at the same instant, reads again."""
    a = uuid.uuid4()
    source, clock = HeldSource({a: True}), Clock()
    cache = make_cache(source, clock)
    lookup, gate = await held_lookup(cache, source, [a])
    source.tenants[a] = False
    cache.invalidate(a)
    gate.set()
    assert await lookup == {a: ACTIVE}
    assert await cache.resolve([a]) == {a: INACTIVE}
    assert await cache.resolve([a]) == {a: INACTIVE}
    assert source.queries == [{a}, {a}]


async def test_a_creation_during_a_lookup_is_seen_before_the_negative_ttl() -> None:
    """An id read as unknown, then created and notified, is active on the next resolve."""
    a = uuid.uuid4()
    source, clock = HeldSource({}), Clock()
    cache = make_cache(source, clock)
    lookup, gate = await held_lookup(cache, source, [a])
    source.tenants[a] = True
    cache.invalidate(a)
    gate.set()
    assert await lookup == {a: UNKNOWN}
    assert await cache.resolve([a]) == {a: ACTIVE}


async def test_only_the_invalidated_id_is_dropped() -> None:
    """The other ids of the lookup are cached; an id the lookup did not ask for changes nothing."""
    a, b, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source, clock = HeldSource({a: True, b: True}), Clock()
    cache = make_cache(source, clock)
    lookup, gate = await held_lookup(cache, source, [a, b])
    cache.invalidate(a)
    cache.invalidate(other)
    gate.set()
    await lookup
    clock.now = 59.0
    assert await cache.resolve([a, b]) == {a: ACTIVE, b: ACTIVE}
    assert source.queries == [{a, b}, {a}]


async def test_a_clear_during_a_lookup_caches_nothing() -> None:
    """A clear (the listener reconnected) wins over every lookup in flight."""
    a, b = uuid.uuid4(), uuid.uuid4()
    source, clock = HeldSource({a: True, b: False}), Clock()
    cache = make_cache(source, clock)
    lookup, gate = await held_lookup(cache, source, [a, b])
    cache.clear()
    gate.set()
    assert await lookup == {a: ACTIVE, b: INACTIVE}
    assert len(cache) == 0
    await cache.resolve([a, b])
    assert source.queries == [{a, b}, {a, b}]


async def test_every_lookup_in_flight_is_marked() -> None:
    """Two concurrent lookups of one tenant both leave it uncached after its invalidation."""
    a = uuid.uuid4()
    source, clock = HeldSource({a: True}), Clock()
    cache = make_cache(source, clock)
    first, first_gate = await held_lookup(cache, source, [a])
    second, second_gate = await held_lookup(cache, source, [a])
    source.tenants[a] = False
    cache.invalidate(a)
    second_gate.set()
    first_gate.set()
    assert [await first, await second] == [{a: ACTIVE}, {a: ACTIVE}]
    assert len(cache) == 0
    assert await cache.resolve([a]) == {a: INACTIVE}


async def test_a_later_lookup_caches_again_until_its_ttl() -> None:
    """An invalidation marks only the lookups in flight: the next one is cached for the full TTL."""
    a = uuid.uuid4()
    source, clock = HeldSource({a: True}), Clock()
    cache = make_cache(source, clock)
    lookup, gate = await held_lookup(cache, source, [a])
    cache.invalidate(a)
    gate.set()
    await lookup
    clock.now = 10.0
    await cache.resolve([a])
    clock.now = 69.0
    await cache.resolve([a])
    clock.now = 70.5
    await cache.resolve([a])
    assert source.queries == [{a}, {a}, {a}]


async def test_a_failed_lookup_caches_nothing() -> None:
    """A fetch that raises leaves no entry; the next lookup fetches and caches as usual."""
    a = uuid.uuid4()
    source, clock = HeldSource({a: True}), Clock()
    cache = make_cache(source, clock)
    source.fail = True
    with pytest.raises(ConnectionError):
        await cache.resolve([a])
    assert len(cache) == 0
    source.fail = False
    assert await cache.resolve([a]) == {a: ACTIVE}
    assert await cache.resolve([a]) == {a: ACTIVE}
    assert source.queries == [{a}, {a}]
