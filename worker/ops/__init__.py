"""Operator tasks behind the CLI (tenants, rejects) and the producers' publisher."""
