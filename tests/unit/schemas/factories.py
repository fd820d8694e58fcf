"""Events to validate in the wire models' tests, and the error one raises."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError


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
