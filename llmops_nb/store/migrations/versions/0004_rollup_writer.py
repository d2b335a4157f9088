"""Monitoring: the span writer keeps the rollups, not triggers.

`record_spans` now folds each batch's LLM spans into llm_rollup and llm_rollup_hour in
its own transaction (one upsert per table), so the per-span triggers of 0003_monitor go.
The rollups are current when this runs, so nothing is backfilled; the downgrade brings
the triggers back, and they carry on from the same totals.

Revision ID: 0004_rollup_writer
Revises: 0003_splits
Create Date: 2026-12-02
"""

from alembic import op

from llmops_nb.store.monitoring import drop_rollup_triggers, rollup_triggers

revision = "0004_rollup_writer"
down_revision = "0003_splits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in drop_rollup_triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in rollup_triggers(op.get_bind().dialect.name):
        op.execute(statement)
