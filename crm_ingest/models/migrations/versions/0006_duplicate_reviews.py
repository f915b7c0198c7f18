"""match keys (blocking keys shared by many records) and the duplicate review queue

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import BigId, UTCDateTime
from crm_ingest.models.records import Json

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_keys",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("record_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_match_keys"),
    )
    op.create_index("ix_match_keys_value", "match_keys", ["value", "kind", "scope"])
    op.create_index("ix_match_keys_owner", "match_keys", ["scope", "record_id"])
    op.create_table(
        "duplicate_reviews",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("record_type", sa.String(20), nullable=False),
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("other_type", sa.String(20), nullable=False),
        sa.Column("other_id", BigId, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("suggested", sa.String(10), nullable=False),
        sa.Column("reasons", Json, nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("raw_item_id", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_duplicate_reviews"),
        sa.UniqueConstraint("record_type", "record_id", "other_type", "other_id",
                            name="uq_duplicate_reviews_record_type_record_id_other_type_other_id"),
    )
    op.create_index("ix_duplicate_reviews_state", "duplicate_reviews", ["state"])


def downgrade() -> None:
    op.drop_index("ix_duplicate_reviews_state", table_name="duplicate_reviews")
    op.drop_table("duplicate_reviews")
    op.drop_index("ix_match_keys_owner", table_name="match_keys")
    op.drop_index("ix_match_keys_value", table_name="match_keys")
    op.drop_table("match_keys")
