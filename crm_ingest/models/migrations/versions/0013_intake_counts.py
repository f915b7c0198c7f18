"""intake counts: web form submissions by day, form and outcome (refused ones are only counted)

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_counts",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("form", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "form", "outcome", name="pk_intake_counts"),
    )


def downgrade() -> None:
    op.drop_table("intake_counts")
