"""Versioned vector indexes: one row per index version, files under LLMOPS_NB_HOME.

The first schema's `vector_index` (one row per name, the index bytes inline) was never
written to, so it is replaced rather than altered.

Revision ID: 0002_rag
Revises: 0002_llm
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_rag"
down_revision = "0002_llm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("vector_index")
    op.create_table(
        "vector_index",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("embed_model", sa.String(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("space", sa.String(), nullable=False),
        sa.Column("m", sa.Integer(), nullable=False),
        sa.Column("ef_construction", sa.Integer(), nullable=False),
        sa.Column("ef", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", "version"),
    )
    with op.batch_alter_table("vector_index", schema=None) as batch_op:
        batch_op.create_index(
            "ix_vector_index_hash", ["project_id", "name", "hash"], unique=False
        )


def downgrade() -> None:
    op.drop_table("vector_index")
    op.create_table(
        "vector_index",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("embed_model", sa.String(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("index_data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
