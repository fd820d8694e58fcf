"""ActionEvent: its fields, defaults, enums, execution time and versions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas import SUPPORTED_SCHEMA_VERSIONS, ActionEvent, ActionStatus, ActionType
from schemas.rules import MAX_INT4
from tests.unit.schemas.factories import action, error_of


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


def test_optional_fields_have_contract_defaults() -> None:
    """request_payload defaults to {} and the nullable JSON columns to None."""
    data = action()
    del data["request_payload"]
    event = ActionEvent.model_validate(data)
    assert event.request_payload == {}
    assert event.response_data is None
    assert event.metadata is None


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
