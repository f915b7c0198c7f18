"""A list import's rows wait in chunks and are written to raw_items once, with their outcomes:
waiting rows count as pending everywhere; a chunk the database refuses as a whole, or one that
keeps dying with its worker, is split into items and only the bad row is set aside; the
sweeper re-queues a chunk whose message was lost but never one a worker holds."""
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.importjobs import job_counts, revert_job
from crm_ingest.ingest.report import item_counts
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import DONE, FAILED, PENDING, ImportChunk, ImportJob, Lead, RawItem, utcnow
from crm_ingest.models.landing import NewItem, land_chunk
from crm_ingest.ops.rollups import sample_depths
from crm_ingest.ops.snapshot import oldest_unfinished_age, totals
from crm_ingest.workers.chunks import SPLIT, run_chunk, sweep_chunks
from crm_ingest.workers.dispatch import process_now, wait_for_job
from tests.conftest import guard_leads, refuse_lead

URLS = ["pg_url", "sqlite_url"]


def settings_for(url: str, max_attempts: int = 5) -> Settings:
    settings = Settings(database_url=url)
    return replace(settings, pipeline=replace(settings.pipeline, max_attempts=max_attempts))


def land_job(sessions, emails: list[str]) -> tuple[int, int]:
    """An import job with one waiting chunk of these rows: (job id, chunk id)."""
    with sessions.begin() as session:
        job = ImportJob(source="list", file_name="x.csv", file_sha256="0" * 64, state="landed",
                        rows_read=len(emails), rows_landed=len(emails))
        session.add(job)
        session.flush()
        rows = [NewItem(f"{'0' * 20}:{n + 2}", "row", {"fields": {"email": email}, "row": n + 2, "file": "x.csv"})
                for n, email in enumerate(emails)]
        return job.id, land_chunk(session, "list", rows, import_job_id=job.id)


def outcomes(sessions, job_id: int) -> dict[tuple[str, str | None], int]:
    with sessions() as session:
        return {(state, outcome): n for state, outcome, n in session.execute(
            select(RawItem.state, RawItem.outcome, func.count()).where(RawItem.import_job_id == job_id)
            .group_by(RawItem.state, RawItem.outcome))}


@pytest.mark.parametrize("url_fixture", URLS)
def test_waiting_rows_count_as_pending_and_each_row_becomes_one_raw_item_with_its_outcome(
        url_fixture, request, sessions_for):
    # Given a chunk of 30 rows waiting, two of them repeating an earlier row
    url = request.getfixturevalue(url_fixture)
    sessions = sessions_for(url)
    emails = [f"p{n}@example.com" for n in range(28)] + ["p3@example.com", "P7@Example.com"]
    job_id, chunk_id = land_job(sessions, emails)

    # Then its rows are pending for the job, the status counts, the depth sample and the age
    with sessions.begin() as session:
        assert job_counts(session, job_id)["pending"] == 30 and job_counts(session, job_id)["rows"] == 30
        assert item_counts(session)["by_state"][PENDING] == 30 and item_counts(session)["received"] == 30
        assert totals(session)["items"]["by_state"][PENDING] == 30
        assert totals(session)["landed_by_source"] == {"list": 30}
        assert oldest_unfinished_age(session, utcnow() + timedelta(seconds=5)) >= 5
        sample_depths(session, utcnow().replace(second=0, microsecond=0))
    assert wait_for_job(sessions, job_id, timeout=0) == 30

    # When a worker processes it
    report, split = run_chunk(sessions, chunk_id, settings_for(url))

    # Then every row is one raw item with its outcome, written once (attempt 1), nothing waits
    assert split == [] and report.claimed == 30 and report.outcomes == {"created": 28, "merged": 2}
    assert outcomes(sessions, job_id) == {(DONE, "created"): 28, (DONE, "merged"): 2}
    with sessions() as session:
        counts = job_counts(session, job_id)
        assert (counts["created"], counts["duplicate_in_file"], counts["pending"], counts["rows"]) == (28, 2, 0, 30)
        repeat = session.scalar(select(RawItem).where(RawItem.external_id == f"{'0' * 20}:30"))
        assert (repeat.attempts, repeat.outcome_reason) == (1, "duplicate of row 5 in this file")
        chunk = session.get(ImportChunk, chunk_id)
        assert (chunk.state, chunk.rows, chunk.attempts) == (DONE, None, 1)
        assert session.scalar(select(func.count()).select_from(Lead)) == 28
    assert wait_for_job(sessions, job_id, timeout=0) == 0

    # And a second delivery of its message finds it done
    again, split = run_chunk(sessions, chunk_id, settings_for(url))
    assert (again.claimed, split) == (0, [])
    assert outcomes(sessions, job_id) == {(DONE, "created"): 28, (DONE, "merged"): 2}


