"""routing and case fields: queues, SLA times, entitlements, the customer's other active cases

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from crm_ingest.models.base import BigId, UTCDateTime
from crm_ingest.models.records import Json

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlements",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("account_id", BigId, sa.ForeignKey("accounts.id", name="fk_entitlements_account_id_accounts"),
                  nullable=True),
        sa.Column("contact_id", BigId, sa.ForeignKey("contacts.id", name="fk_entitlements_contact_id_contacts"),
                  nullable=True),
        sa.Column("cases_remaining", sa.Integer(), nullable=True),
        sa.Column("hours_remaining", sa.Numeric(10, 2), nullable=True),
        sa.Column("starts_at", UTCDateTime(), nullable=True),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_entitlements"),
    )
    op.create_index("ix_entitlements_account_id", "entitlements", ["account_id"])
    op.create_index("ix_entitlements_contact_id", "entitlements", ["contact_id"])
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("priority_reason", sa.String(40), nullable=True))
        batch.add_column(sa.Column("queue", sa.String(100), nullable=True))
        batch.add_column(sa.Column("first_response_by", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("resolve_by", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("entitlement_id", BigId, nullable=True))
        batch.add_column(sa.Column("other_active_cases", Json, nullable=True))
        batch.create_foreign_key("fk_cases_entitlement_id_entitlements", "entitlements",
                                 ["entitlement_id"], ["id"])
        batch.create_index("ix_cases_entitlement_id", ["entitlement_id"])
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("queue", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("queue")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_entitlement_id")
        batch.drop_constraint("fk_cases_entitlement_id_entitlements", type_="foreignkey")
        for name in ("other_active_cases", "entitlement_id", "resolve_by", "first_response_by", "queue",
                     "priority_reason"):
            batch.drop_column(name)
    op.drop_index("ix_entitlements_contact_id", table_name="entitlements")
    op.drop_index("ix_entitlements_account_id", table_name="entitlements")
    op.drop_table("entitlements")
