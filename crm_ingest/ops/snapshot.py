"""One look at the whole pipeline, as `ingest status` prints it and /metrics exposes it: items
by source, record type and outcome, failures, the oldest unfinished item, latency, queues,
workers, and each source's health. Counts come from raw_items (the database is the truth),
queue depths from the broker, workers from a ping."""
from __future__ import annotations

import math
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.orm import Session

from crm_ingest.connectors.health import credentials_expire_at, credentials_expiring, healthy, next_poll
from crm_ingest.ingest.report import record_counts, top_errors
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import (DONE, FAILED, OUTCOMES, PENDING, PROCESSING, STATES_ALL, ImportChunk, RawItem, SourceHealth,
                               utcnow)
from crm_ingest.models.landing import waiting_chunk_rows_by_source
from crm_ingest.runtime import Runtime

from .latency import BUCKETS, latency_seconds

HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
PING_TIMEOUT = 1.0  # seconds a worker has to answer the ping; a busy box needs more than a quiet one
NO_RECORD = "none"  # the record_type label of an outcome without a record (rejected, ignored)


def snapshot(rt: Runtime, now: datetime | None = None, *, ping_timeout: float = PING_TIMEOUT) -> dict[str, Any]:
    now = now or utcnow()
    with rt.sessions() as session:
        data = totals(session)
        data["records"] = record_counts(session)
        recent = recent_by_source(session, now)
        data["items_per_second_last_minute"] = round(
            sum(s["processed_last_minute"] + s["failed_last_minute"] for s in recent.values()) / 60, 2)
        data["top_errors"] = [{"error": e, "items": n} for e, n in top_errors(session)]
        data["oldest_unfinished_age_seconds"] = oldest_unfinished_age(session, now)
        data["latency_seconds"].update(latency_quantiles(session, now))
        data["sources"] = source_health(session, rt.settings, now, recent)
    data["queues"], data["workers_online"] = broker_state(rt.settings, ping_timeout)
    return {"at": now, **data}


def totals(session: Session) -> dict[str, Any]:
    """Every item ever landed, in one pass: by state and outcome (as `report.item_counts`), landed
    by source, processed by source, record type and outcome, failed by source, and the latency
    histogram of processed items by source (cumulative bucket counts, as Prometheus wants them)."""
    latency = latency_seconds(session)
    done = RawItem.state == DONE
    # each processed item's histogram bucket, computed once (PostgreSQL's width_bucket over the
    # negated bounds is "latency <= bound"); one CASE per bound per row was most of the query
    if session.get_bind().dialect.name == "postgresql":
        bounds = ", ".join(repr(-float(bound)) for bound in reversed(BUCKETS))
        bucket = len(BUCKETS) - func.width_bucket(-latency, literal_column(f"ARRAY[{bounds}]::float8[]"))
    else:
        bucket = case(*[(latency <= bound, index) for index, bound in enumerate(BUCKETS)], else_=len(BUCKETS))
    bucket = case((done, bucket), else_=None)
    query = (select(RawItem.source, RawItem.state, RawItem.record_type, RawItem.outcome, bucket, func.count(),
                    func.sum(case((done, latency), else_=0.0)))
             .group_by(RawItem.source, RawItem.state, RawItem.record_type, RawItem.outcome, bucket))
    by_state, by_outcome = dict.fromkeys(STATES_ALL, 0), dict.fromkeys(OUTCOMES, 0)
    landed: dict[str, int] = {}
    failed: dict[str, int] = {}
    processed: dict[tuple[str, str, str], int] = {}
    histogram: dict[str, dict[str, Any]] = {}
    for source, state, record_type, outcome, index, count, latency_sum in session.execute(query):
        by_state[state] = by_state.get(state, 0) + count
        landed[source] = landed.get(source, 0) + count
        failed.setdefault(source, 0)
        if state == FAILED:
            failed[source] += count
        if outcome:
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        if state != DONE:
            continue
        key = (source, record_type or NO_RECORD, outcome or "")
        processed[key] = processed.get(key, 0) + count
        entry = histogram.setdefault(source, {"below": [0] * len(BUCKETS), "count": 0, "sum": 0.0})
        for at_or_above in range(len(BUCKETS) if index is None else int(index), len(BUCKETS)):  # cumulative
            entry["below"][at_or_above] += count
        entry["count"] += count
        entry["sum"] += float(latency_sum or 0.0)
    for source, count in waiting_chunk_rows_by_source(session).items():  # import rows not processed yet
        by_state[PENDING] += count
        landed[source] = landed.get(source, 0) + count
        failed.setdefault(source, 0)
    return {
        "items": {"received": sum(by_state.values()), "by_state": by_state, "by_outcome": by_outcome},
        "landed_by_source": dict(sorted(landed.items())),
        "processed": [{"source": s, "record_type": r, "outcome": o, "items": n}
                      for (s, r, o), n in sorted(processed.items())],
        "failed_by_source": dict(sorted(failed.items())),
        "latency_seconds": {"histogram": {
            source: {"buckets": [[bound, n] for bound, n in zip(BUCKETS, entry["below"])] + [["+Inf", entry["count"]]],
                     "count": entry["count"], "sum": round(entry["sum"], 6)}
            for source, entry in sorted(histogram.items())}},
    }


