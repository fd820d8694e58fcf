-- What `log-ingest retention run` may do (and `log-ingest audit verify` and `audit heads`,
-- which only read). Run as log_ingest_migrator (the owner) after `log-ingest migrate`
-- reaches 006 or later. Safe to run again.
--
-- Retention deletes old rows and seals the audit chains it cuts; it never updates a log row
-- nor inserts one, and it writes nothing else.

GRANT SELECT ON alembic_version TO log_ingest_retention;
GRANT SELECT (id) ON tenants TO log_ingest_retention;        -- rows from before the chain, tenant by tenant
GRANT SELECT, DELETE ON action_logs TO log_ingest_retention;
GRANT SELECT, DELETE ON audit_logs TO log_ingest_retention;
GRANT SELECT, DELETE ON audit_chain TO log_ingest_retention;
GRANT SELECT, INSERT, UPDATE ON audit_chain_seals TO log_ingest_retention;  -- one seal per chain
GRANT SELECT, INSERT, DELETE ON audit_chain_pruned TO log_ingest_retention; -- digests of late rows deleted
GRANT SELECT ON audit_chain_start TO log_ingest_retention;                  -- for verify
