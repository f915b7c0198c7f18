"""partial index on the unfinished rows of import jobs

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("state IN ('pending', 'processing')")


def upgrade() -> None:
    op.create_index("ix_raw_items_unfinished_job", "raw_items", ["import_job_id"],
                    postgresql_where=UNFINISHED, sqlite_where=UNFINISHED)


def downgrade() -> None:
    op.drop_index("ix_raw_items_unfinished_job", table_name="raw_items")
