"""Landing: insert raw items or ignore the ones already there, and advance a checkpoint with them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import jsonfast
from .base import utcnow
from .bulk import allocate_ids, copy_in, copy_json as _copy_json, copy_text as _copy_text, insert_rows, without_nul
from .pipeline import DONE, FAILED, LANDED_BY_CONNECTORS, PENDING, ConnectorCheckpoint, ImportChunk, RawItem


@dataclass(frozen=True)
class NewItem:
    """What a connector yields: one thing that arrived, before it is landed."""

    external_id: str
    kind: str
    payload: dict[str, Any]
    cursor: dict[str, Any] | None = field(default=None, compare=False)


def _insert_for(session: Session, table):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"landing needs PostgreSQL or SQLite, not {dialect}")


def land_items(session: Session, source: str, items: Sequence[NewItem], *,
               import_job_id: int | None = None, received_at: datetime | None = None) -> list[int]:
    """Insert the items not landed before; return the ids of those newly landed, in input order.

    Idempotent on (source, external_id): a re-landed item is ignored and not processed again.
    The caller owns the transaction, so a checkpoint saved in it moves with the items.
    """
    if not items:
        return []
    now = utcnow()  # queued now; received then (a split chunk's rows keep their landing time)
    received_at = received_at or now
    rows = [
        {"source": source, "external_id": item.external_id[:500], "kind": item.kind,
         "payload": without_nul(item.payload), "received_at": received_at, "queued_at": now,
         "import_job_id": import_job_id}
        for item in items
    ]
    inserted = insert_rows(session, RawItem, rows, on_conflict_do_nothing=("source", "external_id"),
                           conflict_where=LANDED_BY_CONNECTORS, returning=("external_id", "id"))
    landed = dict(inserted)
    return list(dict.fromkeys(landed[row["external_id"]] for row in rows if row["external_id"] in landed))


_COPY_COLUMNS = ("id", "source", "external_id", "kind", "payload", "received_at", "queued_at",
                 "import_job_id", "state", "attempts")


def copy_items(session: Session, source: str, items: Sequence[NewItem], *,
               import_job_id: int | None = None, received_at: datetime | None = None) -> list[int]:
    """Land items that are surely new with PostgreSQL's COPY; return their ids in input order.

    The fast path of a list import, whose rows are new by construction: the job's cursor moves
    in the same transaction, under a lock on the job, so a row is never landed twice (which is
    why the unique (source, external_id) index leaves import rows out). Several times
    cheaper than an insert that must check each row for a conflict and return it.
    """
    if not items:
        return []
    now = utcnow()  # queued now; received then (a split chunk's rows keep their landing time)
    received = (received_at or now).isoformat()
    ids = allocate_ids(session, RawItem, len(items))
    # COPY's text format written here, a whole chunk at once: psycopg's write_row formats
    # each field in Python, which was a sixth of the landing process's time
    job = "\\N" if import_job_id is None else str(int(import_job_id))
    tail = f"\t{received}\t{now.isoformat()}\t{job}\t{PENDING}\t0\n".encode()
    source_field = _copy_text(source)
    lines = []
    for item_id, item in zip(ids, items):
        lines.append(b"%d\t%s\t%s\t%s\t%s%s" % (
            item_id, source_field, _copy_text(item.external_id[:500]), _copy_text(item.kind),
            _copy_json(item.payload), tail))
    copy_in(session, f"COPY raw_items ({', '.join(_COPY_COLUMNS)}) FROM STDIN", b"".join(lines))
    return ids


def land_chunk(session: Session, source: str, items: Sequence[NewItem], *, import_job_id: int) -> int:
    """Land a list import's rows as one chunk (one row of import_chunks, the rows as JSON);
    returns its id. See ImportChunk: each row becomes a raw item once it has its outcome."""
    now = utcnow()
    rows = jsonfast.dumps([[item.external_id[:500], item.kind, item.payload] for item in items])
    if "\\u0000" in rows:  # a NUL somewhere (or the text "\\u0000"): PostgreSQL text cannot hold it
        rows = jsonfast.dumps([[item.external_id[:500].replace("\x00", ""), item.kind, without_nul(item.payload)]
                               for item in items])
    chunk = ImportChunk(import_job_id=import_job_id, source=source, row_count=len(items), rows=rows,
                        received_at=now, queued_at=now, state=PENDING, attempts=0)
    session.add(chunk)
    session.flush()
    return chunk.id


class ChunkRow(NamedTuple):
    """A row of an import chunk: what landing functions read of a NewItem, made several times
    faster than a frozen dataclass (5,000 a chunk)."""

    external_id: str
    kind: str
    payload: dict[str, Any]


def chunk_items(chunk: ImportChunk) -> list[ChunkRow]:
    return [ChunkRow._make(row) for row in jsonfast.loads(chunk.rows or "[]")]


def waiting_chunks(session: Session, job_id: int) -> list[int]:
    """Ids of the job's chunks still waiting to be processed."""
    return list(session.scalars(select(ImportChunk.id).where(ImportChunk.import_job_id == job_id,
                                                             ImportChunk.state == PENDING)
                                .order_by(ImportChunk.id)))


def waiting_chunk_rows(session: Session, job_id: int | None = None) -> int:
    """Rows of import chunks still waiting (of one job, or of all): landed, not yet raw items."""
    query = select(func.coalesce(func.sum(ImportChunk.row_count), 0)).where(ImportChunk.state == PENDING)
    if job_id is not None:
        query = query.where(ImportChunk.import_job_id == job_id)
    return int(session.scalar(query) or 0)


