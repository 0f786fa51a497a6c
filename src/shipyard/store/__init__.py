"""The run store: runs and their append-only events (SQLite by default, PostgreSQL at scale)."""

from shipyard.store.store import Store, new_run_id

__all__ = ["Store", "new_run_id"]
