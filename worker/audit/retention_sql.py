"""The SQL of ``worker.audit.retention``, kept apart so that the logic reads on its own."""

from __future__ import annotations

from typing import Final

from worker.audit.chain import row_bytes

CUTOFF: Final = "SELECT now() - make_interval(days => $1)"

ACTION_TYPES: Final = "SELECT unnest(enum_range(NULL::action_type_enum))"
# No FOR UPDATE SKIP LOCKED: it needs the UPDATE privilege, which retention's role has not.
# A row a writer is merging is waited for (one small transaction, either way).
_OLD_ACTIONS = """
    SELECT id FROM action_logs WHERE action_type = $1 AND created_at < $2 LIMIT $3"""
DELETE_ACTIONS: Final = f"DELETE FROM action_logs WHERE id IN ({_OLD_ACTIONS})"
COUNT_ACTIONS: Final = "SELECT count(*) FROM action_logs WHERE action_type = $1 AND created_at < $2"

CHAINS: Final = """
SELECT tenant_id, topic, partition FROM audit_chain GROUP BY tenant_id, topic, partition
"""
_CHAIN = "c.tenant_id = $1 AND c.topic = $2 AND c.partition = $3"
# The end of the chain's old prefix: just before its first entry whose row is not old (found
# walking the chain in order), or its last entry when every row is old.
CHAIN_CUT: Final = f"""
SELECT coalesce(
    (SELECT c.seq - 1 FROM audit_chain AS c JOIN audit_logs AS a ON a.id = c.audit_id
     WHERE {_CHAIN} AND a.created_at >= $4 ORDER BY c.seq LIMIT 1),
    (SELECT max(c.seq) FROM audit_chain AS c WHERE {_CHAIN}))
"""
SEAL_OF: Final = f"SELECT c.seq, c.hash FROM audit_chain_seals AS c WHERE {_CHAIN}"
# The entries of one step with their rows as the encoding takes them, to check before deleting.
_PRUNED = """LEFT JOIN audit_chain_pruned AS p
    ON (p.tenant_id, p.topic, p.partition, p.seq) = (c.tenant_id, c.topic, c.partition, c.seq)"""
SEGMENT: Final = f"""
SELECT c.seq, c.prev_hash, c.hash, c.audit_id, a.id IS NOT NULL, p.digest,
    {", ".join(row_bytes("a."))}
FROM audit_chain AS c LEFT JOIN audit_logs AS a ON a.id = c.audit_id {_PRUNED}
WHERE {_CHAIN} AND c.seq > $4 AND c.seq <= $5
ORDER BY c.seq
"""
DELETE_PRUNED: Final = """
DELETE FROM audit_chain_pruned
WHERE tenant_id = $1 AND topic = $2 AND partition = $3 AND seq > $4 AND seq <= $5
"""
# Old rows past the cut (they follow a newer one in their chain), with what checks them.
STRAGGLERS: Final = f"""
SELECT c.seq, c.prev_hash, c.hash, c.audit_id, {", ".join(row_bytes("a."))}
FROM audit_chain AS c JOIN audit_logs AS a ON a.id = c.audit_id
WHERE {_CHAIN} AND c.seq > $4 AND a.created_at < $5
ORDER BY c.seq LIMIT $6
"""
PRUNE: Final = """
INSERT INTO audit_chain_pruned (tenant_id, topic, partition, seq, digest)
SELECT $1, $2, $3, unnest($4::bigint[]), unnest($5::bytea[])
"""
DELETE_ENTRIES: Final = """
DELETE FROM audit_chain
WHERE tenant_id = $1 AND topic = $2 AND partition = $3 AND seq > $4 AND seq <= $5
"""
DELETE_CHAINED_ROWS: Final = "DELETE FROM audit_logs WHERE id = ANY($1::uuid[])"
SEAL: Final = """
INSERT INTO audit_chain_seals (tenant_id, topic, partition, seq, hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, topic, partition)
DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, sealed_at = now()
"""

TENANTS: Final = "SELECT id FROM tenants"
_OLD_UNCHAINED = """
    SELECT a.id FROM audit_logs AS a WHERE a.tenant_id = $1 AND a.created_at < $2
        AND NOT EXISTS (SELECT FROM audit_chain AS c WHERE c.audit_id = a.id)
    LIMIT $3"""
DELETE_UNCHAINED: Final = f"DELETE FROM audit_logs WHERE id IN ({_OLD_UNCHAINED})"
COUNT_UNCHAINED: Final = f"SELECT count(*) FROM ({_OLD_UNCHAINED.replace('LIMIT $3', '')}) AS o"
