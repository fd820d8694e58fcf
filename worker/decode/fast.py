"""The fast path of decode: a plain, valid event from bytes to a table row in one C pass.

msgspec parses the message straight into a typed struct whose JSON-object fields
stay raw bytes (``msgspec.Raw``): a payload is checked for well-formed JSON but
never built into Python objects and never serialized again. The producer's JSON
text goes to PostgreSQL as it came, on this path and on the slow one (jsonb
normalizes it), so numbers are stored exactly, however long.

This path only ever says yes or "not sure" (None). It declines whenever the slow
path (the same JSON grammar, then the pydantic models of ``schemas.events``, which
word every reject) might judge the message differently, and ``worker.decode.decoder``
then asks the slow path. Both take their limits, defaults and checks from
``schemas.rules``, bound here to module names at import (nothing is looked up per
event). The invariant, held by a property test (tests/unit/decode/test_agreement.py):
what this accepts, the slow path accepts too, with an equal row, and what the slow
path rejects this declines. The byte checks in ``_plain`` exist for that: msgspec
skips unknown fields and raw payloads without checking their UTF-8 or parsing their
numbers, and it accepts ``\\u0000``, which PostgreSQL cannot store.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec
from pydantic_core import PydanticCustomError

from schemas.enums import ActionStatus, ActionType
from schemas.rules import (
    ACTION_MAX_LENGTH,
    DEFAULT_SCHEMA_VERSION,
    EXECUTION_TIME_MS_MAX,
    EXECUTION_TIME_MS_MIN,
    IP_ADDRESS_MAX_LENGTH,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    NUL_ESCAPE,
    PROVIDER_NAME_MAX_LENGTH,
    REQUEST_PAYLOAD_DEFAULT_JSON,
    RESOURCE_ID_MAX_LENGTH,
    RESOURCE_TYPE_MAX_LENGTH,
    SUPPORTED_SCHEMA_VERSIONS,
    USER_ID_MAX_LENGTH,
    canonical_ip,
    check_timestamp,
)
from worker.records import ActionRow, AuditRow

_DIGITS_TO_ZERO: Final = bytes.maketrans(b"0123456789", b"0000000000")
_DIGITS_RUN: Final = b"0" * (MAX_INT_DIGITS + 1)
_ALL_BUT_OPENERS_AND_ESCAPES: Final = bytes(byte for byte in range(256) if byte not in b"{[\\")
# The deepest a message may nest: a JSON field's own object is its level 1, the message's 2.
_MAX_MESSAGE_DEPTH: Final = MAX_JSON_DEPTH + 1
_BRACKETS_TO_PARENS: Final = bytes.maketrans(b"{[]}", b"(())")
_ALL_BUT_BRACKETS_AND_QUOTES: Final = bytes(byte for byte in range(256) if byte not in b'{[]}"')
_TOO_DEEP_RUN: Final = b"(" * (_MAX_MESSAGE_DEPTH + 1)
_PAREN_SIGNS: Final = bytes.maketrans(b"()", b"\x01\xff")  # +1 and -1 as signed bytes
_COLLAPSES: Final = 6  # enough for real payloads (a list of objects is 4 deep in a message)

# The limits as msgspec constraints, checked in C while parsing.
ProviderName = Annotated[str, msgspec.Meta(max_length=PROVIDER_NAME_MAX_LENGTH)]
UserId = Annotated[str, msgspec.Meta(max_length=USER_ID_MAX_LENGTH)]
ActionName = Annotated[str, msgspec.Meta(max_length=ACTION_MAX_LENGTH)]
ResourceType = Annotated[str, msgspec.Meta(max_length=RESOURCE_TYPE_MAX_LENGTH)]
ResourceId = Annotated[str, msgspec.Meta(max_length=RESOURCE_ID_MAX_LENGTH)]
ExecutionTimeMs = Annotated[int, msgspec.Meta(ge=EXECUTION_TIME_MS_MIN, le=EXECUTION_TIME_MS_MAX)]
IpText = Annotated[str, msgspec.Meta(max_length=IP_ADDRESS_MAX_LENGTH)]
# The enums' values as literals: msgspec checks membership in C and gives the text itself
# (an enum member's ``.value`` is a Python-level property, 0.1 us each).
ActionTypeText = Literal[tuple(member.value for member in ActionType)]  # type: ignore[valid-type]
ActionStatusText = Literal[tuple(member.value for member in ActionStatus)]  # type: ignore[valid-type]
_EMPTY_OBJECT: Final = msgspec.Raw(REQUEST_PAYLOAD_DEFAULT_JSON)
_ABSENT: Final = msgspec.Raw(b"null")


class ActionMessage(msgspec.Struct, gc=False):
    """``schemas.events.ActionEvent``, with its JSON objects left raw."""

    id: UUID
    tenant_id: UUID
    occurred_at: str
    action_type: ActionTypeText  # type: ignore[valid-type]  # built from the enum
    provider_name: ProviderName
    status: ActionStatusText  # type: ignore[valid-type]
    execution_time_ms: ExecutionTimeMs
    schema_version: int = DEFAULT_SCHEMA_VERSION
    request_payload: msgspec.Raw = _EMPTY_OBJECT
    response_data: msgspec.Raw = _ABSENT
    error_message: str | None = None
    metadata: msgspec.Raw = _ABSENT


class AuditMessage(msgspec.Struct, gc=False):
    """``schemas.events.AuditEvent``, with its JSON objects left raw."""

    id: UUID
    tenant_id: UUID
    occurred_at: str
    action: ActionName
    resource_type: ResourceType
    resource_id: ResourceId
    schema_version: int = DEFAULT_SCHEMA_VERSION
    user_id: UserId | None = None
    changes: msgspec.Raw = _ABSENT
    ip_address: IpText | None = None
    user_agent: str | None = None
    metadata: msgspec.Raw = _ABSENT


class _ActionJson(msgspec.Struct, gc=False):
    request_payload: msgspec.Raw = _EMPTY_OBJECT
    response_data: msgspec.Raw = _ABSENT
    metadata: msgspec.Raw = _ABSENT


class _AuditJson(msgspec.Struct, gc=False):
    changes: msgspec.Raw = _ABSENT
    metadata: msgspec.Raw = _ABSENT


class _Declined(ValueError):
    """The slow path must judge this message."""


_DECODE_ACTION: Final = msgspec.json.Decoder(ActionMessage).decode
_DECODE_AUDIT: Final = msgspec.json.Decoder(AuditMessage).decode
_DECODE_ACTION_JSON: Final = msgspec.json.Decoder(_ActionJson).decode
_DECODE_AUDIT_JSON: Final = msgspec.json.Decoder(_AuditJson).decode
# A NamedTuple's own __new__ is Python code; tuple.__new__ builds the same row for half.
_new_row: Final = tuple.__new__
_OBJECT_OR_NULL: Final = "{n"  # the first character of a JSON object, or of null
_DECLINE: Final = (msgspec.DecodeError, _Declined, PydanticCustomError)


def action_row(raw: bytes) -> ActionRow | None:
    """The row of a plain, valid action event; None when the slow path must judge it."""
    if not _plain(raw):
        return None
    try:
        event = _DECODE_ACTION(raw)
        # The JSON fields' text, checked inline (a helper called per field cost 0.14 us
        # more): each is a valid JSON value, so its first character tells its type.
        payload = str(event.request_payload, "utf-8")
        response = str(event.response_data, "utf-8")
        metadata = str(event.metadata, "utf-8")
        if (
            event.schema_version not in SUPPORTED_SCHEMA_VERSIONS
            or payload[0] != "{"
            or response[0] not in _OBJECT_OR_NULL
            or metadata[0] not in _OBJECT_OR_NULL
        ):
            return None
        return _new_row(ActionRow, (
            event.id,
            event.tenant_id,
            event.action_type,
            event.provider_name,
            payload,
            None if response == "null" else response,
            event.status,
            event.error_message,
            event.execution_time_ms,
            None if metadata == "null" else metadata,
            check_timestamp(event.occurred_at),
        ))  # fmt: skip
    except _DECLINE:  # msgspec.ValidationError is a DecodeError
        return None


def audit_row(raw: bytes) -> AuditRow | None:
    """The row of a plain, valid audit event; None when the slow path must judge it."""
    if not _plain(raw):
        return None
    try:
        event = _DECODE_AUDIT(raw)
        changes = str(event.changes, "utf-8")  # checked as in action_row
        metadata = str(event.metadata, "utf-8")
        if (
            event.schema_version not in SUPPORTED_SCHEMA_VERSIONS
            or changes[0] not in _OBJECT_OR_NULL
            or metadata[0] not in _OBJECT_OR_NULL
        ):
            return None
        ip = event.ip_address
        return _new_row(AuditRow, (
            event.id,
            event.tenant_id,
            event.user_id,
            event.action,
            event.resource_type,
            event.resource_id,
            None if changes == "null" else changes,
            None if ip is None else canonical_ip(ip),
            event.user_agent,
            None if metadata == "null" else metadata,
            check_timestamp(event.occurred_at),
        ))  # fmt: skip
    except _DECLINE:
        return None


def action_json(raw: bytes) -> tuple[str, str | None, str | None]:
    """request_payload, response_data, metadata of a message the slow path accepted, as sent."""
    fields = _DECODE_ACTION_JSON(raw)
    return (
        _object_text(fields.request_payload),
        _optional_object_text(fields.response_data),
        _optional_object_text(fields.metadata),
    )


def audit_json(raw: bytes) -> tuple[str | None, str | None]:
    """changes, metadata of a message the slow path accepted, as sent."""
    fields = _DECODE_AUDIT_JSON(raw)
    return _optional_object_text(fields.changes), _optional_object_text(fields.metadata)


ROW_OF: Final[dict[str, Callable[[bytes], ActionRow | AuditRow | None]]] = {
    "action": action_row,
    "audit": audit_row,
}


def _plain(raw: bytes) -> bool:
    """Whether nothing in the bytes needs the slow path's judgement (see the module doc)."""
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return False
    # One pass keeps what opens a level of nesting, and the escapes' backslashes.
    kept = raw.translate(None, _ALL_BUT_OPENERS_AND_ESCAPES)
    escapes = kept.count(b"\\")  # kept is short: a few dozen bytes
    if escapes and NUL_ESCAPE in raw:
        return False
    # Few messages have more openers than the depth limit; only those need their depth.
    if len(kept) - escapes > _MAX_MESSAGE_DEPTH and not _shallow(raw, escapes):
        return False
    # An integer too long for Python's int() is one the slow path cannot parse.
    return len(raw) <= MAX_INT_DIGITS or _DIGITS_RUN not in raw.translate(_DIGITS_TO_ZERO)


