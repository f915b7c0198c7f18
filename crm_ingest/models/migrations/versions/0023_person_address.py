"""a person's address in columns of its own (Dynamics' address1_line1, _postalcode, _city, _country)

A list's street, postal code, city and country were kept in the lead's details only, where a
campaign cannot select by them and a later list cannot fill them in.

Revision ID: 0023
Revises: 0022
"""
import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

TABLES = ("leads", "contacts")
COLUMNS = (("street", 300), ("postal_code", 20), ("city", 100), ("country", 100))


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for name, length in COLUMNS:
                batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for name, _ in COLUMNS:
                batch.drop_column(name)
