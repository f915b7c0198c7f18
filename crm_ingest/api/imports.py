"""List imports over HTTP, behind the bearer token: what `ingest import` does, for a script or
a web page that uploads the file.

    POST /imports?campaign=NAME[&source=list][&upsert_by=email|phone|none][&consent=TEXT]
                 [&encoding=CODEC][&sheet=NAME][&file_name=list.csv][&preview=true][&map=TOML]
         body: the file itself (CSV, TSV, .xlsx or .xls), e.g.
               `curl -H "Content-Type: text/csv" --data-binary @list.csv` (curl's default
               type is a form's, which is refused)
         map: the text of a map file (`ingest import --map`), in the query, e.g.
              `curl --url-query map@map.toml` (curl 7.87+); at most MAX_MAP_CHARS characters
    GET  /imports                      the latest jobs, newest first
    GET  /imports/{id}                 a job's state and counts (as `ingest import-report`)
    GET  /imports/{id}/rejected        its rejected rows with reasons, as CSV safe for Excel
    POST /imports/{id}/revert          as `ingest import-revert`

The body is streamed to a file under `[api] import_dir` (never held in memory) and refused
past `[api] max_import_bytes`; then the job is created and answered (202 with its id), and the
file is landed in the background by this server process, chunk by chunk as the CLI does
(processed by the workers, or here when embedded). The same file posted again is the same job:
finished, it adds nothing; interrupted, it resumes where it stopped.

An answered upload is not lost to a restart: beside the file lies a note of what was asked
(`<file>.json`), and a server starting finds the uploads whose job is still landing and lands
on from the job's cursor (`resume_uploads`). A landing the database interrupted is kept for
that too. The file and its note are removed once the job is landed.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from crm_ingest.ingest.errors import ConfigError, FatalError, RetriableError
from crm_ingest.runtime import runtime
from crm_ingest.ingest.importjobs import CONTROL_CHARACTERS, UPSERT_BY

from .auth import require_token
from .limits import over_limit
from .params import Id

log = logging.getLogger(__name__)
router = APIRouter(tags=["imports"])
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# a query string, percent-encoded: servers and proxies refuse a request head much past 8-16 KB
MAX_MAP_CHARS = 4000


def _import_dir() -> Path:
    import tempfile

    configured = runtime().settings.api.import_dir
    folder = Path(configured) if configured else Path(tempfile.gettempdir()) / "crm-ingest-imports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


@router.post("/imports", summary="Import a campaign list (the file is the body)", status_code=202)
async def create_import(request: Request, campaign: str | None = None, source: str = "list",
                        upsert_by: str = "email", consent: str | None = None, encoding: str | None = None,
                        sheet: str | None = None, file_name: str = "upload.csv", preview: bool = False,
                        map: str | None = None) -> Any:
    require_token(request)
    from .intake import counter

    rt = runtime()
    api = rt.settings.api
    ip = request.client.host if request.client else "unknown"
    wait = await run_in_threadpool(over_limit, counter(), [(f"imports:{ip}", api.imports_per_ip_per_hour, 3600)])
    if wait is not None:
        return JSONResponse({"detail": "too many imports from this address; try again later"}, status_code=429,
                            headers={"Retry-After": str(wait)})
    if upsert_by not in UPSERT_BY:
        raise HTTPException(422, f"upsert_by: one of {', '.join(UPSERT_BY)}, not {upsert_by!r}")
    try:
        source_config = rt.settings.source(source)
    except ConfigError as exc:
        raise HTTPException(422, f"source: {exc}") from None
    if source_config.kind != "row":
        raise HTTPException(422, f"source: {source!r} takes {source_config.kind} items, not list rows")
    for name, value, limit in (("campaign", campaign, 200), ("consent", consent, 500), ("file_name", file_name, 200)):
        if value is not None and (len(value) > limit or not value.strip()):
            raise HTTPException(422, f"{name}: 1 to {limit} characters")
    for name, value in (("campaign", campaign), ("consent", consent)):
        if value is not None and CONTROL_CHARACTERS.search(value):  # a NUL named an invisible campaign
            raise HTTPException(422, f"{name}: holds a control character")
    # the name a person knows it by: its last part (a Windows path's too), no control characters
    file_name = "".join(ch for ch in re.split(r"[\\/]", file_name)[-1] if ch.isprintable()).strip() or "upload.csv"
    mapping = _mapping(map)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("multipart/") or content_type == "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the file itself as the body with its own Content-Type, not a form "
                                 "(curl: -H 'Content-Type: text/csv' --data-binary @list.csv)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > api.max_import_bytes:
        raise HTTPException(413, f"the file is over {api.max_import_bytes} bytes")

    folder = _import_dir()
    suffix = Path(file_name).suffix.lower() if Path(file_name).suffix.lower() in (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls", ".ods", ".xml", ".vcf") else ""
    path = folder / f"{uuid.uuid4().hex}-{_SAFE_NAME.sub('_', Path(file_name).stem)[:80] or 'upload'}{suffix}"
    size = 0
    try:
        with path.open("wb") as out:
            async for block in request.stream():
                size += len(block)
                if size > api.max_import_bytes:
                    raise HTTPException(413, f"the file is over {api.max_import_bytes} bytes")
                out.write(block)
        if size == 0:
            raise HTTPException(422, "the body is empty: send the file as the body")
        answer = await run_in_threadpool(_start, path, file_name, source_config.name, campaign, consent, upsert_by,
                                         encoding, sheet, preview, mapping, map)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return answer


def _mapping(text: str | None):
    """The map sent with an upload, read as `ingest import --map` reads its file; 422 names
    the key that is wrong."""
    from crm_ingest.connectors.listfile import MapFile

    if text is None:
        return None
    if len(text) > MAX_MAP_CHARS:
        raise HTTPException(422, f"map: at most {MAX_MAP_CHARS} characters")
    try:
        return MapFile.parse(text, origin="syntax")
    except ConfigError as exc:
        raise HTTPException(422, f"map: {exc}") from None


def _start(path: Path, file_name: str, source: str, campaign: str | None, consent: str | None, upsert_by: str,
           encoding: str | None, sheet: str | None, preview: bool, mapping=None,
           map_text: str | None = None) -> JSONResponse:
    from crm_ingest.connectors.listfile import ListFile
    from crm_ingest.connectors.listfile import preview as preview_rows
    from crm_ingest.ingest.importjobs import job_summary
    from crm_ingest.workers.imports import ImportRequest, find_or_start_job

    rt = runtime()
    try:
        list_file = ListFile(path, source, encoding=encoding, sheet=sheet, mapping=mapping)
        if preview:
            data = preview_rows(list_file)
            path.unlink(missing_ok=True)
            return JSONResponse(jsonable_encoder(data), status_code=200)
        list_file.display_name = Path(file_name).name
        request = ImportRequest(source, campaign, consent, upsert_by)
        with rt.sessions.begin() as session:
            job = find_or_start_job(session, list_file, request)
            job_id, state = job.id, job.state
            if state != "landing":  # imported before: nothing new
                summary = job_summary(session, job)
    except (FatalError, ConfigError, LookupError, ValueError) as exc:
        path.unlink(missing_ok=True)
        said = str(exc).replace(path.name, Path(file_name).name)
        raise HTTPException(422, said) from None
    if state != "landing":
        path.unlink(missing_ok=True)
        return JSONResponse(jsonable_encoder({**summary, "already_imported": True}), status_code=200)
    try:
        _write_note(path, {"job": job_id, "file_name": file_name, "source": source, "campaign": campaign,
                           "consent": consent, "upsert_by": upsert_by, "encoding": encoding, "sheet": sheet,
                           "map": map_text})
    except OSError as exc:  # a full disk: the job is there, and the same file posted again resumes it
        log.error("could not keep the note of upload %s (%s): a restart will not resume it", path.name, exc)
    threading.Thread(target=_land, args=(path, list_file, request), name=f"import-{job_id}", daemon=True).start()
    return JSONResponse({"job": job_id, "state": "landing", "status_url": f"/imports/{job_id}"}, status_code=202)


def _note(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_note(path: Path, request: dict[str, Any]) -> None:
    """What was asked with the upload, beside it, written whole or not at all."""
    partial = path.with_name(path.name + ".json.part")
    partial.write_text(json.dumps(request), encoding="utf-8")
    os.replace(partial, _note(path))


def _land(path: Path, list_file, request, resumed: bool = False) -> None:
    """Land (and, embedded, process) the file, then remove the upload and its note.

    The database failing keeps both: the next start of the server lands on from the job's
    cursor. Anything else (a file that breaks the reader part-way) is logged, the job showing
    how far it got, and the upload removed: reading it again would fail again."""
    from crm_ingest.workers.imports import ConcurrentImport, land_list

    rt = runtime()
    keep = False
    try:
        land_list(rt.sessions, list_file, request, rt.settings)
    except ConcurrentImport as exc:
        # the same file posted twice at once: the other upload lands it; or this upload, resumed
        # by two server processes starting at once: the other one lands it, and removes it
        log.info("%s", exc)
        keep = resumed
    except (OperationalError, RetriableError):
        log.exception("landing the upload %s stopped: the database failed; it is landed on when the server "
                      "starts again (or post the same file again)", path.name)
        keep = True
    except Exception:  # noqa: BLE001 - logged; the job shows how far it got
        log.exception("landing the upload %s failed; post the same file again to resume", path.name)
    finally:
        if not keep:
            path.unlink(missing_ok=True)
            _note(path).unlink(missing_ok=True)


MAX_RESUMES = 3  # starts that may resume one upload: one that stops every server landing it is left alone
ORPHAN_SECONDS = 24 * 3600  # an upload without a note this old was never answered (its server died)


def resume_uploads() -> list[int]:
    """Land on the uploads a restart interrupted: each whose note names a job still landing,
    in a thread of its own, from the job's cursor. Uploads of jobs that are landed, and notes
    without their file, are removed; so are uploads a day old that never got a note (their
    server died before answering). Returns the ids of the jobs resumed."""
    from crm_ingest.connectors.listfile import ListFile, MapFile
    from crm_ingest.models import ImportJob
    from crm_ingest.workers.imports import ImportRequest

    rt = runtime()
    folder = _import_dir()
    resumed: list[int] = []
    for note in sorted(folder.glob("*.json")):
        path = note.with_name(note.name[:-len(".json")])
        try:
            asked = json.loads(note.read_text(encoding="utf-8"))
            if not path.exists():
                note.unlink(missing_ok=True)
                continue
            with rt.sessions() as session:
                job = session.get(ImportJob, int(asked["job"]))
                state = job.state if job is not None else None
            if state != "landing":
                path.unlink(missing_ok=True)
                note.unlink(missing_ok=True)
                continue
            mapping = MapFile.parse(asked["map"], origin="syntax") if asked.get("map") else None
            list_file = ListFile(path, asked["source"], encoding=asked.get("encoding"), sheet=asked.get("sheet"),
                                 mapping=mapping)
            list_file.display_name = Path(asked["file_name"]).name
            request = ImportRequest(asked["source"], asked.get("campaign"), asked.get("consent"),
                                    asked.get("upsert_by") or "email")
        except OperationalError:
            log.exception("the database is not answering: uploads are resumed when the server starts again")
            break
        except Exception:  # noqa: BLE001 - one upload's note must not keep the others (or the server) down
            log.exception("cannot resume the upload %s; it is kept for a person to look at", path.name)
            continue
        starts = int(asked.get("resumed", 0)) + 1
        if starts > MAX_RESUMES:  # each start that resumed it stopped before it was landed: it may be what stops it
            log.error("not resuming the upload %s of import job %s again: %d starts resumed it and it is still "
                      "landing; it is kept for a person to look at (post it again to resume it)",
                      path.name, asked["job"], starts - 1)
            continue
        try:
            _write_note(path, {**asked, "resumed": starts})
        except OSError as exc:
            log.error("cannot count the resumption of upload %s (%s): not resuming it", path.name, exc)
            continue
        log.info("resuming the upload %s of import job %s", path.name, asked["job"])
        threading.Thread(target=_land, args=(path, list_file, request, True), name=f"import-{asked['job']}",
                         daemon=True).start()
        resumed.append(int(asked["job"]))
    stale = time.time() - ORPHAN_SECONDS
    for path in folder.iterdir():
        if path.suffix != ".json" and not _note(path).exists() and path.is_file() and path.stat().st_mtime < stale:
            log.warning("removing the upload %s: its server stopped before answering it", path.name)
            path.unlink(missing_ok=True)
    return resumed


@router.get("/imports", summary="The latest import jobs, newest first")
def list_imports(request: Request, limit: int = 50) -> Any:
    require_token(request)
    from crm_ingest.models import ImportJob

    from crm_ingest.ingest.importjobs import job_summary

    rt = runtime()
    with rt.sessions.begin() as session:
        jobs = list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(max(1, min(limit, 500)))))
        for job in jobs:
            if job.state == "landed":  # settled as GET /imports/N settles it: done once every row is
                job_summary(session, job)
        return jsonable_encoder({"imports": [
            {"job": job.id, "state": job.state, "file": job.file_name, "source": job.source,
             "campaign_id": job.campaign_id, "rows_read": job.rows_read, "rows_landed": job.rows_landed,
             "created_at": job.created_at, "finished_at": job.finished_at} for job in jobs]})


def _job(session, job_id: int):
    from crm_ingest.models import ImportJob

    job = session.get(ImportJob, job_id)
    if job is None:
        raise HTTPException(404, f"no import job {job_id}")
    return job


@router.get("/imports/{job_id}", summary="An import job's state and counts")
def get_import(job_id: Id, request: Request) -> Any:
    require_token(request)
    from crm_ingest.ingest.importjobs import job_summary

    with runtime().sessions.begin() as session:
        return jsonable_encoder(job_summary(session, _job(session, job_id)))


@router.get("/imports/{job_id}/rejected", summary="An import's rejected rows with reasons (CSV, safe for Excel)")
def get_rejected(job_id: Id, request: Request) -> StreamingResponse:
    require_token(request)
    with runtime().sessions() as session:
        _job(session, job_id)

    def lines() -> Iterator[bytes]:
        import io

        from crm_ingest.ingest.importjobs import excel_csv_writer, rejected_csv_rows

        yield "\ufeff".encode()  # Excel reads UTF-8 only with its mark
        buffer = io.StringIO()
        writer = excel_csv_writer(buffer)
        with runtime().sessions() as session:
            for number, row in enumerate(rejected_csv_rows(session, _job(session, job_id))):
                writer.writerow(row)
                if number % 500 == 0:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="import-{job_id}-rejected.csv"'})


@router.post("/imports/{job_id}/revert", summary="Undo an import (as ingest import-revert)")
def revert_import(job_id: Id, request: Request) -> Any:
    require_token(request)
    from crm_ingest.ingest.importjobs import revert_job

    with runtime().sessions.begin() as session:
        job = _job(session, job_id)
        if job.state == "landing" and "stopped" not in (job.options or {}):  # a stopped one may be taken back
            raise HTTPException(409, f"import job {job_id} is still landing; revert it once it is landed")
        try:
            return jsonable_encoder({"job": job_id, **revert_job(session, job_id)})
        except LookupError as exc:
            raise HTTPException(409, str(exc)) from None
