"""The wire format: the JSON object a producer publishes as one Kafka message.

``ActionEvent`` and ``AuditEvent`` are the contract of SCHEMA.md ("Events on the
wire"): every field has the name and the limits of its table column, so that an
event that validates here can be stored as it is. On top of the column limits
the wire adds what PostgreSQL or the worker cannot take: a NUL character in any
string, JSON objects nested deeper than ``MAX_JSON_DEPTH``, timestamps without
an offset or outside the range Python can convert to UTC.

Unknown fields are ignored (producers may add fields before consumers know them);
the models are frozen. ``schemas/export.py`` turns them into JSON Schema files.
"""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    GetPydanticSchema,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from worker.db.models import ActionStatus, ActionType

SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({1})
MAX_INT4: Final = 2_147_483_647  # PostgreSQL integer
# orjson cannot serialize deeper than 254 levels; no real payload comes close to this.
MAX_JSON_DEPTH: Final = 64

# RFC 3339 date-time (section 5.6, with the "t"/space separators its notes allow):
# seconds and an offset are required, unix numbers and bare dates are not timestamps.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Within these bounds every offset still converts to a UTC datetime (the database
# driver does that conversion and would fail on year 0 or 10000).
_EARLIEST: Final = datetime(1, 1, 2, tzinfo=UTC)
_LATEST: Final = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
# For the JSON Schema only (producers' validators); the models check with `in`.
_NO_NUL_PATTERN: Final = "^[^\\u0000]*$"
# Compared by identity: only validation_context() hands it out.
_PRECHECKED: Final = {"json_prechecked": True}


def _nul_error(what: str = "String") -> PydanticCustomError:
    return PydanticCustomError(
        "nul_character", f"{what} should not contain a NUL character (U+0000)"
    )


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000: refuse it here, not at COPY time.
    if "\x00" in value:
        raise _nul_error()
    return value


def _with_nul_pattern(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    json_schema = handler(schema)
    json_schema["pattern"] = _NO_NUL_PATTERN
    return json_schema


_NUL_FREE = AfterValidator(_no_nul)
_NUL_FREE_DOC = GetPydanticSchema(get_pydantic_json_schema=_with_nul_pattern)
Text = Annotated[str, _NUL_FREE, _NUL_FREE_DOC]
Str100 = Annotated[str, Field(max_length=100), _NUL_FREE, _NUL_FREE_DOC]
Str255 = Annotated[str, Field(max_length=255), _NUL_FREE, _NUL_FREE_DOC]


def _check_keys(node: dict[str, Any]) -> None:
    for key in node:
        if type(key) is not str:
            raise PydanticCustomError("json_key_type", "JSON object keys should be strings")
        if "\x00" in key:
            raise _nul_error("A JSON key")


def _check_json_tree(root: dict[str, Any]) -> None:
    """Refuse a NUL in any key or string, non-string keys and too deep nesting.

    Iterative on purpose: a recursive walk would hit Python's recursion limit on
    hostile input long before orjson's own depth limit.
    """
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise PydanticCustomError(
                "json_too_deep",
                "JSON should not be nested deeper than {max_depth} levels",
                {"max_depth": MAX_JSON_DEPTH},
            )
        if isinstance(node, dict):
            _check_keys(node)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, str):
                if "\x00" in child:
                    raise _nul_error("A JSON string")
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


def _json_object(value: object, info: ValidationInfo) -> dict[str, Any]:
    # Taken as it is (no copy): orjson already built a fresh dict for this event.
    if not isinstance(value, dict):
        raise PydanticCustomError("json_object_type", "Input should be a JSON object")
    if info.context is not _PRECHECKED:
        _check_json_tree(value)
    return value


def validation_context(raw: bytes) -> dict[str, bool] | None:
    """The context for ``model_validate`` of ``orjson.loads(raw)``: skips proven checks.

    Walking every JSON object for NUL and depth costs more than the rest of the
    validation, and the raw bytes usually prove it unnecessary: orjson refuses raw
    control characters, so a NUL can only come from a ``\\u0000`` escape, and no
    value nests deeper than the message has opening brackets. Returns None (walk)
    when the bytes do not prove it. Only valid for objects parsed from ``raw``.
    """
    # A NUL needs a backslash escape: most messages have no backslash at all, and
    # looking for one byte is several times cheaper than looking for six.
    if b"\\" in raw and b"\\u0000" in raw:
        return None
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
        return None
    return _PRECHECKED


