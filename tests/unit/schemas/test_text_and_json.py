"""The rules of strings and JSON fields: column lengths, the NUL rule, nesting, objects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from schemas import ActionEvent, AuditEvent
from schemas.events import validation_context
from schemas.rules import MAX_JSON_DEPTH
from tests.unit.schemas.factories import action, audit, error_of, nested


@pytest.mark.parametrize(
    ("model", "factory", "field", "limit"),
    [
        (ActionEvent, action, "provider_name", 100),
        (AuditEvent, audit, "user_id", 255),
        (AuditEvent, audit, "action", 100),
        (AuditEvent, audit, "resource_type", 100),
        (AuditEvent, audit, "resource_id", 255),
    ],
)
def test_string_lengths_are_the_columns(
    model: type[BaseModel], factory: Any, field: str, limit: int
) -> None:
    """A varchar field takes exactly its column's length in characters, not one more."""
    model.model_validate(factory(**{field: "é" * limit}))
    assert error_of(model, factory(**{field: "x" * (limit + 1)})) == (field, "string_too_long")


@pytest.mark.parametrize(
    ("model", "factory", "field"),
    [
        (ActionEvent, action, "provider_name"),
        (ActionEvent, action, "error_message"),
        (AuditEvent, audit, "user_id"),
        (AuditEvent, audit, "action"),
        (AuditEvent, audit, "resource_type"),
        (AuditEvent, audit, "resource_id"),
        (AuditEvent, audit, "user_agent"),
    ],
)
def test_nul_in_a_string_field_is_refused(model: type[BaseModel], factory: Any, field: str) -> None:
    """No text column may receive U+0000: PostgreSQL cannot store it."""
    assert error_of(model, factory(**{field: "a\x00b"})) == (field, "nul_character")


@pytest.mark.parametrize(
    ("model", "factory", "field"),
    [
        (ActionEvent, action, "request_payload"),
        (ActionEvent, action, "response_data"),
        (ActionEvent, action, "metadata"),
        (AuditEvent, audit, "changes"),
        (AuditEvent, audit, "metadata"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        {"a": "x\x00"},
        {"a\x00": 1},
        {"a": {"b": [1, {"c": ["ok", "\x00"]}]}},
        {"a": [{"b\x00": None}]},
    ],
)
def test_nul_inside_a_json_object_is_refused(
    model: type[BaseModel], factory: Any, field: str, value: dict[str, Any]
) -> None:
    """A NUL in any key or string at any depth of a jsonb field is refused, naming the field."""
    assert error_of(model, factory(**{field: value})) == (field, "nul_character")


def test_json_nesting_is_limited() -> None:
    """JSON fields nest at most MAX_JSON_DEPTH levels (orjson cannot write much deeper)."""
    ActionEvent.model_validate(action(request_payload=nested(MAX_JSON_DEPTH)))
    too_deep = action(metadata={"list": [nested(MAX_JSON_DEPTH - 1)]})
    assert error_of(ActionEvent, too_deep) == ("metadata", "json_too_deep")


@pytest.mark.parametrize("value", [[1, 2], "{}", 3, True])
def test_json_fields_must_be_objects(value: object) -> None:
    """A jsonb field takes a JSON object, not an array, string or number."""
    assert error_of(AuditEvent, audit(changes=value)) == ("changes", "json_object_type")


@pytest.mark.parametrize(
    ("raw", "proven"),
    [
        (b'{"a": {"b": [1, 2]}}', True),
        (b'{"a": "\\u0000"}', False),
        (b'{"a": "\\\\u0000"}', False),  # an escaped backslash: conservative, walks
        (b'{"a": [' + b"[]," * MAX_JSON_DEPTH + b"[]]}", False),
    ],
)
def test_validation_context_only_skips_what_the_bytes_prove(raw: bytes, proven: bool) -> None:
    """The JSON walk is skipped only without a \\u0000 escape and with few brackets."""
    assert (validation_context(raw) is not None) is proven
