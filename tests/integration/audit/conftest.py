"""The audit chain's tests use the write stage's fixtures: a migrated pool, a sink, a tenant."""

from tests.integration.write.conftest import pool, sink, tenant

__all__ = ["pool", "sink", "tenant"]
