"""record merges that can be undone: who decided a pair, which merge_log entry merged it

A merge of two records (by a person in review, or by the rules when a pair scores above the
merge threshold) keeps the merged record and everything moved from it in its merge_log entry;
`merged_id` names that record, `undone_at` marks an undone merge. merge_log.raw_item_id becomes
nullable: a merge decided in review has no item behind it.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import BigId, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("merge_log") as batch:
        batch.alter_column("raw_item_id", existing_type=BigId, nullable=True)
        batch.add_column(sa.Column("merged_id", BigId, nullable=True))
        batch.add_column(sa.Column("undone_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE merge_log SET raw_item_id = NULL WHERE raw_item_id = 0")
    with op.batch_alter_table("duplicate_reviews") as batch:
        batch.add_column(sa.Column("decided_by", sa.String(20), nullable=True))
        batch.add_column(sa.Column("merge_id", BigId, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("duplicate_reviews") as batch:
        batch.drop_column("merge_id")
        batch.drop_column("decided_by")
    op.execute("UPDATE merge_log SET raw_item_id = 0 WHERE raw_item_id IS NULL")
    with op.batch_alter_table("merge_log") as batch:
        batch.drop_column("undone_at")
        batch.drop_column("merged_id")
        batch.alter_column("raw_item_id", existing_type=BigId, nullable=False)
