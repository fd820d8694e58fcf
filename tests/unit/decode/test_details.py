"""A reject's detail names fields and what is wrong, never a value, and stays short."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.decode.messages import SECRET, action, audit, encode, rejected
from worker.decode.decoder import EventKind
from worker.records import RejectReason


@pytest.mark.parametrize(
    ("kind", "event", "field"),
    [
        (EventKind.ACTION, action(provider_name=SECRET * 10), "provider_name"),
        (EventKind.ACTION, action(action_type=SECRET), "action_type"),
        (EventKind.ACTION, action(id=SECRET), "id"),
        (EventKind.ACTION, action(tenant_id="zzzzzzzz-" + SECRET), "tenant_id"),
        (EventKind.ACTION, action(occurred_at=SECRET), "occurred_at"),
        (EventKind.ACTION, action(occurred_at="2025-13-01T00:00:00Z"), "occurred_at"),
        (EventKind.ACTION, action(execution_time_ms=SECRET), "execution_time_ms"),
        (EventKind.ACTION, action(request_payload=SECRET), "request_payload"),
        (EventKind.ACTION, action(metadata={SECRET: "a\x00" + SECRET}), "metadata"),
        (EventKind.AUDIT, audit(ip_address=SECRET), "ip_address"),
        (EventKind.AUDIT, audit(user_agent=SECRET + "\x00"), "user_agent"),
    ],
)
def test_detail_names_the_field_but_not_the_value(
    kind: EventKind, event: dict[str, Any], field: str
) -> None:
    """A schema violation's detail says which field and why, never what it contained."""
    result = rejected(encode(event), kind)
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.startswith(f"{field}: ")
    assert SECRET not in result.detail
    assert "S3CR3T" not in result.detail
    assert "`z`" not in result.detail
    assert "2025-13" not in result.detail


def test_invalid_json_detail_does_not_quote_the_input() -> None:
    """An INVALID_JSON detail gives the position and kind of error, not the text."""
    result = rejected(b'{"key": ' + SECRET.encode() + b"}")
    assert result.reason is RejectReason.INVALID_JSON
    assert SECRET not in result.detail
    assert "S3CR3T" not in result.detail


def test_detail_lists_three_errors_then_counts_the_rest() -> None:
    """With many errors the detail names three fields and says how many more."""
    result = rejected(b"{}")
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.count("Field required") == 3
    assert result.detail.endswith("(+4 more)")


def test_long_messages_are_clipped_to_200_characters() -> None:
    """The detail stays short even when every error has a long message."""
    bad = {"provider_name": "x" * 101, "execution_time_ms": -1, "action_type": "nope"}
    result = rejected(encode(action(**bad, status="nope", id="nope", tenant_id="nope")))
    assert len(result.detail) <= 200
    assert result.detail.endswith("(+3 more)")
