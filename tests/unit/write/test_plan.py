"""The write stage's planning: what is COPYed and what is merged, rejects in parts."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from worker.records import Accepted, ActionRow, RawRecord, Reject, RejectReason
from worker.write.plan import merged_record, parts_within, plan_actions

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACTION_ID, TENANT = uuid.uuid4(), uuid.uuid4()


def row(
    at: datetime, status: str = "pending", payload: str = '{"a": 1}', action_id: UUID = ACTION_ID
) -> ActionRow:
    return ActionRow(action_id, TENANT, "crm_create", "hubspot", payload, None, status, None,
                     5, None, at)  # fmt: skip


def test_latest_fields_and_earliest_created_at_in_any_order() -> None:
    """Events of one new id merge into the latest fields and the earliest created_at."""
    events = [row(T0, "pending"), row(T0 + timedelta(seconds=3), "success"),
              row(T0 + timedelta(seconds=1), "retry")]  # fmt: skip
    records = {merged_record(list(order)) for order in itertools.permutations(events)}
    assert records == {(*events[1][:-1], T0, T0 + timedelta(seconds=3))}


def test_exact_duplicates_make_one_record() -> None:
    """The same event twice makes the record of the event alone."""
    event = row(T0 + timedelta(seconds=2), "success")
    assert merged_record([event, event]) == (*event[:-1], event.occurred_at, event.occurred_at)


def test_the_same_instant_in_another_offset_is_a_duplicate() -> None:
    """One instant written in two UTC offsets is one instant, not a tie."""
    utc = row(T0, "success")
    paris = row(T0.astimezone(timezone(timedelta(hours=1))), "success")
    record = merged_record([utc, paris])
    assert record is not None
    assert record[-1] == record[-2] == T0


def test_different_events_at_the_latest_instant_are_left_to_postgresql() -> None:
    """Events that differ (by a byte) at the latest instant make no record in Python."""
    at = T0 + timedelta(seconds=4)
    tied = [row(T0), row(at, "success", '{"x": 1}'), row(at, "failure", '{"x": 2}')]
    assert merged_record(tied) is None
    assert merged_record([row(at, "success", '{"x": 1}'), row(at, "success", '{"x": 1} ')]) is None


def test_rejects_are_stored_in_parts_of_bounded_size() -> None:
    """Rejects are cut into parts whose raw bytes, capped per reject, stay within the bound."""

    def reject(size: int) -> Reject:
        record = RawRecord("t", 0, size, None, b"x" * size, 0)
        return Reject(record, RejectReason.TOO_LARGE, "too large")

    rejects = [reject(n) for n in (40, 40, 30, 100, 5, 0)]
    parts = list(parts_within(80, rejects, raw_max=60))
    assert [[r.record.offset for r in part] for part in parts] == [[40, 40], [30], [100, 5, 0]]
    assert list(parts_within(80, [], raw_max=60)) == []


def test_only_stored_ids_and_ties_are_left_to_the_merge() -> None:
    """New ids are COPYed, merged in Python if repeated; stored ids and ties go to the merge."""
    stored, single, lifecycle, tied = (uuid.uuid4() for _ in range(4))
    at = T0 + timedelta(seconds=1)
    rows = [row(T0, action_id=stored), row(T0, action_id=single),
            row(T0, action_id=lifecycle), row(at, "success", action_id=lifecycle),
            row(at, "success", '{"x": 1}', tied), row(at, "failure", '{"x": 2}', tied)]  # fmt: skip
    events = [Accepted(r, RawRecord("t", 0, i, None, b"{}", 0)) for i, r in enumerate(rows)]
    new_rows, to_merge = plan_actions(events, Counter(r.id for r in rows), {stored})
    assert sorted(r[0] for r in new_rows) == sorted([single, lifecycle])
    assert (*rows[3][:-1], T0, at) in new_rows
    assert [event.row for event in to_merge] == [rows[0], rows[4], rows[5]]
