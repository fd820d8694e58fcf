"""Near misses for the decoders' agreement test: a valid event with one thing changed.

Each mutation changes one field (or the message's bytes) at or just past a rule
of ``schemas.rules``, drawing values where edges.py has only examples (texts at
a length limit, a NUL anywhere, timestamps around the range's edges), and says
what the slow path must make of the result: the reject reason, the field its
detail names and the pydantic error type, or acceptance, and whether the fast
path is built to take it (``plain``).
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from schemas.rules import MAX_JSON_DEPTH, MAX_LENGTHS, NUL
from tests.unit.decode.edges import (
    ALL_FIELDS,
    BAD_IPS,
    BAD_TIMESTAMPS,
    BAD_UUIDS,
    BAD_VERSIONS,
    EXECUTION_TIMES,
    FIELDS,
    LIMITED,
    LONGEST_IP,
    NON_OBJECTS,
    NON_STRINGS,
    OTHER_UUID_FORMS,
    STRINGS,
    SV,
    TOO_MANY_DIGITS,
    Target,
    nested,
    set_field,
    with_bytes,
    with_null,
    with_version,
    without,
)
from tests.unit.decode.strategies import (
    ENUMS,
    JSON_FIELDS,
    Case,
    RawJson,
    encode,
    encoders,
    json_values,
    text,
    timestamps,
    valid_events,
)
from worker.decode.decoder import EventKind
from worker.records import RejectReason

Mutation = Callable[[st.DrawFn, Target], Case]


def _field(draw: st.DrawFn, on: Target, names: frozenset[str]) -> str:
    return draw(st.sampled_from(sorted(FIELDS[on.kind] & names)))


def length(draw: st.DrawFn, on: Target) -> Case:
    """A limited string of any characters exactly at its limit (accepted), or one over."""
    name = _field(draw, on, LIMITED)
    size = MAX_LENGTHS[name] + draw(st.integers(0, 1))
    error = "string_too_long" if size > MAX_LENGTHS[name] else None
    return set_field(on, name, draw(text(min_size=size, max_size=size)), f"length-{size}", error)


def nul_in_text(draw: st.DrawFn, on: Target) -> Case:
    """A NUL anywhere in a string field: refused; text that only looks like one is not."""
    name = _field(draw, on, STRINGS)
    value = draw(text(max_size=MAX_LENGTHS.get(name, 100) - len("\\u0000")))
    at = draw(st.integers(0, len(value)))
    if draw(st.booleans()):
        return set_field(on, name, value[:at] + NUL + value[at:], "nul", "nul_character")
    # A backslash then "u0000": valid, but its bytes hold the escape the fast path looks for.
    return set_field(on, name, value[:at] + "\\u0000" + value[at:], "nul-lookalike", plain=False)


def nul_in_json(draw: st.DrawFn, on: Target) -> Case:
    """A NUL in a key or a string, at any depth of a JSON field."""
    name = _field(draw, on, JSON_FIELDS)
    node: object = draw(st.sampled_from([{"k": "a" + NUL}, {"k" + NUL: 1}, ["ok", NUL]]))
    for key in draw(st.lists(text(max_size=4), max_size=6)):
        node = {key: node} if draw(st.booleans()) else [1, node]
    value = node if isinstance(node, dict) else {"list": node}
    return set_field(on, name, value, "nul-in-json", "nul_character")


def enum_value(draw: st.DrawFn, on: Target) -> Case:
    """A value outside the enum: another text, another case, a space more."""
    name = _field(draw, on, frozenset(ENUMS))
    good = draw(st.sampled_from(ENUMS[name]))
    wrong = text(max_size=30).filter(lambda value: value not in ENUMS[name])
    value = draw(st.sampled_from([good.upper(), good + " ", " " + good, good[:-1]]) | wrong)
    return set_field(on, name, value, "enum", "enum")


def timestamp(draw: st.DrawFn, on: Target) -> Case:
    """occurred_at within a second of the range's edges, or not RFC 3339 at all."""
    if draw(st.booleans()):
        stamp, ok = draw(timestamps(edges=True))
        error = None if ok else "timestamp_range"
        return set_field(on, "occurred_at", stamp, f"timestamp-edge-{ok}", error)
    bad = RawJson(draw(st.sampled_from(BAD_TIMESTAMPS)))
    return set_field(on, "occurred_at", bad, "timestamp-shape", "rfc3339_timestamp")


def execution_time(draw: st.DrawFn, on: Target) -> Case:
    """execution_time_ms at its bounds, one past them, or not a strict integer."""
    value = draw(st.sampled_from(sorted(EXECUTION_TIMES)))
    error = EXECUTION_TIMES[value]
    return set_field(on, "execution_time_ms", RawJson(value), f"int-{error}", error)


def schema_version(draw: st.DrawFn, on: Target) -> Case:
    """Any schema_version but the supported integers: rejected before the model."""
    return with_version(on, draw(st.sampled_from(BAD_VERSIONS)))


def missing(draw: st.DrawFn, on: Target) -> Case:
    """A field left out: required ones are missed, optional ones take their default."""
    return without(on, draw(st.sampled_from(sorted(FIELDS[on.kind]))))


def null(draw: st.DrawFn, on: Target) -> Case:
    """A field set to null: fine where nullable, refused elsewhere."""
    return with_null(on, draw(st.sampled_from(sorted(FIELDS[on.kind]))))


