"""a person's mobile number beside the phone (Dynamics' mobilephone beside telephone1)

A list with both a business phone and a mobile kept only the first on the lead; the mobile
reached the raw item's payload alone, and a later list with just the mobile did not find the
person. Both columns are keyed as phones now.

Revision ID: 0022
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TABLES = ("leads", "contacts")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("mobile_phone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("mobile_phone")
