"""SQLite: a record's id is never given to another record (AUTOINCREMENT)

Without it SQLite gives a new row the largest id plus one, so a record merged away, reverted
with its import, or deleted, had its id given to the next record: a merge's review then named
the newcomer, its undo failed ('lead 2 exists already'), and items' outcomes pointed at a
stranger. PostgreSQL's sequences never reuse an id; this is a no-op there.

Revision ID: 0025
Revises: 0024
"""
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

TABLES = ("accounts", "contacts", "leads", "opportunities", "cases", "activities")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass
