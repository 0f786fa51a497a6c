"""Append keys: a retried append that finds its own event already written returns it, once.

Revision ID: 0004_append_keys
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_append_keys"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new nullable column changes no existing row, so the append-only triggers are not involved.
    op.add_column("events", sa.Column("append_key", sa.Text, nullable=True))
    op.create_index("uq_events_run_append_key", "events", ["run_id", "append_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_events_run_append_key", table_name="events")
    # A plain ALTER (SQLite 3.35+): a batch copy of the table would lose its triggers.
    op.drop_column("events", "append_key")
