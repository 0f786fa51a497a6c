"""The store's tables. Events are the record; ``runs`` indexes them for listing and lookup.

Migrations in ``migrations/versions`` create exactly these; keep the two in step.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("blueprint", Text, nullable=False),
    Column("repo", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("task_json", Text, nullable=False),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_repo", "repo"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Text, ForeignKey("runs.id", name="fk_events_run_id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("data_json", Text, nullable=False),
    # Also the index every read of a run's events goes through.
    UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),
)
