"""Upgrading a database that already holds data, on both databases."""
import psycopg
from sqlalchemy import text

from crm_ingest.models import make_engine
from crm_ingest.models.migrate import upgrade
from tests.conftest import run_cli


def _demo_at_first_revision(url, tmp_path):
    import os

    upgrade(url, "0001")
    env = {**{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "INGEST_CONFIG")},
           "DATABASE_URL": url}
    engine = make_engine(url)
    with engine.begin() as conn:  # a contact with a case pointing at it, as the demo leaves them
        conn.execute(text("INSERT INTO contacts (id, email, created_at, updated_at) "
                          "VALUES (1, 'a@example.com', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO cases (id, title, priority, status, contact_id, created_at, updated_at) "
                          "VALUES (1, 'Help', 2, 'active', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    engine.dispose()
    return env


def test_sqlite_with_data_upgrades_to_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    env = _demo_at_first_revision(url, tmp_path)
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT do_not_contact FROM contacts")).scalar() in (0, False)
        assert conn.execute(text("SELECT contact_id FROM cases")).scalar() == 1
    engine.dispose()
    run_cli(env, "status", "--json")


def test_postgresql_with_data_upgrades_to_head(pg_url, tmp_path):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    _demo_at_first_revision(pg_url, tmp_path)
    upgrade(pg_url)
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT do_not_contact FROM contacts")).scalar() is False
    engine.dispose()


def test_the_migrations_build_exactly_the_models(pg_url, sqlite_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from crm_ingest.models import Base

    for url in (pg_url, sqlite_url):
        engine = make_engine(url)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == [], url
        engine.dispose()


def test_keys_are_compared_bytewise_on_postgresql(pg_url):
    """Identity and match keys carry collation "C" whatever the database's (autogenerate's
    comparison above does not look at collations)."""
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        collations = dict(conn.execute(text(
            "SELECT table_name || '.' || column_name, collation_name FROM information_schema.columns "
            "WHERE table_name IN ('identity_keys', 'match_keys') AND data_type = 'character varying'")).all())
    engine.dispose()
    assert collations == {f"{table}.{column}": "C" for table in ("identity_keys", "match_keys")
                          for column in ("scope", "kind", "value")}
