"""Every compression codec a producer may use decodes here, with what a plain install brings."""

from __future__ import annotations

import importlib.metadata
import tomllib
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
# Kafka's codec ids (the low three bits of a record batch's attributes).
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# A fetch's worth of events: repetitive JSON, as real batches are, so compression pays off.
VALUES = [
    orjson.dumps({"id": i, "tenant_id": "7d8f", "notes": ["alpha beta gamma"] * (i % 7 + 1)})
    for i in range(200)
]


def functions(name: str) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    encode: Callable[[bytes], bytes] = getattr(codec, f"{name}_encode")
    decode: Callable[[bytes], bytes] = getattr(codec, f"{name}_decode")
    return encode, decode


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_round_trips(name: str) -> None:
    """aiokafka has the codec's library, and what it compresses it gives back unchanged."""
    assert getattr(codec, f"has_{name}")(), f"no library for {name}: see pyproject's dependencies"
    encode, decode = functions(name)
    payload = b"\n".join(VALUES)
    compressed = encode(payload)
    assert len(compressed) < len(payload)
    assert decode(compressed) == payload


@pytest.mark.parametrize("name", sorted(CODECS))
def test_compressed_record_batch_decodes_as_a_fetch_does(name: str) -> None:
    """A batch compressed with the codec reads back record by record, offsets and values intact."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODECS[name], is_transactional=0,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1024 * 1024,
    )  # fmt: skip
    for offset, value in enumerate(VALUES):
        assert builder.append(offset, timestamp=None, key=None, value=value, headers=[])
    records = MemoryRecords(bytes(builder.build()))
    batch = records.next_batch()
    assert batch is not None
    assert batch.compression_type == CODECS[name]  # compressed, not sent plain
    assert [(r.offset, r.value) for r in batch] == list(enumerate(VALUES))
    assert records.next_batch() is None


def test_a_plain_install_brings_every_codec() -> None:
    """`pip install .` (the image: no extras) pulls aiokafka's codec extras, hence their library."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    (aiokafka,) = [r for r in requirements if r.name == "aiokafka"]
    assert aiokafka.extras >= {"lz4", "snappy", "zstd"}  # gzip is in the standard library
    declared = [Requirement(line) for line in importlib.metadata.requires("aiokafka") or []]
    for extra in ("lz4", "snappy", "zstd"):
        brought = {r.name for r in declared if r.marker and r.marker.evaluate({"extra": extra})}
        assert brought, f"aiokafka's extra {extra} brings nothing"
        for name in brought:
            assert importlib.metadata.version(name), name
