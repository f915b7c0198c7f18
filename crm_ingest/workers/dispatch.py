"""Send landed item ids on: to the `process` queue in batches, or straight through in-process."""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.ingest.settings import Settings
from crm_ingest.models import PENDING, PROCESSING, RawItem
from crm_ingest.models.bulk import plain_index_scans
from crm_ingest.models.landing import waiting_chunk_rows

from .batch import BatchReport, run_batch, sweep

log = logging.getLogger(__name__)


def chunks(ids: Sequence[int], size: int):
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


def dispatch(sessions: sessionmaker[Session], ids: Sequence[int], settings: Settings,
             on_batch: Callable[[BatchReport], None] | None = None) -> None:
    """Queue the ids with a broker configured; otherwise process them before returning."""
    if settings.embedded:
        process_now(sessions, ids, settings, on_batch)
    else:
        enqueue(ids, settings)


def dispatch_landed(sessions: sessionmaker[Session], ids: Sequence[int], settings: Settings) -> None:
    """`dispatch` for items a door has just landed and answers for: they are stored, so a
    broker that does not answer (or a processing failure, embedded) is logged, not raised: the
    sweeper sends them on once it answers, and the sender is told they arrived."""
    try:
        dispatch(sessions, ids, settings)
    except Exception as exc:  # noqa: BLE001 - what landed is safe; the answer must not say otherwise
        log.warning("items %s are landed but not yet queued (%s: %s); the sweeper queues them",
                    list(ids)[:10], type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")


def process_now(sessions, ids: Sequence[int], settings: Settings,
                on_batch: Callable[[BatchReport], None] | None = None) -> BatchReport:
    total = BatchReport()
    for batch in chunks(ids, settings.pipeline.batch_size):
        report = run_batch(sessions, batch, settings)
        _add(total, report)
        if on_batch:
            on_batch(report)
    return total


def run_due(sessions, settings: Settings) -> BatchReport:
    """Embedded mode's sweeper: process whatever is pending and due (e.g. retries), import
    chunks left waiting (an import interrupted) included."""
    from .chunks import sweep_chunks

    total = BatchReport()
    for chunk_id in sweep_chunks(sessions, settings):
        _add(total, process_chunk_now(sessions, chunk_id, settings))
    _add(total, process_now(sessions, sweep(sessions, settings), settings))
    return total


def _add(total: BatchReport, report: BatchReport) -> None:
    total.claimed += report.claimed
    total.skipped += report.skipped
    total.failed += report.failed
    total.outcomes.update(report.outcomes)


def dispatch_chunk(sessions: sessionmaker[Session], chunk_id: int, settings: Settings,
                   on_batch: Callable[[BatchReport], None] | None = None) -> None:
    """Queue an import chunk with a broker configured; otherwise process it before returning."""
    if settings.embedded:
        report = process_chunk_now(sessions, chunk_id, settings)
        if on_batch:
            on_batch(report)
    else:
        enqueue_chunks([chunk_id], settings)


def process_chunk_now(sessions, chunk_id: int, settings: Settings) -> BatchReport:
    """Process a chunk here; a chunk that had to be split has its items processed here too."""
    from .chunks import run_chunk

    report, split = run_chunk(sessions, chunk_id, settings)
    if split:
        _add(report, process_now(sessions, split, settings))
    return report


def enqueue_chunks(chunk_ids: Sequence[int], settings: Settings) -> int:
    """Publish one message per import chunk to the `process` queue."""
    from .app import app
    from .tasks import process_chunk

    with app.producer_or_acquire() as producer:
        _ensure_queues(producer.channel)
        for chunk_id in chunk_ids:
            process_chunk.apply_async(args=[chunk_id], producer=producer)
    return len(chunk_ids)


def enqueue(ids: Sequence[int], settings: Settings) -> int:
    """Publish batches of ids to the `process` queue over the app's pooled connection; returns
    the number of messages. The queues are declared again when the broker has lost them."""
    from .app import app
    from .tasks import process_batch

    messages = 0
    with app.producer_or_acquire() as producer:
        _ensure_queues(producer.channel)
        for batch in chunks(ids, settings.pipeline.batch_size):
            process_batch.apply_async(args=[batch], producer=producer)
            messages += 1
    return messages


DECLARED_MARK = "crm-ingest:queues-declared"


def _ensure_queues(channel) -> None:
    """Declare our queues unless the broker still holds our mark of having done so: one EXISTS
    per publish instead of a declaration of every queue (which cost a web form ~4 ms), and a
    flushed Redis (bindings and mark gone together) is noticed at the next publish."""
    client = getattr(channel, "client", None)
    if client is not None and client.exists(DECLARED_MARK):
        return
    declare_queues(channel)
    if client is not None:
        client.set(DECLARED_MARK, "1")


def declare_queues(channel) -> None:
    """(Re)declare our queues: after a Redis flush, kombu's routing bindings are gone and a
    publish to an undeclared queue would vanish silently."""
    from .app import app

    for queue in app.conf.task_queues:
        queue.bind(channel).declare()


def wait_for(sessions, ids: Sequence[int], timeout: float | None = None, poll: float = 0.5,
             on_progress: Callable[[int, int], None] | None = None) -> int:
    """Block until every item has an outcome or is set aside; returns how many are unfinished."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ids = sorted(ids)
    remaining = len(ids)
    while True:
        with sessions() as session:
            remaining = sum(  # the state in FILTER, not WHERE: primary-key lookups only
                session.scalar(select(func.count().filter(RawItem.state.in_([PENDING, PROCESSING])))
                               .where(RawItem.id.in_(batch))) or 0
                for batch in chunks(ids, 5000))
        if on_progress:
            on_progress(len(ids) - remaining, len(ids))
        if remaining == 0 or (deadline is not None and time.monotonic() > deadline):
            return remaining
        time.sleep(poll)


def wait_for_job(sessions, job_id: int, timeout: float | None = None, poll: float = 2.0,
                 on_progress: Callable[[int, int], None] | None = None) -> int:
    """Block until every row of an import job has an outcome (or is set aside); returns how
    many are unfinished. Polls only the waiting chunks and the unfinished rows (through the
    partial indexes of them), never the whole job: a million-row job would otherwise be
    counted every poll."""
    from crm_ingest.models import ImportJob

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        started = time.monotonic()
        with sessions() as session:
            plain_index_scans(session)
            total = session.scalar(select(ImportJob.rows_landed).where(ImportJob.id == job_id)) or 0
            unfinished = waiting_chunk_rows(session, job_id) + (session.scalar(
                select(func.count()).select_from(RawItem)
                .where(RawItem.state.in_([PENDING, PROCESSING]), RawItem.import_job_id == job_id)) or 0)
        if on_progress:
            on_progress(total - unfinished, total)
        if unfinished == 0 or (deadline and time.monotonic() > deadline):
            return unfinished
        time.sleep(max(poll, 10 * (time.monotonic() - started)))  # polling stays a small load
