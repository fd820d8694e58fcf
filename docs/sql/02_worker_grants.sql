-- What the worker may do, table by table. Run as log_ingest_migrator (the owner) after
-- every `log-ingest migrate` that adds tables. Safe to run again.

GRANT SELECT ON alembic_version TO log_ingest_worker;          -- the start-up schema check
GRANT SELECT ON schema_compatibility TO log_ingest_worker;     -- whether a newer schema accepts this build
GRANT SELECT ON tenants TO log_ingest_worker;                  -- the tenant cache
GRANT SELECT, INSERT, UPDATE ON action_logs TO log_ingest_worker;   -- lifecycle merge (upsert)
-- Append-only tables: INSERT, and SELECT on just the conflict target that ON CONFLICT reads.
GRANT SELECT (id), INSERT ON audit_logs TO log_ingest_worker;
GRANT SELECT (topic, "partition", "offset"), INSERT ON ingest_rejects TO log_ingest_worker;
GRANT SELECT, INSERT, UPDATE ON ingest_offsets TO log_ingest_worker; -- the offset compare-and-set
-- Since migration 005: a position the worker does not continue from is recorded, and when
-- a log was replaced its rejects are moved out of the new log's way (DELETE ... RETURNING).
GRANT SELECT, INSERT ON ingest_gaps TO log_ingest_worker;
GRANT SELECT, DELETE ON ingest_rejects TO log_ingest_worker;
GRANT INSERT ON ingest_rejects_superseded TO log_ingest_worker;
-- Since migration 006: the audit chain. The worker reads back the audit rows it has just
-- stored (PostgreSQL computes each one's digest from the stored values), appends chain
-- entries, and reads the heads (the last entry, or retention's seal) of the chains it
-- writes; it can neither change nor delete an audit row, a chain entry or a seal.
GRANT SELECT ON audit_logs TO log_ingest_worker;
GRANT SELECT, INSERT ON audit_chain TO log_ingest_worker;
GRANT SELECT ON audit_chain_seals TO log_ingest_worker;
-- Since migration 007: one function computes a batch's entries in PostgreSQL. It runs with
-- the privileges above (SECURITY INVOKER); EXECUTE is granted to PUBLIC by default, and
-- here as well for databases that revoke it.
GRANT EXECUTE ON FUNCTION
    audit_chain_append(uuid[], integer[], uuid[], text[], integer[], bigint[], bytea[])
    TO log_ingest_worker;
