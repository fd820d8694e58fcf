"""The edge values of each rule, and the cases they make of a valid event.

The near misses (mutations.py) draw from these tables; ``edge_cases`` also tries
every one of them on fixed events, so that no edge depends on being drawn.
Expected outcomes: accepted (``error`` None), or a schema violation at the field
with this pydantic error type ("?" when the type does not matter).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from schemas.rules import (
    EXECUTION_TIME_MS_MAX,
    EXECUTION_TIME_MS_MIN,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    MAX_LENGTHS,
    NUL,
)
from tests.unit.decode.strategies import (
    ENUMS,
    JSON_FIELDS,
    MODELS,
    NULLABLE,
    TEXT_FIELDS,
    Case,
    Event,
    RawJson,
    encode,
)
from worker.decode.decoder import EventKind
from worker.records import RejectReason

SV = RejectReason.SCHEMA_VIOLATION
FIELDS = {kind: frozenset(model.model_fields) for kind, model in MODELS.items()}
ALL_FIELDS = frozenset().union(*FIELDS.values())
STRINGS = frozenset(name for name in MAX_LENGTHS if name != "ip_address") | TEXT_FIELDS
LIMITED = frozenset(MAX_LENGTHS) - {"ip_address"}
BAD_TIMESTAMPS = [
    '"2025-03-01T12:34:56"', '"2025-03-01T12:34Z"', '"2025-03-01"', '"1740832496"', "1740832496",
    "1740832496.5", '"2025-02-29T00:00:00Z"', '"2025-03-01T24:00:00Z"', '"2025-03-01T23:59:60Z"',
    '"2025-03-01T12:34:56+24:00"', '"2025-03-01T12:34:56+0100"', '"2025-03-01T12:34:56.Z"',
    '"2025-13-01T00:00:00Z"', '"0000-01-01T00:00:00Z"', '" 2025-03-01T12:34:56Z"',
    '"2025-03-01T12:34:56Z "', '"2025-03-01T12:34:56\\u221201:00"', '"\\uff12025-03-01T12:34:56Z"',
    "null", "true", "{}",
]  # fmt: skip
RANGE = "timestamp_range"
EDGE_TIMESTAMPS = {  # the first and last microsecond in range, at offsets, and one past
    "0001-01-02T00:00:00Z": None, "0001-01-02T01:00:00+01:00": None,
    "0001-01-01T23:59:59.999999Z": RANGE, "0001-01-02T00:59:59+01:00": RANGE,
    "9999-12-30T23:59:59.999999Z": None, "9999-12-31T00:59:59.999999+01:00": None,
    "9999-12-31T00:00:00Z": RANGE, "9999-12-30T23:59:59-00:01": RANGE,
}  # fmt: skip
EXECUTION_TIMES = {
    str(EXECUTION_TIME_MS_MIN): None, "-0": None, str(EXECUTION_TIME_MS_MAX): None,
    str(EXECUTION_TIME_MS_MIN - 1): "greater_than_equal", "-" + "9" * 30: "greater_than_equal",
    str(EXECUTION_TIME_MS_MAX + 1): "less_than_equal", str(2**64): "less_than_equal",
    "1.0": "int_type", "1e3": "int_type", "42.5": "int_type", "true": "int_type",
    '"42"': "int_type", "null": "int_type", "[]": "int_type",
}  # fmt: skip
BAD_VERSIONS = ["0", "2", "-1", "true", "false", '"1"', "1.0", "1e0", "null", "[1]", "{}", "9" * 25]
BAD_IPS = ["", "localhost", "256.1.1.1", "01.2.3.4", "1.2.3", "1::2::3", "fe80::1%eth0",
           "1.2.3.4\x00", " ::1", "1.2.3.4 ", "::ffff:1.2.3.04"]  # fmt: skip
LONGEST_IP = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
UUID = "6f1e7a52-6c1d-4a8e-9d2b-3c4d5e6f7a80"
OTHER_UUID_FORMS = ["{" + UUID + "}", "urn:uuid:" + UUID]  # valid; msgspec does not read them
BAD_UUIDS = ["", "nope", UUID[:-1], UUID + "0", UUID.replace("-", "", 1), "g" * 32, UUID + " "]
NON_STRINGS = ["1", "1.5", "true", "[]", "{}"]
NON_OBJECTS = ["[]", "[{}]", '"{}"', "1", "true"]
NUL_OBJECTS = [{"k": "a" + NUL}, {"k" + NUL: 1}, {"l": ["ok", {"m": [NUL]}]}]
TOO_MANY_DIGITS = RawJson('{"n":' + "9" * (MAX_INT_DIGITS + 1) + "}")


class Target(NamedTuple):
    """A valid event to change, of this kind, and the JSON spelling to send it in."""

    kind: EventKind
    event: Event
    enc: str


def nested(depth: int) -> RawJson:
    """A JSON object ``depth`` levels deep, itself counted."""
    return RawJson('{"a":' * (depth - 1) + "{}" + "}" * (depth - 1))


def set_field(on: Target, name: str, value: object, label: str, error: str | None = None,
              plain: bool = True) -> Case:  # fmt: skip
    """The event with ``name`` set to ``value``: accepted when ``error`` is None."""
    raw = encode(on.event | {name: value}, on.enc)
    if error is None:
        return Case(on.kind, raw, label, plain=plain)
    return Case(on.kind, raw, label, SV, name, None if error == "?" else error)


def without(on: Target, name: str) -> Case:
    """The event without ``name``: missed when required, its default otherwise."""
    raw = encode({key: value for key, value in on.event.items() if key != name}, on.enc)
    if MODELS[on.kind].model_fields[name].is_required():
        return Case(on.kind, raw, "missing-required", SV, name, "missing")
    return Case(on.kind, raw, "missing-optional", plain=True)


def with_null(on: Target, name: str) -> Case:
    """The event with ``name`` null: fine where nullable; a version it is not."""
    if name == "schema_version":
        return with_version(on, "null")
    return set_field(on, name, None, "null", None if name in NULLABLE else "?")


def with_version(on: Target, version: str) -> Case:
    """The event with an unsupported schema_version: rejected before the model."""
    raw = encode(on.event | {"schema_version": RawJson(version)}, on.enc)
    return Case(on.kind, raw, "version", RejectReason.UNSUPPORTED_VERSION)


def with_bytes(on: Target, name: str, value: RawJson, label: str, reason: RejectReason) -> Case:
    """The event with ``name`` set to JSON text that makes the message unreadable."""
    return Case(on.kind, encode(on.event | {name: value}, on.enc), label, reason)


BASE: dict[EventKind, Event] = {
    EventKind.ACTION: {
        "id": UUID, "tenant_id": UUID, "occurred_at": "2025-03-01T12:34:56Z",
        "action_type": "crm_create", "provider_name": "hubspot", "status": "success",
        "execution_time_ms": 42, "request_payload": {"a": [1]}, "metadata": {"b": None},
    },
    EventKind.AUDIT: {
        "id": UUID, "tenant_id": UUID, "occurred_at": "2025-03-01T12:34:56+05:30",
        "action": "update", "resource_type": "config", "resource_id": "r-1",
        "user_id": "u-1", "ip_address": "192.0.2.7", "changes": {"after": {"on": True}},
    },
}  # fmt: skip


def _json_field_edges(on: Target, name: str) -> Iterator[Case]:
    for value in NON_OBJECTS:
        yield set_field(on, name, RawJson(value), "type", "json_object_type")
    for obj in NUL_OBJECTS:
        yield set_field(on, name, obj, "nul-in-json", "nul_character")
    yield set_field(on, name, nested(MAX_JSON_DEPTH), "depth", plain=False)
    yield set_field(on, name, nested(MAX_JSON_DEPTH + 1), "depth", "json_too_deep")


def _field_edges(on: Target, name: str) -> Iterator[Case]:
    """Every edge value of one field."""
    yield without(on, name)
    yield with_null(on, name)
    if name in JSON_FIELDS:
        yield from _json_field_edges(on, name)
    elif name not in ("schema_version", "execution_time_ms"):
        for value in NON_STRINGS:
            yield set_field(on, name, RawJson(value), "type", "?")
    if name in STRINGS:
        yield set_field(on, name, "a" + NUL, "nul", "nul_character")
        yield set_field(on, name, "\\u0000", "nul-lookalike", plain=False)
    for char in ("x", "é", "😀") if name in LIMITED else ():
        yield set_field(on, name, char * MAX_LENGTHS[name], "length")
        yield set_field(on, name, char * (MAX_LENGTHS[name] + 1), "length", "string_too_long")
    for value in ENUMS.get(name, ()):
        yield set_field(on, name, value, "enum-value")
        yield set_field(on, name, value.upper(), "enum", "enum")


def _event_edges(on: Target) -> Iterator[Case]:
    """Every edge value of every field of one event."""
    for name in sorted(FIELDS[on.kind]):
        yield from _field_edges(on, name)
    for version in BAD_VERSIONS:
        yield with_version(on, version)
    for stamp in BAD_TIMESTAMPS:
        yield set_field(on, "occurred_at", RawJson(stamp), "shape", "rfc3339_timestamp")
    for stamp, error in EDGE_TIMESTAMPS.items():
        yield set_field(on, "occurred_at", stamp, "timestamp-edge", error)
    for name in ("id", "tenant_id"):
        for value in BAD_UUIDS:
            yield set_field(on, name, value, "uuid", "uuid_parsing")
        for value in OTHER_UUID_FORMS:
            yield set_field(on, name, value, "uuid-other-form", plain=False)
    yield with_bytes(on, "metadata", TOO_MANY_DIGITS, "digits", RejectReason.INVALID_JSON)


def edge_cases() -> Iterator[Case]:
    """Every edge value of every rule, on a fixed event of each kind, in two spellings."""
    for kind, event in BASE.items():
        for enc in ("compact", "escaped"):
            yield from _event_edges(Target(kind, event, enc))
    action = Target(EventKind.ACTION, BASE[EventKind.ACTION], "compact")
    for value, error in EXECUTION_TIMES.items():
        yield set_field(action, "execution_time_ms", RawJson(value), "int", error)
    audit = Target(EventKind.AUDIT, BASE[EventKind.AUDIT], "compact")
    yield set_field(audit, "ip_address", LONGEST_IP, "ip")
    yield set_field(audit, "ip_address", LONGEST_IP + "5", "ip", "string_too_long")
    for value in BAD_IPS:
        yield set_field(audit, "ip_address", value, "ip", "ip_address")
