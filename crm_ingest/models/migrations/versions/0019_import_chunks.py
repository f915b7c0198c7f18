"""import chunks: a list import's rows wait as chunks of thousands, and each row is written to
raw_items once, with its outcome (see models.pipeline.ImportChunk)

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from crm_ingest.models.base import BigId, UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

WAITING = "state = 'pending'"


def upgrade() -> None:
    op.create_table(
        "import_chunks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("import_job_id", BigId, sa.ForeignKey("import_jobs.id", name="fk_import_chunks_import_job_id_import_jobs"),
                  nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Text(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_import_chunks"),
    )
    op.create_index("ix_import_chunks_import_job_id", "import_chunks", ["import_job_id"])
    op.create_index("ix_import_chunks_waiting", "import_chunks", ["import_job_id"],
                    postgresql_where=text(WAITING), sqlite_where=text(WAITING))
    if op.get_bind().dialect.name == "postgresql":
        # rows are written once and read once: compressing them is CPU spent for nothing
        op.execute("ALTER TABLE import_chunks ALTER COLUMN rows SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("import_chunks")
