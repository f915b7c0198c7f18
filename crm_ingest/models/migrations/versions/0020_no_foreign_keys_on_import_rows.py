"""no foreign-key checks on the tables a list import writes a million rows to

PostgreSQL checks a foreign key per inserted row with a query and a key-share lock on the
referenced row; every row of an import references the same job and campaign, so concurrent
workers queue on one row's lock, and the checks were a fifth of a million-row import's database
time. Jobs and campaigns are never deleted, and each is written before the first row naming
it, so the checks never caught anything:

- raw_items.import_job_id, campaign_members.import_job_id (-> import_jobs)
- campaign_members.campaign_id, leads.campaign_id (-> campaigns)

Revision ID: 0020
Revises: 0019
"""
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

DROPPED = [("raw_items", "import_job_id", "import_jobs"),
           ("campaign_members", "import_job_id", "import_jobs"),
           ("campaign_members", "campaign_id", "campaigns"),
           ("leads", "campaign_id", "campaigns")]


def upgrade() -> None:
    for table, column, referred in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_{column}_{referred}", type_="foreignkey")


def downgrade() -> None:
    for table, column, referred in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_{column}_{referred}", referred, [column], ["id"])
