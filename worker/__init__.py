"""log-ingest: consume action and audit events from Kafka and store them in PostgreSQL."""
