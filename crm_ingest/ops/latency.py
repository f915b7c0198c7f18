"""Landing-to-outcome latency of an item as SQL, on either database."""
from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from crm_ingest.models import RawItem

# Histogram bounds in seconds: an item processed at once in-process (milliseconds), a batch
# waiting behind others (seconds to minutes), a backlog or a retry (up to hours).
BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)


def latency_seconds(session: Session) -> ColumnElement[float]:
    """Seconds from `received_at` to `finished_at`; SQLite keeps both as text, read by julianday."""
    if session.get_bind().dialect.name == "postgresql":
        # date_part, not extract: extract gives numeric (PostgreSQL 14 on), several times
        # slower to compare and sum over a million rows than date_part's double precision
        return func.date_part("epoch", RawItem.finished_at - RawItem.received_at)
    return (func.julianday(RawItem.finished_at) - func.julianday(RawItem.received_at)) * 86400.0
