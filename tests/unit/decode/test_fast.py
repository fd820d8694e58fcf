"""The fast path of decode never disagrees with the slow path.

Differential: thousands of valid events and mutations of them (bad values in every
field, unknown fields with hostile content, duplicated keys, flipped bytes, cut
messages) go through both; whatever the fast path accepts, the slow path accepts
with an identical row. No services.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import orjson
import pytest

from schemas.events import ActionEvent, AuditEvent
from worker.decode import fast as decode_fast
from worker.decode.decoder import EventKind, decode_slow
from worker.devtools.eventgen import EventFactory
from worker.records import Accepted, RawRecord

MAX = 1024 * 1024
# Values spliced into fields: each is wrong for some field, right for others.
ODD_VALUES: list[bytes] = [
    b"null", b'""', b"1", b"-1", b"1.0", b"true", b"[]", b"{}", b'{"a":[1,{"b":null}]}',
    b'"' + b"x" * 101 + b'"', b'"' + b"x" * 256 + b'"', b'"a\\u0000b"', b'"\\ud800"',
    b'"\\ud83d\\ude00"', b'"caf\xc3\xa9"', b'"\xff"', b"9223372036854775808", b"2147483648",
    b"1e999", b"123456789012345678901234567890", b'"2026-13-01T00:00:00Z"',
    b'"2026-11-01T00:00:00"', b'"2026-11-01 00:00:00z"', b'"0001-01-01T00:00:00+00:00"',
    b'"2026-11-01T00:00:00.123456789+05:30"', b'"{6f1e7a52-6c1d-4a8e-9d2b-3c4d5e6f7a80}"',
    b'"urn:uuid:6f1e7a52-6c1d-4a8e-9d2b-3c4d5e6f7a80"', b'"6F1E7A526C1D4A8E9D2B3C4D5E6F7A80"',
    b'"1.2.3.4"', b'"::1"', b'"1.2.3.04"', b'"fe80::1%eth0"', b'"CRM_LIST"', b'"success"',
    b'"crm_list"', b"2", b'{"k":"\\u0000"}', b'{"\\u00e9":1}', b"[" * 70 + b"]" * 70,
]  # fmt: skip


def _messages(seed: int) -> Iterator[tuple[EventKind, bytes]]:
    rng = random.Random(seed)
    factory = EventFactory([uuid.UUID(int=rng.getrandbits(128)) for _ in range(3)], seed=seed)
    for generated in factory.mixed(400, 0.0, MAX):
        kind = EventKind(generated.topic_kind)
        assert generated.event is not None
        assert generated.value is not None
        yield kind, generated.value
        for _ in range(6):
            yield kind, _mutate(rng, generated.event, generated.value)


def _mutate(rng: random.Random, event: dict[str, object], value: bytes) -> bytes:
    field = rng.choice([*event, "schema_version", "unknown_field"])
    odd = rng.choice(ODD_VALUES)
    choice = rng.randrange(6)
    if choice == 0:  # a field set to an odd value (or added, when it was absent)
        return orjson.dumps({k: v for k, v in event.items() if k != field})[:-1] + (
            b',"' + field.encode() + b'":' + odd + b"}"
        )
    if choice == 1:  # a field removed
        return orjson.dumps({k: v for k, v in event.items() if k != field})
    if choice == 2:  # a key twice: the last one counts
        return value[:-1] + b',"' + field.encode() + b'":' + odd + b"}"
    if choice == 3:  # a few bytes flipped
        data = bytearray(value)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 4:  # cut short
        return value[: rng.randrange(len(value))]
    return b" \n" + value.replace(b",", b", ", 3) + b"\t"  # whitespace where JSON allows it


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_what_the_fast_path_accepts_the_slow_path_accepts_with_the_same_row(seed: int) -> None:
    """For every message: fast accept implies slow accept with an identical row."""
    fast_accepted = slow_only = 0
    for offset, (kind, raw) in enumerate(_messages(seed)):
        fast = decode_fast.ROW_OF[kind](raw)
        slow = decode_slow(RawRecord(kind.value, 0, offset, None, raw, 0), kind, MAX)
        if fast is not None:
            fast_accepted += 1
            assert isinstance(slow, Accepted), (raw, slow)
            assert slow.row == fast, raw
        elif isinstance(slow, Accepted):
            slow_only += 1
    # Both sides are exercised: most valid events go fast, a few need the slow path.
    assert fast_accepted > 400
    assert slow_only > 0


@pytest.mark.parametrize(
    ("struct", "model"),
    [(decode_fast.ActionMessage, ActionEvent), (decode_fast.AuditMessage, AuditEvent)],
)
def test_fast_structs_have_the_fields_of_the_wire_models(struct: type, model: type) -> None:
    """A field added to the contract must be added to the fast path too."""
    assert set(struct.__struct_fields__) == set(model.model_fields)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "snippet",
    [b'"x":"\\u0000"', b'"x":"\xff\xfe"', b'"x":' + b"[" * 65 + b"]" * 65, b'"x":' + b"1" * 4301],
)
def test_hostile_unknown_fields_send_the_message_to_the_slow_path(snippet: bytes) -> None:
    """Bytes msgspec would skip unchecked (bad UTF-8, NUL, deep nesting, huge numbers) decline."""
    factory = EventFactory([uuid.uuid4()])
    raw = orjson.dumps(factory.action())[:-1] + b"," + snippet + b"}"
    assert decode_fast.action_row(raw) is None
