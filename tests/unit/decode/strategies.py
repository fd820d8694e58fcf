"""Hypothesis strategies of valid events for the decoders' agreement test, and their encodings.

Every field is drawn from what the contract allows, up to its limits (from
``schemas.rules``, so a changed limit moves the generator with it), and the
event is written in one of several equivalent JSON spellings: compact, spaced,
indented, or every string character as a ``\\uXXXX`` escape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import ActionEvent, ActionStatus, ActionType, AuditEvent
from schemas.rules import (
    EARLIEST,
    EXECUTION_TIME_MS_MAX,
    EXECUTION_TIME_MS_MIN,
    LATEST,
    MAX_LENGTHS,
    SUPPORTED_SCHEMA_VERSIONS,
)
from worker.decode.decoder import EventKind
from worker.records import RejectReason

Event = dict[str, Any]
MODELS: dict[EventKind, type[BaseModel]] = {
    EventKind.ACTION: ActionEvent,
    EventKind.AUDIT: AuditEvent,
}
# Every field nullable in the contract has None as its default.
NULLABLE = frozenset(
    name
    for model in MODELS.values()
    for name, info in model.model_fields.items()
    if not info.is_required() and info.default is None
)
JSON_FIELDS = frozenset({"request_payload", "response_data", "changes", "metadata"})
TEXT_FIELDS = frozenset({"error_message", "user_agent"})  # no length limit
ENUMS: dict[str, tuple[str, ...]] = {
    "action_type": tuple(member.value for member in ActionType),
    "status": tuple(member.value for member in ActionStatus),
}
_NAIVE_EARLIEST = EARLIEST.replace(tzinfo=None)
_NAIVE_LATEST = LATEST.replace(tzinfo=None)
_SPAN_US = (_NAIVE_LATEST - _NAIVE_EARLIEST - timedelta(days=2)) // timedelta(microseconds=1)
_MAX_OFFSET_MINUTES = 24 * 60 - 1  # +23:59; RFC 3339 has no larger offset


@dataclass(frozen=True)
class Case:
    """One message, and what the slow path must make of it."""

    kind: EventKind
    raw: bytes
    label: str  # which mutation made it (shown by --hypothesis-show-statistics)
    reason: RejectReason | None = None  # None: accepted
    field: str | None = None  # a schema violation's field, first in its detail
    error: str | None = None  # the pydantic error type, when the mutation decides it
    plain: bool = False  # valid and in the form the fast path is built to take


def text(max_size: int | None = None, min_size: int = 0) -> st.SearchStrategy[str]:
    """Any NUL-free text (control characters, non-ASCII, astral planes)."""
    alphabet = st.characters(codec="utf-8", exclude_characters="\x00")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def limited_text(limit: int) -> st.SearchStrategy[str]:
    """Text within a length limit, now and then exactly at it (long texts are slow to draw)."""
    short = text(max_size=min(limit, 24))
    return st.one_of(short, short, short, text(min_size=limit, max_size=limit))


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text(max_size=20)
)
# Small: the rules on JSON fields are about NUL and depth, tried by the mutations.
json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(text(max_size=6), children, max_size=3)
    ),
    max_leaves=5,
)
json_objects = st.dictionaries(text(max_size=6), json_values, max_size=3)


def format_timestamp(local: datetime, offset_minutes: int, sep: str, extra: str, zulu: str) -> str:
    """RFC 3339 text of a local time at an offset; ``extra`` digits follow the microseconds."""
    fraction = f".{local.microsecond:06d}{extra}" if local.microsecond or extra else ""
    if offset_minutes == 0 and zulu in ("Z", "z"):
        offset = zulu
    else:
        sign = "-" if offset_minutes < 0 or (offset_minutes == 0 and zulu == "-") else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        offset = f"{sign}{hours:02d}:{minutes:02d}"
    return local.replace(microsecond=0).isoformat(sep) + fraction + offset


def in_range(local: datetime, offset_minutes: int) -> bool:
    """Whether the instant is within the contract's timestamp range (digits past 6 are cut)."""
    offset = timedelta(minutes=offset_minutes)
    return _NAIVE_EARLIEST + offset <= local <= _NAIVE_LATEST + offset


# Separator, digits past the microseconds, how a zero offset is written: one draw.
_SPELLINGS = st.sampled_from(
    [
        (sep, extra, zulu)
        for sep in "Tt "
        for extra in ("", "0", "999")
        for zulu in ("Z", "z", "", "-")
    ]
)


