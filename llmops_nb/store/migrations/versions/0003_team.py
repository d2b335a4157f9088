"""Indexes for retention on a shared store (lo.prune).

- eval_result.trace_id: prune keeps the traces that eval results point to.
- response_cache.created_at: prune finds old cache entries without a scan.

Revision ID: 0003_team
Revises: 0002_rag
Create Date: 2026-12-02
"""

from alembic import op

revision = "0003_team"
down_revision = "0003_serve"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("eval_result", schema=None) as batch_op:
        batch_op.create_index("ix_eval_result_trace_id", ["trace_id"], unique=False)
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.create_index("ix_response_cache_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.drop_index("ix_response_cache_created_at")
    with op.batch_alter_table("eval_result", schema=None) as batch_op:
        batch_op.drop_index("ix_eval_result_trace_id")
