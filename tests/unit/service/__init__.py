"""Unit tests of worker.service."""
