"""Claim a batch of raw items, run the pipeline on it, and record every item's outcome.

Plain functions on a session factory: the Celery task calls them, and so does the CLI when no
broker is configured (embedded mode). One code path for both ways to run.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import or_, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.gcpause import collector_paused
from crm_ingest.ingest.errors import RetriableError
from crm_ingest.ingest.pipeline import (
    ImportOptions,
    ItemRef,
    Outcome,
    describe_error,
    plan_items,
    route_items,
    store,
)
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import DONE, FAILED, PENDING, PROCESSING, ImportJob, RawItem, jsonfast, utcnow
from crm_ingest.models.bulk import array_literal, id_list, plain_index_scans, update_rows

from .backoff import retry_delay

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    claimed: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failed: int = 0  # attempts that raised; the item waits for a retry or is set aside
    skipped: int = 0  # already finished, or not due yet
    raced: int = 0  # times another worker finished some of the batch first (redone without them)
    coalesced: int = 0  # other waiting items processed with these (run_batch's `coalesce`)

    def as_dict(self) -> dict:
        return {"claimed": self.claimed, "outcomes": dict(self.outcomes), "failed": self.failed,
                "skipped": self.skipped, "raced": self.raced, "coalesced": self.coalesced}


def due_items(session: Session, ids: Sequence[int], skip_locked: bool = False) -> list[ItemRef]:
    """The given items that are waiting and due (not in a retry's backoff), in id order.

    Looked up by id alone, the state tested here: given `state = 'pending'` too, PostgreSQL
    may plan a scan of every pending row (the partial state index; statistics lag behind a
    fast import) instead of the primary-key lookups."""
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # The ids written into the statement, the payload read as text and decoded by orjson:
        # 7.7 us a row against 27 for the same select built by SQLAlchemy. Still a plain IN
        # list, not an id array (see git log: a scan under stale statistics).
        listed = id_list(ids)
        rows = session.connection().exec_driver_sql(
            "SELECT id, source, kind, payload::text, import_job_id, attempts, state, lease_until "
            f"FROM raw_items WHERE id IN ({listed}) ORDER BY id"
            + (" FOR UPDATE SKIP LOCKED" if skip_locked else "")).all() if listed else []
        return [ItemRef(item_id, source, kind, jsonfast.loads(payload), job_id, attempts)
                for item_id, source, kind, payload, job_id, attempts, state, lease_until in rows
                if state == PENDING and (lease_until is None or lease_until <= now)]
    stmt = (select(RawItem.id, RawItem.source, RawItem.kind, RawItem.payload, RawItem.import_job_id,
                   RawItem.attempts, RawItem.state, RawItem.lease_until)
            .where(RawItem.id.in_(list(ids)))
            .order_by(RawItem.id))
    return [ItemRef(row.id, row.source, row.kind, row.payload, row.import_job_id, row.attempts)
            for row in session.execute(stmt)
            if row.state == PENDING and (row.lease_until is None or row.lease_until <= now)]


COALESCED = "coalesced"  # raw_items.claim_token of an item taken along by another message's batch
_PG_TAKE_ALONG = (
    "UPDATE raw_items SET claim_token = :mark WHERE id IN ("
    " SELECT id FROM raw_items WHERE state = 'pending' AND import_job_id IS NULL AND claim_token IS NULL"
    " AND (lease_until IS NULL OR lease_until <= CAST(:now AS TIMESTAMPTZ)) {exclude}"
    " LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING id")


def take_along(sessions: sessionmaker[Session], limit: int, exclude: set[int]) -> list[int]:
    """Mark (and commit) up to `limit` other waiting, due items that are not list-import rows
    (forms, mail, posts: each arrives with a message of its own) to be processed with a batch.

    An item is taken along once: the mark stays until it is finished, so an item whose batch
    failed, or killed its worker, is processed alone by its own message afterwards, and one
    poison item cannot fail or kill every batch that comes along. Rows another worker is
    marking are skipped. Read through the partial index of unfinished rows, whose
    `import_job_id IS NULL` entries are exactly these, however large an import is waiting."""
    if limit <= 0:
        return []
    now = utcnow()
    with sessions.begin() as session:
        commit_without_waiting_for_disk(session)  # a lost mark only means processed alone
        if session.get_bind().dialect.name == "postgresql":
            plain_index_scans(session)
            listed = id_list(exclude)
            sql = _PG_TAKE_ALONG.format(exclude=f"AND id NOT IN ({listed})" if listed else "")
            ids = [row[0] for row in session.execute(
                text(sql), {"mark": COALESCED, "now": now.isoformat(), "n": limit})]
        else:
            ids = list(session.scalars(
                select(RawItem.id).where(RawItem.state == PENDING, RawItem.import_job_id.is_(None),
                                         RawItem.claim_token.is_(None), RawItem.id.not_in(exclude),
                                         or_(RawItem.lease_until.is_(None), RawItem.lease_until <= now))
                .order_by(RawItem.id).limit(limit)))
            session.execute(update(RawItem).where(RawItem.id.in_(ids)).values(claim_token=COALESCED)
                            .execution_options(synchronize_session=False))
    return sorted(ids)


class RaceLost(Exception):
    """Another worker wrote the outcome of some of these items first (a message delivered
    twice): this transaction's records must not stand."""


def run_batch(sessions: sessionmaker[Session], ids: Sequence[int], settings: Settings,
              coalesce: int = 0) -> BatchReport:
    """Process the given items exactly once each; safe to call twice with the same ids, at the
    same time too.

    `coalesce`: take up to that many items in all, adding other waiting items that are not
    list rows (the worker's task does this for a message of a few items: a form post or a
    mail arrives with a message of its own, and one transaction for hundreds of them is many
    times cheaper than one each). Their own messages then find them finished. Such a batch
    locks what it reads, and skips what another worker's batch holds; when it fails as a
    whole, its items are processed one by one, as any failed batch's are."""
    with collector_paused():  # a batch is bounded bulk work (see gcpause)
        return _run_batch(sessions, ids, settings, coalesce)


def _run_batch(sessions: sessionmaker[Session], ids: Sequence[int], settings: Settings,
               coalesce: int) -> BatchReport:
    report = BatchReport()
    own = set(ids)
    wanted = len(own)
    extras = take_along(sessions, coalesce - wanted, own) if coalesce > wanted else []
    try:
        report.claimed = _process(sessions, ids, settings, report, extras)
    except RetriableError:
        raise
    except Exception as exc:  # noqa: BLE001 - an item that breaks the write is isolated below
        if wanted == 1 and not extras:
            report.failed += _record_failures(sessions, {ids[0]: describe_error(exc)}, settings)
            report.claimed = report.failed
        else:
            # Something in the batch breaks the write: isolate it, store the rest.
            log.warning("batch of %d (%d taken along) failed as a whole (%s); processing its items one by one",
                        wanted + len(extras), len(extras), describe_error(exc))
            for item_id in sorted(own | set(extras)):
                done = _isolated(sessions, item_id, settings, report)
                if item_id in own:
                    report.claimed += done
                else:
                    report.coalesced += done
    report.skipped = wanted - report.claimed
    return report


def _isolated(sessions, item_id: int, settings: Settings, report: BatchReport) -> int:
    try:
        return _process(sessions, [item_id], settings, report)
    except RetriableError:
        raise
    except Exception as exc:  # noqa: BLE001
        failed = _record_failures(sessions, {item_id: describe_error(exc)}, settings)
        report.failed += failed
        return failed


def _process(sessions, ids: Sequence[int], settings: Settings, report: BatchReport,
             extras: Sequence[int] = ()) -> int:
    """One transaction: read the due items, write their records and outcomes together.
    Returns how many items it processed.

    No lock is taken up front (locking every row is a write of every row): each outcome is
    written only where the item's `attempts` still holds the value read, and if another
    worker finished any of them first, the whole transaction is rolled back and the rest done
    again. A database that is down or contended raises RetriableError.
    """
    mine = set(ids)
    for _ in range(3):
        try:
            with sessions.begin() as session:
                # taking others along, rows another worker holds are skipped (their own message, say)
                items = due_items(session, [*ids, *extras], skip_locked=bool(extras))
                own = sum(item.id in mine for item in items)
                if not items:
                    return 0
                commit_without_waiting_for_disk(session)
                outcomes, errors = process_items(session, items, settings)
        except RaceLost:
            report.raced += 1
            continue
        except OperationalError as exc:
            raise RetriableError(f"database unavailable or contended: {exc.orig!r}") from exc
        report.outcomes.update(outcome.outcome for outcome in outcomes)
        report.failed += len(errors)
        report.coalesced += len(items) - own
        return own
    raise RetriableError("another worker kept finishing items of this batch first")


def commit_without_waiting_for_disk(session: Session) -> None:
    """A processing transaction need not wait for its WAL to reach the disk: if the server
    crashes before it does, the records and the outcomes vanish together, the items are
    pending again, and the sweeper has them processed again. (Landing, which is the promise
    that nothing is lost, keeps waiting.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def process_items(session: Session, items: list[ItemRef], settings: Settings
                  ) -> tuple[list[Outcome], dict[int, str]]:
    """Plan and store the items, and write their outcomes; raises RaceLost when another
    transaction wrote an outcome of one of them first."""
    outcomes, errors = plan_and_store(session, items, settings)
    attempts = {item.id: item.attempts for item in items}
    written = _finish(session, outcomes, attempts)
    if errors:
        written += _fail(session, {item_id: (attempts[item_id], error) for item_id, error in errors.items()},
                         settings)
    if written != len(items):
        raise RaceLost(f"{len(items) - written} of {len(items)} items were finished by another worker")
    return outcomes, errors


def plan_and_store(session: Session, items: list[ItemRef], settings: Settings,
                   external_ids: dict[int, str] | None = None) -> tuple[list[Outcome], dict[int, str]]:
    """Plan the items and write their records; returns the outcomes, and the errors of items
    that could not be planned (item id -> error). Writes no outcome."""
    plans, errors = plan_items(items, settings)
    plans = route_items(session, [item for item in items if item.id not in errors], plans, settings)
    sources = {item.id: settings.source(item.source) for item in items if item.id not in errors}
    jobs = import_options(session, {item.import_job_id for item in items if item.import_job_id})
    imports = {item.id: jobs[item.import_job_id] for item in items if item.import_job_id in jobs}
    outcomes = store(session, plans, sources, imports, settings.matching, settings.sla, settings.threading,
                     external_ids=external_ids)
    return outcomes, errors


def import_options(session: Session, job_ids: set[int]) -> dict[int, ImportOptions]:
    if not job_ids:
        return {}
    rows = session.execute(select(ImportJob.id, ImportJob.campaign_id, ImportJob.consent,
                                  ImportJob.upsert_by).where(ImportJob.id.in_(job_ids)))
    return {row.id: ImportOptions(row.id, row.campaign_id, row.consent, row.upsert_by) for row in rows}


_PG_FINISH = text(
    "UPDATE raw_items AS t SET state = 'done', outcome = u.outcome, outcome_reason = u.reason, "
    "record_type = u.record_type, record_id = u.record_id, finished_at = CAST(:now AS TIMESTAMPTZ), "
    "attempts = u.attempts + 1, lease_until = NULL, last_error = NULL, claim_token = NULL "
    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:outcomes AS TEXT[]), CAST(:reasons AS TEXT[]), "
    "CAST(:record_types AS TEXT[]), CAST(:record_ids AS BIGINT[]), CAST(:attempts AS INTEGER[])) "
    "AS u(id, outcome, reason, record_type, record_id, attempts) "
    "WHERE t.id = u.id AND t.attempts = u.attempts")


def _finish(session: Session, outcomes: Iterable[Outcome], attempts: dict[int, int]) -> int:
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # update_rows' statement written out: its generic row dicts and per-column checks
        # were most of a batch's outcome-writing time
        outcomes = list(outcomes)
        if not outcomes:
            return 0
        return session.execute(_PG_FINISH, {
            "now": now.isoformat(), "ids": array_literal(o.item_id for o in outcomes),
            "outcomes": array_literal(o.outcome for o in outcomes),
            "reasons": array_literal(o.reason for o in outcomes),
            "record_types": array_literal(o.record_type for o in outcomes),
            "record_ids": array_literal(o.record_id for o in outcomes),
            "attempts": array_literal(attempts[o.item_id] for o in outcomes)}).rowcount
    rows = [{"id": o.item_id, "state": DONE, "outcome": o.outcome, "outcome_reason": o.reason,
             "record_type": o.record_type, "record_id": o.record_id, "finished_at": now,
             "attempts": attempts[o.item_id] + 1, "lease_until": None, "last_error": None, "claim_token": None}
            for o in outcomes]
    # Optimistic: `attempts` is the row's version (every outcome, failure and counted
    # re-delivery moves it on), so a row another transaction finished is not overwritten.
    return update_rows(session, RawItem, rows, versioned=("attempts", attempts))


def _fail(session: Session, errors: dict[int, tuple[int, str]], settings: Settings) -> int:
    """An attempt failed: wait for a retry with backoff, or be set aside after the last attempt.
    `errors` maps item id -> (attempts before this one, error)."""
    now = utcnow()
    written = 0
    for item_id, (before, error) in errors.items():
        written += session.execute(update(RawItem).where(RawItem.id == item_id, RawItem.attempts == before)
                                   .values(failed_attempt(item_id, before, error, settings, now))).rowcount
    return written


def failed_attempt(item_id: int, before: int, error: str, settings: Settings, now: datetime) -> dict[str, Any]:
    """An item's columns after an attempt that failed (`before` attempts earlier): waiting for a
    retry with backoff, or set aside after the last attempt; logged."""
    pipeline = settings.pipeline
    attempts = before + 1
    give_up = attempts >= pipeline.max_attempts
    delay = retry_delay(attempts, pipeline.retry_backoff_seconds, pipeline.retry_backoff_max_seconds)
    log.warning("item %s failed (attempt %s of %s): %s", item_id, attempts, pipeline.max_attempts, error)
    return {"state": FAILED if give_up else PENDING, "attempts": attempts, "last_error": error, "queued_at": None,
            "finished_at": now if give_up else None,
            "lease_until": None if give_up else now + timedelta(seconds=delay)}


def _record_failures(sessions, errors: dict[int, str], settings: Settings) -> int:
    """Record failed attempts of items still waiting; returns how many."""
    with sessions.begin() as session:
        items = due_items(session, list(errors))
        _fail(session, {item.id: (item.attempts, errors[item.id]) for item in items}, settings)
    return len(items)


def sweep(sessions: sessionmaker[Session], settings: Settings, limit: int = 100_000,
          queue_empty: bool = True) -> list[int]:
    """Items landed but unfinished: return those due a (re)queue.

    Due are items no message carries (a retry whose backoff passed) and items queued longer
    ago than `requeue_after_seconds` -- but the latter only when the process queue is empty
    (their message was lost, e.g. a flushed Redis, or their worker died mid-batch), or ten
    times that long ago: a big import legitimately waits in a deep queue and must not be
    queued twice. A re-delivery seen with the queue empty counts as an attempt, so an item that
    kills its worker every time is set aside after `max_attempts` instead of looping. (A batch
    still being written when re-queued costs an attempt too, and is written once all the same.)
    """
    pipeline = settings.pipeline
    now = utcnow()
    lost = "not finished after {n} deliveries: its worker died, or its message was lost"
    with sessions.begin() as session:
        plain_index_scans(session)
        session.execute(  # claims of versions before 0.2 (state 'processing' under a lease)
            update(RawItem).where(RawItem.state == PROCESSING, RawItem.lease_until < now)
            .values(state=PENDING, claim_token=None, lease_until=None, queued_at=None)
            .execution_options(synchronize_session=False))
        stale = now - timedelta(seconds=pipeline.requeue_after_seconds * (1 if queue_empty else 10))
        due = session.execute(
            select(RawItem.id, RawItem.queued_at, RawItem.attempts)
            .where(RawItem.state == PENDING,
                   or_(RawItem.lease_until.is_(None), RawItem.lease_until <= now),
                   or_(RawItem.queued_at.is_(None), RawItem.queued_at < stale))
            .order_by(RawItem.id).limit(limit).with_for_update(skip_locked=True)).all()
        redelivered = [row for row in due if row.queued_at is not None and queue_empty]
        given_up = [row.id for row in redelivered if row.attempts + 1 >= pipeline.max_attempts]
        counted = [row.id for row in redelivered if row.attempts + 1 < pipeline.max_attempts]
        plain = [row.id for row in due if row.queued_at is None or not queue_empty]
        for start in range(0, len(given_up), 1000):
            session.execute(update(RawItem).where(RawItem.id.in_(given_up[start:start + 1000]))
                            .values(state=FAILED, attempts=RawItem.attempts + 1, finished_at=now,
                                    last_error=lost.format(n=pipeline.max_attempts))
                            .execution_options(synchronize_session=False))
            log.warning("set aside %d items after %d deliveries", len(given_up[start:start + 1000]),
                        pipeline.max_attempts)
        for ids, extra in ((counted, {"attempts": RawItem.attempts + 1}), (plain, {})):
            for start in range(0, len(ids), 1000):
                session.execute(update(RawItem).where(RawItem.id.in_(ids[start:start + 1000]))
                                .values(queued_at=now, **extra)
                                .execution_options(synchronize_session=False))
    return sorted(counted + plain)


DECISIONS = ("lead", "case", "contact", "ignore")


def decide_item(sessions: sessionmaker[Session], item_id: int, decision: str, settings: Settings,
                reason: str | None = None) -> Outcome:
    """A person's answer for an item the rules or the classifier sent to review: store it as a
    lead, a case or a contact (its source's rules set aside), or ignore it with a reason."""
    if decision not in DECISIONS:
        raise ValueError(f"decide as one of {', '.join(DECISIONS)}, not {decision!r}")
    with sessions.begin() as session:
        row = session.get(RawItem, item_id, with_for_update=True)
        if row is None:
            raise LookupError(f"no item {item_id}")
        if row.outcome != "review":
            raise ValueError(f"item {item_id} is {row.state}/{row.outcome or 'no outcome'}, not waiting for review")
        item = ItemRef(row.id, row.source, row.kind, row.payload, row.import_job_id, row.attempts)
        source = settings.source(item.source)
        if decision == "ignore":
            outcomes = [Outcome(item_id, "ignored", reason=f"decided in review: {reason or 'ignored'}")]
        else:
            decided = replace(source, record_type=decision, rules=())
            plans, errors = plan_items([item], replace(settings, sources={**settings.sources, source.name: decided}))
            if errors:
                raise ValueError(f"item {item_id} cannot be planned: {errors[item_id]}")
            for plan in plans:
                plan.route_reason = f"decided in review: {reason or decision}"
            outcomes = store(session, plans, {item_id: decided}, {}, settings.matching, settings.sla, settings.threading)
        outcome = outcomes[0]
        row.outcome, row.outcome_reason = outcome.outcome, outcome.reason
        row.record_type, row.record_id, row.finished_at = outcome.record_type, outcome.record_id, utcnow()
        return outcome
