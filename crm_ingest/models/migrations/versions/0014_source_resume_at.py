"""source health: resume_at, when the other side's rate limit lets a source be polled again,
and the usage it last reported (Graph API usage headers, Twitter's remaining requests)

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crm_ingest.models.base import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_health") as batch:
        batch.add_column(sa.Column("resume_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("usage", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_health") as batch:
        batch.drop_column("usage")
        batch.drop_column("resume_at")
