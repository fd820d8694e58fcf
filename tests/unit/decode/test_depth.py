"""The fast path judges nesting by its real depth, not by how many brackets a message has.

More opening brackets than the depth limit used to send a message the slow way
(ten times the cost) even when they did not nest: list-shaped payloads, or brackets
inside strings. Now the fast path declines only what nests past the limit, and the
two paths still agree exactly at the limit and one level past it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rules import MAX_JSON_DEPTH
from tests.unit.decode.messages import action, audit, encode
from worker.decode.decoder import EventKind, decode_slow
from worker.decode.fast import ROW_OF
from worker.records import Accepted, ActionRow, AuditRow, RawRecord, Reject, RejectReason

MAX_BYTES = 1024 * 1024
TOO_DEEP = f"JSON should not be nested deeper than {MAX_JSON_DEPTH} levels"
# 70 small objects: more opening brackets than the depth limit, nested 3 levels.
TICKETS = {"tickets": [{"id": i, "status": "open"} for i in range(70)]}
# Strings that a bracket count, or a string scanner that mishandled escapes, would misread.
TRICKY = st.text(alphabet='"\\[]{}/aé\n', max_size=12)
SHALLOW: st.SearchStrategy[Any] = st.one_of(
    TRICKY, st.just([]), st.just({}), st.lists(TRICKY, min_size=1, max_size=1)
)


def both(kind: EventKind, raw: bytes) -> tuple[ActionRow | AuditRow | None, Accepted | Reject]:
    """The fast path's row (or None) and the slow path's verdict on one message."""
    record = RawRecord(kind.value, 0, 0, None, raw, 0)
    return ROW_OF[kind](raw), decode_slow(record, kind, MAX_BYTES)


def assert_fast(kind: EventKind, raw: bytes) -> None:
    """The fast path accepts the message, with the slow path's row."""
    fast, slow = both(kind, raw)
    assert isinstance(slow, Accepted), slow
    assert fast is not None, "the fast path declined"
    assert fast == slow.row


def assert_too_deep(kind: EventKind, raw: bytes, field: str) -> None:
    """The fast path declines and the slow path rejects, naming the field, as it always has."""
    fast, slow = both(kind, raw)
    assert fast is None
    assert isinstance(slow, Reject), slow
    assert slow.reason is RejectReason.SCHEMA_VIOLATION
    assert slow.detail == f"{field}: {TOO_DEEP}"


def nested(depth: int) -> bytes:
    """A JSON object ``depth`` levels deep, itself counted (as the slow path counts)."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def with_raw(event: dict[str, Any], field: str, value: bytes) -> bytes:
    """The event's JSON with ``field`` spelled as ``value``."""
    return encode(event | {field: "@"}).replace(
        f'"{field}":"@"'.encode(), f'"{field}":'.encode() + value
    )


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        (EventKind.ACTION, action(request_payload=TICKETS)),
        (EventKind.ACTION, action(response_data=TICKETS)),
        (EventKind.ACTION, action(metadata=TICKETS)),
        (EventKind.AUDIT, audit(changes={"before": TICKETS, "after": TICKETS})),
        (EventKind.ACTION, action(unknown=TICKETS)),
    ],
)
def test_a_list_of_70_objects_takes_the_fast_path(kind: EventKind, event: dict[str, Any]) -> None:
    """Many brackets that do not nest deeply: fast accept, the slow path's row."""
    assert_fast(kind, encode(event))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 70,
        "]" * 70,
        "{" * 40 + "[" * 40,
        '\\"' + "[" * 70,
        "[" * 70 + "\\",
        '"' * 3 + "{" * 70,
    ],
)
def test_brackets_inside_a_string_take_the_fast_path(text: str) -> None:
    """Brackets in a string do not nest, whatever escapes stand around them."""
    assert_fast(EventKind.ACTION, encode(action(request_payload={"q": text}, error_message=text)))


@pytest.mark.parametrize("field", ["request_payload", "response_data", "metadata"])
def test_nesting_at_the_limit_is_accepted_by_both_paths(field: str) -> None:
    """A JSON field nested exactly MAX_JSON_DEPTH levels: fast accept, the slow path's row."""
    assert_fast(EventKind.ACTION, with_raw(action(), field, nested(MAX_JSON_DEPTH)))


@pytest.mark.parametrize("field", ["request_payload", "response_data", "metadata"])
def test_one_level_past_the_limit_is_declined_and_rejected(field: str) -> None:
    """One level deeper: the fast path declines, the slow path rejects as before."""
    raw = with_raw(action(), field, nested(MAX_JSON_DEPTH + 1))
    assert_too_deep(EventKind.ACTION, raw, field)


def test_one_level_past_the_limit_in_audit_changes_is_declined_and_rejected() -> None:
    raw = with_raw(audit(), "changes", nested(MAX_JSON_DEPTH + 1))
    assert_too_deep(EventKind.AUDIT, raw, "changes")


@pytest.mark.parametrize("closers", ["]" * 70, '\\"' + "}" * 70, "\\\\" + "]" * 70])
def test_closing_brackets_in_strings_do_not_hide_deep_nesting(closers: str) -> None:
    """Closing brackets in a string before a value one level too deep must not hide it."""
    deep = b"[" + orjson.dumps(closers) + b"," + nested(MAX_JSON_DEPTH - 1) + b"]"
    raw = with_raw(action(), "request_payload", b'{"a":' + deep + b"}")
    assert_too_deep(EventKind.ACTION, raw, "request_payload")


@st.composite
def nested_with_strings(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    """A JSON object exactly ``depth`` levels deep, with tricky strings at every level.

    Shallow siblings (strings, ``[]``, ``{}``, ``["..."]``) stand before and after the
    one deep child, so that its brackets do not always make one unbroken run.
    """
    node: Any = draw(st.sampled_from([{}, []]))
    for level in range(depth - 1, 0, -1):
        siblings = draw(st.lists(SHALLOW, max_size=2))
        at = draw(st.integers(0, len(siblings)))
        if level > 1 and draw(st.booleans()):  # the outermost level is an object
            node = [*siblings[:at], node, *siblings[at:]]
        else:
            keys = draw(st.lists(TRICKY, min_size=len(siblings), max_size=len(siblings)))
            items = [(f"s{key}", value) for key, value in zip(keys, siblings, strict=True)]
            items.insert(at, (f"n{draw(TRICKY)}", node))
            node = dict(items)
    return dict(node) if depth == 1 else node


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.data(), depth=st.sampled_from([3, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH]))
def test_nesting_within_the_limit_takes_the_fast_path(data: st.DataObject, depth: int) -> None:
    """Any shape within the limit, strings holding brackets, quotes, escapes: fast accept."""
    payload = data.draw(nested_with_strings(depth))
    assert_fast(EventKind.ACTION, encode(action(request_payload=payload, metadata=TICKETS)))


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.data(), depth=st.sampled_from([MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 2]))
def test_nesting_past_the_limit_never_takes_the_fast_path(data: st.DataObject, depth: int) -> None:
    """Any shape past the limit, whatever the strings around it hold: declined and rejected."""
    payload = data.draw(nested_with_strings(depth))
    raw = encode(action(request_payload=payload, metadata=TICKETS))
    assert_too_deep(EventKind.ACTION, raw, "request_payload")
