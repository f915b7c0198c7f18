"""acknowledgements: the case-number reply to a sender, at most one per case

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import BigId, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acknowledgements",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("in_reply_to", sa.String(998), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_acknowledgements"),
        sa.UniqueConstraint("case_id", name="uq_acknowledgements_case_id"),
    )


def downgrade() -> None:
    op.drop_table("acknowledgements")
