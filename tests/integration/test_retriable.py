"""A database error that says 'try again' gives the batch back instead of failing its items."""
import pytest
import threading
import time

from sqlalchemy import func, select, text

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import PENDING, IdentityKey, Lead, RawItem
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.workers.batch import due_items, process_items, run_batch
from tests.conftest import guard_leads

pytestmark = pytest.mark.integration


def test_a_serialization_failure_gives_the_batch_back_and_costs_no_attempt(pg_url, sessions_for):
    # Given PostgreSQL refusing a lead with a serialization failure (as under contention)
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    with sessions.begin() as session:
        guard_leads(session, "contended", "RAISE EXCEPTION 'could not serialize' USING ERRCODE = 'serialization_failure';")
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


def test_a_batch_delivered_twice_at_once_is_written_once(pg_url, sessions_for):
    # Given 300 items, a third of them repeating a person, and a worker in the middle of
    # writing them (its transaction open, records written, not committed)
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    with sessions.begin() as session:
        ids = land_items(session, "list", [NewItem(f"d{i}", "row", {"fields": {"email": f"d{i % 200}@example.com"}})
                                           for i in range(300)])
    first = sessions()
    first.begin()
    outcomes, _ = process_items(first, due_items(first, ids), settings)

    # When a second delivery of the same batch runs meanwhile, and the first then commits
    second: dict = {}
    thread = threading.Thread(target=lambda: second.update(report=run_batch(sessions, ids, settings)))
    thread.start()
    _until_a_backend_waits_for_a_lock(sessions)  # the second read them as pending, waits on our keys
    first.commit()
    first.close()
    thread.join(60)

    # Then the second gave way (its transaction rolled back), and each person has one lead
    report = second["report"]
    assert (report.raced, report.claimed, report.outcomes) == (1, 0, {})
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 200
        assert session.scalar(select(func.count()).select_from(IdentityKey)) == 200
        assert dict(session.execute(select(RawItem.state, func.count()).group_by(RawItem.state)).all()) == {
            "done": 300}
        assert set(session.scalars(select(RawItem.attempts))) == {1}
    assert sorted(o.outcome for o in outcomes).count("created") == 200


def _until_a_backend_waits_for_a_lock(sessions, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with sessions() as session:
            if session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND datname = current_database()")):
                return
        time.sleep(0.01)
    raise AssertionError("the second delivery never waited for the first one's keys")
