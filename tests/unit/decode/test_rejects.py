"""Each reject reason of the decode stage, from a minimal input, in the order checked."""

from __future__ import annotations

import pytest

from tests.unit.decode.messages import action, audit, encode, rejected, run
from worker.decode import decoder as decode_module
from worker.decode.decoder import EventKind
from worker.records import Accepted, Reject, RejectReason


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


def test_an_integer_too_long_to_parse_is_invalid_json() -> None:
    """Past 4,300 digits not even Python's int() takes a number: rejected, whichever path."""
    raw = encode(action(request_payload={"n": 0})).replace(b'"n":0', b'"n":' + b"9" * 4301)
    result = rejected(raw)
    assert result.reason is RejectReason.INVALID_JSON
    assert "out of range" in result.detail


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
