"""occurred_at: RFC 3339 with an offset, within the range that converts to UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas import ActionEvent, AuditEvent
from tests.unit.schemas.factories import action, audit, error_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-01T12:34:56Z", datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2025-03-01t12:34:56z", datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2025-03-01 14:34:56+02:00", datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2025-03-01T12:34:56.5-00:00", datetime(2025, 3, 1, 12, 34, 56, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_accepted(value: str, expected: datetime) -> None:
    """occurred_at takes RFC 3339 strings and keeps the instant they name."""
    occurred_at = ActionEvent.model_validate(action(occurred_at=value)).occurred_at
    assert occurred_at == expected
    assert occurred_at.utcoffset() is not None


def test_offset_is_kept() -> None:
    """The producer's offset survives validation (PostgreSQL stores the instant)."""
    occurred_at = AuditEvent.model_validate(
        audit(occurred_at="2025-03-01T12:00:00+05:30")
    ).occurred_at
    assert occurred_at.utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("2025-03-01T12:34:56", "rfc3339_timestamp"),  # naive
        ("2025-03-01T12:34Z", "rfc3339_timestamp"),  # no seconds
        ("2025-03-01", "rfc3339_timestamp"),
        ("1740832496", "rfc3339_timestamp"),
        (1740832496, "rfc3339_timestamp"),
        (1740832496.5, "rfc3339_timestamp"),
        ("2025-02-30T00:00:00Z", "rfc3339_timestamp"),
        ("2025-03-01T24:00:00Z", "rfc3339_timestamp"),
        ("2025-03-01T12:34:56+24:00", "rfc3339_timestamp"),
        ("0001-01-01T00:30:00+01:00", "timestamp_range"),  # year 0 in UTC
        ("9999-12-31T23:30:00-01:00", "timestamp_range"),  # year 10000 in UTC
        (datetime(2025, 3, 1, 12, 34, 56), "timezone_aware"),
    ],
)
def test_bad_timestamps_are_refused(value: object, error: str) -> None:
    """occurred_at refuses naive, partial, numeric, impossible and unconvertible times."""
    assert error_of(ActionEvent, action(occurred_at=value)) == ("occurred_at", error)


def test_aware_datetime_object_is_accepted() -> None:
    """A Python producer may pass an aware datetime instead of a string."""
    when = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert AuditEvent.model_validate(audit(occurred_at=when)).occurred_at == when
