"""indexes that keep matching cost flat as the database grows

Measured by bench/dedup_scale.py at 1,000,000 contacts: the candidate lookup read every owner
of a common name key to return 50 (ix_match_keys_value had no record_id to read them in order);
a merge scanned all duplicate reviews for pairs naming the merged record on their second side,
and all campaign members for the record's memberships.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_match_keys_value", table_name="match_keys")
    op.create_index("ix_match_keys_lookup", "match_keys", ["value", "scope", "record_id"])
    op.create_index("ix_duplicate_reviews_other", "duplicate_reviews", ["other_type", "other_id"])
    op.create_index("ix_campaign_members_record", "campaign_members", ["record_type", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_members_record", table_name="campaign_members")
    op.drop_index("ix_duplicate_reviews_other", table_name="duplicate_reviews")
    op.drop_index("ix_match_keys_lookup", table_name="match_keys")
    op.create_index("ix_match_keys_value", "match_keys", ["value", "kind", "scope"])
