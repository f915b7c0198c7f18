"""A message of a few items (a form post, a mail) takes other waiting items along into one
transaction, on PostgreSQL and SQLite; list-import rows never; a poison item is taken along once,
then goes alone; two workers taking along at once never take the same item."""
import threading

import pytest
from sqlalchemy import func, select, update

from crm_ingest.ingest.settings import Settings
from crm_ingest.models import DONE, FAILED, PENDING, ImportJob, Lead, RawItem
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.workers.batch import COALESCED, run_batch
from tests.conftest import refuse_lead


def land(sessions, n: int, prefix: str = "w", job_id: int | None = None) -> list[int]:
    with sessions.begin() as session:
        return land_items(session, "list", [NewItem(f"{prefix}{i}", "row",
                                                     {"fields": {"email": f"{prefix}{i}@example.com"}})
                                             for i in range(n)], import_job_id=job_id)


def states(sessions) -> dict[tuple[str, str | None], int]:
    with sessions() as session:
        return dict(((state, claim), count) for state, claim, count in session.execute(
            select(RawItem.state, RawItem.claim_token, func.count()).group_by(RawItem.state, RawItem.claim_token)))


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_a_small_message_takes_waiting_items_along_and_their_messages_find_them_done(
        url_fixture, request, sessions_for):
    # Given 40 waiting items, each with a message of its own
    url = request.getfixturevalue(url_fixture)
    sessions = sessions_for(url)
    settings = Settings(database_url=url)
    ids = land(sessions, 40)

    # When the first message is processed with take-along up to 25 items
    first = run_batch(sessions, ids[:1], settings, coalesce=25)

    # Then it stored its own item and 24 others in one go, marks cleared
    assert (first.claimed, first.coalesced, first.outcomes["created"]) == (1, 24, 25)
    assert states(sessions) == {(DONE, None): 25, (PENDING, None): 15}

    # And a message whose item was taken along finds it done, and takes the rest along
    second = run_batch(sessions, ids[1:2], settings, coalesce=25)
    assert (second.claimed, second.skipped, second.coalesced) == (0, 1, 15)
    assert states(sessions) == {(DONE, None): 40}
    assert run_batch(sessions, ids[39:40], settings, coalesce=25).as_dict()["skipped"] == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 40


def test_list_import_rows_are_never_taken_along(pg_url, sessions_for):
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    with sessions.begin() as session:
        job = ImportJob(source="list", file_name="x.csv", file_sha256="0" * 64, state="landed")
        session.add(job)
        session.flush()
        job_id = job.id
    rows = land(sessions, 30, "row", job_id=job_id)
    single = land(sessions, 3, "form")

    report = run_batch(sessions, single[:1], settings, coalesce=500)

    assert (report.claimed, report.coalesced) == (1, 2)
    with sessions() as session:
        assert set(session.scalars(select(RawItem.state).where(RawItem.id.in_(rows)))) == {PENDING}


def test_a_poison_item_fails_the_batch_once_then_goes_alone_and_the_rest_is_stored(pg_url, sessions_for):
    # Given waiting items, one of which the database refuses (as a DBA's trigger might)
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    with sessions.begin() as session:
        refuse_lead(session, "w7@example.com")
    ids = land(sessions, 20)

    # When a message takes it along
    report = run_batch(sessions, ids[:1], settings, coalesce=500)

    # Then the batch is redone one by one: the others stored, the poison's failure recorded
    assert (report.claimed, report.coalesced, report.failed) == (1, 19, 1)
    with sessions() as session:
        poison = session.scalar(select(RawItem).where(RawItem.external_id == "w7"))
        assert (poison.state, poison.attempts, poison.claim_token) == (PENDING, 1, COALESCED)
        assert "poison lead refused" in poison.last_error
        assert session.scalar(select(func.count()).select_from(Lead)) == 19

    # And once its backoff passed, it is never taken along again: only its own message tries it
    with sessions.begin() as session:
        session.execute(update(RawItem).where(RawItem.id == poison.id).values(lease_until=None))
    more = land(sessions, 5, "v")
    again = run_batch(sessions, more[:1], settings, coalesce=500)
    assert (again.claimed, again.coalesced, again.failed) == (1, 4, 0)
    alone = run_batch(sessions, [poison.id], settings, coalesce=500)
    assert (alone.claimed, alone.coalesced, alone.failed) == (1, 0, 1)


def test_a_worker_that_dies_mid_batch_leaves_its_taken_along_items_to_their_own_messages(pg_url, sessions_for):
    # Given items a batch marked as taken along, whose worker then died (nothing stored)
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    ids = land(sessions, 10)
    with sessions.begin() as session:
        session.execute(update(RawItem).where(RawItem.id.in_(ids[5:])).values(claim_token=COALESCED))

    # When another message takes along, it leaves them out; their own messages store them
    report = run_batch(sessions, ids[:1], settings, coalesce=500)
    assert (report.claimed, report.coalesced) == (1, 4)
    for item_id in ids[5:]:
        assert run_batch(sessions, [item_id], settings, coalesce=500).claimed == 1
    assert states(sessions) == {(DONE, None): 10}


@pytest.mark.integration
def test_two_workers_taking_along_at_once_store_everything_once(pg_url, sessions_for):
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)
    ids = land(sessions, 400)
    reports = []

    def worker(own: list[int]) -> None:
        for item_id in own:
            reports.append(run_batch(sessions, [item_id], settings, coalesce=50))

    threads = [threading.Thread(target=worker, args=(ids[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert states(sessions) == {(DONE, None): 400}
    assert sum(r.claimed + r.coalesced for r in reports) == 400
    assert sum(r.failed for r in reports) == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 400
        assert session.scalar(select(func.count()).select_from(RawItem).where(RawItem.state == FAILED)) == 0