def waiting_chunk_rows_by_source(session: Session, since: datetime | None = None) -> dict[str, int]:
    """Rows of waiting import chunks by source (landed at or after `since`, if given): they
    count as pending items, landed when their chunk was, until they are raw items."""
    query = (select(ImportChunk.source, func.sum(ImportChunk.row_count)).where(ImportChunk.state == PENDING)
             .group_by(ImportChunk.source))
    if since is not None:
        query = query.where(ImportChunk.received_at >= since)
    return {source: int(count or 0) for source, count in session.execute(query)}


_FINISHED_COLUMNS = ("id", "source", "external_id", "kind", "payload", "received_at", "queued_at",
                     "import_job_id", "state", "attempts", "lease_until", "last_error", "outcome",
                     "outcome_reason", "record_type", "record_id", "finished_at")


def write_items(session: Session, rows: Sequence[tuple]) -> None:
    """Insert raw items written once, as they stand after processing (state, outcome and all):
    the rows of an import chunk. Each row is a tuple of the columns of _FINISHED_COLUMNS, in
    that order (a dict a row, built and read again, was a tenth of writing them)."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        insert_rows(session, RawItem, [{**dict(zip(_FINISHED_COLUMNS, row)), "payload": without_nul(row[4])}
                                       for row in rows])
        return
    # COPY's text format written out, as in copy_items; the columns' types are known, and the
    # timestamps and the words that repeat (one per chunk, mostly) are formatted once each
    known: dict[Any, bytes] = {None: b"\\N"}

    def once(value: Any) -> bytes:
        text = known.get(value)
        if text is None:
            text = known[value] = (value.isoformat().encode() if isinstance(value, datetime)
                                   else b"%d" % value if type(value) is int else _copy_text(value))
        return text

    def maybe(value: str | None) -> bytes:
        return b"\\N" if value is None else _copy_text(value)

    lines = []
    append = lines.append
    for (item_id, source, external_id, kind, payload, received_at, queued_at, job_id, state, attempts,
         lease_until, last_error, outcome, reason, record_type, record_id, finished_at) in rows:
        append(b"\t".join((
            b"%d" % item_id, once(source), _copy_text(external_id), once(kind), _copy_json(payload),
            once(received_at), once(queued_at), once(job_id), once(state), once(attempts), once(lease_until),
            maybe(last_error), once(outcome), maybe(reason), once(record_type),
            b"\\N" if record_id is None else b"%d" % record_id, once(finished_at))) + b"\n")
    copy_in(session, f"COPY raw_items ({', '.join(_FINISHED_COLUMNS)}) FROM STDIN", b"".join(lines))


def requeue_failed(session: Session, ids: Sequence[int] | None) -> list[int]:
    """Failed items (these, or all with None) made pending with a fresh set of attempts, as
    `ingest retry` does; ids of items that are not failed are passed over."""
    query = update(RawItem).where(RawItem.state == FAILED)
    if ids is not None:
        query = query.where(RawItem.id.in_(list(ids)))
    return list(session.scalars(query.values(state=PENDING, attempts=0, finished_at=None, lease_until=None)
                                .returning(RawItem.id)))


def reopen_in_review(session: Session, item_id: int, payload: dict[str, Any], failed_too: bool = False) -> bool:
    """Give an item that waits in review what was missing (a Lead Ads lead's answers, fetched
    after its webhook landed it) and make it pending again, to be processed with it; the caller
    queues it. Only an item finished in review is touched (`failed_too`: or one set aside as
    failed, which made no record either), never one that made a record, so no record is made
    twice; False when it no longer waits (a person decided it meanwhile)."""
    return _update_in_review(session, item_id, failed_too, payload=without_nul(payload), state=PENDING, attempts=0,
                             outcome=None, outcome_reason=None, finished_at=None, queued_at=utcnow())


def fail_in_review(session: Session, item_id: int, error: str) -> bool:
    """An item in review that cannot be completed (the source refused its part) is set aside as
    failed with the reason, like an item out of attempts; `ingest retry` tries it again."""
    return _update_in_review(session, item_id, False, state=FAILED, outcome=None, outcome_reason=None,
                             last_error=error, finished_at=utcnow())


def in_review(failed_too: bool = False):
    """Items finished in review (`failed_too`: or set aside as failed, which made no record either)."""
    waiting = and_(RawItem.state == DONE, RawItem.outcome == "review")
    return or_(waiting, and_(RawItem.state == FAILED, RawItem.record_id.is_(None))) if failed_too else waiting


def _update_in_review(session: Session, item_id: int, failed_too: bool, **values: Any) -> bool:
    stmt = (update(RawItem)
            .where(RawItem.id == item_id, in_review(failed_too))
            .values(record_type=None, record_id=None, lease_until=None, last_error=None)
            .values(**values).execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def load_checkpoint(session: Session, source: str) -> dict[str, Any] | None:
    row = session.get(ConnectorCheckpoint, source)
    return None if row is None else dict(row.cursor)


def forget_checkpoint(session: Session, source: str) -> dict[str, Any] | None:
    """Drop the source's saved cursor (one its API no longer accepts); returns what it was."""
    row = session.get(ConnectorCheckpoint, source)
    if row is None:
        return None
    cursor = dict(row.cursor)
    session.delete(row)
    return cursor


def save_checkpoint(session: Session, source: str, cursor: dict[str, Any]) -> None:
    stmt = _insert_for(session, ConnectorCheckpoint).values(source=source, cursor=cursor,
                                                              updated_at=utcnow())
    stmt = stmt.on_conflict_do_update(index_elements=["source"],
                                      set_={"cursor": cursor, "updated_at": utcnow()})
    session.execute(stmt)
