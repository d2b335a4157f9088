"""API keys of the serving endpoint (`llmops-nb keys create NAME`): hashes only.

Revision ID: 0003_serve
Revises: 0003_ops
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_serve"
down_revision = "0003_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_name", ["name"], unique=False)


def downgrade() -> None:
    op.drop_table("api_keys")
