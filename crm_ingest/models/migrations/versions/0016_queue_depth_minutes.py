"""operations: queue depth sampled each minute by the roll-up (the /ops queue chart's history)

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_depth_minutes",
        sa.Column("minute", UTCDateTime(), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "queue", name="pk_queue_depth_minutes"),
    )


def downgrade() -> None:
    op.drop_table("queue_depth_minutes")
