"""Per-minute throughput rollups: items landed by source, and finished by source, record type
and outcome, with their summed latency, kept in `throughput_minutes` so the history (the /ops
charts of the last hour and day) survives restarts and needs no scan of raw_items.

A roll-up recomputes whole closed minutes from raw_items and upserts them: running it twice,
or from two processes at once, writes the same rows. The newest minutes are recomputed again
at each run for a while (`settle`), because an item's timestamps are taken before its
transaction commits (a batch may take minutes), so a minute fills up a little after it closed.

Each roll-up also samples how many items are unfinished (pending or processing) into
`queue_depth_minutes`: a depth cannot be recomputed later, so it is kept as it is seen.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import and_, delete, func, literal_column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from crm_ingest.models import (DONE, FAILED, FINISHED, LANDED, OUTCOMES, PENDING, PROCESSING, ImportChunk,
                               QueueDepthMinute, RawItem, ThroughputMinute, utcnow)
from crm_ingest.models.landing import waiting_chunk_rows

from .latency import latency_seconds

log = logging.getLogger(__name__)

SETTLE = timedelta(minutes=10)  # longer than a batch's time limit plus its commit
BACKFILL = timedelta(days=1)  # how far back a first roll-up (or one after a long stop) reaches

Key = tuple[datetime, str, str, str, str]  # minute, source, event, record_type, outcome
UNFINISHED = "unfinished"  # the depth sampled from the database: items pending or processing


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


def roll_up(session: Session, now: datetime | None = None, *, settle: timedelta = SETTLE,
            backfill: timedelta = BACKFILL, depths: Mapping[str, int] | None = None) -> int:
    """Recompute the closed minutes not yet settled and upsert them; returns the rows written.
    Starts `settle` before the newest minute already rolled up (filling any gap since), never
    more than `backfill` ago, and stops before the current, unfinished minute. Samples the
    queue depths of this minute too (the unfinished items, and the broker's `depths` if given)."""
    end = floor_minute(now or utcnow())
    summarize_new_ranges(session)
    sample_depths(session, end, depths)
    newest = session.scalar(select(func.max(ThroughputMinute.minute)))
    if newest is None:
        oldest = session.scalar(select(func.min(RawItem.received_at)))
        start = floor_minute(oldest) if oldest else end
    else:
        start = min(newest - settle, end - settle)
    start = max(start, end - backfill)
    if start >= end:
        return 0
    rows = _landed(session, start, end) | _finished(session, start, end)
    _upsert(session, rows)
    stale = {tuple(row) for row in session.execute(
        select(ThroughputMinute.minute, ThroughputMinute.source, ThroughputMinute.event,
               ThroughputMinute.record_type, ThroughputMinute.outcome)
        .where(ThroughputMinute.minute >= start, ThroughputMinute.minute < end))} - set(rows)
    for minute, source, event, record_type, outcome in stale:  # an item retried since: its minute moved
        session.execute(delete(ThroughputMinute).where(
            ThroughputMinute.minute == minute, ThroughputMinute.source == source, ThroughputMinute.event == event,
            ThroughputMinute.record_type == record_type, ThroughputMinute.outcome == outcome))
    return len(rows)


_BRIN_OF_RAW_ITEMS = text(
    "SELECT brin_summarize_new_values(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'brin' AND i.indrelid = 'raw_items'::regclass")


def summarize_new_ranges(session: Session) -> None:
    """Summarize the block ranges filled since the last time in raw_items' BRIN indexes (time
    windows, an import's rows). PostgreSQL does it only when it vacuums the table, and a range
    not summarized is read whole by every query: with autovacuum off, or behind a fast import,
    "finished in the last hour" read the whole table (450 ms at a million items, 11 ms once
    summarized). Only the new ranges are read, so once a minute costs next to nothing."""
    if session.get_bind().dialect.name != "postgresql":
        return
    try:
        with session.begin_nested():
            session.execute(_BRIN_OF_RAW_ITEMS)
    except DBAPIError as exc:  # e.g. not the table's owner: the summaries wait for a vacuum
        log.warning("roll-up: BRIN ranges not summarized: %s", exc.orig)


def _minute(session: Session, column):
    """The minute a timestamp falls in, as SQL (a literal unit: PostgreSQL must see the same
    expression in SELECT and GROUP BY, which it cannot for two bind parameters)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc(literal_column("'minute'"), column)
    return func.strftime(literal_column("'%Y-%m-%d %H:%M'"), column)


def _as_minute(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's strftime
        return datetime.strptime(value, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    return floor_minute(value)


def _landed(session: Session, start: datetime, end: datetime) -> dict[Key, tuple[int, float]]:
    minute = _minute(session, RawItem.received_at)
    query = (select(minute, RawItem.source, func.count())
             .where(RawItem.received_at >= start, RawItem.received_at < end)
             .group_by(minute, RawItem.source))
    rows = {(_as_minute(m), source, LANDED, "", ""): (count, 0.0) for m, source, count in session.execute(query)}
    # import rows waiting in chunks landed when their chunk did (processed, they are raw items
    # with that landing time, counted above instead)
    minute = _minute(session, ImportChunk.received_at)
    waiting = (select(minute, ImportChunk.source, func.sum(ImportChunk.row_count))
               .where(ImportChunk.state == PENDING, ImportChunk.received_at >= start, ImportChunk.received_at < end)
               .group_by(minute, ImportChunk.source))
    for m, source, count in session.execute(waiting):
        key = (_as_minute(m), source, LANDED, "", "")
        rows[key] = (rows.get(key, (0, 0.0))[0] + int(count or 0), 0.0)
    return rows


def _finished(session: Session, start: datetime, end: datetime) -> dict[Key, tuple[int, float]]:
    """Items with an outcome by it, and items set aside as outcome 'failed' (latency summed
    over the ones with an outcome only)."""
    minute = _minute(session, RawItem.finished_at)
    query = (select(minute, RawItem.source, RawItem.state, RawItem.record_type, RawItem.outcome, func.count(),
                    func.sum(latency_seconds(session)))
             .where(RawItem.finished_at >= start, RawItem.finished_at < end, RawItem.state.in_((DONE, FAILED)))
             .group_by(minute, RawItem.source, RawItem.state, RawItem.record_type, RawItem.outcome))
    rows: dict[Key, tuple[int, float]] = {}
    for m, source, state, record_type, outcome, count, total in session.execute(query):
        if state == FAILED:
            key, total = (_as_minute(m), source, FINISHED, "", "failed"), 0.0
        else:
            key = (_as_minute(m), source, FINISHED, record_type or "", outcome or "")
        items, summed = rows.get(key, (0, 0.0))
        rows[key] = (items + count, summed + float(total or 0.0))
    return rows


def sample_depths(session: Session, minute: datetime, depths: Mapping[str, int] | None = None) -> None:
    """Keep the unfinished items' count (and any broker queue depths) as this minute's depth;
    a second sample in the same minute replaces the first."""
    unfinished = (session.scalar(select(func.count()).select_from(RawItem)
                                 .where(RawItem.state.in_((PENDING, PROCESSING)))) or 0) + waiting_chunk_rows(session)
    values = [{"minute": minute, "queue": queue, "depth": int(depth)}
              for queue, depth in sorted({UNFINISHED: unfinished, **(depths or {})}.items())]
    stmt = _insert(session)(QueueDepthMinute).values(values)
    session.execute(stmt.on_conflict_do_update(index_elements=["minute", "queue"],
                                               set_={"depth": stmt.excluded["depth"]}))


def _insert(session: Session):
    """The dialect's INSERT, the one with ON CONFLICT DO UPDATE."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _upsert(session: Session, rows: dict[Key, tuple[int, float]]) -> None:
    if not rows:
        return
    insert = _insert(session)
    values = [{"minute": m, "source": s, "event": e, "record_type": r, "outcome": o,
               "items": items, "latency_seconds_sum": total}
              for (m, s, e, r, o), (items, total) in sorted(rows.items())]  # one lock order for all
    for start in range(0, len(values), 1000):
        stmt = insert(ThroughputMinute).values(values[start:start + 1000])
        session.execute(stmt.on_conflict_do_update(
            index_elements=["minute", "source", "event", "record_type", "outcome"],
            set_={"items": stmt.excluded["items"], "latency_seconds_sum": stmt.excluded["latency_seconds_sum"]}))


def history(session: Session, since: datetime, step: int = 60, until: datetime | None = None,
            source: str | None = None) -> list[dict[str, Any]]:
    """Throughput from `since` to `until` (default: now) in steps of `step` seconds (a multiple
    of 60), every step present (zeros where nothing happened), oldest first: items landed,
    processed (an outcome), failed (set aside), by outcome, and the average latency."""
    if step < 60 or step % 60:
        raise ValueError("step must be a whole number of minutes, in seconds")
    since, until = floor_minute(since), floor_minute(until or utcnow())
    width = timedelta(seconds=step)
    points = []
    moment = since
    while moment < until:
        points.append({"at": moment, "landed": 0, "processed": 0, "failed": 0,
                       "by_outcome": dict.fromkeys(OUTCOMES, 0), "latency_seconds_sum": 0.0})
        moment += width
    query = (select(ThroughputMinute.minute, ThroughputMinute.event, ThroughputMinute.outcome,
                    func.sum(ThroughputMinute.items), func.sum(ThroughputMinute.latency_seconds_sum))
             .where(and_(ThroughputMinute.minute >= since, ThroughputMinute.minute < until))
             .group_by(ThroughputMinute.minute, ThroughputMinute.event, ThroughputMinute.outcome))
    if source is not None:
        query = query.where(ThroughputMinute.source == source)
    for minute, event, outcome, items, total in session.execute(query):
        point = points[int((_as_minute(minute) - since) / width)]
        if event == LANDED:
            point["landed"] += items
        elif outcome == "failed":
            point["failed"] += items
        else:
            point["processed"] += items
            point["by_outcome"][outcome] = point["by_outcome"].get(outcome, 0) + items
            point["latency_seconds_sum"] += total or 0.0
    for point in points:
        total = point.pop("latency_seconds_sum")
        point["latency_seconds_avg"] = round(total / point["processed"], 3) if point["processed"] else None
    return points


def depth_history(session: Session, since: datetime, step: int = 60, until: datetime | None = None,
                  queue: str = UNFINISHED) -> list[dict[str, Any]]:
    """A queue's depth from `since` to `until` in steps of `step` seconds, oldest first: the
    deepest sample in each step (a peak must not vanish in a long step), None where no roll-up
    ran (nothing was seen, which is not the same as an empty queue)."""
    if step < 60 or step % 60:
        raise ValueError("step must be a whole number of minutes, in seconds")
    since, until = floor_minute(since), floor_minute(until or utcnow())
    width = timedelta(seconds=step)
    points: list[dict[str, Any]] = []
    moment = since
    while moment < until:
        points.append({"at": moment, "depth": None})
        moment += width
    query = (select(QueueDepthMinute.minute, QueueDepthMinute.depth)
             .where(QueueDepthMinute.queue == queue, QueueDepthMinute.minute >= since,
                    QueueDepthMinute.minute < until))
    for minute, depth in session.execute(query):
        point = points[int((_as_minute(minute) - since) / width)]
        point["depth"] = depth if point["depth"] is None else max(point["depth"], depth)
    return points