def wrong_type(draw: st.DrawFn, on: Target) -> Case:
    """A JSON field that is not an object, or another field that is not a string."""
    name = _field(draw, on, ALL_FIELDS - {"schema_version", "execution_time_ms"})
    if name in JSON_FIELDS:
        value = RawJson(draw(st.sampled_from(NON_OBJECTS)))
        return set_field(on, name, value, "not-an-object", "json_object_type")
    return set_field(on, name, RawJson(draw(st.sampled_from(NON_STRINGS))), "type", "?")


def extra_field(draw: st.DrawFn, on: Target) -> Case:
    """An unknown field, ignored whatever it holds; hostile content sends it the slow way."""
    name = draw(text(max_size=12).filter(lambda key: key not in ALL_FIELDS))
    hostile = draw(st.sampled_from(["", "nul", "deep", "brackets"]))
    value = {
        "": draw(json_values),
        "nul": draw(st.sampled_from([NUL, {NUL: 1}, ["a" + NUL]])),
        "deep": RawJson("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)),
        "brackets": [{"i": i} for i in range(MAX_JSON_DEPTH)],
    }[hostile]
    raw = encode(on.event | {name: value}, on.enc)
    return Case(on.kind, raw, f"extra-{hostile}", plain=not hostile)


def duplicate_key(draw: st.DrawFn, on: Target) -> Case:
    """A key twice: the last one counts, whether it is the good or the bad value."""
    name = _field(draw, on, LIMITED)
    raw = encode(on.event, on.enc)
    too_long = b'"' + name.encode() + b'":"' + b"x" * (MAX_LENGTHS[name] + 1) + b'"'
    if draw(st.booleans()) and name in on.event:
        # msgspec checks every occurrence of a key, the bad first one too: the fast path
        # declines (safe, and duplicate keys are rare), the slow path keeps the last.
        return Case(on.kind, b"{" + too_long + b"," + raw.lstrip()[1:], "duplicate-good-last")
    bad_last = raw.rstrip()[:-1] + b"," + too_long + b"}"
    return Case(on.kind, bad_last, "duplicate-bad-last", SV, name, "string_too_long")


def ip_address(draw: st.DrawFn, on: Target) -> Case:
    """The longest address text there is; anything that is not an address, or is longer."""
    choice = draw(st.sampled_from(["longest", "too-long", "bad"]))
    if choice == "longest":
        return set_field(on, "ip_address", LONGEST_IP, "ip-longest")
    if choice == "too-long":
        value, error = LONGEST_IP + "5", "string_too_long"
    else:
        value, error = draw(st.sampled_from(BAD_IPS)), "ip_address"
    return set_field(on, "ip_address", value, f"ip-{choice}", error)


def uuid_form(draw: st.DrawFn, on: Target) -> Case:
    """UUIDs in braces or as URNs (valid, slow path only), and texts that are not UUIDs."""
    name = draw(st.sampled_from(["id", "tenant_id"]))
    if draw(st.booleans()):
        value = draw(st.sampled_from(OTHER_UUID_FORMS))
        return set_field(on, name, value, "uuid-other-form", plain=False)
    return set_field(on, name, draw(st.sampled_from(BAD_UUIDS)), "uuid", "uuid_parsing")


def json_depth(draw: st.DrawFn, on: Target) -> Case:
    """A JSON field nested exactly to the limit, or one level deeper."""
    name = _field(draw, on, JSON_FIELDS)
    depth = MAX_JSON_DEPTH + draw(st.integers(0, 1))
    error = "json_too_deep" if depth > MAX_JSON_DEPTH else None
    return set_field(on, name, nested(depth), f"depth-{depth}", error, plain=False)


def broken_bytes(draw: st.DrawFn, on: Target) -> Case:
    """Not a JSON object: cut short, bad UTF-8, a lone surrogate, a huge integer, an array."""
    raw = encode(on.event, on.enc)
    choice = draw(st.sampled_from(["cut", "utf8", "surrogate", "digits", "array"]))
    if choice == "cut":
        cut = raw[: draw(st.integers(1, len(raw) - 1))]
        utf8 = cut.decode(errors="replace").encode() == cut
        return Case(on.kind, cut, "cut", RejectReason["INVALID_JSON" if utf8 else "INVALID_UTF8"])
    if choice == "utf8":
        at = draw(st.integers(0, len(raw)))
        return Case(on.kind, raw[:at] + b"\xff" + raw[at:], "utf8", RejectReason.INVALID_UTF8)
    if choice == "array":
        return Case(on.kind, b"[" + raw + b"]", "array", RejectReason.NOT_AN_OBJECT)
    if choice == "surrogate":
        name = _field(draw, on, STRINGS)
        return with_bytes(on, name, RawJson('"\\ud800"'), choice, RejectReason.INVALID_JSON)
    return with_bytes(on, "metadata", TOO_MANY_DIGITS, choice, RejectReason.INVALID_JSON)


MUTATIONS: list[Mutation] = [
    length, nul_in_text, nul_in_json, enum_value, timestamp, execution_time, schema_version,
    missing, null, wrong_type, extra_field, duplicate_key, ip_address, uuid_form, json_depth,
    broken_bytes,
]  # fmt: skip
# The mutations of fields only one kind of event has.
_KIND_OF: dict[Mutation, EventKind] = {
    enum_value: EventKind.ACTION,
    execution_time: EventKind.ACTION,
    ip_address: EventKind.AUDIT,
}


@st.composite
def near_misses(draw: st.DrawFn) -> Case:
    """A valid event with one mutation applied."""
    mutation = draw(st.sampled_from(MUTATIONS))
    kind = _KIND_OF.get(mutation) or draw(st.sampled_from(EventKind))
    return mutation(draw, Target(kind, draw(valid_events(kind)), draw(encoders)))
