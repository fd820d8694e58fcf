-- Least-privilege roles for log-ingest. Run once per database as a superuser (or the
-- database owner), before the first `log-ingest migrate`. Set passwords separately:
--   ALTER ROLE log_ingest_migrator PASSWORD '...';  ALTER ROLE log_ingest_worker PASSWORD '...';
--   ALTER ROLE log_ingest_retention PASSWORD '...';
-- Safe to run again.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'log_ingest_migrator') THEN
        CREATE ROLE log_ingest_migrator LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'log_ingest_worker') THEN
        CREATE ROLE log_ingest_worker LOGIN;
    END IF;
    -- `log-ingest retention run` and `log-ingest audit verify|heads`: see 03_retention_grants.sql.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'log_ingest_retention') THEN
        CREATE ROLE log_ingest_retention LOGIN;
    END IF;
    -- The migration job owns the schema and everything it creates.
    EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO log_ingest_migrator', current_database());
    -- The worker connects, stages batches in temporary tables, and nothing more here.
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO log_ingest_worker', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO log_ingest_retention', current_database());
END
$$;

ALTER SCHEMA public OWNER TO log_ingest_migrator;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO log_ingest_worker;
GRANT USAGE ON SCHEMA public TO log_ingest_retention;
