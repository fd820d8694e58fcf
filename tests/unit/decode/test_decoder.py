"""The decode stage: each reject reason, details without values, hostile input, row shape."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from worker.decode import decoder as decode_module
from worker.decode.decoder import EventKind, decode, decode_many
from worker.records import Accepted, ActionRow, AuditRow, RawRecord, Reject, RejectReason

MAX = 1024 * 1024
SECRET = "S3CR3T-VALUE-9f1c"  # distinctive: it must never appear in a detail


def action(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "id": "6f1e7a52-6c1d-4a8e-9d2b-3c4d5e6f7a80",
        "tenant_id": "0b7c1f3e-2a4d-4e5f-8a9b-0c1d2e3f4a5b",
        "occurred_at": "2025-03-01T12:34:56.5+01:00",
        "action_type": "helpdesk_create_ticket",
        "provider_name": "zendesk",
        "request_payload": {"subject": "Printer on fire", "tags": ["urgent", "hardware"]},
        "response_data": {"ticket": {"id": 981, "status": "new"}},
        "status": "success",
        "error_message": None,
        "execution_time_ms": 250,
        "metadata": {"request_id": "r-1", "retries": 0, "ratio": 0.5, "ok": True},
    }
    return event | fields


def audit(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "tenant_id": "0b7c1f3e-2a4d-4e5f-8a9b-0c1d2e3f4a5b",
        "occurred_at": "2025-03-01T12:34:56Z",
        "user_id": "user-42",
        "action": "update",
        "resource_type": "api_key",
        "resource_id": "key-7",
        "changes": {"before": {"scopes": ["read"]}, "after": {"scopes": ["read", "write"]}},
        "ip_address": "2001:DB8::0:1",
        "user_agent": "curl/8.5.0",
        "metadata": {"session_id": "s-1"},
    }
    return event | fields


def record(value: bytes | None, topic: str = "action-events") -> RawRecord:
    return RawRecord(topic=topic, partition=0, offset=7, key=None, value=value, timestamp_ms=0)


def run(
    value: bytes | None, kind: EventKind | None = EventKind.ACTION, max_bytes: int = MAX
) -> Any:
    return decode(record(value), kind, max_bytes)


def rejected(
    value: bytes | None, kind: EventKind = EventKind.ACTION, max_bytes: int = MAX
) -> Reject:
    result = run(value, kind, max_bytes)
    assert isinstance(result, Reject), result
    assert len(result.detail) <= 200
    return result


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


# -- every reject reason, from a minimal input ------------------------------------------


def test_unknown_topic_is_rejected_first() -> None:
    """A record from a topic with no known kind is rejected whatever it contains."""
    result = run(encode(action()), kind=None)
    assert isinstance(result, Reject)
    assert result.reason is RejectReason.UNKNOWN_TOPIC


@pytest.mark.parametrize("value", [None, b""])
def test_empty_value_is_rejected(value: bytes | None) -> None:
    """A null or zero-byte value is EMPTY."""
    assert rejected(value).reason is RejectReason.EMPTY


def test_size_is_checked_before_parsing() -> None:
    """A message over max_bytes is TOO_LARGE even when it is not JSON at all."""
    result = rejected(b"\xff" * 11, max_bytes=10)
    assert result.reason is RejectReason.TOO_LARGE
    assert "11" in result.detail


def test_message_exactly_at_max_bytes_is_accepted() -> None:
    """max_bytes is inclusive: a message of exactly that size is decoded."""
    raw = encode(action())
    assert isinstance(run(raw, max_bytes=len(raw)), Accepted)
    assert rejected(raw, max_bytes=len(raw) - 1).reason is RejectReason.TOO_LARGE


@pytest.mark.parametrize(
    "value",
    [b"\xff", b'{"provider_name": "\xc3"}', b'{"a": "\xed\xa0\x80"}', b"{\x80"],
)
def test_invalid_utf8_is_rejected(value: bytes) -> None:
    """Bytes that are not UTF-8 are INVALID_UTF8, with the byte position."""
    result = rejected(value)
    assert result.reason is RejectReason.INVALID_UTF8
    assert "byte" in result.detail


@pytest.mark.parametrize(
    "value",
    [b"{", b'{"a": 1,}', b"{'a': 1}", b'{"a": NaN}', b"   ", b'{"a": 1} x', b"\xef\xbb\xbf{}"],
)
def test_invalid_json_is_rejected(value: bytes) -> None:
    """UTF-8 that is not JSON is INVALID_JSON, with a position."""
    result = rejected(value)
    assert result.reason is RejectReason.INVALID_JSON
    assert "(byte " in result.detail


@pytest.mark.parametrize(
    ("value", "json_type"),
    [
        (b"[]", "array"),
        (b'"x"', "string"),
        (b"1", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
def test_json_that_is_not_an_object_is_rejected(value: bytes, json_type: str) -> None:
    """Valid JSON other than an object is NOT_AN_OBJECT, naming what it is."""
    result = rejected(value)
    assert result.reason is RejectReason.NOT_AN_OBJECT
    assert json_type in result.detail


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.0, [1]])
def test_unsupported_schema_version_is_rejected(version: object) -> None:
    """schema_version other than a supported int is UNSUPPORTED_VERSION, before the model."""
    result = rejected(encode({"schema_version": version}))
    assert result.reason is RejectReason.UNSUPPORTED_VERSION
    assert "schema_version" in result.detail


def test_schema_violation_is_rejected() -> None:
    """A JSON object that fails the model is SCHEMA_VIOLATION naming the field."""
    result = rejected(encode(action(status="exploded")))
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.startswith("status: ")


def test_event_validated_against_its_topics_kind() -> None:
    """An audit event on the action topic is a schema violation, not silently accepted."""
    assert rejected(encode(audit()), EventKind.ACTION).reason is RejectReason.SCHEMA_VIOLATION


# -- details name fields, never values ------------------------------------------------


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


# -- hostile input never raises ---------------------------------------------------------


def test_a_mebibyte_of_brackets_is_invalid_json() -> None:
    """1 MiB of '[' hits the parser's depth limit and is rejected, not a crash."""
    assert rejected(b"[" * MAX).reason is RejectReason.INVALID_JSON


