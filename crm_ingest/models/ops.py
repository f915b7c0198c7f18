"""Operations' own tables: per-minute throughput rollups (history that outlives restarts) and
the state of each alert (so a webhook hears of a change once, not every minute)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

LANDED, FINISHED = "landed", "finished"  # the two events a rollup row counts


class ThroughputMinute(Base):
    """Items per UTC minute: landed by source, or finished by source, record type and outcome
    ('failed' for an item set aside). Recomputed from raw_items, never incremented, so a second
    roll-up of the same minute writes the same row."""

    __tablename__ = "throughput_minutes"

    minute: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)  # its start
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    event: Mapped[str] = mapped_column(String(10), primary_key=True)  # landed | finished
    record_type: Mapped[str] = mapped_column(String(20), primary_key=True)  # '' when none
    outcome: Mapped[str] = mapped_column(String(12), primary_key=True)  # '' for landed
    items: Mapped[int] = mapped_column(default=0)
    latency_seconds_sum: Mapped[float] = mapped_column(Float, default=0.0)  # landing to outcome


class AlertState(Base):
    """One watched condition ('source:NAME', 'queue:NAME'): whether its alert is firing, and
    since when the condition holds (a queue must stay above its threshold for a while)."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    firing: Mapped[bool] = mapped_column(default=False)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class QueueDepthMinute(Base):
    """How deep a queue was at a minute, sampled by each roll-up: 'unfinished' is the items
    landed and not yet finished (pending or processing) in the database, the only depth the
    embedded path has. Kept so the /ops queue chart of the last day outlives restarts."""

    __tablename__ = "queue_depth_minutes"

    minute: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    depth: Mapped[int] = mapped_column(default=0)
