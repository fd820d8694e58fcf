"""The wire format: the JSON object a producer publishes as one Kafka message.

``ActionEvent`` and ``AuditEvent`` are the contract's events on the wire (see
docs/contract.md): every field has the name and the limits of its table column,
so that an event that validates here can be stored as it is. On top of the column
limits the wire adds what PostgreSQL or the worker cannot take: a NUL character
in any string, JSON objects nested deeper than ``MAX_JSON_DEPTH``, timestamps
without an offset or outside the range Python can convert to UTC. Each limit and
check is written once, in ``schemas.rules`` (the fast decode path applies the
same ones); this module turns them into pydantic fields.

Unknown fields are ignored (producers may add fields before consumers know them);
the models are frozen. ``schemas/export.py`` turns them into JSON Schema files.
"""

from __future__ import annotations

import json
from datetime import datetime
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

from schemas.enums import ActionStatus, ActionType
from schemas.rules import (
    ACTION_MAX_LENGTH,
    DEFAULT_SCHEMA_VERSION,
    EXECUTION_TIME_MS_MAX,
    EXECUTION_TIME_MS_MIN,
    IP_ADDRESS_MAX_LENGTH,
    MAX_JSON_DEPTH,
    NUL_ESCAPE,
    NUL_FREE_PATTERN,
    PROVIDER_NAME_MAX_LENGTH,
    REQUEST_PAYLOAD_DEFAULT_JSON,
    RESOURCE_ID_MAX_LENGTH,
    RESOURCE_TYPE_MAX_LENGTH,
    SUPPORTED_SCHEMA_VERSIONS,
    USER_ID_MAX_LENGTH,
    canonical_ip,
    check_json_tree,
    check_timestamp,
    no_nul,
)

# Compared by identity: only validation_context() hands it out.
_PRECHECKED: Final = {"json_prechecked": True}


def _with_nul_pattern(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    json_schema = handler(schema)
    json_schema["pattern"] = NUL_FREE_PATTERN
    return json_schema


_NUL_FREE = AfterValidator(no_nul)
_NUL_FREE_DOC = GetPydanticSchema(get_pydantic_json_schema=_with_nul_pattern)
Text = Annotated[str, _NUL_FREE, _NUL_FREE_DOC]
# The varchar columns: the length is checked first, then the NUL rule.
ProviderName = Annotated[str, Field(max_length=PROVIDER_NAME_MAX_LENGTH), _NUL_FREE, _NUL_FREE_DOC]
UserId = Annotated[str, Field(max_length=USER_ID_MAX_LENGTH), _NUL_FREE, _NUL_FREE_DOC]
ActionName = Annotated[str, Field(max_length=ACTION_MAX_LENGTH), _NUL_FREE, _NUL_FREE_DOC]
ResourceType = Annotated[str, Field(max_length=RESOURCE_TYPE_MAX_LENGTH), _NUL_FREE, _NUL_FREE_DOC]
ResourceId = Annotated[str, Field(max_length=RESOURCE_ID_MAX_LENGTH), _NUL_FREE, _NUL_FREE_DOC]


def _json_object(value: object, info: ValidationInfo) -> dict[str, Any]:
    # Taken as it is (no copy): orjson already built a fresh dict for this event.
    if not isinstance(value, dict):
        raise PydanticCustomError("json_object_type", "Input should be a JSON object")
    if info.context is not _PRECHECKED:
        check_json_tree(value)
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
    if b"\\" in raw and NUL_ESCAPE in raw:
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


Timestamp = Annotated[
    datetime,
    PlainValidator(check_timestamp, json_schema_input_type=AwareDatetime),
    # Written back as RFC 3339 with the producer's offset (the validator's input schema
    # would otherwise serialize it, with a warning).
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
]


def _ip_json_schema(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    json_schema = handler(schema)
    json_schema["anyOf"] = [{"format": "ipv4"}, {"format": "ipv6"}]
    return json_schema


IpText = Annotated[
    str,
    Field(max_length=IP_ADDRESS_MAX_LENGTH),
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

    schema_version: SchemaVersion = Field(
        default=DEFAULT_SCHEMA_VERSION, description="Version of this wire format."
    )
    id: UUID = Field(
        description="The event's id (for actions: shared by all events of one action)."
    )
    tenant_id: UUID = Field(description="The tenant the event belongs to.")
    occurred_at: Timestamp = Field(description="When it happened: RFC 3339 with an offset.")


class ActionEvent(_Event):
    """One event of an adapter operation; all events with one id merge into one action_logs row."""

    action_type: ActionType
    provider_name: ProviderName
    # The rule's JSON text, parsed (pydantic copies a mutable default for each event).
    request_payload: JsonObject = Field(default=json.loads(REQUEST_PAYLOAD_DEFAULT_JSON))
    response_data: JsonObject | None = None
    status: ActionStatus
    error_message: Text | None = None
    execution_time_ms: Annotated[
        int, Field(strict=True, ge=EXECUTION_TIME_MS_MIN, le=EXECUTION_TIME_MS_MAX)
    ]
    metadata: JsonObject | None = None


class AuditEvent(_Event):
    """An immutable audit record for audit_logs; the first one stored for an id stands."""

    user_id: UserId | None = None
    action: ActionName
    resource_type: ResourceType
    resource_id: ResourceId
    changes: JsonObject | None = Field(default=None, description='{"before": ..., "after": ...}')
    ip_address: IpText | None = None
    user_agent: Text | None = None
    metadata: JsonObject | None = None
