"""Land a list file as an import job: streamed, in chunks, resumable, each chunk dispatched."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Callable, Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.connectors.base import NewItem
from crm_ingest.gcpause import collector_paused
from crm_ingest.ingest.pipeline import campaign_ids, describe_error
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import PENDING, ImportJob, RawItem, utcnow
from crm_ingest.models.landing import land_chunk, waiting_chunks

from .batch import BatchReport
from .dispatch import dispatch, dispatch_chunk

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000  # rows landed per transaction as one chunk, then processed by one worker
# ... or fewer, when their text passes this (rows of long notes): a chunk's rows are one value of
# import_chunks (PostgreSQL holds at most 1 GB in one), and a chunk is held whole by the reader
# and by the worker (5,000 rows of 1 MB notes were 5 GB)
CHUNK_CHARS = 16 << 20


@dataclass
class ImportRequest:
    source: str
    campaign: str | None = None
    consent: str | None = None
    upsert_by: str = "email"


@dataclass
class LandingProgress:
    job_id: int
    rows_read: int = 0
    rows_landed: int = 0
    resumed_from_row: int | None = None
    already_imported: bool = False
    outcomes: dict[str, int] | None = None  # embedded mode: processed as landed
    sent_on: int = 0  # chunks and items an earlier run left waiting, sent on again by this one


def find_or_start_job(session: Session, list_file, request: ImportRequest) -> ImportJob:
    """The job for this file, source and way of importing it: the unfinished or finished one,
    or a new one.

    Re-running a file resumes its unfinished job, or finds the finished one and adds nothing.
    The same file imported another way (for another campaign, with another map, sheet,
    encoding or upsert key) is a job of its own: its rows find the people the first one made, and link them
    to the campaign it names.
    """
    campaign = " ".join((request.campaign or "").split())  # 'Mässan 2026 ' is the campaign 'Mässan 2026'
    campaign_id = campaign_ids(session, {campaign})[campaign] if campaign else None
    options = {"format": list_file.format, "encoding": list_file.encoding,
               "encoding_guessed": list_file.encoding_guessed,
               "delimiter": list_file.delimiter, "wrapped": list_file.wrapped,
               "sheet": list_file.sheet,
               # a header cell as long as a page is no one's column name: kept to 1,000
               "columns": [[column[:1000] if isinstance(column, str) else column, name]
                           for column, name in list_file.read_header()],
               "header_row": list_file.header_row}  # row N of the list is row header_row + N of the file
    if other_sheets := getattr(list_file, "other_sheets", None):  # said on the job: a workbook of one list a sheet
        options["other_sheets"] = other_sheets
    if withheld := sorted(getattr(list_file, "withheld", ())):  # named in the job's summary: not stored, said so
        options["withheld"] = [options["columns"][index][0] for index in withheld]
    mapping = getattr(list_file, "mapping", None)
    if mapping is not None and (mapping.columns or mapping.values or mapping.defaults):
        # the map as a whole: its values and defaults change the rows as much as its columns
        options["map_sha256"] = hashlib.sha256(json.dumps(
            [mapping.columns, mapping.values, mapping.defaults], sort_keys=True, default=str).encode()).hexdigest()
    read_as = ("columns", "sheet", "encoding", "map_sha256")  # what makes the same file other rows
    for job in session.scalars(select(ImportJob).where(
            ImportJob.file_sha256 == list_file.sha256, ImportJob.source == request.source,
            ImportJob.state != "reverted").order_by(ImportJob.id.desc())):
        if (job.campaign_id, job.upsert_by) == (campaign_id, request.upsert_by) \
                and all((job.options or {}).get(name) == options.get(name) for name in read_as):
            return job
    job = ImportJob(source=request.source, file_name=getattr(list_file, "display_name", None) or list_file.path.name,
                    file_sha256=list_file.sha256, campaign_id=campaign_id, consent=request.consent,
                    upsert_by=request.upsert_by, state="landing", options=options)
    session.add(job)
    session.flush()
    return job


def land_list(sessions: sessionmaker[Session], list_file, request: ImportRequest, settings: Settings,
              on_chunk: Callable[[LandingProgress], None] | None = None) -> LandingProgress:
    """Read the file once, land it in chunks (the job's cursor moves in each chunk's
    transaction), and dispatch each chunk: to the workers, or processed here when embedded."""
    with sessions.begin() as session:
        job = find_or_start_job(session, list_file, request)
        job_id, state, cursor = job.id, job.state, job.cursor
        progress = LandingProgress(job_id, job.rows_read, job.rows_landed)
    if state != "landing":
        progress.already_imported = True
        progress.sent_on = _dispatch_unfinished(sessions, job_id, settings)
        return progress
    if cursor:
        progress.resumed_from_row = cursor.get("row")
        progress.sent_on = _dispatch_unfinished(sessions, job_id, settings)  # landed before the interruption
    outcomes: dict[str, int] = {}

    def count(report: BatchReport) -> None:
        for name, number in report.outcomes.items():
            outcomes[name] = outcomes.get(name, 0) + number

    rows = list_file.fetch(cursor)
    unreadable: Exception | None = None  # where the file turned unreadable: raised once the rows before it landed
    try:
        while unreadable is None:
            with collector_paused():  # one chunk's rows at a time (see gcpause)
                chunk, unreadable = _next_chunk(rows)
                if not chunk:
                    break
                with sessions.begin() as session:
                    _hold(session, job_id, progress.rows_read)
                    chunk_id = land_chunk(session, request.source, chunk, import_job_id=job_id)
                    session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                        cursor=chunk[-1].cursor, rows_read=ImportJob.rows_read + len(chunk),
                        rows_landed=ImportJob.rows_landed + len(chunk)))
            progress.rows_read += len(chunk)
            progress.rows_landed += len(chunk)
            dispatch_chunk(sessions, chunk_id, settings, on_batch=count)
            if settings.embedded:
                progress.outcomes = outcomes
            if on_chunk:
                on_chunk(progress)
        if unreadable is not None:
            raise unreadable
    except ConcurrentImport:
        raise
    except Exception as exc:
        _stopped(sessions, job_id, progress.rows_read, exc)
        raise
    with sessions.begin() as session:
        job = session.get(ImportJob, job_id)
        job.state, job.landed_at = "landed", utcnow()
        if job.options and "stopped" in job.options:  # an earlier landing's stop, resumed since
            job.options = {name: value for name, value in job.options.items() if name != "stopped"}
    return progress


def _next_chunk(rows: Iterator[NewItem]) -> tuple[list[NewItem], Exception | None]:
    """The next CHUNK_ROWS rows, or fewer when their text passes CHUNK_CHARS; and the error the
    file stopped with, if it did, after the rows read before it (landed, not lost with it)."""
    chunk: list[NewItem] = []
    chars = 0
    try:
        for item in rows:
            chunk.append(item)
            for part in (item.payload.get("fields"), item.payload.get("extra")):  # the row's cells
                if part:
                    try:
                        chars += sum(map(len, part.values()))
                    except TypeError:  # a number or a flag a map file gives as a default
                        chars += sum(map(len, map(str, part.values())))
            if len(chunk) >= CHUNK_ROWS or chars >= CHUNK_CHARS:
                break
    except Exception as exc:  # noqa: BLE001 - raised by land_list once these rows are landed
        if not chunk:
            raise
        return chunk, exc
    return chunk, None


def _stopped(sessions, job_id: int, rows_read: int, error: Exception) -> None:
    """Say on the job why its landing stopped and after which row (`options.stopped`, shown
    with its counts): a job answered over HTTP is watched by its state alone."""
    try:
        with sessions.begin() as session:
            job = session.get(ImportJob, job_id)
            # the file's row numbering (blank rows counted), as the rows' own numbers and the report's
            after = (job.cursor or {}).get("row", 0)
            job.options = {**(job.options or {}), "stopped": {
                "after_row": after, "rows_landed": rows_read, "at": utcnow().isoformat(),
                "error": describe_error(error)[:1000]}}
    except Exception:  # noqa: BLE001 - the database may be why it stopped; the caller raises the error itself
        log.warning("could not note on import job %s why its landing stopped", job_id, exc_info=True)


class ConcurrentImport(RuntimeError):
    """Another process is landing the same job."""


def _hold(session: Session, job_id: int, rows_read: int) -> None:
    """Lock the job for this chunk's transaction and check nobody else moved its cursor.

    FOR NO KEY UPDATE, not FOR UPDATE: it excludes another landing process, and nothing a
    worker does on the job (a foreign key to it, if one is ever added, takes KEY SHARE) has
    to wait for the landing transaction of every chunk."""
    now_read = session.scalar(select(ImportJob.rows_read).where(ImportJob.id == job_id)
                              .with_for_update(key_share=True))
    if now_read != rows_read:
        raise ConcurrentImport(f"import job {job_id} is being landed by another process "
                               f"({now_read} rows read, this one expected {rows_read}); "
                               "wait for it to finish, then run the import again to see its counts")


def _dispatch_unfinished(sessions, job_id: int, settings: Settings) -> int:
    """The job's chunks still waiting, and its rows waiting as raw items (a chunk split, or
    landed by a version before chunks), sent on again; returns how many chunks and items."""
    with sessions() as session:
        chunk_ids = waiting_chunks(session, job_id)
        ids = list(session.scalars(select(RawItem.id).where(
            RawItem.import_job_id == job_id, RawItem.state == PENDING).order_by(RawItem.id)))
    for chunk_id in chunk_ids:
        dispatch_chunk(sessions, chunk_id, settings)
    if ids:
        dispatch(sessions, ids, settings)
    return len(chunk_ids) + len(ids)
