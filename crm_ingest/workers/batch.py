"""Claim a batch of raw items, run the pipeline on it, and record every item's outcome.

Plain functions on a session factory: the Celery task calls them, and so does the CLI when no
broker is configured (embedded mode). One code path for both ways to run.
"""
from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Sequence

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.pipeline import ImportOptions, ItemRef, Outcome, describe_error, plan_items, store
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import DONE, FAILED, PENDING, PROCESSING, ImportJob, RawItem, utcnow
from crm_ingest.models.bulk import update_rows

from .backoff import retry_delay

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    claimed: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failed: int = 0  # attempts that raised; the item waits for a retry or is set aside
    skipped: int = 0  # already finished or claimed by another worker

    def as_dict(self) -> dict:
        return {"claimed": self.claimed, "outcomes": dict(self.outcomes), "failed": self.failed,
                "skipped": self.skipped}


def claim(session: Session, ids: Sequence[int], settings: Settings) -> tuple[str, list[int]]:
    """Take a lease on the items nobody else holds: pending ones, or ones whose lease expired."""
    now = utcnow()
    token = uuid.uuid4().hex
    claimable = (  # a plain IN list: with an id array the planner may scan raw_items (seen)
        select(RawItem.id)
        .where(RawItem.id.in_(list(ids)),
               or_(RawItem.state == PENDING,
                   and_(RawItem.state == PROCESSING, RawItem.lease_until < now)))
        .with_for_update(skip_locked=True)
    )
    stmt = (update(RawItem).where(RawItem.id.in_(claimable.scalar_subquery()))
            .values(state=PROCESSING, claim_token=token, attempts=RawItem.attempts + 1,
                    lease_until=now + timedelta(seconds=settings.pipeline.lease_seconds))
            .returning(RawItem.id)
            .execution_options(synchronize_session=False))
    return token, sorted(session.scalars(stmt))


def run_batch(sessions: sessionmaker[Session], ids: Sequence[int], settings: Settings) -> BatchReport:
    """Process the given items exactly once each; safe to call twice with the same ids."""
    report = BatchReport()
    with sessions.begin() as session:
        token, claimed = claim(session, ids, settings)
    report.claimed = len(claimed)
    report.skipped = len(set(ids)) - len(claimed)
    if not claimed:
        return report
    try:
        _process(sessions, claimed, token, settings, report)
    except OperationalError as exc:
        _release(sessions, token)
        raise RetriableError(f"database unavailable or contended: {exc.orig!r}") from exc
    except Exception as exc:  # noqa: BLE001 - an item that breaks the write is isolated below
        if len(claimed) == 1:
            _record_failures(sessions, {claimed[0]: describe_error(exc)}, token, settings)
            report.failed += 1
            return report
        # Something in the batch breaks the write: isolate it, store the rest.
        log.warning("batch of %d failed as a whole (%s); processing its items one by one",
                    len(claimed), describe_error(exc))
        for item_id in claimed:
            try:
                _process(sessions, [item_id], token, settings, report)
            except OperationalError as item_exc:
                _release(sessions, token)
                raise RetriableError(f"database unavailable or contended: {item_exc.orig!r}") from item_exc
            except Exception as item_exc:  # noqa: BLE001
                _record_failures(sessions, {item_id: describe_error(item_exc)}, token, settings)
                report.failed += 1
    return report


def _process(sessions, ids: list[int], token: str, settings: Settings, report: BatchReport) -> None:
    """One transaction: lock our claimed items, write their records and outcomes together."""
    with sessions.begin() as session:
        rows = session.execute(
            select(RawItem.id, RawItem.source, RawItem.kind, RawItem.payload, RawItem.import_job_id)
            .where(RawItem.id.in_(ids), RawItem.claim_token == token, RawItem.state == PROCESSING)
            .order_by(RawItem.id).with_for_update()).all()
        items = [ItemRef(*row) for row in rows]
        plans, errors = plan_items(items, settings)
        sources = {item.id: settings.source(item.source) for item in items if item.id not in errors}
        jobs = import_options(session, {item.import_job_id for item in items if item.import_job_id})
        imports = {item.id: jobs[item.import_job_id] for item in items if item.import_job_id in jobs}
        outcomes = store(session, plans, sources, imports)
        _finish(session, outcomes)
        if errors:
            _fail(session, errors, token, settings)
    report.outcomes.update(outcome.outcome for outcome in outcomes)
    report.failed += len(errors)


