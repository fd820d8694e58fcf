"""Decode stage: a message's bytes become a table row or a reject (pure, no I/O)."""
