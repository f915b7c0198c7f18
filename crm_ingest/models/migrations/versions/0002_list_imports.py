"""list imports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 14:33:23.409858
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from crm_ingest.models.base import UTCDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('merge_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filled', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('keys_added', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merge_log'))
    )
    with op.batch_alter_table('merge_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merge_log_raw_item_id'), ['raw_item_id'], unique=False)
        batch_op.create_index('ix_merge_log_record', ['record_type', 'record_id'], unique=False)

    op.create_table('suppressions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('source', sa.String(length=300), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('kind', 'value', name=op.f('uq_suppressions_kind_value'))
    )
    op.create_table('campaign_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('import_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('raw_item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_members_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['import_job_id'], ['import_jobs.id'], name=op.f('fk_campaign_members_import_job_id_import_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_members')),
    sa.UniqueConstraint('campaign_id', 'record_type', 'record_id', name=op.f('uq_campaign_members_campaign_id_record_type_record_id'))
    )
    with op.batch_alter_table('campaign_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_members_import_job_id'), ['import_job_id'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('do_not_contact', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rows_read', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('cursor', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('consent', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('upsert_by', sa.String(length=10), nullable=False, server_default='email'))
        batch_op.add_column(sa.Column('landed_at', UTCDateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_import_jobs_campaign_id_campaigns'), 'campaigns', ['campaign_id'], ['id'])

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('do_not_contact', sa.Boolean(), nullable=False, server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('do_not_contact')

    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_import_jobs_campaign_id_campaigns'), type_='foreignkey')
        batch_op.drop_column('landed_at')
        batch_op.drop_column('upsert_by')
        batch_op.drop_column('consent')
        batch_op.drop_column('campaign_id')
        batch_op.drop_column('cursor')
        batch_op.drop_column('rows_read')

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('do_not_contact')

    with op.batch_alter_table('campaign_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_members_import_job_id'))

    op.drop_table('campaign_members')
    op.drop_table('suppressions')
    with op.batch_alter_table('merge_log', schema=None) as batch_op:
        batch_op.drop_index('ix_merge_log_record')
        batch_op.drop_index(batch_op.f('ix_merge_log_raw_item_id'))

    op.drop_table('merge_log')
