"""Tenant stage: the in-memory tenant cache and its invalidation."""
