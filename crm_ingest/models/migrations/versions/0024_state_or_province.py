"""a person's state, province or county in a column of its own (Dynamics' address1_stateorprovince)

Exports from Salesforce ('Mailing State/Province'), HubSpot ('State/Region'), Outlook
('Region (arbete)', 'Business State') and Mailchimp ('REGION') name it; it was kept in the
lead's details only, where a campaign cannot select by it and a later list cannot fill it in.

Revision ID: 0024
Revises: 0023
"""
import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

TABLES = ("leads", "contacts")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("state_or_province", sa.String(length=100), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("state_or_province")
