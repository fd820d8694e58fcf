"""Decode stage: a Kafka message's bytes become a table row, or a Reject saying why not.

Pure and synchronous: no I/O, no logging, and it never raises for anything a
message can contain. A plain valid event takes the fast path of
``worker.decode.fast``; every other message is judged here, by checks in this
order, cheapest first, each failure with its own ``RejectReason``: the topic's
kind, an empty value, the size (before any parsing), UTF-8, JSON, a JSON object,
``schema_version``, then the wire model of ``schemas.events`` (whose limits and
checks, those of ``schemas.rules``, the fast path applies too). A Reject's
``detail`` names field paths and what is wrong, never a value from the message:
it is stored and logged where payloads must not be.
"""

from __future__ import annotations

import enum
import gc
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import msgspec
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.events import ActionEvent, AuditEvent, validation_context
from schemas.rules import DEFAULT_SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS
from worker.decode.fast import ROW_OF, action_json, audit_json
from worker.records import (
    Accepted,
    ActionRow,
    AuditRow,
    Decoded,
    RawRecord,
    Reject,
    RejectReason,
)

MAX_DETAIL: Final = 200
# The JSON grammar of the fast path (msgspec); numbers of any size stay exact, as
# PostgreSQL's jsonb stores them (the row takes the producer's text, not these values).
_parse_json: Final = msgspec.json.Decoder(float_hook=Decimal).decode
_MAX_ERRORS: Final = 3
_VERSIONS_TEXT: Final = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))


class EventKind(enum.StrEnum):
    """Which event a topic carries."""

    ACTION = "action"
    AUDIT = "audit"


def decode(record: RawRecord, kind: EventKind | None, max_bytes: int) -> Decoded:
    """Turn one message into an ``Accepted`` row or a ``Reject``; never raises for bad input.

    ``kind`` None means the record's topic carries no known event kind.
    """
    if kind is None:
        return Reject(record, RejectReason.UNKNOWN_TOPIC, "topic carries no known event kind")
    raw = record.value
    if raw and len(raw) <= max_bytes and (row := ROW_OF[kind](raw)) is not None:
        return Accepted(row, record)
    return decode_slow(record, kind, max_bytes)


def decode_slow(record: RawRecord, kind: EventKind, max_bytes: int) -> Decoded:
    """The slow path alone: every check in order, every reject worded (see the module doc)."""
    parsed = _parse(record, max_bytes)
    if isinstance(parsed, Reject):
        return parsed
    raw, obj = parsed
    try:
        row = _ROW_BUILDERS[kind](obj, raw)
    except ValidationError as exc:
        return Reject(record, RejectReason.SCHEMA_VIOLATION, describe_errors(exc))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # Not expected from anything that passed the model, but one message must
        # never stop the worker: reject it and keep going.
        detail = f"event could not be converted to a row ({type(exc).__name__})"
        return Reject(record, RejectReason.SCHEMA_VIOLATION, detail)
    return Accepted(row, record)


def decode_many(
    records: Iterable[RawRecord], kinds: Mapping[str, EventKind], max_bytes: int
) -> list[Decoded]:
    """Decode each record, in order; ``kinds`` maps a topic name to the kind it carries.

    The cyclic garbage collector is paused meanwhile: parsing allocates several
    containers per event, none of them in a cycle, and the collections they would
    trigger (each walking every young object) cost about a third of decoding.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return [decode(record, kinds.get(record.topic), max_bytes) for record in records]
    finally:
        if paused:
            gc.enable()


def _parse(record: RawRecord, max_bytes: int) -> tuple[bytes, dict[str, Any]] | Reject:
    """The message as a JSON object of a supported version, or the first check it fails."""
    raw = record.value
    if not raw:
        return Reject(record, RejectReason.EMPTY, "message has no value")
    if len(raw) > max_bytes:
        detail = f"{len(raw)} bytes, over the limit of {max_bytes}"
        return Reject(record, RejectReason.TOO_LARGE, detail)
    try:
        obj = _parse_json(raw)
    except (ValueError, RecursionError) as exc:  # msgspec.DecodeError is a ValueError
        return _unparsable(record, raw, exc)
    if type(obj) is not dict:
        detail = f"top level is a JSON {_json_type(obj)}, not an object"
        return Reject(record, RejectReason.NOT_AN_OBJECT, detail)
    version = obj.get("schema_version", DEFAULT_SCHEMA_VERSION)
    # type() and not isinstance(): true is not version 1.
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        detail = f"schema_version: not a supported version (supported: {_VERSIONS_TEXT})"
        return Reject(record, RejectReason.UNSUPPORTED_VERSION, detail)
    return raw, obj


def _unparsable(record: RawRecord, raw: bytes, exc: BaseException) -> Reject:
    """Tell bad UTF-8 from bad JSON; only on the error path, so the happy path decodes once."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Reject(record, RejectReason.INVALID_UTF8, f"invalid UTF-8 at byte {bad.start}")
    if isinstance(exc, msgspec.DecodeError):
        # Syntax errors say what was expected where, never quoting the input; the one
        # without a position is the input ending early.
        detail = str(exc)
        if "(byte " not in detail:
            detail = f"{detail} (byte {len(raw)})"
    else:
        detail = f"JSON could not be parsed ({type(exc).__name__})"
    return Reject(record, RejectReason.INVALID_JSON, _clip(detail, MAX_DETAIL))


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"


def _action_row(obj: dict[str, Any], raw: bytes) -> ActionRow:
    event = ActionEvent.model_validate(obj, context=validation_context(raw))
    request_payload, response_data, metadata = action_json(raw)
    return ActionRow(
        event.id,
        event.tenant_id,
        event.action_type.value,
        event.provider_name,
        request_payload,
        response_data,
        event.status.value,
        event.error_message,
        event.execution_time_ms,
        metadata,
        event.occurred_at,
    )


def _audit_row(obj: dict[str, Any], raw: bytes) -> AuditRow:
    event = AuditEvent.model_validate(obj, context=validation_context(raw))
    changes, metadata = audit_json(raw)
    return AuditRow(
        event.id,
        event.tenant_id,
        event.user_id,
        event.action,
        event.resource_type,
        event.resource_id,
        changes,
        event.ip_address,
        event.user_agent,
        metadata,
        event.occurred_at,
    )


_ROW_BUILDERS: Final[dict[EventKind, Callable[[dict[str, Any], bytes], ActionRow | AuditRow]]] = {
    EventKind.ACTION: _action_row,
    EventKind.AUDIT: _audit_row,
}


def describe_errors(exc: ValidationError) -> str:
    """At most three ``field: what is wrong`` parts, then ``(+N more)``; no input values."""
    errors = exc.errors(include_input=False, include_url=False)
    parts = [f"{_location(error)}: {_message(error)}" for error in errors[:_MAX_ERRORS]]
    extra = len(errors) - _MAX_ERRORS
    suffix = f" (+{extra} more)" if extra > 0 else ""
    return _clip("; ".join(parts), MAX_DETAIL - len(suffix)) + suffix


def _location(error: ErrorDetails) -> str:
    # Locations come from the models' field names only: no model field descends
    # into a producer's dict, so no key of the message can appear here.
    return ".".join(str(part) for part in error["loc"]) or "event"


def _message(error: ErrorDetails) -> str:
    if error["type"] == "enum":
        return "Input should be one of the allowed values"  # the list of 24 is too long
    if "error" in error.get("ctx", {}):
        # A parser's own words may quote the input ("found `z` at 3"): keep the
        # sentence before them ("Input should be a valid UUID").
        return error["msg"].split(",", 1)[0]
    return error["msg"]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
