"""import rows touch fewer indexes: each list row is written twice (landed, then its outcome),
and every b-tree entry on those writes was paid a million times per million-row import

- raw_items' (source, external_id) uniqueness covers the items connectors land (where it is
  what makes landing idempotent), not list-import rows: their job's cursor moves in the same
  transaction as the chunk, so a row is never landed twice (see landing.copy_items), and their
  external id is the file's hash and row number.
- raw_items.import_job_id: a BRIN summary instead of a b-tree; an import's rows land together,
  so the job's rows lie in a few block ranges (the unfinished ones keep their partial b-tree).
- leads' account_id and contact_id (what a lead was qualified into): only the rows that have
  one are indexed; an imported lead has neither.

Revision ID: 0018
Revises: 0017
"""
from alembic import op
from sqlalchemy import text

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LANDED_BY_CONNECTORS = "import_job_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("raw_items") as batch:
        batch.drop_constraint("uq_raw_items_source_external_id", type_="unique")
    op.create_index("uq_raw_items_source_external_id", "raw_items", ["source", "external_id"], unique=True,
                    postgresql_where=text(LANDED_BY_CONNECTORS), sqlite_where=text(LANDED_BY_CONNECTORS))
    op.drop_index("ix_raw_items_import_job_id", table_name="raw_items")
    op.create_index("ix_raw_items_import_job_id", "raw_items", ["import_job_id"], postgresql_using="brin")
    for column in ("account_id", "contact_id"):
        op.drop_index(f"ix_leads_{column}", table_name="leads")
        op.create_index(f"ix_leads_{column}", "leads", [column],
                        postgresql_where=text(f"{column} IS NOT NULL"), sqlite_where=text(f"{column} IS NOT NULL"))


def downgrade() -> None:
    for column in ("account_id", "contact_id"):
        op.drop_index(f"ix_leads_{column}", table_name="leads")
        op.create_index(f"ix_leads_{column}", "leads", [column])
    op.drop_index("ix_raw_items_import_job_id", table_name="raw_items")
    op.create_index("ix_raw_items_import_job_id", "raw_items", ["import_job_id"])
    op.drop_index("uq_raw_items_source_external_id", table_name="raw_items")
    with op.batch_alter_table("raw_items") as batch:
        batch.create_unique_constraint("uq_raw_items_source_external_id", ["source", "external_id"])
