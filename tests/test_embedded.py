"""The same core on the embedded path: SQLite file, work in-process, no servers."""
from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import func, select, text, update

from crm_ingest.ingest.settings import Settings, from_toml
from crm_ingest.models import DONE, FAILED, IdentityKey, Lead, RawItem, utcnow
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.workers.batch import run_batch, sweep
from crm_ingest.workers.dispatch import process_now, run_due
from tests.integration.workload import people_with_duplicates


def settings_for(url: str, **pipeline) -> Settings:
    base = {"batch_size": 100, "retry_backoff_seconds": 0.01, "retry_backoff_max_seconds": 0.01}
    settings = from_toml({"pipeline": {**base, **pipeline}})
    return Settings(database_url=url, sources=settings.sources, pipeline=settings.pipeline)


def land_rows(sessions, rows) -> list[int]:
    with sessions.begin() as session:
        return land_items(session, "list", [NewItem(r["external_id"], "row", r) for r in rows])


def test_duplicates_become_one_record_per_person_and_a_rerun_adds_nothing(sqlite_url, sessions_for):
    # Given 2,000 rows, 30% repeating earlier people in other case and spacing
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url)
    rows, people = people_with_duplicates(2000, 0.30)

    # When they are landed and processed in-process, then landed again
    ids = land_rows(sessions, rows)
    report = process_now(sessions, ids, settings)
    again = land_rows(sessions, rows)

    # Then each person has one lead, each item one outcome, and the re-run lands nothing
    assert report.outcomes == {"created": people, "merged": 2000 - people}
    assert again == []
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == people
        assert session.scalar(select(func.count()).select_from(IdentityKey)) == people
        states = dict(session.execute(select(RawItem.state, func.count()).group_by(RawItem.state)).all())
    assert states == {DONE: 2000}


def test_processing_the_same_batch_twice_changes_nothing(sqlite_url, sessions_for):
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url)
    ids = land_rows(sessions, [{"external_id": "a", "fields": {"email": "a@example.com"}}])
    first = run_batch(sessions, ids, settings)
    second = run_batch(sessions, ids, settings)
    assert first.outcomes == {"created": 1}
    assert second.claimed == 0 and second.skipped == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1


def _delivered_long_ago(sessions, ids) -> None:
    """As a batch whose worker died mid-write leaves it: pending, its message gone long ago."""
    with sessions.begin() as session:
        session.execute(update(RawItem).where(RawItem.id.in_(ids))
                        .values(queued_at=utcnow() - timedelta(hours=1)))


def test_a_batch_whose_worker_died_is_redelivered_by_the_sweeper(sqlite_url, sessions_for):
    # Given a batch delivered to a worker that died before writing it (nothing was stored)
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url)
    ids = land_rows(sessions, [{"external_id": f"r{i}", "fields": {"email": f"r{i}@example.com"}}
                               for i in range(10)])
    _delivered_long_ago(sessions, ids)

    # When the sweeper runs
    report = run_due(sessions, settings)

    # Then every item is processed once; the lost delivery counts as an attempt
    assert report.outcomes == {"created": 10}
    with sessions() as session:
        assert set(session.scalars(select(RawItem.attempts))) == {2}
        assert session.scalar(select(func.count()).select_from(Lead)) == 10


def test_an_item_that_kills_its_worker_every_time_is_set_aside(sqlite_url, sessions_for):
    # Given an item whose every delivery dies with its worker, and at most 3 attempts
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url, max_attempts=3)
    ids = land_rows(sessions, [{"external_id": "killer", "fields": {"email": "k@example.com"}}])

    # When the sweeper re-delivers it after each death
    redelivered = []
    for _ in range(3):
        _delivered_long_ago(sessions, ids)
        redelivered.append(sweep(sessions, settings))

    # Then it was re-delivered twice, then set aside as failed, naming why
    assert redelivered == [ids, ids, []]
    with sessions() as session:
        item = session.get(RawItem, ids[0])
        assert (item.state, item.attempts) == (FAILED, 3)
        assert "not finished after 3 deliveries" in item.last_error


