"""The timestamptz codec of the worker's connections: exact microseconds, any offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker.write.codecs import PG_EPOCH, decode_timestamptz, encode_timestamptz

PLUS_TWO = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("value", "microseconds"),
    [
        (PG_EPOCH, 0),
        (datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 1),
        (datetime(2000, 1, 1, 2, 0, tzinfo=PLUS_TWO), 0),  # the same instant as the epoch
        (datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), -1),
        (datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=UTC), 849_081_600_123_456),
        (datetime(1, 1, 2, tzinfo=UTC), -63_082_195_200_000_000),
        (datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC), 252_455_529_599_999_999),
    ],
)
def test_encodes_microseconds_since_2000_utc(value: datetime, microseconds: int) -> None:
    assert encode_timestamptz(value) == (microseconds,)
    assert decode_timestamptz((microseconds,)) == value


def test_decodes_infinities_as_asyncpg_does() -> None:
    assert decode_timestamptz((2**63 - 1,)) == datetime.max
    assert decode_timestamptz((-(2**63),)) == datetime.min


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(TypeError):
        encode_timestamptz(datetime(2026, 1, 1))