def test_an_object_with_100000_keys_does_not_raise() -> None:
    """100,000 unknown keys next to valid fields are ignored; the event is accepted."""
    event = action() | {f"k{i}": i for i in range(100_000)}
    assert isinstance(run(encode(event), max_bytes=4 * MAX), Accepted)


@pytest.mark.parametrize("depth", [65, 200, 300, 900])
def test_deeply_nested_payload_is_a_schema_violation(depth: int) -> None:
    """request_payload nested past the limit is rejected naming the field, at any depth."""
    raw = b'{"p":' * depth + b"1" + b"}" * depth
    event = encode(action(request_payload={})).replace(
        b'"request_payload":{}', b'"request_payload":' + raw
    )
    result = rejected(event)
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.startswith("request_payload: ")


def test_nesting_beyond_the_parser_limit_is_invalid_json() -> None:
    """Past the parser's own depth limit the message is not parsed at all."""
    raw = b'{"p":' * 2000 + b"1" + b"}" * 2000
    event = encode(action(request_payload={})).replace(
        b'"request_payload":{}', b'"request_payload":' + raw
    )
    assert rejected(event).reason is RejectReason.INVALID_JSON


def test_many_shallow_brackets_are_accepted() -> None:
    """More than 64 brackets that do not nest deeply pass (the slow, exact check runs)."""
    payload = {"items": [[i] for i in range(200)]}
    assert isinstance(run(encode(action(request_payload=payload))), Accepted)


@pytest.mark.parametrize("number", [b"18446744073709551616", b"-9223372036854775809", b"1" * 400])
def test_numbers_beyond_64_bits_do_not_raise(number: bytes) -> None:
    """Integers past 64 bits in a payload never raise out of decode."""
    event = encode(action(request_payload={"n": 0})).replace(b'{"n":0}', b'{"n":' + number + b"}")
    assert isinstance(run(event), Accepted | Reject)


def test_number_beyond_64_bits_in_an_int_field_is_a_schema_violation() -> None:
    """execution_time_ms beyond 64 bits is a schema violation, not a crash."""
    event = encode(action(execution_time_ms=0)).replace(
        b'"execution_time_ms":0', b'"execution_time_ms":99999999999999999999999'
    )
    result = rejected(event)
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.startswith("execution_time_ms: ")


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud800\\u0041"])
def test_lone_surrogate_escapes_are_invalid_json(escape: bytes) -> None:
    """A \\ud800 escape cannot become UTF-8 text: INVALID_JSON, not a crash later."""
    event = encode(action(provider_name="x")).replace(b'"x"', b'"' + escape + b'"')
    assert rejected(event).reason is RejectReason.INVALID_JSON


@pytest.mark.parametrize("field", ["provider_name", "error_message"])
def test_nul_escape_in_a_string_field_is_a_schema_violation(field: str) -> None:
    """A \\u0000 escape in a text field is refused naming the field."""
    result = rejected(encode(action(**{field: "a\x00b"})))
    assert b"\\u0000" in encode(action(**{field: "a\x00b"}))
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.startswith(f"{field}: ")


def test_nul_escape_deep_in_a_json_field_is_a_schema_violation() -> None:
    """A \\u0000 escape anywhere inside a JSON object field is refused naming the field."""
    result = rejected(
        encode(audit(changes={"after": {"list": ["ok", {"k": "\x00"}]}})), EventKind.AUDIT
    )
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert result.detail.startswith("changes: ")


def test_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    """The text \\\\u0000 is a backslash and 'u0000', stored as it is."""
    result = run(encode(action(request_payload={"path": "C:\\u0000"})))
    assert isinstance(result, Accepted)
    assert isinstance(result.row, ActionRow)
    assert result.row.request_payload == '{"path":"C:\\\\u0000"}'


def test_random_corruptions_never_raise() -> None:
    """Thousands of randomly corrupted events each decode to Accepted or Reject."""
    rng = random.Random(20250301)
    base = bytearray(encode(action()))
    for _ in range(3000):
        corrupted = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
        assert isinstance(run(bytes(corrupted)), Accepted | Reject)


def test_unexpected_conversion_error_is_a_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should turning a valid event into a row fail, the message is rejected, not raised."""
    raw = encode(action())

    def broken(value: object) -> bytes:
        raise TypeError("simulated")

    monkeypatch.setattr(decode_module, "ROW_OF", {"action": lambda raw: None})
    monkeypatch.setattr(decode_module, "action_json", broken)
    result = rejected(raw)
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert "TypeError" in result.detail


# -- accepted rows ------------------------------------------------------------------------


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


def test_an_integer_too_long_to_parse_is_invalid_json() -> None:
    """Past 4,300 digits not even Python's int() takes a number: rejected, whichever path."""
    raw = encode(action(request_payload={"n": 0})).replace(b'"n":0', b'"n":' + b"9" * 4301)
    result = rejected(raw)
    assert result.reason is RejectReason.INVALID_JSON
    assert "out of range" in result.detail


def test_long_digit_strings_and_64_bit_integers_are_accepted() -> None:
    """Nineteen digits in a string, and the largest unsigned 64-bit integer, are fine."""
    event = action(request_payload={"account": "1234567890123456789012", "n": 2**64 - 1})
    assert isinstance(run(encode(event)), Accepted)
