"""The response cache keeps the trace of the call that filled it.

Revision ID: 0002_llm
Revises: 0002_tracing
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_llm"
down_revision = "0002_tracing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.drop_column("trace_id")
