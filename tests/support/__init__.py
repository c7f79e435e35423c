"""Helpers shared by the test suites (``pythonpath = ["tests"]`` makes them importable)."""
