"""The ``log-ingest run`` process: start-up, signals, supervision, health, metrics, logs."""
