"""Deploys as they happen: rolling restarts, rollbacks and migrate jobs against a newer schema."""
