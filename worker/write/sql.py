"""The SQL of the write stage (``worker.write``), kept apart so that the logic reads on its own.

Events are COPYed (binary) into temporary staging tables with loose types
(text, bigint), so that most bad values fail in the ``INSERT ... SELECT`` with
a SQLSTATE the sink can act on. The staging tables are created once per
connection and emptied by PostgreSQL at commit: measured as fast as
``ON COMMIT DROP``, without writing the catalog for every batch.
"""

from __future__ import annotations

# Created once per connection (IF NOT EXISTS); PostgreSQL empties them at each commit.
CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage_actions (
    id uuid, tenant_id uuid, action_type text, provider_name text, request_payload text,
    response_data text, status text, error_message text, execution_time_ms bigint,
    metadata text, occurred_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS ingest_stage_audits (
    id uuid, tenant_id uuid, user_id text, action text, resource_type text, resource_id text,
    changes text, ip_address text, user_agent text, metadata text, occurred_at timestamptz,
    topic text, partition integer, "offset" bigint
) ON COMMIT DELETE ROWS;
"""
# Rows of ids not stored yet are COPYed straight into the tables, in these columns (for
# one event, created_at = updated_at = occurred_at; see worker.write.plan.plan_actions): it costs
# PostgreSQL about a quarter less than staging them and merging with INSERT ... ON CONFLICT.
ACTION_COLUMNS = (
    "id", "tenant_id", "action_type", "provider_name", "request_payload", "response_data",
    "status", "error_message", "execution_time_ms", "metadata", "created_at", "updated_at",
)  # fmt: skip
AUDIT_COLUMNS = (
    "id", "tenant_id", "user_id", "action", "resource_type", "resource_id", "changes",
    "ip_address", "user_agent", "metadata", "created_at", "updated_at",
)  # fmt: skip
STAGE_ACTIONS = "ingest_stage_actions"
STAGE_AUDITS = "ingest_stage_audits"

# The fields an action event sets; the row holds those of its latest event.
_ACTION_FIELDS = (
    "tenant_id", "action_type", "provider_name", "request_payload", "response_data",
    "status", "error_message", "execution_time_ms", "metadata",
)  # fmt: skip


def _content_hash(alias: str) -> str:
    # Breaks ties between events of equal occurred_at by content, never by arrival.
    # The same typed values give the same text whether staged or stored.
    fields = ", ".join(f"{alias}.{name}" for name in _ACTION_FIELDS)
    return f"md5(ROW({fields})::text)"


# Row comparison stops at the first unequal pair: the hashes are computed only on ties.
_WINS = f"(EXCLUDED.updated_at, {_content_hash('EXCLUDED')}) > (t.updated_at, {_content_hash('t')})"
_TAKE_WINNER = ",\n    ".join(
    f"{name} = CASE WHEN {_WINS} THEN EXCLUDED.{name} ELSE t.{name} END"
    for name in (*_ACTION_FIELDS, "updated_at")
)

_INSERT_ACTIONS = (
    f"INSERT INTO action_logs AS t (id, {', '.join(_ACTION_FIELDS)}, created_at, updated_at)"
)
_STAGED_FIELDS = ", ".join(f"s.{name}" for name in _ACTION_FIELDS)
_STAGED_ACTIONS = f"""(
    SELECT id, tenant_id, action_type::action_type_enum AS action_type, provider_name,
        request_payload::jsonb AS request_payload, response_data::jsonb AS response_data,
        status::action_status_enum AS status, error_message,
        execution_time_ms::integer AS execution_time_ms, metadata::jsonb AS metadata,
        occurred_at
    FROM {STAGE_ACTIONS}
) AS s"""
# The stored row takes the fields of a later event (ties by content) and the earlier
# created_at of an older one; an exact duplicate matches neither and writes nothing.
_MERGE_INTO_STORED = f"""
ON CONFLICT (id) DO UPDATE SET
    created_at = LEAST(t.created_at, EXCLUDED.created_at),
    {_TAKE_WINNER}
WHERE {_WINS} OR EXCLUDED.created_at < t.created_at
"""

# When every staged event has its own id.
UPSERT_ACTIONS = f"""
{_INSERT_ACTIONS}
SELECT s.id, {_STAGED_FIELDS}, s.occurred_at, s.occurred_at
FROM {_STAGED_ACTIONS}
{_MERGE_INTO_STORED}"""

# When some id has several events in the batch: first merge them the same way (the latest,
# ties by content hashed only where there is a tie; the earliest occurred_at).
MERGE_ACTIONS = f"""
{_INSERT_ACTIONS}
SELECT DISTINCT ON (s.id) s.id, {_STAGED_FIELDS},
    min(s.occurred_at) OVER (PARTITION BY s.id), s.occurred_at
FROM {_STAGED_ACTIONS}
ORDER BY s.id, s.occurred_at DESC,
    CASE WHEN count(*) OVER (PARTITION BY s.id, s.occurred_at) > 1
        THEN {_content_hash("s")} END DESC
{_MERGE_INTO_STORED}"""

# The first stored for an id stands; within a batch, the first by position in Kafka.
_INSERT_AUDITS = f"""
INSERT INTO audit_logs (id, tenant_id, user_id, action, resource_type, resource_id, changes,
    ip_address, user_agent, metadata, created_at, updated_at)
SELECT {{distinct}} id, tenant_id, user_id, action, resource_type, resource_id,
    changes::jsonb, ip_address, user_agent, metadata::jsonb, occurred_at, occurred_at
FROM {STAGE_AUDITS}
{{order}}
ON CONFLICT (id) DO NOTHING
"""
INSERT_AUDITS = _INSERT_AUDITS.format(distinct="", order="")
INSERT_FIRST_AUDITS = _INSERT_AUDITS.format(
    distinct="DISTINCT ON (id)", order='ORDER BY id, topic, partition, "offset"'
)

# Rejects are few (a percent or so of a batch): one statement of parallel arrays is a
# round trip, where COPY into a staging table and INSERT from it took three.
INSERT_REJECTS = """
INSERT INTO ingest_rejects (topic, partition, "offset", key, raw, raw_size, reason, detail)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bytea[], $5::bytea[],
    $6::integer[], $7::text[], $8::text[])
