"""Tamper evidence for ``audit_logs``: a SHA-256 hash chain written at ingest, its
verification, its exported heads, and retention that seals the chains it cuts."""