@st.composite
def timestamps(draw: st.DrawFn, edges: bool = False) -> tuple[str, bool]:
    """An RFC 3339 timestamp and whether it is in range; ``edges``: within a second of one."""
    offset_minutes = draw(st.integers(-_MAX_OFFSET_MINUTES, _MAX_OFFSET_MINUTES) | st.just(0))
    if edges:
        edge = draw(st.sampled_from([_NAIVE_EARLIEST, _NAIVE_LATEST]))
        jitter = timedelta(microseconds=draw(st.integers(-1_000_000, 1_000_000)))
        try:
            local = edge + timedelta(minutes=offset_minutes) + jitter
        except OverflowError:  # year 0 or 10000: not a date Python can write
            local = edge
            offset_minutes = 0
    else:  # a day inside the range: in it at any offset. Integers draw faster than datetimes.
        local = _NAIVE_EARLIEST + timedelta(days=1, microseconds=draw(st.integers(0, _SPAN_US)))
    sep, extra, zulu = draw(_SPELLINGS)
    stamp = format_timestamp(local, offset_minutes, sep, extra, zulu)
    return stamp, in_range(local, offset_minutes)


def _uuid_text(value: uuid.UUID, form: str) -> str:
    return {"lower": str(value), "upper": str(value).upper(), "hex": value.hex}[form]


uuid_texts = st.builds(_uuid_text, st.uuids(), st.sampled_from(["lower", "lower", "upper", "hex"]))
# Built from integers: several times faster to draw than st.ip_addresses().
_ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
_ipv6 = st.integers(0, 2**128 - 1).map(IPv6Address)
ip_texts = st.one_of(_ipv4.map(str), _ipv6.map(str), _ipv6.map(lambda ip: ip.exploded.upper()))

VALID: dict[str, st.SearchStrategy[Any]] = {
    "schema_version": st.sampled_from(sorted(SUPPORTED_SCHEMA_VERSIONS)),
    "id": uuid_texts,
    "tenant_id": uuid_texts,
    "occurred_at": timestamps().map(lambda stamp: stamp[0]),
    "execution_time_ms": st.integers(EXECUTION_TIME_MS_MIN, EXECUTION_TIME_MS_MAX)
    | st.sampled_from([EXECUTION_TIME_MS_MIN, EXECUTION_TIME_MS_MAX]),
    "ip_address": ip_texts,
    **{name: st.sampled_from(values) for name, values in ENUMS.items()},
    **{name: limited_text(limit) for name, limit in MAX_LENGTHS.items() if name != "ip_address"},
    **{name: text() for name in TEXT_FIELDS},
    **{name: json_objects for name in JSON_FIELDS},
}


def valid_value(name: str) -> st.SearchStrategy[Any]:
    """A valid value of a field: null too where the contract allows it."""
    return VALID[name] | st.none() if name in NULLABLE else VALID[name]


@st.composite
def valid_events(draw: st.DrawFn, kind: EventKind) -> Event:
    """A valid event of ``kind``: every required field, each optional one or not, any order."""
    fields = MODELS[kind].model_fields
    names = [name for name, info in fields.items() if info.is_required() or draw(st.booleans())]
    return {name: draw(valid_value(name)) for name in draw(st.permutations(names))}


class RawJson(str):
    """JSON text to put into a message as it is (a spelling no encoder writes)."""


def _escaped_string(value: str) -> str:
    # UTF-16 code units: astral characters become surrogate pairs, as JSON spells them;
    # hex digits in both cases, as JSON allows.
    units = value.encode("utf-16-be")
    pairs = (f"\\u{units[i]:02x}{units[i + 1]:02X}" for i in range(0, len(units), 2))
    return '"' + "".join(pairs) + '"'


def escape_all(value: Any) -> str:
    """JSON text with every character of every key and string as a \\uXXXX escape."""
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, str):
        return _escaped_string(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{_escaped_string(k)}:{escape_all(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(escape_all(item) for item in value) + "]"
    return json.dumps(value)


ENCODERS: dict[str, Callable[[Any], str]] = {
    "compact": lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")),
    "ascii": json.dumps,  # non-ASCII as \u escapes, a space after each separator
    "indented": lambda value: json.dumps(value, ensure_ascii=False, indent=2),
    "escaped": escape_all,
}
encoders = st.sampled_from(sorted(ENCODERS))


def encode(event: Event, encoder: str) -> bytes:
    """The event as a message, spelled the ``encoder``'s way; ``RawJson`` values as they are."""
    if encoder == "escaped":
        return escape_all(event).encode("utf-8")
    raws: list[RawJson] = []

    def placeholder(value: Any) -> Any:
        if not isinstance(value, RawJson):
            return value
        raws.append(value)
        return f"raw-json-{len(raws) - 1}"

    text = ENCODERS[encoder]({key: placeholder(value) for key, value in event.items()})
    for index, value in enumerate(raws):
        text = text.replace(f'"raw-json-{index}"', value, 1)
    return text.encode("utf-8")
