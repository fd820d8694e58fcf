"""``log-ingest audit heads``: every chain's head as JSON, optionally signed; and reading
such a file back for ``audit verify --heads``.

The file is one JSON object::

    {"format": "log-ingest-audit-heads/1", "exported_at": "...Z",
     "heads": [{"tenant_id", "topic", "partition", "seq", "hash" (hex), "chained_at"}, ...],
     "signature": {"algorithm": "HMAC-SHA256", "value": hex}}      # with --sign only

The signature is HMAC-SHA256 under AUDIT_SIGNING_KEY of the object without "signature",
serialized with sorted keys and no spaces (``signed_bytes``). Store the file outside the
database (object storage with a retention lock, a ticket, another team's system): it is what
proves that a chain's tail was not cut and the database not rolled back since.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from worker.audit.heads import ChainKey, Head
from worker.errors import ConfigError, IngestError

FORMAT = "log-ingest-audit-heads/1"
# The last entry of every chain, or its seal when retention deleted every entry.
_HEADS = """
SELECT DISTINCT ON (tenant_id, topic, partition) tenant_id, topic, partition, seq, hash, at
FROM (
    SELECT tenant_id, topic, partition, seq, hash, chained_at AS at FROM audit_chain
    UNION ALL
    SELECT tenant_id, topic, partition, seq, hash, sealed_at FROM audit_chain_seals
) AS h
ORDER BY tenant_id, topic, partition, seq DESC
"""


class HeadsFileError(IngestError):
    """The heads file is not one this build wrote, or its signature does not match."""


async def export_heads(connection: asyncpg.Connection, key: bytes | None) -> dict[str, Any]:
    """The heads of every chain now, as the JSON object above (signed when ``key``)."""
    rows = await connection.fetch(_HEADS)
    document: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": _utc(datetime.now(UTC)),
        "heads": [
            {"tenant_id": str(row["tenant_id"]), "topic": row["topic"],
             "partition": row["partition"], "seq": row["seq"], "hash": row["hash"].hex(),
             "chained_at": _utc(row["at"])}
            for row in rows
        ],
    }  # fmt: skip
    if key is not None:
        document["signature"] = {"algorithm": "HMAC-SHA256", "value": _mac(key, document)}
    return document


def read_heads(text: str, key: bytes | None) -> dict[ChainKey, Head]:
    """The heads of a file ``export_heads`` wrote; its signature checked when it has one.

    A signed file needs the key (``ConfigError`` without it); a wrong signature, or a file
    of another format, raises ``HeadsFileError``.
    """
    try:
        document = json.loads(text)
        if document.get("format") != FORMAT:
            raise HeadsFileError(f"not a heads file of format {FORMAT}")
        signature = document.pop("signature", None)
        if signature is not None:
            if key is None:
                raise ConfigError("the heads file is signed: set AUDIT_SIGNING_KEY to check it")
            if not hmac.compare_digest(signature.get("value", ""), _mac(key, document)):
                raise HeadsFileError("the heads file's signature does not match: altered")
        return {
            (UUID(h["tenant_id"]), h["topic"], int(h["partition"])): (
                int(h["seq"]),
                bytes.fromhex(h["hash"]),
            )
            for h in document["heads"]
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HeadsFileError(f"unreadable heads file: {type(exc).__name__}") from exc


def signed_bytes(document: dict[str, Any]) -> bytes:
    """What the signature covers: the document without its signature, canonically."""
    unsigned = {name: value for name, value in document.items() if name != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def _mac(key: bytes, document: dict[str, Any]) -> str:
    return hmac.new(key, signed_bytes(document), hashlib.sha256).hexdigest()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
