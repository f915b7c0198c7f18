"""raw items: partial and BRIN indexes, so each write of a row touches fewer indexes

A million-row import wrote every raw item three times with seven b-tree indexes each. The
state and record indexes become partial (a row enters the state index when landed, the record
index when it gets its outcome) and the finished_at b-tree becomes a BRIN summary.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNFINISHED = "state IN ('pending', 'processing')"


def upgrade() -> None:
    op.drop_index("ix_raw_items_state_lease", table_name="raw_items")
    op.create_index("ix_raw_items_state_lease", "raw_items", ["state", "lease_until"],
                    postgresql_where=text(UNFINISHED), sqlite_where=text(UNFINISHED))
    op.drop_index("ix_raw_items_record", table_name="raw_items")
    op.create_index("ix_raw_items_record", "raw_items", ["record_type", "record_id"],
                    postgresql_where=text("record_id IS NOT NULL"),
                    sqlite_where=text("record_id IS NOT NULL"))
    op.drop_index("ix_raw_items_finished_at", table_name="raw_items")
    op.create_index("ix_raw_items_finished_at", "raw_items", ["finished_at"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_raw_items_finished_at", table_name="raw_items")
    op.create_index("ix_raw_items_finished_at", "raw_items", ["finished_at"])
    op.drop_index("ix_raw_items_record", table_name="raw_items")
    op.create_index("ix_raw_items_record", "raw_items", ["record_type", "record_id"])
    op.drop_index("ix_raw_items_state_lease", table_name="raw_items")
    op.create_index("ix_raw_items_state_lease", "raw_items", ["state", "lease_until"])