def test_a_deep_queue_is_requeued_late_and_without_counting_attempts(sqlite_url, sessions_for):
    # Given items queued an hour ago that still wait in a busy queue
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url, requeue_after_seconds=600)
    ids = land_rows(sessions, [{"external_id": f"q{i}", "fields": {"email": f"q{i}@example.com"}}
                               for i in range(3)])
    _delivered_long_ago(sessions, ids)

    # When the sweeper runs while the process queue is not empty
    due = sweep(sessions, settings, queue_empty=False)

    # Then nothing is queued again before ten times requeue_after, and no attempt is counted
    assert due == []
    with sessions() as session:
        assert set(session.scalars(select(RawItem.attempts))) == {0}


def test_a_poison_item_fails_after_max_attempts_and_its_batch_is_stored(sqlite_url, sessions_for):
    # Given a database that refuses one lead, and at most 3 attempts
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url, max_attempts=3)
    with sessions.begin() as session:
        session.execute(text("CREATE TRIGGER poison BEFORE INSERT ON leads "
                             "WHEN NEW.email = 'poison@example.com' "
                             "BEGIN SELECT RAISE(ABORT, 'poison lead refused'); END"))
    rows = [{"external_id": f"ok{i}", "fields": {"email": f"ok{i}@example.com"}} for i in range(50)]
    rows.insert(25, {"external_id": "poison", "fields": {"email": "poison@example.com"}})
    ids = land_rows(sessions, rows)

    # When processed, and retried by the sweeper until it gives up
    first = process_now(sessions, ids, settings)
    for _ in range(10):
        time.sleep(0.05)
        run_due(sessions, settings)

    # Then the rest of the batch is stored and the poison item is failed with its error
    assert first.outcomes == {"created": 50} and first.failed == 1
    with sessions() as session:
        poison = session.scalar(select(RawItem).where(RawItem.external_id == "poison"))
        assert (poison.state, poison.attempts) == (FAILED, 3)
        assert "poison lead refused" in poison.last_error
        assert session.scalar(select(func.count()).select_from(Lead)) == 50


def test_rejected_and_ignored_items_carry_their_reason(sqlite_url, sessions_for):
    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url)
    with sessions.begin() as session:
        ids = land_items(session, "list", [
            NewItem("bad-email", "row", {"fields": {"email": "anna.example.se"}}),
            NewItem("nothing", "row", {"fields": {"first_name": "Anna"}}),
            NewItem("bad-phone", "row", {"fields": {"phone": "12"}}),
        ])
        ids += land_items(session, "mail", [NewItem("<ooo@x>", "email", {
            "from_email": "kalle@example.se", "subject": "Frånvaro", "text": "Jag är borta",
            "headers": {"Auto-Submitted": "auto-replied"}})])
    process_now(sessions, ids, settings)
    with sessions() as session:
        got = dict(session.execute(select(RawItem.external_id, RawItem.outcome_reason)).all())
        outcomes = dict(session.execute(select(RawItem.external_id, RawItem.outcome)).all())
    assert outcomes == {"bad-email": "rejected", "nothing": "rejected", "bad-phone": "rejected",
                        "<ooo@x>": "ignored"}
    assert got["bad-email"].startswith("email: invalid email")
    assert got["nothing"] == "email/phone: no email and no phone"
    assert got["bad-phone"].startswith("phone: invalid phone")
    assert got["<ooo@x>"] == "auto-reply"


def test_the_sweeper_leaves_items_waiting_in_a_deep_queue_alone(sqlite_url, sessions_for):
    from datetime import timedelta

    from crm_ingest.models import utcnow
    from crm_ingest.workers.batch import sweep

    sessions = sessions_for(sqlite_url)
    settings = settings_for(sqlite_url, requeue_after_seconds=10)
    ids = land_rows(sessions, [{"external_id": f"q{i}", "fields": {"email": f"q{i}@example.com"}}
                               for i in range(3)])
    now = utcnow()
    with sessions.begin() as session:  # queued 20 s ago, 200 s ago, and not queued at all
        for item_id, queued in zip(ids, (now - timedelta(seconds=20), now - timedelta(seconds=200), None)):
            session.execute(update(RawItem).where(RawItem.id == item_id).values(queued_at=queued))

    # While batches wait in the broker, only the unqueued item and the very old one are re-queued
    assert sorted(sweep(sessions, settings, queue_empty=False)) == [ids[1], ids[2]]
    # Once the queue is empty, a pending item queued longer ago than requeue_after was lost: re-queue it
    with sessions.begin() as session:
        session.execute(update(RawItem).where(RawItem.id == ids[0]).values(queued_at=now - timedelta(seconds=20)))
    assert sweep(sessions, settings, queue_empty=True) == [ids[0]]
