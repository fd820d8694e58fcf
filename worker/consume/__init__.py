"""Consume stage: Kafka group membership, seeking to PostgreSQL's positions, fetching."""
