"""An auditor's own check of log-ingest's audit chains: the standard library and asyncpg only.

    python examples/verify_audit_chain.py postgresql://auditor@db/logs [heads.json]

It reimplements, from docs/contract.md ("The audit chain") alone, what
`log-ingest audit verify` does, and prints one line per break:
`<kind> <tenant> <topic>[<partition>] seq <n>`. Exit 0: every chain intact; 1: broken.
It needs only SELECT on audit_logs and the tables audit_chain, audit_chain_seals,
audit_chain_pruned and audit_chain_start.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

import asyncpg

TS = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
COLUMNS = ["a.id::text", "a.tenant_id::text", "a.user_id", "a.action", "a.resource_type",
           "a.resource_id", "a.changes::text", "a.ip_address", "a.user_agent",
           "a.metadata::text", TS.format("a.created_at"), TS.format("a.updated_at")]  # fmt: skip
ENTRIES = f"""
SELECT c.tenant_id::text, c.topic, c.partition, c.seq, c.prev_hash, c.hash, p.digest,
    a.id IS NOT NULL, {", ".join(COLUMNS)}
FROM audit_chain c LEFT JOIN audit_logs a ON a.id = c.audit_id
LEFT JOIN audit_chain_pruned p
    ON (p.tenant_id, p.topic, p.partition, p.seq) = (c.tenant_id, c.topic, c.partition, c.seq)
ORDER BY c.tenant_id, c.topic, c.partition, c.seq"""
UNCHAINED = """
SELECT a.tenant_id::text, count(*) FROM audit_logs a, audit_chain_start s
WHERE a.created_at >= s.began_at AND NOT EXISTS (SELECT FROM audit_chain c WHERE c.audit_id = a.id)
GROUP BY 1"""


def digest(fields: list[str | None]) -> bytes:
    """SHA-256 of the row: each column as `~` (NULL) or `<UTF-8 length>:<text>`."""
    encoded = b""
    for field in fields:
        if field is None:
            encoded += b"~"
        else:
            data = field.encode()
            encoded += str(len(data)).encode() + b":" + data
    return hashlib.sha256(encoded).digest()


Chain = tuple[str, str, int]  # tenant_id, topic, partition
SEALS = "SELECT tenant_id::text, topic, partition, seq, hash FROM audit_chain_seals"


def entry_break(row: asyncpg.Record, end: tuple[int, bytes]) -> str | None:
    """Why an entry does not follow its chain's end (seq, hash), or None."""
    seq, prev_hash, stored_hash = row[3], row[4], row[5]
    # A row retention deleted past the chain's seal left its digest in audit_chain_pruned.
    row_digest = digest(list(row[8:])) if row[7] else row[6]
    if seq != end[0] + 1 or row_digest is None:
        return "deleted"
    if prev_hash != end[1]:
        return "changed"
    if hashlib.sha256(prev_hash + row_digest).digest() != stored_hash:
        return "changed"
    return None


async def check(url: str, heads: dict[Chain, tuple[int, str]]) -> list[str]:
    db = await asyncpg.connect(url)
    breaks: list[str] = []
    at_head: dict[Chain, bytes] = {}
    broken: set[Chain] = set()
    try:
        async with db.transaction(isolation="repeatable_read", readonly=True):
            # Each chain starts after its seal (retention's cut), or at seq 1 after 32 zeros.
            last: dict[Chain, tuple[int, bytes]] = {
                (r[0], r[1], r[2]): (r[3], r[4]) for r in await db.fetch(SEALS)
            }
            async for row in db.cursor(ENTRIES, prefetch=5000):
                chain, seq = (row[0], row[1], row[2]), row[3]
                if chain in heads and heads[chain][0] == seq:
                    at_head[chain] = row[5]
                kind = entry_break(row, last.get(chain, (0, bytes(32))))
                if kind and chain not in broken:  # the first break of each chain
                    broken.add(chain)
                    breaks.append(f"{kind} {chain[0]} {chain[1]}[{chain[2]}] seq {seq}")
                last[chain] = (seq, row[5])
            for tenant, count in await db.fetch(UNCHAINED):
                breaks.append(f"inserted {tenant}: {count} audit rows without a chain entry")
    finally:
        await db.close()
    for chain, (seq, hex_hash) in heads.items():
        end = last.get(chain, (0, b""))[0]
        if end < seq or (chain in at_head and at_head[chain].hex() != hex_hash):
            breaks.append(f"truncated {chain[0]} {chain[1]}[{chain[2]}] seq {min(end + 1, seq)}")
    return breaks


def read_heads(path: str) -> dict[Chain, tuple[int, str]]:
    with open(path) as file:
        document = json.load(file)
    return {(h["tenant_id"], h["topic"], h["partition"]): (h["seq"], h["hash"])
            for h in document["heads"]}  # fmt: skip


if __name__ == "__main__":
    exported = read_heads(sys.argv[2]) if len(sys.argv) > 2 else {}
    found = asyncio.run(check(sys.argv[1], exported))
    print("\n".join(found) or "intact")
    sys.exit(1 if found else 0)