def import_options(session: Session, job_ids: set[int]) -> dict[int, ImportOptions]:
    if not job_ids:
        return {}
    rows = session.execute(select(ImportJob.id, ImportJob.campaign_id, ImportJob.consent,
                                  ImportJob.upsert_by).where(ImportJob.id.in_(job_ids)))
    return {row.id: ImportOptions(row.id, row.campaign_id, row.consent, row.upsert_by) for row in rows}


def _finish(session: Session, outcomes: Iterable[Outcome]) -> None:
    now = utcnow()
    rows = [{"id": o.item_id, "state": DONE, "outcome": o.outcome, "outcome_reason": o.reason,
             "record_type": o.record_type, "record_id": o.record_id, "finished_at": now,
             "claim_token": None, "lease_until": None, "last_error": None} for o in outcomes]
    update_rows(session, RawItem, rows)


def _fail(session: Session, errors: dict[int, str], token: str, settings: Settings) -> None:
    """An attempt failed: wait for a retry with backoff, or be set aside after the last attempt."""
    pipeline = settings.pipeline
    now = utcnow()
    for item_id, error in errors.items():
        attempts = session.scalar(select(RawItem.attempts).where(RawItem.id == item_id))
        give_up = attempts >= pipeline.max_attempts
        delay = retry_delay(attempts, pipeline.retry_backoff_seconds, pipeline.retry_backoff_max_seconds)
        session.execute(
            update(RawItem).where(RawItem.id == item_id, RawItem.claim_token == token)
            .values(state=FAILED if give_up else PENDING, last_error=error, claim_token=None,
                    queued_at=None, finished_at=now if give_up else None,
                    lease_until=None if give_up else now + timedelta(seconds=delay)))
        log.warning("item %s failed (attempt %s of %s): %s", item_id, attempts,
                    pipeline.max_attempts, error)


def _record_failures(sessions, errors: dict[int, str], token: str, settings: Settings) -> None:
    with sessions.begin() as session:
        _fail(session, errors, token, settings)


def _release(sessions, token: str) -> None:
    """Give the claim back after a retriable error; that attempt does not count."""
    try:
        with sessions.begin() as session:
            session.execute(update(RawItem).where(RawItem.claim_token == token,
                                                  RawItem.state == PROCESSING)
                            .values(state=PENDING, claim_token=None, lease_until=None,
                                    attempts=RawItem.attempts - 1))
    except OperationalError:
        log.warning("could not release claim %s; its lease will expire", token)


def sweep(sessions: sessionmaker[Session], settings: Settings, limit: int = 100_000,
          queue_empty: bool = True) -> list[int]:
    """Items landed but unfinished: expire dead leases, and return pending items due a (re)queue.

    Due are items no message carries (a retry whose backoff passed, a dead worker's items)
    and items queued longer ago than `requeue_after_seconds` -- but the latter only when the
    process queue is empty (their message was lost, e.g. a flushed Redis), or ten times that
    long ago: a big import legitimately waits in a deep queue and must not be queued twice.
    """
    pipeline = settings.pipeline
    now = utcnow()
    with sessions.begin() as session:
        session.execute(
            update(RawItem).where(RawItem.state == PROCESSING, RawItem.lease_until < now)
            .values(state=case((RawItem.attempts >= pipeline.max_attempts, FAILED), else_=PENDING),
                    finished_at=case((RawItem.attempts >= pipeline.max_attempts, now), else_=None),
                    last_error="lease expired: the worker died or lost its database connection",
                    claim_token=None, lease_until=None, queued_at=None)
            .execution_options(synchronize_session=False))
        stale = now - timedelta(seconds=pipeline.requeue_after_seconds * (1 if queue_empty else 10))
        due = session.scalars(
            select(RawItem.id)
            .where(RawItem.state == PENDING,
                   or_(RawItem.lease_until.is_(None), RawItem.lease_until <= now),
                   or_(RawItem.queued_at.is_(None), RawItem.queued_at < stale))
            .order_by(RawItem.id).limit(limit)).all()
        for start in range(0, len(due), 1000):
            session.execute(update(RawItem).where(RawItem.id.in_(due[start:start + 1000]))
                            .values(queued_at=now).execution_options(synchronize_session=False))
    return list(due)
