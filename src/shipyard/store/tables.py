"""The store's tables. Events are the record; ``runs`` indexes them for listing and lookup.

Migrations in ``migrations/versions`` create exactly these; keep the two in step.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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
    # Chosen by the writer once per append (migration 0004_append_keys): a retry after a commit
    # whose answer was lost finds its own event instead of writing it twice.
    Column("append_key", Text, nullable=True),
    # Also the index every read of a run's events goes through.
    UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),
    Index("uq_events_run_append_key", "run_id", "append_key", unique=True),
)

# --- the service (migration 0002_service) ---------------------------------------------------------

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("token_hash", Text, nullable=False),  # sha256 of the token; the token itself is not kept
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("token_hash", name="uq_api_tokens_hash"),
)

repos = Table(
    "repos",
    metadata,
    Column("name", Text, primary_key=True),
    Column("path", Text, nullable=False),
    Column("github", Text, nullable=True),  # owner/name, for webhooks
    Column("index_url", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    UniqueConstraint("path", name="uq_repos_path"),
    UniqueConstraint("github", name="uq_repos_github"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Text, primary_key=True),
    Column("repo", Text, ForeignKey("repos.name", name="fk_schedules_repo"), nullable=False),
    Column("blueprint", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("request_json", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
)

schedule_claims = Table(
    "schedule_claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", Text, nullable=False),
    Column("run_ids_json", Text, nullable=True),
    Column("error", Text, nullable=True),
    # The claim: one row per due time, whichever server inserts it first starts the runs.
    UniqueConstraint("schedule_id", "due_at", name="uq_schedule_claims_due"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("event", Text, nullable=False),
    Column("outcome", Text, nullable=False),
)

# --- leases and checkpoints (migration 0003_leases) -----------------------------------------------

leases = Table(
    "leases",
    metadata,
    Column("run_id", Text, ForeignKey("runs.id", name="fk_leases_run_id"), primary_key=True),
    Column("repo", Text, nullable=False),
    # Every message that may advance the run carries a ticket; taking the lease consumes every
    # ticket issued so far, so a duplicate or stale message finds nothing to do.
    Column("ticket", Integer, nullable=False),
    Column("consumed", Integer, nullable=False),
    Column("owner", Text, nullable=True),  # the worker executing a node; None while queued
    Column("node", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("queued_at", DateTime(timezone=True), nullable=True),
    Column("done", Boolean, nullable=False),
    Index("ix_leases_repo_owner", "repo", "owner"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("run_id", Text, ForeignKey("runs.id", name="fk_checkpoints_run_id"), primary_key=True),
    Column("node_index", Integer, primary_key=True),
    Column("node", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
