"""List-import chunks: process a chunk's rows in one transaction and write each row to raw_items
once, with its outcome; a chunk that fails as a whole, or keeps dying with its worker, is split
into raw items that wait on their own (where a bad row is isolated, as any item is).

Plain functions on a session factory, like batch.py: the Celery task calls them, and so does
the CLI when no broker is configured.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.gcpause import collector_paused
from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.pipeline import ItemRef, describe_error
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import DONE, PENDING, ImportChunk, RawItem, utcnow
from crm_ingest.models.bulk import allocate_ids
from crm_ingest.models.landing import chunk_items, copy_items, land_items, write_items

from .batch import BatchReport, commit_without_waiting_for_disk, failed_attempt, plan_and_store

log = logging.getLogger(__name__)

SPLIT = "split"  # ImportChunk.state of a chunk whose rows wait as raw items of their own


def run_chunk(sessions: sessionmaker[Session], chunk_id: int, settings: Settings) -> tuple[BatchReport, list[int]]:
    """Process a waiting chunk: its records and every row's raw item (with its outcome) in one
    transaction. Safe to call twice, at the same time too: a chunk another worker holds, or
    one already done, is passed over.

    Returns the report, and the ids of raw items to process when the chunk was split instead:
    because it failed as a whole, or because it was delivered more than `max_attempts` times
    (a row that kills its worker). The caller processes or queues those."""
    try:
        with collector_paused():
            return _run(sessions, chunk_id, settings)
    except OperationalError as exc:  # the database down or contended, at any step
        raise RetriableError(f"database unavailable or contended: {exc.orig!r}") from exc


def _run(sessions: sessionmaker[Session], chunk_id: int, settings: Settings) -> tuple[BatchReport, list[int]]:
    report = BatchReport()
    attempt = _begin_attempt(sessions, chunk_id)
    if attempt is None:
        return report, []
    if attempt > settings.pipeline.max_attempts:
        return report, split_chunk(sessions, chunk_id, f"not finished after {attempt - 1} deliveries: "
                                                       "its worker died, or its message was lost")
    try:
        with sessions.begin() as session:
            chunk = session.scalar(select(ImportChunk).where(ImportChunk.id == chunk_id, ImportChunk.state == PENDING)
                                   .with_for_update(skip_locked=True))
            if chunk is None:
                return report, []
            commit_without_waiting_for_disk(session)
            outcomes, errors = store_chunk(session, chunk, settings)
    except (RetriableError, OperationalError):  # retried as a whole (run_chunk says retriable)
        raise
    except Exception as exc:  # noqa: BLE001 - a row that breaks the write is isolated by splitting
        log.warning("import chunk %s failed as a whole (%s); splitting it into items", chunk_id, describe_error(exc))
        return report, split_chunk(sessions, chunk_id, describe_error(exc))
    report.claimed = len(outcomes) + len(errors)
    report.outcomes.update(outcome.outcome for outcome in outcomes)
    report.failed = len(errors)
    return report, []


def store_chunk(session: Session, chunk: ImportChunk, settings: Settings):
    """Plan and store the chunk's rows, write each as a raw item with its outcome (a row that
    could not be planned waits for a retry, or is set aside, as any failed item), and mark the
    chunk done, its rows dropped (they are raw items now). Returns (outcomes, errors)."""
    entries = chunk_items(chunk)
    ids = allocate_ids(session, RawItem, len(entries))
    items = [ItemRef(item_id, chunk.source, entry.kind, entry.payload, chunk.import_job_id, 0)
             for item_id, entry in zip(ids, entries)]
    outcomes, errors = plan_and_store(session, items, settings,
                                      {item_id: entry.external_id for item_id, entry in zip(ids, entries)})
    now = utcnow()
    by_item = {outcome.item_id: outcome for outcome in outcomes}
    source, job_id, received, queued = chunk.source, chunk.import_job_id, chunk.received_at, chunk.queued_at
    rows = []
    for item_id, entry in zip(ids, entries):  # in write_items' column order: a tuple a row, no dict
        outcome = by_item.get(item_id)
        if outcome is not None:
            rows.append((item_id, source, entry.external_id, entry.kind, entry.payload, received, queued, job_id,
                         DONE, 1, None, None, outcome.outcome, outcome.reason, outcome.record_type,
                         outcome.record_id, now))
        else:  # its first attempt raised: as any item's would
            failed = failed_attempt(item_id, 0, errors[item_id], settings, now)
            rows.append((item_id, source, entry.external_id, entry.kind, entry.payload, received, failed["queued_at"],
                         job_id, failed["state"], failed["attempts"], failed["lease_until"], failed["last_error"],
                         None, None, None, None, failed["finished_at"]))
    write_items(session, rows)
    chunk.state, chunk.rows, chunk.finished_at = DONE, None, now
    return outcomes, errors


def split_chunk(sessions: sessionmaker[Session], chunk_id: int, reason: str) -> list[int]:
    """Land a waiting chunk's rows as raw items of their own (pending, with the chunk's landing
    time) and mark it split; returns their ids (none if the chunk is not waiting)."""
    with sessions.begin() as session:
        chunk = session.scalar(select(ImportChunk).where(ImportChunk.id == chunk_id).with_for_update())
        if chunk is None or chunk.state != PENDING:
            return []
        land = copy_items if session.get_bind().dialect.name == "postgresql" else land_items
        ids = land(session, chunk.source, chunk_items(chunk), import_job_id=chunk.import_job_id,
                   received_at=chunk.received_at)
        chunk.state, chunk.rows, chunk.last_error, chunk.finished_at = SPLIT, None, reason[:4000], utcnow()
    log.warning("import chunk %s split into %d items: %s", chunk_id, len(ids), reason)
    return ids


def _begin_attempt(sessions: sessionmaker[Session], chunk_id: int) -> int | None:
    """Count a delivery of a waiting chunk (committed, so a delivery that kills its worker is
    counted too); None when the chunk is done, split, or held by another worker."""
    with sessions.begin() as session:
        row = session.execute(select(ImportChunk.attempts).where(ImportChunk.id == chunk_id,
                                                                 ImportChunk.state == PENDING)
                              .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        session.execute(update(ImportChunk).where(ImportChunk.id == chunk_id)
                        .values(attempts=row.attempts + 1, queued_at=utcnow()))
    return row.attempts + 1


def sweep_chunks(sessions: sessionmaker[Session], settings: Settings, queue_empty: bool = True,
                 now: datetime | None = None) -> list[int]:
    """Waiting chunks due a (re)queue: queued longer ago than `requeue_after_seconds` with the
    queue empty (a lost message, a worker that died), or ten times that long ago. A chunk a
    worker is processing is locked, and passed over."""
    now = now or utcnow()
    stale = now - timedelta(seconds=settings.pipeline.requeue_after_seconds * (1 if queue_empty else 10))
    with sessions.begin() as session:
        ids = list(session.scalars(select(ImportChunk.id).where(
            ImportChunk.state == PENDING, ImportChunk.queued_at < stale)
            .order_by(ImportChunk.id).with_for_update(skip_locked=True)))
        if ids:
            session.execute(update(ImportChunk).where(ImportChunk.id.in_(ids)).values(queued_at=now))
    return ids
