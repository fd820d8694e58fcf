"""Accepted events become rows in staging-column order, with the producer's JSON text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from tests.unit.decode.messages import MAX, action, audit, encode, record, run
from worker.decode.decoder import EventKind, decode_many
from worker.records import Accepted, ActionRow, AuditRow, Reject, RejectReason


def test_action_row_columns_and_json_text() -> None:
    """An action becomes an ActionRow in staging-column order with compact JSON text."""
    result = run(encode(action()))
    assert isinstance(result, Accepted)
    row = result.row
    assert isinstance(row, ActionRow)
    assert row == ActionRow(
        uuid.UUID("6f1e7a52-6c1d-4a8e-9d2b-3c4d5e6f7a80"),
        uuid.UUID("0b7c1f3e-2a4d-4e5f-8a9b-0c1d2e3f4a5b"),
        "helpdesk_create_ticket",
        "zendesk",
        '{"subject":"Printer on fire","tags":["urgent","hardware"]}',
        '{"ticket":{"id":981,"status":"new"}}',
        "success",
        None,
        250,
        '{"request_id":"r-1","retries":0,"ratio":0.5,"ok":true}',
        datetime(2025, 3, 1, 11, 34, 56, 500000, tzinfo=UTC),
    )
    assert type(row.action_type) is str
    assert type(row.status) is str
    assert row.occurred_at.utcoffset() is not None
    assert result.record.offset == 7


def test_action_row_defaults() -> None:
    """Absent request_payload is '{}' text; absent nullable JSON columns are None."""
    event = action()
    for name in ("request_payload", "response_data", "metadata", "error_message"):
        del event[name]
    result = run(encode(event))
    assert isinstance(result, Accepted)
    assert isinstance(result.row, ActionRow)
    assert result.row.request_payload == "{}"
    assert result.row.response_data is None
    assert result.row.metadata is None


def test_audit_row_columns_and_json_text() -> None:
    """An audit event becomes an AuditRow with the normalized IP and compact JSON text."""
    result = run(encode(audit(extra_field=1)), EventKind.AUDIT)
    assert isinstance(result, Accepted)
    assert result.row == AuditRow(
        uuid.UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
        uuid.UUID("0b7c1f3e-2a4d-4e5f-8a9b-0c1d2e3f4a5b"),
        "user-42",
        "update",
        "api_key",
        "key-7",
        '{"before":{"scopes":["read"]},"after":{"scopes":["read","write"]}}',
        "2001:db8::1",
        "curl/8.5.0",
        '{"session_id":"s-1"}',
        datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC),
    )


def test_non_ascii_text_survives() -> None:
    """Non-ASCII text and JSON are kept as they are, not escaped or mangled."""
    result = run(encode(action(provider_name="Zürich", request_payload={"név": "😀"})))
    assert isinstance(result, Accepted)
    assert isinstance(result.row, ActionRow)
    assert result.row.provider_name == "Zürich"
    assert orjson.loads(result.row.request_payload) == {"név": "😀"}


def test_decode_many_uses_each_records_topic() -> None:
    """decode_many keeps order and picks the kind by topic; unknown topics are rejected."""
    kinds = {"action-events": EventKind.ACTION, "audit-events": EventKind.AUDIT}
    records = [
        record(encode(audit()), "audit-events"),
        record(encode(action()), "other-topic"),
        record(encode(action()), "action-events"),
        record(None, "action-events"),
    ]
    results = decode_many(records, kinds, MAX)
    assert [result.record for result in results] == records
    outcomes = [r.reason if isinstance(r, Reject) else type(r.row) for r in results]
    assert outcomes == [AuditRow, RejectReason.UNKNOWN_TOPIC, ActionRow, RejectReason.EMPTY]


@pytest.mark.parametrize("number", [str(2**64), "1e999", "-0.10", "9" * 4300])
def test_numbers_in_json_fields_are_kept_as_written(number: str) -> None:
    """The producer's JSON text is stored, so no number is rounded, however large."""
    raw = encode(action(request_payload={"n": 0})).replace(b'"n":0', f'"n":{number}'.encode())
    result = run(raw)
    assert isinstance(result, Accepted)
    assert isinstance(result.row, ActionRow)
    assert result.row.request_payload == f'{{"n":{number}}}'


def test_long_digit_strings_and_64_bit_integers_are_accepted() -> None:
    """Nineteen digits in a string, and the largest unsigned 64-bit integer, are fine."""
    event = action(request_payload={"account": "1234567890123456789012", "n": 2**64 - 1})
    assert isinstance(run(encode(event)), Accepted)
