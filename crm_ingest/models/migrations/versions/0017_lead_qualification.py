"""lead qualification: a lead names the account and contact it was qualified into (Dynamics'
parentaccountid / parentcontactid), and an opportunity carries its lead's source code

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import BigId

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # no foreign keys: a merge deletes the merged account or contact, and one that a lead names
    # must not make the merge fail (see records.Lead)
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("account_id", BigId, nullable=True))
        batch.add_column(sa.Column("contact_id", BigId, nullable=True))
    op.create_index("ix_leads_account_id", "leads", ["account_id"])
    op.create_index("ix_leads_contact_id", "leads", ["contact_id"])
    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("lead_source", sa.String(50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("lead_source")
    op.drop_index("ix_leads_contact_id", table_name="leads")
    op.drop_index("ix_leads_account_id", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("contact_id")
        batch.drop_column("account_id")
