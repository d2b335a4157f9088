"""Traces record the eval run whose call they hold, so traces can be filtered by run.

Revision ID: 0002_tracing
Revises: 0002_runner
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_tracing"
down_revision = "0002_runner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eval_run_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_trace_eval_run", ["eval_run_id", "start_ns"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.drop_index("ix_trace_eval_run")
        batch_op.drop_column("eval_run_id")