def test_a_chunk_the_database_refuses_is_split_and_only_the_bad_row_is_set_aside(pg_url, sessions_for):
    # Given a chunk with one row whose lead the database refuses
    sessions = sessions_for(pg_url)
    settings = settings_for(pg_url, max_attempts=1)
    with sessions.begin() as session:
        refuse_lead(session, "poison@example.com")
    emails = [f"ok{n}@example.com" for n in range(40)]
    emails.insert(17, "poison@example.com")
    job_id, chunk_id = land_job(sessions, emails)

    # When it is processed: the chunk fails as a whole and is split into items
    report, split = run_chunk(sessions, chunk_id, settings)
    assert report.claimed == 0 and len(split) == 41
    with sessions() as session:
        chunk = session.get(ImportChunk, chunk_id)
        assert chunk.state == SPLIT and chunk.rows is None and "poison lead refused" in chunk.last_error
        assert job_counts(session, job_id)["pending"] == 41  # nothing lost in between

    # And the items are processed as any failed batch's are: one by one
    process_now(sessions, split, settings)

    # Then the 40 good rows are leads and the bad one is set aside with the database's reason
    assert outcomes(sessions, job_id) == {(DONE, "created"): 40, (FAILED, None): 1}
    with sessions() as session:
        poison = session.scalar(select(RawItem).where(RawItem.state == FAILED))
        assert poison.payload["fields"]["email"] == "poison@example.com"
        assert "poison lead refused" in poison.last_error
        assert job_counts(session, job_id)["rows"] == 41


def test_a_chunk_that_meets_a_serialization_failure_is_retried_whole_not_split(pg_url, sessions_for):
    # Given a chunk, and PostgreSQL refusing leads with a serialization failure (as under
    # contention); the new leads go in with COPY, on the driver's own cursor
    sessions = sessions_for(pg_url)
    settings = settings_for(pg_url)
    with sessions.begin() as session:
        guard_leads(session, "contended", "RAISE EXCEPTION 'could not serialize' USING ERRCODE = 'serialization_failure';")
    job_id, chunk_id = land_job(sessions, [f"s{n}@example.com" for n in range(15)])

    # When it is processed, the worker is told to retry it (not to split it into items)
    with pytest.raises(RetriableError):
        run_chunk(sessions, chunk_id, settings)
    with sessions() as session:
        chunk = session.get(ImportChunk, chunk_id)
        assert (chunk.state, chunk.rows is not None, chunk.last_error) == (PENDING, True, None)
        assert outcomes(sessions, job_id) == {}

    # And once the contention is gone, the retry stores every row
    with sessions.begin() as session:
        session.execute(text("DROP TRIGGER contended ON leads"))
    report, split = run_chunk(sessions, chunk_id, settings)
    assert (report.outcomes, split) == ({"created": 15}, [])
    assert outcomes(sessions, job_id) == {(DONE, "created"): 15}


