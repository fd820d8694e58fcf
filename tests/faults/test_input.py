"""Hostile bytes amid heavy traffic, and a producer gone bad: rejected with reasons, no stall."""

from __future__ import annotations

import random

import orjson
import pytest

from tests.checker import check_exactly_once
from tests.faults.conftest import new_tenants, prepare_stream
from tests.faults.harness import Workers, sql, wait_drained
from tests.streams import produce, stored_offsets, worker_env
from worker.devtools.eventgen import EventFactory, Generated
from worker.records import RejectReason
from worker.settings import Settings

MIB = 1024 * 1024
LIMIT = 12 * MIB  # MAX_EVENT_BYTES: room for a 1,000,000-key object, which must be parsed
PEAK_RSS_LIMIT_KIB = 1024 * 1024  # the worker's resident size must stay under 1 GiB


def splice(value: bytes, marker: bytes, replacement: bytes) -> bytes:
    assert marker in value
    return value.replace(marker, replacement, 1)


def hostile(factory: EventFactory) -> list[Generated]:
    """One of each kind of hostile message, with the reason it must be rejected for."""
    action = orjson.dumps(factory.action(metadata={"m": 1}))
    reasons = RejectReason

    def bad(value: bytes | None, reason: RejectReason, kind: str = "action") -> Generated:
        return Generated(kind, None, value, reason, None)

    def with_(**overrides: object) -> bytes:
        return orjson.dumps(factory.action(**overrides))

    million_keys = b"{" + b",".join(b'"%d":0' % i for i in range(1_000_000)) + b"}"
    return [
        bad(b"\xff\xfe\x00\x80 not utf-8", reasons.INVALID_UTF8),
        bad(b"this is not json", reasons.INVALID_JSON, "audit"),
        bad(b"[" * MIB, reasons.INVALID_JSON),
        bad(million_keys, reasons.SCHEMA_VIOLATION),
        bad(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, reasons.INVALID_JSON, "audit"),
        bad(
            splice(action, b'"m":1', b'"m":' + b'{"x":' * 300 + b"1" + b"}" * 300),
            reasons.SCHEMA_VIOLATION,
        ),
        bad(
            splice(
                action, b'"execution_time_ms":', b'"execution_time_ms":1' + b"0" * 30 + b',"x":'
            ),
            reasons.SCHEMA_VIOLATION,
        ),
        bad(with_(provider_name="nul\x00byte"), reasons.SCHEMA_VIOLATION),
        bad(with_(metadata={"k": "nul\x00byte"}), reasons.SCHEMA_VIOLATION),
        bad(splice(action, b'"m":1', b'"m":"\\ud800"'), reasons.INVALID_JSON),
        bad(splice(action, b'"m":1', b'"\\udc00":1'), reasons.INVALID_JSON),
        bad(with_(occurred_at="2026-11-01T12:00:00"), reasons.SCHEMA_VIOLATION),
        bad(with_(occurred_at="10000-01-01T00:00:00Z"), reasons.SCHEMA_VIOLATION),
        bad(with_(occurred_at="0001-01-01T00:00:00+14:00"), reasons.SCHEMA_VIOLATION),
        bad(with_(occurred_at="9999-12-31T23:59:59-12:00"), reasons.SCHEMA_VIOLATION),
        bad(b"", reasons.EMPTY),
        Generated("audit", b"tombstone", None, reasons.EMPTY, None),
        bad(b'{"pad":"' + b"x" * (LIMIT - 9) + b'"}', reasons.TOO_LARGE),
    ]


def keyless(factory: EventFactory, count: int) -> list[Generated]:
    """Valid events whose messages have a null key."""
    return [Generated("audit", None, orjson.dumps(e), None, e)
            for e in (factory.audit() for _ in range(count))]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_hostile_input_amid_heavy_traffic(settings: Settings, workers: Workers) -> None:
    """Each hostile message is rejected with its reason, the good ones all stored, RSS bounded."""
    stream = await prepare_stream(settings, max_event_bytes=LIMIT)
    factory = EventFactory(await new_tenants(stream, 3), seed=1101)
    generated = factory.mixed(20_000, 0.0, LIMIT) + keyless(factory, 200)
    rng = random.Random(1101)
    for item in hostile(factory) * 2:
        generated.insert(rng.randrange(len(generated)), item)
    worker = await workers.start(worker_env(stream))
    sent = await produce(stream, generated, max_request_size=4 * LIMIT)
    await wait_drained(stream, sent, 150, worker)
    peak_kib = worker.memory_kib("VmHWM")
    worker.terminate()
    assert await worker.wait(30) == 0
    assert peak_kib < PEAK_RSS_LIMIT_KIB, f"peak RSS {peak_kib // 1024} MiB"
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)
    assert (
        await sql(stream.database_url, "SELECT count(*) FROM ingest_rejects WHERE detail = ''") == 0
    )


@pytest.mark.timeout(90)
async def test_integer_beyond_64_bits_is_stored_exactly(stream: Settings, workers: Workers) -> None:
    """A number no 64-bit integer can hold is stored digit for digit, never rounded."""
    factory = EventFactory(await new_tenants(stream, 1), seed=1102)
    event = factory.action(metadata={"m": 123456789012345678901234567890})
    value = orjson.dumps({**event, "metadata": {"m": 1}}).replace(
        b'"m":1', b'"m":123456789012345678901234567890'
    )  # orjson cannot write it: splice it into the bytes
    sent = await produce(stream, [Generated("action", None, value, None, event)],
                         max_request_size=4 * LIMIT)  # fmt: skip
    worker = await workers.start(worker_env(stream))
    await wait_drained(stream, sent, 60, worker)
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


@pytest.mark.timeout(120)
async def test_breaker_stops_on_a_garbage_producer_skipping_nothing_valid(
    stream: Settings, workers: Workers
) -> None:
    """Valid traffic, then only garbage: exit 4, a clear error, no consumed valid event missing."""
    factory = EventFactory(await new_tenants(stream, 2), seed=1201)
    valid = factory.mixed(3000, 0.0, stream.max_event_bytes)
    reasons = [r for r in factory.bad_reasons() if r is not RejectReason.INACTIVE_TENANT]
    garbage = [
        factory.invalid(reasons[i % len(reasons)], stream.max_event_bytes) for i in range(3000)
    ]
    window = 500
    worker = await workers.start(
        worker_env(stream, REJECT_BREAKER_MIN=str(window), BATCH_MAX_EVENTS="200")
    )
    sent = await produce(stream, valid, max_request_size=4 * LIMIT)
    await wait_drained(stream, sent, 60, worker)
    sent += await produce(stream, garbage, max_request_size=4 * LIMIT)  # a bad deploy
    assert await worker.wait(90) == 4
    assert "error: " in worker.stderr
    assert f"of the last {window} events were rejected" in worker.stderr
    stored = await stored_offsets(stream.database_url, stream.kafka_group_id)
    consumed = [s for s in sent if s.offset < stored.get((s.topic, s.partition), 0)]
    await check_exactly_once(stream.database_url, consumed, stream.kafka_group_id)
    rejects = await sql(stream.database_url, "SELECT count(*) FROM ingest_rejects")
    assert isinstance(rejects, int)
    assert rejects <= window  # stopped at the threshold instead of draining the topic
    assert sum(1 for s in consumed if s.generated.expected_reject is None) == len(valid)
