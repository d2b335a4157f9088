"""Monitoring: the per-minute rollup of LLM spans, kept by triggers, backfilled once.

Revision ID: 0003_monitor
Revises: 0002_rag
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from llmops_nb.store import models
from llmops_nb.store.monitoring import backfill_rollup, drop_rollup_triggers, rollup_triggers

revision = "0003_monitor"
down_revision = "0002_rag"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_rollup",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("minute_ns", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("prompt", sa.String(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_min_ms", sa.Float(), nullable=False),
        sa.Column("latency_max_ms", sa.Float(), nullable=False),
        *(
            sa.Column(models.latency_bin_column(k), sa.Integer(), nullable=False)
            for k in range(models.LATENCY_BINS)
        ),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("project_id", "minute_ns", "model", "prompt"),
    )
    op.create_index("ix_llm_rollup_minute", "llm_rollup", ["minute_ns"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in rollup_triggers(dialect):
        op.execute(statement)
    op.execute(backfill_rollup(dialect))


def downgrade() -> None:
    for statement in drop_rollup_triggers(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_index("ix_llm_rollup_minute", table_name="llm_rollup")
    op.drop_table("llm_rollup")