@pytest.mark.parametrize("url_fixture", URLS)
def test_a_chunk_delivered_more_than_max_attempts_times_is_split_into_items(url_fixture, request, sessions_for):
    # Given a chunk whose deliveries all died with their worker (its attempts used up)
    url = request.getfixturevalue(url_fixture)
    sessions = sessions_for(url)
    settings = settings_for(url, max_attempts=3)
    job_id, chunk_id = land_job(sessions, [f"k{n}@example.com" for n in range(12)])
    with sessions.begin() as session:
        session.execute(update(ImportChunk).where(ImportChunk.id == chunk_id).values(attempts=3))

    # When it is delivered once more
    report, split = run_chunk(sessions, chunk_id, settings)

    # Then it is not processed as a chunk again: its rows wait as items, which are processed
    assert report.claimed == 0 and len(split) == 12
    with sessions() as session:
        chunk = session.get(ImportChunk, chunk_id)
        assert chunk.state == SPLIT and "after 3 deliveries" in chunk.last_error
        # landed when the chunk was, queued now: the sweeper does not take them for lost messages
        moments = session.execute(select(func.min(RawItem.received_at), func.max(RawItem.received_at),
                                         func.min(RawItem.queued_at))).one()
        assert moments[0] == moments[1] == chunk.received_at and moments[2] >= chunk.queued_at
    process_now(sessions, split, settings)
    assert outcomes(sessions, job_id) == {(DONE, "created"): 12}


def test_the_sweeper_requeues_a_stale_chunk_but_never_one_a_worker_holds(pg_url, sessions_for):
    sessions = sessions_for(pg_url)
    settings = settings_for(pg_url)
    _, held = land_job(sessions, ["a@example.com"])
    _, lost = land_job(sessions, ["b@example.com"])
    later = utcnow() + timedelta(seconds=settings.pipeline.requeue_after_seconds + 1)

    # Given one chunk a worker is processing (its row locked) and one whose message was lost
    locked, release = threading.Event(), threading.Event()

    def worker() -> None:
        with sessions.begin() as session:
            session.execute(select(ImportChunk.id).where(ImportChunk.id == held).with_for_update())
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(30)
        # When the sweeper runs after the re-queue delay with a deep queue, nothing is due yet
        # (a big import legitimately waits: ten times the delay)
        assert sweep_chunks(sessions, settings, queue_empty=False, now=later) == []
        # With the queue empty, only the lost one is due; a second sweep right after finds nothing new
        assert sweep_chunks(sessions, settings, queue_empty=True, now=later) == [lost]
        assert sweep_chunks(sessions, settings, queue_empty=True, now=later) == []
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize("url_fixture", URLS)
def test_revert_removes_rows_still_waiting_in_chunks(url_fixture, request, sessions_for):
    url = request.getfixturevalue(url_fixture)
    sessions = sessions_for(url)
    job_id, _ = land_job(sessions, [f"w{n}@example.com" for n in range(7)])
    with sessions.begin() as session:
        result = revert_job(session, job_id)
    assert result["raw_items_removed"] == 7
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ImportChunk)) == 0
        assert job_counts(session, job_id)["rows"] == 0


@pytest.mark.parametrize("url_fixture", URLS)
def test_a_nul_in_a_row_is_dropped_at_landing_and_the_row_is_stored(url_fixture, request, sessions_for):
    # Given a row with a NUL in a name (binary junk a vendor's export left in a cell)
    url = request.getfixturevalue(url_fixture)
    sessions = sessions_for(url)
    with sessions.begin() as session:
        job = ImportJob(source="list", file_name="x.csv", file_sha256="1" * 64, state="landed")
        session.add(job)
        session.flush()
        chunk_id = land_chunk(session, "list", [NewItem("x:2", "row", {"fields": {
            "email": "anna@example.com", "first_name": "An\x00na"}, "row": 2})], import_job_id=job.id)

    # When it is processed, Then the lead and the raw item hold the name without it
    report, split = run_chunk(sessions, chunk_id, settings_for(url))
    assert (report.outcomes, split) == ({"created": 1}, [])
    with sessions() as session:
        assert session.scalar(select(Lead.first_name)) == "Anna"
        assert session.scalar(select(RawItem.payload))["fields"]["first_name"] == "Anna"

