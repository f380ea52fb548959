"""Alembic environment: one shared metadata, sync drivers (sqlite, psycopg)."""

from alembic import context
from sqlmodel import SQLModel

import core.containers  # noqa: F401
import core.models  # noqa: F401  (registers the tables)
import core.responses  # noqa: F401
import core.uploads  # noqa: F401
from core.db import sync_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = sync_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
