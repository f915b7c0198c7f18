"""operations: per-minute throughput rollups, alert states, and a BRIN summary of raw items'
landing time (rollups and "landed in the last hour" read by it)

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "throughput_minutes",
        sa.Column("minute", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("event", sa.String(10), nullable=False),
        sa.Column("record_type", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("latency_seconds_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "source", "event", "record_type", "outcome",
                                name="pk_throughput_minutes"),
    )
    op.create_table(
        "alert_states",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_alert_states"),
    )
    op.create_index("ix_raw_items_received_at", "raw_items", ["received_at"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_raw_items_received_at", table_name="raw_items")
    op.drop_table("alert_states")
    op.drop_table("throughput_minutes")
