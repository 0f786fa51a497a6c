"""Alembic environment: migrates on the connection the store hands it, or on ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from shipyard.store.tables import metadata

config = context.config
version_table = config.get_main_option("version_table") or "alembic_version"
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, version_table=version_table)
    with context.begin_transaction():
        context.run_migrations()
else:  # run by hand: `alembic -x ... upgrade head` with sqlalchemy.url set
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, version_table=version_table)
        context.run_migrations()
    engine.dispose()
