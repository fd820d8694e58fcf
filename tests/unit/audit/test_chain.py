"""The chain's encoding, hashes, in-memory heads and signed heads files: pure, no services."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from worker.audit.chain import GENESIS, encode_row, entry_hash, row_digest
from worker.audit.export import FORMAT, HeadsFileError, _mac, read_heads
from worker.audit.heads import ChainHeads
from worker.errors import ConfigError
from worker.records import OffsetRange, TopicPartition

TP = TopicPartition("audit-events", 0)
TENANT = uuid.UUID("7b7e6f1c-2f7e-4a51-9a4f-0f2c3c7d5e11")


def test_encoding_prefixes_lengths_in_bytes_and_marks_null() -> None:
    """`~` for NULL, `<UTF-8 length>:<text>` otherwise: no two rows encode alike."""
    assert encode_row([b"login", None, "é".encode()]) == b"5:login~2:\xc3\xa9"
    assert encode_row([b"a", b"b"]) != encode_row([b"a:b"]) != encode_row([b"", b"ab"])
    assert encode_row([None]) != encode_row([b"~"])


def test_entry_hash_binds_the_previous_hash() -> None:
    """hash = SHA-256(prev || SHA-256(encoding)), as docs/contract.md says."""
    digest = row_digest([b"x"])
    assert digest == hashlib.sha256(b"1:x").digest()
    assert entry_hash(GENESIS, digest) == hashlib.sha256(bytes(32) + digest).digest()
    assert entry_hash(digest, digest) != entry_hash(GENESIS, digest)


def test_heads_advance_only_when_the_batch_commits() -> None:
    """A batch's advances are invisible to the heads until commit; a retry sees the old ones."""
    heads = ChainHeads()
    first = heads.pending({TP: OffsetRange(None, 10)})
    first.set((TENANT, TP.topic, TP.partition), (1, b"h1"))
    retry = heads.pending({TP: OffsetRange(None, 10)})
    assert retry.get((TENANT, TP.topic, TP.partition)) is None
    heads.commit(first, {TP: OffsetRange(None, 10)})
    after = heads.pending({TP: OffsetRange(10, 20)})
    assert after.get((TENANT, TP.topic, TP.partition)) == (1, b"h1")


def test_heads_are_dropped_when_a_batch_starts_elsewhere() -> None:
    """A partition written by someone else meanwhile (another start) is loaded again."""
    heads = ChainHeads()
    batch = heads.pending({TP: OffsetRange(None, 10)})
    batch.set((TENANT, TP.topic, TP.partition), (1, b"h1"))
    heads.commit(batch, {TP: OffsetRange(None, 10)})
    assert heads.pending({TP: OffsetRange(25, 30)}).get((TENANT, TP.topic, TP.partition)) is None


def _file(key: bytes | None) -> str:
    document = {"format": FORMAT, "exported_at": "2026-12-02T00:00:00.000000Z", "heads": [
        {"tenant_id": str(TENANT), "topic": "audit-events", "partition": 0, "seq": 7,
         "hash": "ab" * 32, "chained_at": "2026-12-02T00:00:00.000000Z"}]}  # fmt: skip
    if key is not None:
        document["signature"] = {"algorithm": "HMAC-SHA256", "value": _mac(key, document)}
    return json.dumps(document)


def test_signed_heads_file_round_trips_and_refuses_a_change() -> None:
    """A signed file reads back under its key; an edited one, or another key, is refused."""
    text = _file(b"k1")
    assert read_heads(text, b"k1") == {(TENANT, "audit-events", 0): (7, bytes.fromhex("ab" * 32))}
    with pytest.raises(HeadsFileError, match="signature"):
        read_heads(text, b"k2")
    with pytest.raises(HeadsFileError, match="signature"):
        read_heads(text.replace('"seq": 7', '"seq": 6'), b"k1")
    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY"):
        read_heads(text, None)
    assert len(read_heads(_file(None), None)) == 1
    with pytest.raises(HeadsFileError, match="format"):
        read_heads('{"heads": []}', None)
