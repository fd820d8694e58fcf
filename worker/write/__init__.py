"""Write stage: batches, write lanes, and the one PostgreSQL transaction per batch."""
