"""a case opened by a reply to a case resolved too long ago names that case

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import BigId

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("related_case_id", BigId, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("related_case_id")
