"""A database error that says 'try again' gives the batch back instead of failing its items."""
import pytest
from sqlalchemy import select, text

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import PENDING, Lead, RawItem
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.workers.batch import run_batch

pytestmark = pytest.mark.integration


def test_a_serialization_failure_releases_the_claim_and_costs_no_attempt(pg_url, sessions_for):
    # Given PostgreSQL refusing a lead with a serialization failure (as under contention)
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    with sessions.begin() as session:
        session.execute(text("""
            CREATE FUNCTION contended() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'could not serialize' USING ERRCODE = 'serialization_failure'; END
            $$ LANGUAGE plpgsql"""))
        session.execute(text("CREATE TRIGGER contended BEFORE INSERT ON leads "
                             "FOR EACH ROW EXECUTE FUNCTION contended()"))
        ids = land_items(session, "list", [NewItem(f"r{i}", "row", {"fields": {"email": f"r{i}@example.com"}})
                                           for i in range(20)])

    # When the batch runs, it raises our retriable error
    with pytest.raises(RetriableError):
        run_batch(sessions, ids, settings)

    # Then its items are pending again, unclaimed, with no attempt counted
    with sessions() as session:
        items = session.scalars(select(RawItem)).all()
        assert {(i.state, i.attempts, i.claim_token) for i in items} == {(PENDING, 0, None)}

    # And once the contention is gone, the retry stores them all
    with sessions.begin() as session:
        session.execute(text("DROP TRIGGER contended ON leads"))
    assert run_batch(sessions, ids, settings).outcomes == {"created": 20}
    with sessions() as session:
        assert len(session.scalars(select(Lead)).all()) == 20