ON CONFLICT (topic, partition, "offset") DO NOTHING
"""

# Compare-and-set of the consumed offsets, and in the same round trip the ids of the
# batch already stored (the write's next step needs them; one round trip fewer per write
# measured 3% more events/s). Rows of kind 'offset' name the partitions that matched.
ADVANCE_OFFSETS = """
WITH moved AS (
    UPDATE ingest_offsets AS o SET next_offset = v.next, updated_at = now()
    FROM unnest($2::text[], $3::integer[], $4::bigint[], $5::bigint[])
        AS v(topic, partition, start, next)
    WHERE o.group_id = $1 AND o.topic = v.topic AND o.partition = v.partition
        AND o.next_offset = v.start
    RETURNING o.topic, o.partition
)
SELECT 'offset' AS kind, topic, partition, NULL::uuid AS id FROM moved
UNION ALL
SELECT 'action', NULL, NULL, id FROM action_logs WHERE id = ANY($6::uuid[])
UNION ALL
SELECT 'audit', NULL, NULL, id FROM audit_logs WHERE id = ANY($7::uuid[])
"""
CLAIM_OFFSETS = """
INSERT INTO ingest_offsets (group_id, topic, partition, next_offset)
SELECT $1, v.topic, v.partition, v.next
FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS v(topic, partition, next)
ON CONFLICT DO NOTHING
RETURNING topic, partition
"""

LOAD_OFFSETS = """
SELECT o.topic, o.partition, o.next_offset
FROM ingest_offsets AS o
JOIN unnest($2::text[], $3::integer[]) AS p(topic, partition)
    ON o.topic = p.topic AND o.partition = p.partition
WHERE o.group_id = $1
"""

EXISTING_TENANTS = "SELECT id FROM tenants WHERE id = ANY($1::uuid[])"

# Behind a transaction-mode pooler (``worker.db.pool_mode``) no temporary table may outlive
# a transaction: the same staging tables, made inside the write's transaction when it
# first needs one (IF NOT EXISTS: a savepoint rolled back may have dropped it), dropped
# at its commit. Keyed by table name.
STAGE_IN_TRANSACTION = {
    statement.split("EXISTS", 1)[1].split()[0]: statement.replace(
        "ON COMMIT DELETE ROWS", "ON COMMIT DROP"
    )
    for statement in CREATE_STAGING.split(";")
    if statement.strip()
}
