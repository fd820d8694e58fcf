"""The audit chain's encoding and hashes: pure, no I/O (docs/contract.md, "The audit chain").

Every stored audit row has one entry in one chain: (tenant_id, topic, partition), in
Kafka offset order. An entry's hash is

    hash = SHA-256(prev_hash || SHA-256(encode_row(row)))

where ``prev_hash`` is the previous entry's hash (32 zero bytes for a chain's first
entry, or the seal's hash after retention), and ``encode_row`` concatenates the twelve
columns of ``audit_logs`` in table order, each as PostgreSQL prints it (``row_text``):
a NULL as ``~``, any other value as ``<length in UTF-8 bytes>:<text>``. The lengths
make the encoding unambiguous whatever the text holds; the JSON columns are encoded as
``jsonb`` prints them (sorted keys, PostgreSQL's spacing), so the worker's digest, computed
by PostgreSQL on the stored row (``audit_chain_append``, migration 007, the same encoding
in SQL), and a verifier's agree by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

GENESIS: Final = bytes(32)  # the prev_hash of a chain's first entry
NULL: Final = b"~"
_UTC_TEXT: Final = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def row_text(alias: str = "") -> tuple[str, ...]:
    """The columns of audit_logs, in table order, as the text the encoding takes
    (``alias``: the table's alias with its dot, in a query that joins it)."""
    a = alias
    return (
        f"{a}id::text", f"{a}tenant_id::text", f"{a}user_id", f"{a}action",
        f"{a}resource_type", f"{a}resource_id", f"{a}changes::text", f"{a}ip_address",
        f"{a}user_agent", f"{a}metadata::text",
        _UTC_TEXT.format(f"{a}created_at"), _UTC_TEXT.format(f"{a}updated_at"),
    )  # fmt: skip


def row_bytes(alias: str = "") -> tuple[str, ...]:
    """The same columns as their UTF-8 bytes, the form ``encode_row`` takes (bytea is what
    the driver hands over fastest: no text decoding to encode again)."""
    return tuple(f"convert_to({column}, 'UTF8')" for column in row_text(alias))


def encode_row(fields: Sequence[bytes | None]) -> bytes:
    """The canonical encoding of one audit row, given its columns' UTF-8 (``row_bytes``)."""
    return b"".join([NULL if field is None else b"%d:%b" % (len(field), field) for field in fields])


def row_digest(fields: Sequence[bytes | None]) -> bytes:
    return hashlib.sha256(encode_row(fields)).digest()


def entry_hash(prev_hash: bytes, digest: bytes) -> bytes:
    """The hash of a chain entry: its row's digest bound to everything before it."""
    return hashlib.sha256(prev_hash + digest).digest()
