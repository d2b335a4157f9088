"""Operations: the audit log, model aliases with their history, alert rules and firings.

The prompt alias log (`alias_event`) stays: it is what a prompt rollback undoes. Its rows
are copied into `audit_events` here, and from now on every alias move writes both in
one transaction, so `audit_events` alone is the whole log.

Revision ID: 0003_ops
Revises: 0002_rag
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ops"
down_revision = "0002_rag"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("from_value", sa.String(), nullable=True),
        sa.Column("to_value", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_project_created", ["project_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_action_created", ["action", "created_at"], unique=False
        )

    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("alias", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", "alias"),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("alias", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_alias_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_model_alias_history_alias", ["project_id", "name", "alias", "id"], unique=False
        )

    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("condition", sa.String(), nullable=False),
        sa.Column("window", sa.String(), nullable=False),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("prompt", sa.String(), nullable=True),
        sa.Column("rollback", sa.String(), nullable=True),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "alert_firings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measured", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("rollback", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "window_end"),
    )
    with op.batch_alter_table("alert_firings", schema=None) as batch_op:
        batch_op.create_index("ix_alert_firings_rule_id", ["rule_id"], unique=False)

    # The prompt alias log becomes part of the audit log, oldest first, same times.
    op.execute(
        """
        INSERT INTO audit_events
            (created_at, author, project_id, action, target, from_value, to_value, reason)
        SELECT e.created_at, e.author, p.project_id,
               CASE WHEN e.action = 'rollback' THEN 'rollback' ELSE 'alias moved' END,
               p.name || '@' || e.alias,
               CASE WHEN fv.version IS NULL THEN NULL
                    ELSE 'v' || CAST(fv.version AS VARCHAR) END,
               'v' || CAST(tv.version AS VARCHAR),
               NULL
        FROM alias_event e
        JOIN prompt p ON p.id = e.prompt_id
        JOIN prompt_version tv ON tv.id = e.to_version_id
        LEFT JOIN prompt_version fv ON fv.id = e.from_version_id
        ORDER BY e.id
        """
    )


def downgrade() -> None:
    op.drop_table("alert_firings")
    op.drop_table("alert_rules")
    op.drop_table("model_alias_history")
    op.drop_table("model_aliases")
    op.drop_table("audit_events")
