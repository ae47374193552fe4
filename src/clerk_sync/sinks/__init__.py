"""Sinks: built-in after-commit hooks that copy synced objects into another store."""
