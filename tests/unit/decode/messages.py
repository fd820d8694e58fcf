"""Messages for the decode stage's tests, and helpers to decode them."""

from __future__ import annotations

from typing import Any

import orjson

from worker.decode.decoder import EventKind, decode
from worker.records import RawRecord, Reject

MAX = 1024 * 1024
SECRET = "S3CR3T-VALUE-9f1c"  # distinctive: it must never appear in a detail


def action(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "id": "6f1e7a52-6c1d-4a8e-9d2b-3c4d5e6f7a80",
        "tenant_id": "0b7c1f3e-2a4d-4e5f-8a9b-0c1d2e3f4a5b",
        "occurred_at": "2025-03-01T12:34:56.5+01:00",
        "action_type": "helpdesk_create_ticket",
        "provider_name": "zendesk",
        "request_payload": {"subject": "Printer on fire", "tags": ["urgent", "hardware"]},
        "response_data": {"ticket": {"id": 981, "status": "new"}},
        "status": "success",
        "error_message": None,
        "execution_time_ms": 250,
        "metadata": {"request_id": "r-1", "retries": 0, "ratio": 0.5, "ok": True},
    }
    return event | fields


def audit(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "tenant_id": "0b7c1f3e-2a4d-4e5f-8a9b-0c1d2e3f4a5b",
        "occurred_at": "2025-03-01T12:34:56Z",
        "user_id": "user-42",
        "action": "update",
        "resource_type": "api_key",
        "resource_id": "key-7",
        "changes": {"before": {"scopes": ["read"]}, "after": {"scopes": ["read", "write"]}},
        "ip_address": "2001:DB8::0:1",
        "user_agent": "curl/8.5.0",
        "metadata": {"session_id": "s-1"},
    }
    return event | fields


def record(value: bytes | None, topic: str = "action-events") -> RawRecord:
    return RawRecord(topic=topic, partition=0, offset=7, key=None, value=value, timestamp_ms=0)


def run(
    value: bytes | None, kind: EventKind | None = EventKind.ACTION, max_bytes: int = MAX
) -> Any:
    return decode(record(value), kind, max_bytes)


def rejected(
    value: bytes | None, kind: EventKind = EventKind.ACTION, max_bytes: int = MAX
) -> Reject:
    result = run(value, kind, max_bytes)
    assert isinstance(result, Reject), result
    assert len(result.detail) <= 200
    return result


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)
