"""Counts that answer 'where did everything go': items by state and outcome, records by type."""
from __future__ import annotations


from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_ingest.models import OUTCOMES, PENDING, RECORD_MODELS, STATES_ALL, RawItem
from crm_ingest.models.landing import waiting_chunk_rows_by_source


def item_counts(session: Session, source: str | None = None) -> dict:
    query = select(RawItem.state, RawItem.outcome, func.count()).group_by(RawItem.state, RawItem.outcome)
    if source:
        query = query.where(RawItem.source == source)
    by_state = dict.fromkeys(STATES_ALL, 0)
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    for state, outcome, count in session.execute(query):
        by_state[state] = by_state.get(state, 0) + count
        if outcome:
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
    waiting = waiting_chunk_rows_by_source(session)  # import rows landed in chunks, not processed yet
    by_state[PENDING] += waiting.get(source, 0) if source else sum(waiting.values())
    return {"received": sum(by_state.values()), "by_state": by_state, "by_outcome": by_outcome}


def record_counts(session: Session) -> dict[str, int]:
    return {name: session.scalar(select(func.count()).select_from(model)) or 0
            for name, model in RECORD_MODELS.items()}



def top_errors(session: Session, limit: int = 5) -> list[tuple[str, int]]:
    rows = session.execute(
        select(RawItem.last_error, func.count()).where(RawItem.last_error.is_not(None))
        .group_by(RawItem.last_error).order_by(func.count().desc()).limit(limit))
    return [(error, count) for error, count in rows]
