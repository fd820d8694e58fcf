"""The database: models, engine and sessions, the migration job, PostgreSQL error classes."""
