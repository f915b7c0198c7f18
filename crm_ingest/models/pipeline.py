"""The pipeline's own tables: raw items and their outcomes, identity keys, checkpoints, import jobs."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, UTCDateTime, key_text, utcnow
from .records import Json

# Raw item states: landed and waiting, claimed by a worker under a lease, finished with an
# outcome, or set aside after too many failed attempts.
PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"
STATES = (PENDING, PROCESSING, DONE, FAILED)
_UNFINISHED = "state IN ('pending', 'processing')"
LANDED_BY_CONNECTORS = "import_job_id IS NULL"  # raw items that are not list-import rows
OUTCOMES = ("created", "merged", "appended", "review", "rejected", "ignored")


class RawItem(Base):
    """One thing that arrived, exactly as received; the database's promise that nothing is lost."""

    __tablename__ = "raw_items"
    __table_args__ = (
        # what makes a connector's landing idempotent; a list-import row is landed once by its
        # job's cursor instead (landing.copy_items), and skipping this entry twice per row
        # (landed, finished) is a tenth of a large import's database time
        Index("uq_raw_items_source_external_id", "source", "external_id", unique=True,
              postgresql_where=text(LANDED_BY_CONNECTORS), sqlite_where=text(LANDED_BY_CONNECTORS)),
        # Partial indexes: a row enters each only at the write that needs it (landing for the
        # unfinished ones, its outcome for the record one), not at every write of the row.
        Index("ix_raw_items_state_lease", "state", "lease_until",
              postgresql_where=text(_UNFINISHED), sqlite_where=text(_UNFINISHED)),
        Index("ix_raw_items_record", "record_type", "record_id",
              postgresql_where=text("record_id IS NOT NULL"), sqlite_where=text("record_id IS NOT NULL")),
        # unfinished rows of an import, for `--wait` and resume: small, whatever the job's size
        Index("ix_raw_items_unfinished_job", "import_job_id",
              postgresql_where=text(_UNFINISHED), sqlite_where=text(_UNFINISHED)),
        # throughput ("finished in the last minute"): rows finish roughly in heap order, and a
        # BRIN summary costs next to nothing per write (a b-tree here cost every outcome a write)
        Index("ix_raw_items_finished_at", "finished_at", postgresql_using="brin"),
        # the same for landing time: per-minute rollups and "landed in the last hour"
        Index("ix_raw_items_received_at", "received_at", postgresql_using="brin"),
        # an import's rows land together, so its rows lie in a few block ranges
        Index("ix_raw_items_import_job_id", "import_job_id", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # no foreign key, here or on campaign_members and leads (the tables an import writes a
    # million rows to): its check was a query and a lock on the one job row per inserted row,
    # a fifth of an import's database time; jobs and campaigns are never deleted (migration 0020)
    import_job_id: Mapped[int | None] = mapped_column(BigId)

    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    outcome: Mapped[str | None] = mapped_column(String(12))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    record_type: Mapped[str | None] = mapped_column(String(20))
    record_id: Mapped[int | None] = mapped_column(BigId)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdentityKey(Base):
    """A normalized contact point owned by one record; the unique constraint settles races."""

    __tablename__ = "identity_keys"
    __table_args__ = (
        # value first: every plan that uses this index must look the value up, even a generic
        # plan made while the table's statistics still say it is empty
        UniqueConstraint("value", "kind", "scope"),
        Index("ix_identity_keys_owner", "scope", "record_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(key_text(20))  # the record type the key identifies
    kind: Mapped[str] = mapped_column(key_text(20))  # email, phone, ...
    value: Mapped[str] = mapped_column(key_text(320))
    record_id: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConnectorCheckpoint(Base):
    """How far a source has been read; advanced only in the transaction that lands the items."""

    __tablename__ = "connector_checkpoints"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    cursor: Mapped[dict[str, Any]] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SourceHealth(Base):
    """How a polled source fares: last success, last error, failures in a row."""

    __tablename__ = "source_health"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_received: Mapped[int] = mapped_column(default=0)  # items the last successful poll read
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(default=0)  # consecutive
    credentials_failed: Mapped[bool] = mapped_column(default=False)
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # rate-limited until
    usage: Mapped[dict | None] = mapped_column(Json)  # the API's last reported usage of its limits
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ImportJob(Base):
    """One campaign list import: the file, its options, and how far landing got (to resume)."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(String(1000))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    # landing -> landed (every row landed; outcomes follow) -> done (every row has one) ; reverted
    state: Mapped[str] = mapped_column(String(20), default="landing")
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_landed: Mapped[int] = mapped_column(default=0)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(Json)  # last row landed, for resume
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    consent: Mapped[str | None] = mapped_column(String(300))
    upsert_by: Mapped[str] = mapped_column(String(10), default="email")
    options: Mapped[dict[str, Any] | None] = mapped_column(Json)  # format, encoding, columns, map
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    landed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


WAITING = "state = 'pending'"


class ImportChunk(Base):
    """Rows of a list import landed together (thousands), waiting for one worker's transaction.

    The chunk holds the rows until they are processed; then each row is written to raw_items
    once, with its outcome, and the chunk keeps only its counts. (A row landed as a raw item
    of its own would be written twice, landed and finished, each write with its index entries:
    most of a large import's database time.) A chunk that fails as a whole is split: its rows
    become raw items waiting on their own, and a bad row is isolated as any item is."""

    __tablename__ = "import_chunks"
    __table_args__ = (Index("ix_import_chunks_waiting", "import_job_id",
                            postgresql_where=text(WAITING), sqlite_where=text(WAITING)),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id"), index=True)
    source: Mapped[str] = mapped_column(String(100))
    row_count: Mapped[int] = mapped_column()
    rows: Mapped[str | None] = mapped_column(Text)  # JSON [[external_id, kind, payload], ...] until processed
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # pending -> done (its rows are raw items with outcomes) | split (its rows wait as raw items)
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)  # deliveries begun
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CampaignMember(Base):
    """A lead or contact on a campaign's list: how an import links people it did not create."""

    __tablename__ = "campaign_members"
    __table_args__ = (UniqueConstraint("campaign_id", "record_type", "record_id"),
                      Index("ix_campaign_members_record", "record_type", "record_id"))  # a merge moves them

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigId)  # no foreign keys: see RawItem.import_job_id
    record_type: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int] = mapped_column(BigId)
    import_job_id: Mapped[int | None] = mapped_column(BigId, index=True)
    raw_item_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Suppression(Base):
    """Do not contact: an email, phone or whole domain that must never become a marketable lead."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("value", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # email, phone, domain
    value: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MergeLog(Base):
    """What an item changed on a record it merged into, so the change can be undone."""

    __tablename__ = "merge_log"
    __table_args__ = (Index("ix_merge_log_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    raw_item_id: Mapped[int | None] = mapped_column(BigId, index=True)  # None: a merge decided in review
    record_type: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int] = mapped_column(BigId)
    filled: Mapped[dict[str, Any] | None] = mapped_column(Json)  # field -> value it filled (was blank)
    keys_added: Mapped[list[Any] | None] = mapped_column(Json)  # [kind, value] pairs it added
    merged_id: Mapped[int | None] = mapped_column(BigId)  # a record merged into record_id (deleted)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MatchKey(Base):
    """A blocking key of a person (canonical name + surname, initial + surname, work domain +
    surname): many records may share one. Finds candidates for fuzzy matching by index."""

    __tablename__ = "match_keys"
    __table_args__ = (
        # candidates: the newest owners of a value in a record type, read in index order
        Index("ix_match_keys_lookup", "value", "scope", "record_id"),
        Index("ix_match_keys_owner", "scope", "record_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(key_text(20))
    kind: Mapped[str] = mapped_column(key_text(20))
    value: Mapped[str] = mapped_column(key_text(320))
    record_id: Mapped[int] = mapped_column(BigId)


class DuplicateReview(Base):
    """A possible duplicate pair, found by the rules, waiting for (or given) a person's decision.
    One row per pair, so a decision is remembered and the pair never asked again."""

    __tablename__ = "duplicate_reviews"
    __table_args__ = (
        UniqueConstraint("record_type", "record_id", "other_type", "other_id"),
        Index("ix_duplicate_reviews_state", "state"),
        Index("ix_duplicate_reviews_other", "other_type", "other_id"),  # pairs naming a merged record
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(20))  # the pair in a fixed order
    record_id: Mapped[int] = mapped_column(BigId)
    other_type: Mapped[str] = mapped_column(String(20))
    other_id: Mapped[int] = mapped_column(BigId)
    score: Mapped[float] = mapped_column(Float)
    suggested: Mapped[str] = mapped_column(String(10))  # merge | review (the rules' outcome)
    reasons: Mapped[list[str] | None] = mapped_column(Json)
    state: Mapped[str] = mapped_column(String(20), default="open")  # open | merged | kept_separate
    raw_item_id: Mapped[int | None] = mapped_column(BigId)  # the item that brought the pair up
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(20))  # rules | person
    merge_id: Mapped[int | None] = mapped_column(BigId)  # the merge_log entry of a merged pair


class Acknowledgement(Base):
    """The reply that tells a sender their case number: one per case at most (unique case_id),
    written with the case, sent afterwards (pending -> sent or failed)."""

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigId, unique=True)
    source: Mapped[str] = mapped_column(String(100))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | failed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IntakeCount(Base):
    """Web form submissions by day, form and what became of them (landed, or why refused):
    refused ones are counted here, never stored as items."""

    __tablename__ = "intake_counts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    form: Mapped[str] = mapped_column(String(100), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(40), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
