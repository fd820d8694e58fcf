"""The two decoders agree, both ways, on valid events and on near misses of every rule.

The fast path (``worker.decode.fast``) may only say "this row" or "not sure"; the
slow path (JSON, then the pydantic models) judges and words. Properties, over
events generated from the rules of ``schemas.rules`` (see strategies.py and
mutations.py):

- fast accepts => slow accepts, with an equal row;
- slow rejects => fast declines, and the reject is the one the mutation calls for
  (reason, field named first in the detail, pydantic error type);
- slow accepts a *plain* event => fast gives that row, unless the bytes trip one of
  the fast path's conservative byte checks (``declined_by_design``): any other
  decline sends hot-path work to the slow path, ten times the cost, and fails.

Derandomized, without an example database: CI runs the same examples every time.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.rules import MAX_INT_DIGITS, MAX_JSON_DEPTH, NUL_ESCAPE
from tests.unit.decode.edges import edge_cases
from tests.unit.decode.mutations import near_misses
from tests.unit.decode.strategies import MODELS, Case, encode, encoders, valid_events
from worker.decode.decoder import EventKind, decode_slow
from worker.decode.fast import ROW_OF
from worker.records import Accepted, ActionRow, AuditRow, RawRecord, Reject

MAX_BYTES = 1024 * 1024
_PARSE_JSON = msgspec.json.Decoder(float_hook=Decimal).decode  # as the slow path parses
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
# A few seconds for the file; the near misses get more: sixteen mutations share them.
_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def declined_by_design(raw: bytes) -> bool:
    """What the fast path's byte checks send the slow way whatever the event holds.

    They look at the bytes, not the JSON: a NUL escape even after an escaped
    backslash, more than MAX_JSON_DEPTH opening brackets in all (nested or not,
    inside strings too), a run of digits too long for int() even inside a string.
    """
    brackets = raw.count(b"{") + raw.count(b"[")
    too_long = b"0" * (MAX_INT_DIGITS + 1) in raw.translate(_DIGITS)
    return NUL_ESCAPE in raw or brackets > MAX_JSON_DEPTH or too_long


def error_type(case: Case) -> str:
    """The type of the pydantic error the slow path's model raises for the message."""
    obj = _PARSE_JSON(case.raw)
    with pytest.raises(ValidationError) as caught:
        MODELS[case.kind].model_validate(obj)
    errors = caught.value.errors(include_input=False)
    assert len(errors) == 1, errors
    return errors[0]["type"]


def both(case: Case) -> tuple[ActionRow | AuditRow | None, Accepted | Reject]:
    """The fast path's row (or None) and the slow path's verdict on one message."""
    record = RawRecord(case.kind.value, 0, 0, None, case.raw, 0)
    return ROW_OF[case.kind](case.raw), decode_slow(record, case.kind, MAX_BYTES)


def check_agreement(case: Case) -> bool:
    """Both paths against each other and against what the case calls for; fast accepted?"""
    fast, slow = both(case)
    if case.reason is None:
        assert isinstance(slow, Accepted), (case, slow)
    else:
        assert isinstance(slow, Reject), (case, slow)
        assert slow.reason is case.reason, (case, slow)
        if case.field is not None:
            assert slow.detail.startswith(f"{case.field}: "), (case, slow)
        if case.error is not None:
            assert error_type(case) == case.error, case
    if fast is not None:
        assert isinstance(slow, Accepted), (case, slow)
        assert slow.row == fast, case
    if isinstance(slow, Reject):
        assert fast is None, case
    if case.plain and not declined_by_design(case.raw):
        assert fast is not None, f"the fast path declined a plain valid event: {case}"
    return fast is not None


def test_every_edge_value_gets_the_same_verdict_from_both_paths() -> None:
    """Each edge value of each rule, on fixed events, in two spellings: no draw needed."""
    cases = list(edge_cases())
    fast_accepted = sum(check_agreement(case) for case in cases)
    assert len(cases) > 500
    assert 0 < fast_accepted < len(cases)


@settings(max_examples=150, **_SETTINGS)
@given(kind=st.sampled_from(EventKind), data=st.data())
def test_valid_events_are_accepted_by_both_paths_with_the_same_row(
    kind: EventKind, data: st.DataObject
) -> None:
    """Every valid event, in any JSON spelling, is accepted by both paths, with one row."""
    raw = encode(data.draw(valid_events(kind)), data.draw(encoders))
    accepted = check_agreement(Case(kind, raw, f"valid-{kind.value}", plain=True))
    event(f"valid {kind.value}: fast {'accepts' if accepted else 'declines'}")


@settings(max_examples=400, **_SETTINGS)
@given(case=near_misses())
def test_near_misses_get_the_same_verdict_from_both_paths(case: Case) -> None:
    """A rule at or just past its limit: the slow path's verdict, and the fast path agrees."""
    accepted = check_agreement(case)
    event(f"{case.label}: fast {'accepts' if accepted else 'declines'}")
