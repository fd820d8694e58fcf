"""The rules of the event contract (docs/contract.md), each written once.

Two decoders apply them and must agree: the pydantic models of ``schemas.events``
(the reference, which words every reject) and the fast path ``worker.decode.fast``
(msgspec, which declines whenever unsure). Both read their limits, defaults and
checks from here, and the exported JSON Schema files state them, so changing a
rule here changes all three; ``tests/unit/decode/test_agreement.py`` proves the
decoders still agree.

The limits are those of the tables' columns (an event that passes can be stored
as it is), plus what PostgreSQL or the worker cannot take: a NUL character, JSON
nested too deep, integers too long to parse, timestamps without an offset or
outside the range that converts to UTC. The checks raise ``PydanticCustomError``:
its type is the machine-readable reason a reject names, whichever path ran it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from pydantic_core import PydanticCustomError

# -- versions -----------------------------------------------------------------------------

SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({1})
# An event without schema_version is of this version (producers before the field existed).
DEFAULT_SCHEMA_VERSION: Final = 1

# -- lengths, in characters (code points, not bytes): each is its varchar column's ------------

PROVIDER_NAME_MAX_LENGTH: Final = 100
USER_ID_MAX_LENGTH: Final = 255
ACTION_MAX_LENGTH: Final = 100
RESOURCE_TYPE_MAX_LENGTH: Final = 100
RESOURCE_ID_MAX_LENGTH: Final = 255
# The longest IP text there is: ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.
IP_ADDRESS_MAX_LENGTH: Final = 45
# Every limited string field, by name: for tests and documentation, not for the hot path.
MAX_LENGTHS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "provider_name": PROVIDER_NAME_MAX_LENGTH,
        "user_id": USER_ID_MAX_LENGTH,
        "action": ACTION_MAX_LENGTH,
        "resource_type": RESOURCE_TYPE_MAX_LENGTH,
        "resource_id": RESOURCE_ID_MAX_LENGTH,
        "ip_address": IP_ADDRESS_MAX_LENGTH,
    }
)

# -- integers -----------------------------------------------------------------------------

MAX_INT4: Final = 2_147_483_647  # PostgreSQL integer
EXECUTION_TIME_MS_MIN: Final = 0  # the column's check constraint
EXECUTION_TIME_MS_MAX: Final = MAX_INT4
# Python refuses to parse longer integers (sys.get_int_max_str_digits), and so does
# msgspec: a message with a longer run of digits is not JSON either path can read.
MAX_INT_DIGITS: Final = 4300

# -- JSON objects -------------------------------------------------------------------------

# The JSON text of request_payload when the event has none (its column's default).
REQUEST_PAYLOAD_DEFAULT_JSON: Final = b"{}"
# orjson cannot serialize deeper than 254 levels; no real payload comes close to this.
# A field's own object is level 1.
MAX_JSON_DEPTH: Final = 64

# -- the NUL rule -------------------------------------------------------------------------

# PostgreSQL text and jsonb cannot hold U+0000: no string field, and no key or string
# inside a JSON object field, may contain it. Refused at decode, not at COPY time.
NUL: Final = "\x00"
# JSON forbids raw control characters, so in a message's bytes a NUL can only be this
# escape (or text that merely looks like it, after an escaped backslash).
NUL_ESCAPE: Final = b"\\u0000"
# The rule for the JSON Schema files (producers' validators): ^[^\u0000]*$
NUL_FREE_PATTERN: Final = f"^[^{NUL_ESCAPE.decode()}]*$"


def nul_error(what: str = "String") -> PydanticCustomError:
    """The error of a NUL found in ``what`` (a field, a JSON key, a JSON string)."""
    return PydanticCustomError(
        "nul_character", f"{what} should not contain a NUL character (U+0000)"
    )


def no_nul(value: str) -> str:
    """``value`` itself, when it holds no NUL character."""
    if NUL in value:
        raise nul_error()
    return value


def _check_keys(node: dict[str, Any]) -> None:
    for key in node:
        if type(key) is not str:
            raise PydanticCustomError("json_key_type", "JSON object keys should be strings")
        if NUL in key:
            raise nul_error("A JSON key")


def check_json_tree(root: dict[str, Any]) -> None:
    """Refuse a NUL in any key or string, non-string keys and nesting past MAX_JSON_DEPTH.

    Iterative on purpose: a recursive walk would hit Python's recursion limit on
    hostile input long before orjson's own depth limit.
    """
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise PydanticCustomError(
                "json_too_deep",
                "JSON should not be nested deeper than {max_depth} levels",
                {"max_depth": MAX_JSON_DEPTH},
            )
        if isinstance(node, dict):
            _check_keys(node)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, str):
                if NUL in child:
                    raise nul_error("A JSON string")
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


# -- timestamps ---------------------------------------------------------------------------

# RFC 3339 date-time (section 5.6, with the "t"/space separators its notes allow):
# seconds and an offset are required, unix numbers and bare dates are not timestamps.
RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Within these bounds every offset still converts to a UTC datetime (the database
# driver does that conversion and would fail on year 0 or 10000).
EARLIEST: Final = datetime(1, 1, 2, tzinfo=UTC)
LATEST: Final = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
_RANGE_MESSAGE: Final = (
    f"Timestamp should be between {EARLIEST.date().isoformat()} and {LATEST.date().isoformat()} UTC"
)


def _timestamp_error() -> PydanticCustomError:
    return PydanticCustomError(
        "rfc3339_timestamp", "Input should be an RFC 3339 timestamp string with an offset"
    )


def _parse_rfc3339(value: str) -> datetime:
    # The regex proves the RFC 3339 shape (pydantic's own datetime parser also
    # takes "1700000000", bare dates and times without seconds); fromisoformat,
    # in C, checks the ranges. One Python call for the whole field: it runs per event.
    if RFC3339.fullmatch(value) is None:
        raise _timestamp_error()
    try:
        return datetime.fromisoformat(value[:-1] + "Z" if value[-1] == "z" else value)
    except ValueError:  # its message quotes the input: replace it
        raise _timestamp_error() from None


def check_timestamp(value: object) -> datetime:
    """An aware datetime from an RFC 3339 string (or an aware datetime), within range."""
    # Aware datetimes pass so that a Python producer can build events directly;
    # on the wire only strings exist, and unix numbers are refused.
    if isinstance(value, str):
        value = _parse_rfc3339(value)  # aware: the pattern requires an offset
    elif not isinstance(value, datetime):
        raise _timestamp_error()
    elif value.utcoffset() is None:
        raise PydanticCustomError("timezone_aware", "Input should have timezone info")
    # Years 2 to 9998 are in range at any offset: the comparisons run only at the edges.
    if not 1 < value.year < 9999 and not EARLIEST <= value <= LATEST:
        raise PydanticCustomError("timestamp_range", _RANGE_MESSAGE)
    return value


# -- IP addresses -------------------------------------------------------------------------


def canonical_ip(value: str) -> str:
    """The canonical text of an IPv4 or IPv6 address."""
    # inet_pton/inet_ntop: strict (no zone ids, no leading zeros) and ~20x faster
    # than the ipaddress module; inet_ntop gives the canonical compressed text.
    family = socket.AF_INET6 if ":" in value else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, value))
    except (OSError, ValueError):  # ValueError: NUL or surrogates in the text
        raise PydanticCustomError("ip_address", "Input should be an IPv4 or IPv6 address") from None
