"""Thin Celery tasks: ids in, one call into the batch runner, counts out."""
from __future__ import annotations

import logging

from celery import Task

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.runtime import runtime

from .app import app
from .backoff import retry_delay
from .batch import run_batch, sweep as sweep_items
from .dispatch import enqueue
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


@app.task(base=IngestTask, name="crm_ingest.process_batch")
def process_batch(ids: list[int]) -> dict:
    rt = runtime()
    return run_batch(rt.sessions, ids, rt.settings).as_dict()


@app.task(base=IngestTask, name="crm_ingest.sweep")
def sweep() -> int:
    """Re-queue what was landed but not finished: lost messages, dead workers, retries due."""
    rt = runtime()
    ids = sweep_items(rt.sessions, rt.settings, queue_empty=process_queue_empty(rt.settings.redis_url))
    if ids:
        enqueue(ids, rt.settings)
        log.info("sweeper re-queued %d items", len(ids))
    return len(ids)


@app.task(base=IngestTask, name="crm_ingest.recheck_duplicates")
def recheck_duplicates() -> dict:
    """Queue possible duplicates that slipped past the online check (see duplicates.recheck)."""
    from crm_ingest.ingest.duplicates import recheck

    rt = runtime()
    with rt.sessions.begin() as session:
        return recheck(session, rt.settings)


@app.task(base=IngestTask, name="crm_ingest.poll_mailbox")
def poll_mailbox(source_name: str) -> dict:
    """Poll one mailbox source: land what arrived since its checkpoint and queue it. A mailbox
    that cannot be read is logged with its error and waits for its next turn (beat's schedule,
    never a tight retry loop), so one broken mailbox holds up no other source."""
    from crm_ingest.connectors import health
    from crm_ingest.connectors.base import run_connector
    from crm_ingest.connectors.imap import ImapMailbox, MailboxError
    from crm_ingest.models import SourceHealth, utcnow

    rt = runtime()
    source = rt.settings.source(source_name)
    with rt.sessions() as session:
        wait_until = health.next_poll(session.get(SourceHealth, source_name), source.imap.poll_seconds)
    if wait_until is not None and utcnow() < wait_until:
        return {"source": source_name, "skipped": f"failing; next try after {wait_until.isoformat()}"}
    try:
        landed = run_connector(rt.sessions, ImapMailbox(source.imap, source.name,
                                                         rt.settings.secrets.get(source.imap.password_env)))
    except MailboxError as exc:
        log.error("mailbox %s: %s", source_name, exc)
        with rt.sessions.begin() as session:
            health.record_failure(session, source_name, str(exc), credentials=exc.credentials)
        return {"source": source_name, "error": str(exc), "credentials": exc.credentials}
    with rt.sessions.begin() as session:
        health.record_success(session, source_name, landed.received)
    if landed.ids:
        enqueue(landed.ids, rt.settings)
    return {"source": source_name, "received": landed.received, "landed": len(landed.ids)}


@app.task(base=IngestTask, name="crm_ingest.send_acknowledgements")
def send_acknowledgements() -> dict:
    """Send the queued case-number replies (each at most once)."""
    from crm_ingest.ingest.acknowledge import send_pending

    rt = runtime()
    return send_pending(rt.sessions, rt.settings)