def _json_object_doc(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    json_schema = handler(schema)
    json_schema["description"] = (
        f"A JSON object, nested at most {MAX_JSON_DEPTH} levels; "
        "no key or string in it may contain U+0000."
    )
    return json_schema


JsonObject = Annotated[
    dict[str, Any],
    PlainValidator(_json_object, json_schema_input_type=dict[str, Any]),
    GetPydanticSchema(get_pydantic_json_schema=_json_object_doc),
]


def _timestamp_error() -> PydanticCustomError:
    return PydanticCustomError(
        "rfc3339_timestamp", "Input should be an RFC 3339 timestamp string with an offset"
    )


def _parse_rfc3339(value: str) -> datetime:
    # The regex proves the RFC 3339 shape (pydantic's own datetime parser also
    # takes "1700000000", bare dates and times without seconds); fromisoformat,
    # in C, checks the ranges. One Python call for the whole field: it runs per event.
    if _RFC3339.fullmatch(value) is None:
        raise _timestamp_error()
    try:
        return datetime.fromisoformat(value[:-1] + "Z" if value[-1] == "z" else value)
    except ValueError:  # its message quotes the input: replace it
        raise _timestamp_error() from None


def check_timestamp(value: object) -> datetime:
    """An aware datetime from an RFC 3339 string (or an aware datetime), within range."""
    # Aware datetimes pass so that a Python producer can build events directly;
    # on the wire only strings exist, and unix numbers are refused.
    if isinstance(value, str):
        value = _parse_rfc3339(value)  # aware: the pattern requires an offset
    elif not isinstance(value, datetime):
        raise _timestamp_error()
    elif value.utcoffset() is None:
        raise PydanticCustomError("timezone_aware", "Input should have timezone info")
    # Years 2 to 9998 are in range at any offset: the comparisons run only at the edges.
    if not 1 < value.year < 9999 and not _EARLIEST <= value <= _LATEST:
        raise PydanticCustomError(
            "timestamp_range", "Timestamp should be between 0001-01-02 and 9999-12-30 UTC"
        )
    return value


Timestamp = Annotated[
    datetime,
    PlainValidator(check_timestamp, json_schema_input_type=AwareDatetime),
    # Written back as RFC 3339 with the producer's offset (the validator's input schema
    # would otherwise serialize it, with a warning).
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
]


def canonical_ip(value: str) -> str:
    """The canonical text of an IPv4 or IPv6 address."""
    # inet_pton/inet_ntop: strict (no zone ids, no leading zeros) and ~20x faster
    # than the ipaddress module; inet_ntop gives the canonical compressed text.
    family = socket.AF_INET6 if ":" in value else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, value))
    except (OSError, ValueError):  # ValueError: NUL or surrogates in the text
        raise PydanticCustomError("ip_address", "Input should be an IPv4 or IPv6 address") from None


def _ip_json_schema(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    json_schema = handler(schema)
    json_schema["anyOf"] = [{"format": "ipv4"}, {"format": "ipv6"}]
    return json_schema


IpText = Annotated[
    str,
    Field(max_length=45),
    AfterValidator(canonical_ip),
    GetPydanticSchema(get_pydantic_json_schema=_ip_json_schema),
]


def _supported_version(value: int) -> int:
    if value not in SUPPORTED_SCHEMA_VERSIONS:
        raise PydanticCustomError("unsupported_version", "Unsupported schema_version")
    return value


SchemaVersion = Annotated[
    int,
    Field(strict=True, json_schema_extra={"enum": sorted(SUPPORTED_SCHEMA_VERSIONS)}),
    AfterValidator(_supported_version),
]


class _Event(BaseModel):
    """Fields every event has."""

    # hide_input_in_errors: str(ValidationError) must not echo payloads into logs.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    schema_version: SchemaVersion = Field(default=1, description="Version of this wire format.")
    id: UUID = Field(
        description="The event's id (for actions: shared by all events of one action)."
    )
    tenant_id: UUID = Field(description="The tenant the event belongs to.")
    occurred_at: Timestamp = Field(description="When it happened: RFC 3339 with an offset.")


class ActionEvent(_Event):
    """One event of an adapter operation; all events with one id merge into one action_logs row."""

    action_type: ActionType
    provider_name: Str100
    request_payload: JsonObject = Field(default={})
    response_data: JsonObject | None = None
    status: ActionStatus
    error_message: Text | None = None
    execution_time_ms: Annotated[int, Field(strict=True, ge=0, le=MAX_INT4)]
    metadata: JsonObject | None = None


class AuditEvent(_Event):
    """An immutable audit record for audit_logs; the first one stored for an id stands."""

    user_id: Str255 | None = None
    action: Str100
    resource_type: Str100
    resource_id: Str255
    changes: JsonObject | None = Field(default=None, description='{"before": ..., "after": ...}')
    ip_address: IpText | None = None
    user_agent: Text | None = None
    metadata: JsonObject | None = None
