"""Hostile input (huge, deep, NUL, surrogates, long numbers, noise) never raises out of decode."""

from __future__ import annotations

import random

import pytest

from tests.unit.decode.messages import MAX, action, audit, encode, rejected, run
from worker.decode.decoder import EventKind
from worker.records import Accepted, ActionRow, Reject, RejectReason


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
