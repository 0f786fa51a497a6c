"""Leases and checkpoints: which worker executes a run's node, and each finished node's results.

Revision ID: 0003_leases
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_leases"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column(
            "run_id", sa.Text, sa.ForeignKey("runs.id", name="fk_leases_run_id"), primary_key=True
        ),
        sa.Column("repo", sa.Text, nullable=False),
        sa.Column("ticket", sa.Integer, nullable=False),
        sa.Column("consumed", sa.Integer, nullable=False),
        sa.Column("owner", sa.Text, nullable=True),
        sa.Column("node", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done", sa.Boolean, nullable=False),
    )
    op.create_index("ix_leases_repo_owner", "leases", ["repo", "owner"])
    op.create_table(
        "checkpoints",
        sa.Column(
            "run_id",
            sa.Text,
            sa.ForeignKey("runs.id", name="fk_checkpoints_run_id"),
            primary_key=True,
        ),
        sa.Column("node_index", sa.Integer, primary_key=True),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_index("ix_leases_repo_owner", table_name="leases")
    op.drop_table("leases")
