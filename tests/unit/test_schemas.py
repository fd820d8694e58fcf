"""The wire models: the contract's fields and limits, and the exported JSON Schema files."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import schemas
from schemas import SUPPORTED_SCHEMA_VERSIONS, ActionEvent, AuditEvent
from schemas.events import MAX_INT4, MAX_JSON_DEPTH, validation_context
from schemas.export import json_schemas, write_json_schemas
from worker.db.models import ActionStatus, ActionType

SCHEMA_DIR = Path(schemas.__file__).resolve().parent


def action(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "occurred_at": "2025-03-01T12:34:56.123456+00:00",
        "action_type": "crm_create",
        "provider_name": "hubspot",
        "request_payload": {"email": "jane@example.com"},
        "status": "success",
        "execution_time_ms": 42,
    }
    return event | fields


def audit(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "occurred_at": "2025-03-01T12:34:56Z",
        "user_id": "user-1",
        "action": "update",
        "resource_type": "config",
        "resource_id": "provider/hubspot",
        "ip_address": "192.0.2.7",
    }
    return event | fields


def error_of(model: type[BaseModel], data: dict[str, Any]) -> tuple[str, str]:
    """The (field, type) of the single error validating ``data`` raises."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = caught.value.errors(include_input=False)
    assert len(errors) == 1, errors
    return ".".join(str(part) for part in errors[0]["loc"]), errors[0]["type"]


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep (itself counted)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_valid_action_event_is_accepted() -> None:
    """A complete action event validates into typed fields."""
    data = action(response_data={"id": 7}, error_message=None, metadata={"trace": "t"})
    event = ActionEvent.model_validate(data)
    assert event.id == uuid.UUID(data["id"])
    assert event.action_type is ActionType.CRM_CREATE
    assert event.status is ActionStatus.SUCCESS
    assert event.occurred_at == datetime(2025, 3, 1, 12, 34, 56, 123456, tzinfo=UTC)
    assert event.request_payload == {"email": "jane@example.com"}
    assert event.schema_version == 1


def test_valid_audit_event_is_accepted() -> None:
    """A complete audit event validates; optional fields default to None."""
    event = AuditEvent.model_validate(audit())
    assert event.action == "update"
    assert event.ip_address == "192.0.2.7"
    assert event.changes is None
    assert event.user_agent is None


def test_optional_fields_have_contract_defaults() -> None:
    """request_payload defaults to {} and the nullable JSON columns to None."""
    data = action()
    del data["request_payload"]
    event = ActionEvent.model_validate(data)
    assert event.request_payload == {}
    assert event.response_data is None
    assert event.metadata is None


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


@pytest.mark.parametrize("value", [member.value for member in ActionType])
def test_every_action_type_is_accepted(value: str) -> None:
    """Each of the 24 action_type_enum values is a valid action_type."""
    assert ActionEvent.model_validate(action(action_type=value)).action_type == value


@pytest.mark.parametrize(
    ("field", "value"),
    [("action_type", "crm_explode"), ("action_type", "CRM_CREATE"), ("status", "done")],
)
def test_enum_fields_refuse_other_values(field: str, value: str) -> None:
    """action_type and status take only their enum's values."""
    assert error_of(ActionEvent, action(**{field: value})) == (field, "enum")


@pytest.mark.parametrize("value", [0, 1, MAX_INT4])
def test_execution_time_in_range_is_accepted(value: int) -> None:
    """execution_time_ms takes 0 up to the PostgreSQL integer maximum."""
    assert ActionEvent.model_validate(action(execution_time_ms=value)).execution_time_ms == value


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, "greater_than_equal"),
        (MAX_INT4 + 1, "less_than_equal"),
        (2**70, "less_than_equal"),
        (1.0, "int_type"),
        (True, "int_type"),
        ("42", "int_type"),
        (None, "int_type"),
    ],
)
def test_execution_time_is_a_strict_bounded_int(value: object, error: str) -> None:
    """execution_time_ms refuses out-of-range values, floats, booleans and numeric strings."""
    assert error_of(ActionEvent, action(execution_time_ms=value)) == ("execution_time_ms", error)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::ffff:192.0.2.7", "::ffff:192.0.2.7"),
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        (None, None),
    ],
)
def test_ip_address_is_stored_as_normalized_text(given: str | None, stored: str | None) -> None:
    """A valid IPv4 or IPv6 address is kept as its canonical text."""
    assert AuditEvent.model_validate(audit(ip_address=given)).ip_address == stored


@pytest.mark.parametrize(
    "value",
    ["", "localhost", "256.1.1.1", "01.2.3.4", "1.2.3", "1::2::3", "fe80::1%eth0", "1.2.3.4\x00"],
)
def test_invalid_ip_address_is_refused(value: str) -> None:
    """Anything but a plain IPv4 or IPv6 address (no zone id) is refused."""
    assert error_of(AuditEvent, audit(ip_address=value)) == ("ip_address", "ip_address")


