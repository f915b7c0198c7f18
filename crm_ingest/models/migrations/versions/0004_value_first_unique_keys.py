"""identity keys and suppressions: unique indexes lead with the value

A bulk import showed PostgreSQL choosing, for a prepared lookup, an index scan on
(scope, kind) with the value as a mere filter while statistics still described an empty
table: every key of the scope was read for each batch. With the value leading, any use of
the index is a lookup by value.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_keys") as batch:
        batch.drop_constraint("uq_identity_keys_scope_kind_value", type_="unique")
        batch.create_unique_constraint("uq_identity_keys_value_kind_scope", ["value", "kind", "scope"])
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_constraint("uq_suppressions_kind_value", type_="unique")
        batch.create_unique_constraint("uq_suppressions_value_kind", ["value", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_constraint("uq_suppressions_value_kind", type_="unique")
        batch.create_unique_constraint("uq_suppressions_kind_value", ["kind", "value"])
    with op.batch_alter_table("identity_keys") as batch:
        batch.drop_constraint("uq_identity_keys_value_kind_scope", type_="unique")
        batch.create_unique_constraint("uq_identity_keys_scope_kind_value", ["scope", "kind", "value"])
