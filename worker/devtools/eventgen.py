"""Realistic action and audit events (and deliberately bad ones) for demos, load and tests.

Used by ``log-ingest produce``, ``log-ingest dev`` and the benchmark; the
tests use the same generator, so what they prove holds for the demo data.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from schemas.enums import ActionStatus, ActionType
from worker.records import RejectReason

PROVIDERS = {
    "crm": ("hubspot", "salesforce", "pipedrive"),
    "helpdesk": ("zendesk", "freshdesk", "intercom"),
    "calendar": ("google_calendar", "outlook"),
    "email": ("gmail", "outlook", "sendgrid"),
    "knowledge": ("notion", "confluence", "pinecone"),
}
AUDIT_ACTIONS = ("create", "update", "delete", "login", "logout", "rotate_key", "export")
RESOURCE_TYPES = ("tenant", "config", "api_key", "user", "webhook", "integration")
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda", "zeta")


@dataclass(frozen=True)
class Generated:
    """One message to publish and what the worker must make of it."""

    topic_kind: str  # "action" or "audit"
    key: bytes | None
    value: bytes | None
    expected_reject: RejectReason | None  # None: it must become (or merge into) a row
    event: dict[str, object] | None  # the event as sent, when it is a valid one


class EventFactory:
    """Builds events for a fixed set of tenants, reproducibly from a seed."""

    def __init__(
        self,
        tenants: Sequence[uuid.UUID],
        seed: int = 7,
        inactive_tenants: Sequence[uuid.UUID] = (),
    ) -> None:
        self.tenants = list(tenants)
        self.inactive_tenants = list(inactive_tenants)
        self.rng = random.Random(seed)
        self.start = datetime(2026, 11, 1, tzinfo=UTC)

    def _timestamp(self) -> str:
        return (self.start + timedelta(seconds=self.rng.randrange(0, 86400 * 20))).isoformat()

    def _payload(self, min_bytes: int = 200, max_bytes: int = 2000) -> dict[str, object]:
        target = self.rng.randint(min_bytes, max_bytes)
        payload: dict[str, object] = {"request_id": str(uuid.UUID(int=self.rng.getrandbits(128)))}
        notes: list[str] = []
        size = len(orjson.dumps(payload)) + 12
        while size < target:
            note = " ".join(self.rng.choices(WORDS, k=6))
            notes.append(note)
            size += len(note) + 3
        payload["notes"] = notes
        return payload

    def action(self, **overrides: object) -> dict[str, object]:
        action_type = self.rng.choice(list(ActionType))
        event: dict[str, object] = {
            "schema_version": 1,
            "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "tenant_id": str(self.rng.choice(self.tenants)),
            "occurred_at": self._timestamp(),
            "action_type": action_type.value,
            "provider_name": self.rng.choice(PROVIDERS[action_type.value.split("_")[0]]),
            "request_payload": self._payload(),
            "response_data": {"ok": True, "count": self.rng.randint(0, 100)},
            "status": self.rng.choice(list(ActionStatus)).value,
            "error_message": None,
            "execution_time_ms": self.rng.randint(1, 5000),
            "metadata": {"region": self.rng.choice(("eu", "us", "ap"))},
        }
        event.update(overrides)
        return event

    def audit(self, **overrides: object) -> dict[str, object]:
        event: dict[str, object] = {
            "schema_version": 1,
            "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "tenant_id": str(self.rng.choice(self.tenants)),
            "occurred_at": self._timestamp(),
            "user_id": f"user-{self.rng.randint(1, 500)}",
            "action": self.rng.choice(AUDIT_ACTIONS),
            "resource_type": self.rng.choice(RESOURCE_TYPES),
            "resource_id": str(self.rng.randint(1, 10_000)),
            "changes": {"before": {"enabled": False}, "after": {"enabled": True}},
            "ip_address": f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.7",
            "user_agent": "adapter-service/1.4",
            "metadata": {"session_id": self.rng.getrandbits(32)},
        }
        event.update(overrides)
        return event

    def lifecycle(self) -> list[dict[str, object]]:
        """A pending event then its outcome a little later, sharing one id."""
        pending = self.action(status="pending", response_data=None)
        later = datetime.fromisoformat(str(pending["occurred_at"])) + timedelta(seconds=2)
        done = dict(pending, status="success", occurred_at=later.isoformat(),
                    response_data={"ok": True})  # fmt: skip
        return [pending, done]

    def valid(self, kind: str, event: dict[str, object]) -> Generated:
        return Generated(kind, str(event["id"]).encode(), orjson.dumps(event), None, event)

    def invalid(self, reason: RejectReason, max_event_bytes: int) -> Generated:
        """A message that must be rejected with exactly this reason."""
        kind = self.rng.choice(("action", "audit"))
        if reason is RejectReason.UNKNOWN_TENANT:
            value = orjson.dumps(self._of(kind, tenant_id=str(uuid.uuid4())))
        elif reason is RejectReason.INACTIVE_TENANT:
            value = orjson.dumps(
                self._of(kind, tenant_id=str(self.rng.choice(self.inactive_tenants)))
            )
        else:
            value = _BAD_VALUES[reason](self, max_event_bytes)
        return Generated(kind, None, value, reason, None)

    def _of(self, kind: str, **overrides: object) -> dict[str, object]:
        return self.action(**overrides) if kind == "action" else self.audit(**overrides)

    def bad_reasons(self) -> list[RejectReason]:
        """Every reason a producer's message can earn (inactive only if such tenants exist)."""
        reasons = [*_BAD_VALUES, RejectReason.UNKNOWN_TENANT]
        return [*reasons, RejectReason.INACTIVE_TENANT] if self.inactive_tenants else reasons

    def mixed(self, count: int, invalid_ratio: float, max_event_bytes: int) -> list[Generated]:
        """A realistic stream: actions (some lifecycles, some duplicates), audits, bad events."""
        out: list[Generated] = []
        bad_reasons = self.bad_reasons()
        while len(out) < count:
            roll = self.rng.random()
            if roll < invalid_ratio:
                out.append(self.invalid(self.rng.choice(bad_reasons), max_event_bytes))
            elif roll < invalid_ratio + 0.1:
                out += [self.valid("action", e) for e in self.lifecycle()]
            elif roll < invalid_ratio + 0.11 and out and out[-1].event is not None:
                out.append(out[-1])  # a producer's retry: an exact duplicate
            elif roll < 0.6:
                out.append(self.valid("action", self.action()))
            else:
                out.append(self.valid("audit", self.audit()))
        return out[:count]


def _schema_violation(factory: EventFactory, _limit: int) -> bytes:
    return orjson.dumps(factory.action(execution_time_ms=-1))


_BAD_VALUES = {
    RejectReason.EMPTY: lambda f, _: b"",
    RejectReason.TOO_LARGE: lambda f, limit: b'{"pad": "' + b"x" * limit + b'"}',
    RejectReason.INVALID_UTF8: lambda f, _: b'{"id": "\xff\xfe"}',
    RejectReason.INVALID_JSON: lambda f, _: b'{"id": ',
    RejectReason.NOT_AN_OBJECT: lambda f, _: b"[1, 2, 3]",
    RejectReason.UNSUPPORTED_VERSION: lambda f, _: orjson.dumps(f.action(schema_version=99)),
    RejectReason.SCHEMA_VIOLATION: _schema_violation,
}
