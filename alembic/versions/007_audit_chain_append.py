"""Audit chain append: one function that chains a batch's new audit rows in PostgreSQL.

``audit_chain_append`` takes the ids of the audit rows a transaction has just stored,
in chain order (Kafka offset order), each row's chain, and the heads the writer holds
in memory (NULL for a chain it has not loaded). It reads the heads it lacks (the last
entry, else retention's seal, else the genesis), computes each stored row's digest
and its entry's hash exactly as docs/contract.md defines them, inserts the entries
into ``audit_chain``, and returns each chain's new head. One round trip per batch
where the worker took three (heads, digests, entries), and the worker no longer
hashes row by row: its CPU per audit row fell from 10.6-13.9 us to 3.4-3.7
(docs/benchmarks.md).

SECURITY INVOKER (the default): it reads and writes with the caller's privileges, the
worker's role of docs/sql/02_worker_grants.sql. An entry that collides with a stored one
(heads that were stale) raises unique_violation, as the worker's own INSERT did.

Expand-only: one new function; a build at 006 does not call it.

Revision ID: 007
Revises: 006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "007"
down_revision: str | None = "006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: a new function (see worker.db.compatibility).
compatible_with: str = "006"

_UTC_TEXT = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
# The columns of audit_logs in table order, as the text the encoding takes (contract.md).
_ROW_TEXT = (
    "a.id::text", "a.tenant_id::text", "a.user_id", "a.action", "a.resource_type",
    "a.resource_id", "a.changes::text", "a.ip_address", "a.user_agent", "a.metadata::text",
    _UTC_TEXT.format("a.created_at"), _UTC_TEXT.format("a.updated_at"),
)  # fmt: skip
# Each column printed once (OFFSET 0 keeps PostgreSQL from inlining the subquery, which
# would print a column twice: for its length and for its text; a third less time).
_ROW_PRINTED = "SELECT {} OFFSET 0".format(
    ", ".join(f"{column} AS c{at}" for at, column in enumerate(_ROW_TEXT, 1))
)
# A NULL column is '~', any other '<octets>:<text>' (NULL || ... is NULL: the coalesce
# turns exactly the NULL columns into the marker).
_ROW_DIGEST = "sha256(convert_to({}, 'UTF8'))".format(
    "\n            || ".join(
        f"coalesce(octet_length(t.c{at})::text || ':' || t.c{at}, '~')"
        for at in range(1, len(_ROW_TEXT) + 1)
    )
)

APPEND_FUNCTION = f"""
CREATE FUNCTION audit_chain_append(
    audit_ids uuid[],          -- the rows just stored, in chain order
    chain_of integer[],        -- each row's chain: its index in the chain_* arrays
    chain_tenants uuid[],
    chain_topics text[],
    chain_partitions integer[],
    head_seqs bigint[],        -- each chain's head as the caller holds it; NULL: not known
    head_hashes bytea[]
) RETURNS TABLE (chain integer, seq bigint, hash bytea)
LANGUAGE plpgsql
AS $function$
DECLARE
    seqs bigint[];
    hashes bytea[];
    entry_seqs bigint[] := '{{}}';
    entry_prevs bytea[] := '{{}}';
    entry_hashes bytea[] := '{{}}';
    entries integer := 0;
    entry_hash bytea;
    stored record;
BEGIN
    -- The heads not known: the chain's last entry, else its seal, else the genesis.
    SELECT array_agg(coalesce(k.seq, c.seq, s.seq, 0) ORDER BY k.n),
        array_agg(coalesce(k.hash, c.hash, s.hash, decode(repeat('00', 32), 'hex')) ORDER BY k.n)
    INTO seqs, hashes
    FROM unnest(chain_tenants, chain_topics, chain_partitions, head_seqs, head_hashes)
        WITH ORDINALITY AS k(tenant_id, topic, partition, seq, hash, n)
    LEFT JOIN LATERAL (
        SELECT e.seq, e.hash FROM audit_chain AS e
        WHERE k.seq IS NULL AND e.tenant_id = k.tenant_id AND e.topic = k.topic
            AND e.partition = k.partition
        ORDER BY e.seq DESC LIMIT 1
    ) AS c ON true
    LEFT JOIN audit_chain_seals AS s
        ON k.seq IS NULL AND s.tenant_id = k.tenant_id AND s.topic = k.topic
            AND s.partition = k.partition;

    -- Each row's entry: hash = SHA-256(previous hash || SHA-256(encoding of the stored row)).
    FOR stored IN
        SELECT u.chain, {_ROW_DIGEST} AS digest
        FROM unnest(audit_ids, chain_of) WITH ORDINALITY AS u(id, chain, at)
        JOIN audit_logs AS a ON a.id = u.id
        CROSS JOIN LATERAL ({_ROW_PRINTED}) AS t
        ORDER BY u.at
    LOOP
        entries := entries + 1;
        entry_prevs[entries] := hashes[stored.chain];
        entry_hash := sha256(hashes[stored.chain] || stored.digest);
        hashes[stored.chain] := entry_hash;
        seqs[stored.chain] := seqs[stored.chain] + 1;
        entry_seqs[entries] := seqs[stored.chain];
        entry_hashes[entries] := entry_hash;
    END LOOP;
    IF entries <> cardinality(audit_ids) THEN
        RAISE EXCEPTION 'audit_chain_append: % of % audit rows are not stored',
            cardinality(audit_ids) - entries, cardinality(audit_ids);
    END IF;

    INSERT INTO audit_chain (tenant_id, topic, partition, seq, audit_id, prev_hash, hash)
    SELECT chain_tenants[e.chain], chain_topics[e.chain], chain_partitions[e.chain],
        e.seq, e.id, e.prev, e.hash
    FROM unnest(audit_ids, chain_of, entry_seqs, entry_prevs, entry_hashes)
        AS e(id, chain, seq, prev, hash);

    RETURN QUERY SELECT n::integer, seqs[n], hashes[n] FROM generate_subscripts(seqs, 1) AS n;
END
$function$
"""


def upgrade() -> None:
    op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION audit_chain_append(uuid[], integer[], uuid[], text[], integer[],"
        " bigint[], bytea[])"
    )
