"""AuditEvent: its fields, the IP address rule, unknown fields, errors without input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import AuditEvent
from tests.unit.schemas.factories import audit, error_of


def test_valid_audit_event_is_accepted() -> None:
    """A complete audit event validates; optional fields default to None."""
    event = AuditEvent.model_validate(audit())
    assert event.action == "update"
    assert event.ip_address == "192.0.2.7"
    assert event.changes is None
    assert event.user_agent is None


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


def test_unknown_fields_are_ignored() -> None:
    """Fields the contract does not know are dropped, so producers can add them first."""
    event = AuditEvent.model_validate(audit(new_field={"x": 1}, provider_name="extra"))
    assert "new_field" not in event.model_dump()


def test_validation_error_text_hides_input() -> None:
    """str() of a validation error does not echo the payload (it may end up in logs)."""
    with pytest.raises(ValidationError) as caught:
        AuditEvent.model_validate(audit(action="SECRET-VALUE" * 20))
    assert "SECRET-VALUE" not in str(caught.value)
