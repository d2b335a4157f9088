"""eval_run.owner: the process running an eval, so a killed run can be marked interrupted.

Revision ID: 0002_runner
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_runner"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("eval_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_run", schema=None) as batch_op:
        batch_op.drop_column("owner")