def _shallow(raw: bytes, escapes: int) -> bool:
    """Whether no value of the message nests deeper than ``_MAX_MESSAGE_DEPTH``.

    Exact for valid JSON (other bytes msgspec refuses anyway), from the brackets
    outside strings as parentheses; bytes methods only, in C. 5 us for an action of
    70 small objects (2.3 KB), where a regex taking the strings out costs 32 us (60
    with the plain ``"(?:[^"\\]|\\.)*"``), and a running sum in place of the passes 7.
    """
    if escapes:
        # Escaped backslashes, then escaped quotes: every backslash left escapes
        # neither, and every quote left opens or closes a string.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # An adjacent pair of quotes holds no bracket (an empty string, or the end of one
    # string and the start of the next): dropping it leaves the quotes paired.
    tree = raw.translate(_BRACKETS_TO_PARENS, _ALL_BUT_BRACKETS_AND_QUOTES).replace(b'""', b"")
    if b'"' in tree:  # strings holding brackets: keep what is between them
        tree = b"".join(tree.split(b'"')[::2])
    if _TOO_DEEP_RUN in tree:  # the usual hostile shape, found by one scan
        return False
    # Each pass drops the innermost pairs, one level: a real payload is gone in a
    # few. What is left is deep and maybe long (a hostile 1 MiB of chains 63 deep:
    # 65 passes took 130 ms), so a running sum of +1/-1 ends it in one pass (27 ms).
    for _ in range(_COLLAPSES):
        tree = tree.replace(b"()", b"")
    if not tree:
        return True
    return max(accumulate(memoryview(tree.translate(_PAREN_SIGNS)).cast("b"))) <= (
        _MAX_MESSAGE_DEPTH - _COLLAPSES
    )


def _optional_object_text(value: msgspec.Raw) -> str | None:
    text = str(value, "utf-8")
    if text == "null":
        return None
    if text[:1] != "{":  # an array, a string, ...: the slow path words it
        raise _Declined
    return text


def _object_text(value: msgspec.Raw) -> str:
    text = _optional_object_text(value)
    if text is None:
        raise _Declined
    return text
