"""Thin Celery tasks: ids in, one call into the batch runner, counts out."""
from __future__ import annotations

import logging

from celery import Task

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.runtime import runtime

from .app import app
from .backoff import retry_delay
from .batch import run_batch, sweep as sweep_items
from .chunks import run_chunk, sweep_chunks
from .dispatch import enqueue, enqueue_chunks
from .queues import process_queue_empty

log = logging.getLogger(__name__)


class IngestTask(Task):
    """Retries only what is retriable, with our backoff policy; everything else is recorded."""

    max_retries = 8

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except RetriableError as exc:
            pipeline = runtime().settings.pipeline
            countdown = exc.retry_after or retry_delay(self.request.retries + 1, 1.0,
                                                       pipeline.retry_backoff_max_seconds)
            log.warning("%s: retriable error, retry in %.1fs: %s", self.name, countdown, exc)
            raise self.retry(exc=exc, countdown=countdown)


COALESCE_BELOW = 50  # a message with fewer items takes other waiting items along (run_batch)


@app.task(base=IngestTask, name="crm_ingest.process_batch")
def process_batch(ids: list[int]) -> dict:
    rt = runtime()
    size = rt.settings.pipeline.batch_size
    return run_batch(rt.sessions, ids, rt.settings, coalesce=size if len(ids) < COALESCE_BELOW else 0).as_dict()


@app.task(base=IngestTask, name="crm_ingest.process_chunk")
def process_chunk(chunk_id: int) -> dict:
    """One chunk of a list import; a chunk that had to be split has its items queued."""
    rt = runtime()
    report, split = run_chunk(rt.sessions, chunk_id, rt.settings)
    if split:
        enqueue(split, rt.settings)
    return report.as_dict()


@app.task(base=IngestTask, name="crm_ingest.sweep")
def sweep() -> int:
    """Re-queue what was landed but not finished: lost messages, dead workers, retries due."""
    rt = runtime()
    queue_empty = process_queue_empty(rt.settings.redis_url)
    chunks = sweep_chunks(rt.sessions, rt.settings, queue_empty=queue_empty)
    if chunks:
        enqueue_chunks(chunks, rt.settings)
        log.info("sweeper re-queued %d import chunks", len(chunks))
    ids = sweep_items(rt.sessions, rt.settings, queue_empty=queue_empty)
    if ids:
        enqueue(ids, rt.settings)
        log.info("sweeper re-queued %d items", len(ids))
    return len(ids) + len(chunks)


@app.task(base=IngestTask, name="crm_ingest.recheck_duplicates")
def recheck_duplicates() -> dict:
    """Queue possible duplicates that slipped past the online check (see duplicates.recheck)."""
    from crm_ingest.ingest.duplicates import recheck

    rt = runtime()
    with rt.sessions.begin() as session:
        return recheck(session, rt.settings)


@app.task(base=IngestTask, name="crm_ingest.poll_source")
def poll_source(source_name: str) -> dict:
    """Poll one source (a mailbox, a Twitter/X search or mentions, a Facebook Page or Lead Ads
    forms): land what arrived since its checkpoint and queue it. A failing source is logged with
    its error and waits for its turn (backing off, never a tight retry loop); a rate-limited one
    is rescheduled for the reset time the other side gave, with no worker sleeping on it; so one
    broken or throttled source holds up no other."""
    from datetime import timedelta

    from crm_ingest.connectors import health
    from crm_ingest.connectors.polling import poll_once
    from crm_ingest.models import SourceHealth, utcnow

    rt = runtime()
    source = rt.settings.source(source_name)
    with rt.sessions() as session:
        wait_until = health.next_poll(session.get(SourceHealth, source_name), source.polled.poll_seconds)
    if wait_until is not None and utcnow() < wait_until:
        return {"source": source_name, "skipped": f"next try after {wait_until.isoformat()}"}
    result = poll_once(rt.sessions, rt.settings, source_name)
    if result.ids:
        enqueue(result.ids, rt.settings)
    if result.retry_at is not None:
        log.warning("source %s: rate-limited until %s", source_name, result.retry_at.isoformat())
        poll_source.apply_async((source_name,), eta=result.retry_at,
                                expires=result.retry_at + timedelta(seconds=source.polled.poll_seconds))
    elif result.error:
        said = str(result.error)
        log.error("%s", said if said.startswith(f"source {source_name}:") else f"source {source_name}: {said}")
    return result.as_dict()


@app.task(base=IngestTask, name="crm_ingest.send_acknowledgements")
def send_acknowledgements() -> dict:
    """Send the queued case-number replies (each at most once)."""
    from crm_ingest.ingest.acknowledge import send_pending

    rt = runtime()
    return send_pending(rt.sessions, rt.settings)


@app.task(base=IngestTask, name="crm_ingest.roll_up")
def roll_up() -> dict:
    """Every minute: fold the closed minutes into per-minute throughput rows (idempotent), then
    tell the alert webhook what changed (a source turning unhealthy, a queue backed up)."""
    from crm_ingest.ops.alerts import check_alerts
    from crm_ingest.ops.rollups import roll_up as roll_up_minutes

    rt = runtime()
    depths = None
    if not rt.settings.embedded:
        from crm_ingest.workers.queues import queue_depths

        try:
            depths = queue_depths(rt.settings.redis_url)  # the broker's queues, kept per minute too
        except Exception:  # noqa: BLE001 - the database's counts are still rolled up
            log.warning("roll-up: broker queue depths unavailable")
    with rt.sessions.begin() as session:
        rows = roll_up_minutes(session, depths=depths)
    sent = check_alerts(rt)
    return {"rows": rows, "alerts": [alert["summary"] for alert in sent]}
