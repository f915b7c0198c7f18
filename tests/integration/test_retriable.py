"""A database error that says 'try again' gives the batch back instead of failing its items."""
import pytest
from datetime import timedelta

from sqlalchemy import select, text, update

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import PENDING, Lead, RawItem, utcnow
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.workers.batch import lock_due, run_batch, sweep

pytestmark = pytest.mark.integration


def test_a_serialization_failure_gives_the_batch_back_and_costs_no_attempt(pg_url, sessions_for):
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

    # Then its items are still pending, unlocked, with no attempt counted
    with sessions() as session:
        items = session.scalars(select(RawItem)).all()
        assert {(i.state, i.attempts, i.claim_token) for i in items} == {(PENDING, 0, None)}

    with sessions() as session:
        assert len(session.execute(text("SELECT id FROM raw_items FOR UPDATE SKIP LOCKED")).all()) == 20

    # And once the contention is gone, the retry stores them all
    with sessions.begin() as session:
        session.execute(text("DROP TRIGGER contended ON leads"))
    assert run_batch(sessions, ids, settings).outcomes == {"created": 20}
    with sessions() as session:
        assert len(session.scalars(select(Lead)).all()) == 20


def test_the_sweeper_leaves_alone_a_batch_a_worker_is_writing(pg_url, sessions_for):
    # Given items queued long ago, which a slow worker has locked and is still writing
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    with sessions.begin() as session:
        ids = land_items(session, "list", [NewItem(f"s{i}", "row", {"fields": {"email": f"s{i}@example.com"}})
                                           for i in range(4)])
        session.execute(update(RawItem).values(queued_at=utcnow() - timedelta(hours=1)))
    with sessions.begin() as worker:
        held = lock_due(worker, ids[:3])

        # When the sweeper runs meanwhile, with the queue empty
        due = sweep(sessions, settings, queue_empty=True)

    # Then only the item nobody holds is re-queued, and only its attempt is counted
    assert [item.id for item in held] == ids[:3]
    assert due == ids[3:]
    with sessions() as session:
        assert dict(session.execute(select(RawItem.id, RawItem.attempts)).all()) == {**dict.fromkeys(ids[:3], 0),
                                                                               ids[3]: 1}
