"""Alembic environment: runs on the connection the Store hands over (never from a URL)."""

from alembic import context
from sqlmodel import SQLModel

from llmops_nb.store import models  # noqa: F401  (registers the tables)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
)
with context.begin_transaction():
    context.run_migrations()