def recent_by_source(session: Session, now: datetime) -> dict[str, dict[str, int]]:
    """Per source: items landed, processed and failed in the last minute and the last hour."""
    hour_ago, minute_ago = now - HOUR, now - MINUTE
    recent: dict[str, dict[str, int]] = {}

    def entry(source: str) -> dict[str, int]:
        return recent.setdefault(source, {f"{what}_last_{span}": 0 for what in ("landed", "processed", "failed")
                                          for span in ("minute", "hour")})

    landed = (select(RawItem.source, func.count(), func.sum(case((RawItem.received_at >= minute_ago, 1), else_=0)))
              .where(RawItem.received_at >= hour_ago).group_by(RawItem.source))
    for source, hour, minute in session.execute(landed):
        entry(source).update(landed_last_hour=hour, landed_last_minute=minute or 0)
    for span, since in (("hour", hour_ago), ("minute", minute_ago)):  # import rows waiting in chunks
        for source, count in waiting_chunk_rows_by_source(session, since).items():
            entry(source)[f"landed_last_{span}"] += count
    finished = (select(RawItem.source, RawItem.state, func.count(),
                       func.sum(case((RawItem.finished_at >= minute_ago, 1), else_=0)))
                .where(RawItem.finished_at >= hour_ago, RawItem.state.in_((DONE, FAILED)))
                .group_by(RawItem.source, RawItem.state))
    for source, state, hour, minute in session.execute(finished):
        what = "processed" if state == DONE else "failed"
        entry(source).update({f"{what}_last_hour": hour, f"{what}_last_minute": minute or 0})
    return recent


def oldest_unfinished_age(session: Session, now: datetime) -> float | None:
    """Seconds since the oldest item still pending or processing arrived (None: there is none)."""
    oldest = min((moment for moment in (
        session.scalar(select(func.min(RawItem.received_at)).where(RawItem.state.in_((PENDING, PROCESSING)))),
        session.scalar(select(func.min(ImportChunk.received_at)).where(ImportChunk.state == PENDING)))
        if moment is not None), default=None)
    return None if oldest is None else round(max((now - oldest).total_seconds(), 0.0), 3)


def latency_quantiles(session: Session, now: datetime) -> dict[str, Any]:
    """p50 and p95 of landing-to-outcome over the items processed in the last hour (nearest rank:
    the smallest latency with at least that share of items at or below it)."""
    latency = latency_seconds(session)
    recent = and_(RawItem.state == DONE, RawItem.finished_at >= now - HOUR)
    count = session.scalar(select(func.count()).select_from(RawItem).where(recent)) or 0
    result: dict[str, Any] = {"processed_last_hour": count, "p50_last_hour": None, "p95_last_hour": None}
    if not count:
        return result
    for name, share in (("p50_last_hour", 0.5), ("p95_last_hour", 0.95)):
        rank = max(math.ceil(share * count) - 1, 0)
        value = session.scalar(select(latency).where(recent).order_by(latency).offset(rank).limit(1))
        result[name] = None if value is None else round(float(value), 3)
    return result


def source_health(session: Session, settings: Settings, now: datetime,
                  recent: dict[str, dict[str, int]] | None = None) -> list[dict[str, Any]]:
    """Every configured source (and any other that landed items lately): health for polled ones
    (last success, last error, failures in a row, refused credentials, when they expire and
    whether that is within CREDENTIALS_WARN, rate limit), and items
    landed, processed and failed in the last minute and hour."""
    rows = {row.source: row for row in session.scalars(select(SourceHealth))}
    recent = recent_by_source(session, now) if recent is None else recent
    empty = {f"{what}_last_{span}": 0 for what in ("landed", "processed", "failed") for span in ("minute", "hour")}
    result = []
    for name in sorted(set(settings.sources) | set(recent)):
        source = settings.sources.get(name)
        door = source.polled if source else None
        row = rows.get(name)
        failing = bool(row and row.failures)
        expire_at = credentials_expire_at(row)
        result.append({
            "source": name, "kind": source.kind if source else None, "polled": door is not None,
            "healthy": healthy(row) if door is not None else None,
            "last_success_at": row.last_success_at if row else None,
            "last_error": row.last_error if failing else None,
            "last_error_at": row.last_error_at if failing else None,
            "failures": row.failures if row else 0,
            "credentials_failed": bool(row and row.credentials_failed),
            "credentials_expire_at": expire_at,
            "credentials_expiring": credentials_expiring(expire_at, now),
            "rate_limited_until": row.resume_at if row and row.resume_at and row.resume_at > now else None,
            "next_try_after": next_poll(row, door.poll_seconds) if door is not None else None,
            **empty, **recent.get(name, {}),
        })
    return result


def broker_state(settings: Settings, ping_timeout: float = PING_TIMEOUT) -> tuple[dict | None, int | None]:
    """Queue depths (an explicit 0 for an empty queue) and in-flight messages, and the workers
    answering a ping; (None, None) embedded, where there is no broker."""
    if settings.embedded:
        return None, None
    from crm_ingest.workers.queues import queue_depths, unacked_count

    try:
        queues: dict[str, Any] = {"depth": queue_depths(settings.redis_url),
                                  "unacked": unacked_count(settings.redis_url)}
    except Exception as exc:  # noqa: BLE001 - the database side is still worth showing
        return {"error": f"broker unreachable: {type(exc).__name__}"}, None
    return queues, workers_online(settings.redis_url, ping_timeout)


def workers_online(redis_url: str, timeout: float = PING_TIMEOUT) -> int | None:
    """Workers that answer a broadcast ping within `timeout` (None: the ping itself failed).

    The ping goes through a small Celery app of its own on `redis_url`: a broadcast publishes
    through its app's producer pool, whatever connection it is handed, and the worker app's
    pool is bound to the broker it was configured with at import."""
    try:
        return len(_pinger(redis_url).control.ping(timeout=timeout) or [])
    except Exception:  # noqa: BLE001 - unknown, not zero
        return None


@lru_cache(maxsize=4)
def _pinger(redis_url: str):
    from celery import Celery

    return Celery("crm_ingest-ping", broker=redis_url, set_as_current=False)
