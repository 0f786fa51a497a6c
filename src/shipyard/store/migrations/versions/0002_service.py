"""The service's records: API tokens (hashed), registered repositories, schedules and their claims,
and webhook deliveries already seen.

Revision ID: 0002_service
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_service"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_hash"),
    )
    op.create_table(
        "repos",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("github", sa.Text, nullable=True),
        sa.Column("index_url", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.UniqueConstraint("path", name="uq_repos_path"),
        sa.UniqueConstraint("github", name="uq_repos_github"),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "repo", sa.Text, sa.ForeignKey("repos.name", name="fk_schedules_repo"), nullable=False
        ),
        sa.Column("blueprint", sa.Text, nullable=False),
        sa.Column("cron", sa.Text, nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_table(
        "schedule_claims",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("schedule_id", sa.Text, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text, nullable=False),
        sa.Column("run_ids_json", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_claims_due"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("schedule_claims")
    op.drop_table("schedules")
    op.drop_table("repos")
    op.drop_table("api_tokens")