def test_numeric_ip_address_is_refused() -> None:
    """An IP given as a JSON number is not an address string."""
    field, _ = error_of(AuditEvent, audit(ip_address=3221225991))
    assert field == "ip_address"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-01T12:34:56Z", datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2025-03-01t12:34:56z", datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2025-03-01 14:34:56+02:00", datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)),
        ("2025-03-01T12:34:56.5-00:00", datetime(2025, 3, 1, 12, 34, 56, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_accepted(value: str, expected: datetime) -> None:
    """occurred_at takes RFC 3339 strings and keeps the instant they name."""
    occurred_at = ActionEvent.model_validate(action(occurred_at=value)).occurred_at
    assert occurred_at == expected
    assert occurred_at.utcoffset() is not None


def test_offset_is_kept() -> None:
    """The producer's offset survives validation (PostgreSQL stores the instant)."""
    occurred_at = AuditEvent.model_validate(
        audit(occurred_at="2025-03-01T12:00:00+05:30")
    ).occurred_at
    assert occurred_at.utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("2025-03-01T12:34:56", "rfc3339_timestamp"),  # naive
        ("2025-03-01T12:34Z", "rfc3339_timestamp"),  # no seconds
        ("2025-03-01", "rfc3339_timestamp"),
        ("1740832496", "rfc3339_timestamp"),
        (1740832496, "rfc3339_timestamp"),
        (1740832496.5, "rfc3339_timestamp"),
        ("2025-02-30T00:00:00Z", "rfc3339_timestamp"),
        ("2025-03-01T24:00:00Z", "rfc3339_timestamp"),
        ("2025-03-01T12:34:56+24:00", "rfc3339_timestamp"),
        ("0001-01-01T00:30:00+01:00", "timestamp_range"),  # year 0 in UTC
        ("9999-12-31T23:30:00-01:00", "timestamp_range"),  # year 10000 in UTC
        (datetime(2025, 3, 1, 12, 34, 56), "timezone_aware"),
    ],
)
def test_bad_timestamps_are_refused(value: object, error: str) -> None:
    """occurred_at refuses naive, partial, numeric, impossible and unconvertible times."""
    assert error_of(ActionEvent, action(occurred_at=value)) == ("occurred_at", error)


def test_aware_datetime_object_is_accepted() -> None:
    """A Python producer may pass an aware datetime instead of a string."""
    when = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert AuditEvent.model_validate(audit(occurred_at=when)).occurred_at == when


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


def test_unknown_fields_are_ignored() -> None:
    """Fields the contract does not know are dropped, so producers can add them first."""
    event = AuditEvent.model_validate(audit(new_field={"x": 1}, provider_name="extra"))
    assert "new_field" not in event.model_dump()


@pytest.mark.parametrize("version", [0, 2, True, "1", 1.0, None])
def test_unsupported_schema_version_is_refused(version: object) -> None:
    """schema_version must be one of the supported integers; true is not 1."""
    field, _ = error_of(ActionEvent, action(schema_version=version))
    assert field == "schema_version"


def test_supported_versions() -> None:
    """Version 1 is the only wire format so far."""
    assert sorted(SUPPORTED_SCHEMA_VERSIONS) == [1]
    assert ActionEvent.model_validate(action(schema_version=1)).schema_version == 1


def test_events_are_frozen() -> None:
    """A validated event cannot be changed."""
    event = ActionEvent.model_validate(action())
    with pytest.raises(ValidationError):
        event.provider_name = "other"  # type: ignore[misc]


def test_validation_error_text_hides_input() -> None:
    """str() of a validation error does not echo the payload (it may end up in logs)."""
    with pytest.raises(ValidationError) as caught:
        AuditEvent.model_validate(audit(action="SECRET-VALUE" * 20))
    assert "SECRET-VALUE" not in str(caught.value)


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


def test_committed_json_schemas_are_current(tmp_path: Path) -> None:
    """The JSON Schema files in schemas/ are exactly what the models export now."""
    written = write_json_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(json_schemas())
    for path in written:
        committed = SCHEMA_DIR / path.name
        assert committed.exists(), f"{committed.name} missing: run `log-ingest schemas export`"
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed.name} is stale: run `log-ingest schemas export`"
        )


def test_json_schemas_state_the_contract() -> None:
    """The exported schemas carry the dialect, required fields and column limits."""
    exported = json_schemas()
    action_schema = exported["action_event.schema.json"]
    audit_schema = exported["audit_event.schema.json"]
    assert action_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(action_schema["required"]) == {
        "id",
        "tenant_id",
        "occurred_at",
        "action_type",
        "provider_name",
        "status",
        "execution_time_ms",
    }
    assert set(audit_schema["required"]) == {
        "id",
        "tenant_id",
        "occurred_at",
        "action",
        "resource_type",
        "resource_id",
    }
    assert action_schema["properties"]["provider_name"]["maxLength"] == 100
    assert action_schema["properties"]["occurred_at"]["format"] == "date-time"
    assert action_schema["properties"]["execution_time_ms"]["maximum"] == MAX_INT4
