"""`ingest`: the command line. An edge: it opens sessions, lands, dispatches and prints."""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from crm_ingest.connectors.base import Connector, run_connector
from crm_ingest.ingest.errors import ConfigError, FatalError
from crm_ingest.ingest.query import DEFAULT_PAGE, ITEM_OUTCOME_NAMES, ITEM_STATES, MAX_PAGE
from crm_ingest.ingest.importjobs import (  # noqa: F401
    CONTROL_CHARACTERS, EXPORT_LIMIT_CELL, UPSERT_BY, excel_csv_writer, excel_safe)
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import RawItem
from crm_ingest.models.migrate import is_current, upgrade
from crm_ingest.runtime import Runtime, runtime

# A record's, item's or job's id: 1 to BIGINT's largest (past it no record can be; SQLite overflowed)
ID = click.IntRange(1, 2**63 - 1)
ID_OR_ZERO = click.IntRange(0, 2**63 - 1)
console = Console()
_SHOWN = Settings()  # display names of record types ([labels]); set from the runtime's settings


def shown(record_type: str | None, plural: bool = False) -> str:
    """A record type as the configuration names it for people ('company' for account)."""
    return _SHOWN.label(record_type, plural)


@dataclass
class Out:
    as_json: bool

    def emit(self, data: Any, render: Callable[[Any], None]) -> None:
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
        else:
            render(data)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
wait_option = click.option("--wait", is_flag=True,
                           help="With a broker: block until every landed item has an outcome.")


def _runtime(*, migrate_embedded: bool = True) -> Runtime:
    """Settings checked, schema current: on SQLite we upgrade it; on PostgreSQL we ask for it."""
    global _SHOWN
    try:
        rt = runtime()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    _SHOWN = rt.settings
    url = rt.settings.database_url
    if url.startswith("sqlite"):
        if migrate_embedded:
            upgrade(url)
    elif not is_current(url):
        raise click.ClickException("the database schema is not current: run `ingest migrate` first")
    return rt


def _unreachable(exc: BaseException) -> str | None:
    """What to tell a person whose database or broker could not be used, without a traceback
    and without the password in its address; None for any other error."""
    import os

    from kombu.exceptions import OperationalError as BrokerError
    from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

    def shown_url(name: str) -> str:
        """The address without who logs in and how: its scheme, host, port and database only
        (a password can hide in the query, or hold an unescaped '@' that moves the host)."""
        value = os.environ.get(name, "")
        scheme, found, rest = value.partition("://")
        if not found:
            return f"the {name} given"
        return f"{scheme}://{rest.rpartition('@')[2].split('?')[0]}"

    if isinstance(exc, (OperationalError, InterfaceError)):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        login = (os.environ.get("DATABASE_URL") or "").partition("://")[2].rpartition("@")[0]
        for piece in re.split(r"[:@]", login.partition(":")[2]):  # the password, in the pieces a driver may quote
            first = first.replace(piece, "***") if len(piece) >= 3 else first
        return (f"cannot use the database at {shown_url('DATABASE_URL') if os.environ.get('DATABASE_URL') else 'the default'}"
                f": {first}")
    if isinstance(exc, (ArgumentError, NoSuchModuleError)) or \
            isinstance(exc, ModuleNotFoundError) and exc.name in ("MySQLdb", "pymysql", "cx_Oracle", "pyodbc"):
        return (f"DATABASE_URL is not an address this can use ({exc}); give sqlite:///FILE or "
                "postgresql+psycopg://USER@HOST:PORT/DATABASE")
    if isinstance(exc, BrokerError):
        return f"cannot reach the broker at {shown_url('REDIS_URL')}: {str(exc).splitlines()[0][:300]}"
    return None


class _Commands(click.Group):
    """`ingest`'s group: a database or broker that cannot be reached is a message, not a
    traceback of a hundred lines."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            message = _unreachable(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """crm-ingest: every lead and case, from everywhere, into one CRM database."""


# -- schema and roles ---------------------------------------------------------------------------

@main.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version (Alembic upgrade head)."""
    try:
        settings = Settings.load()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    upgrade(settings.database_url)
    click.echo("schema is current")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes (default: cores).")
@click.option("--queues", "-Q", default="poll,process,import", show_default=True)
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, queues: str) -> None:
    """Run a Celery worker on our queues (extra arguments go to Celery)."""
    from crm_ingest.workers.app import app

    rt = _runtime()
    if rt.settings.embedded:
        raise click.ClickException("REDIS_URL is not set: a worker needs a broker")
    argv = ["worker", "-Q", queues, "--loglevel", "INFO", *ctx.args]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    app.worker_main(argv)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run the Celery beat scheduler (the sweeper, source polls, re-checks, acknowledgements).
    Start one or more: the holder of a lock in Redis sends, the others stand by to take over
    (the schedule lives in Redis, not in a file; extra arguments go to Celery)."""
    from crm_ingest.workers.app import app

    rt = _runtime()
    if rt.settings.embedded:
        raise click.ClickException("REDIS_URL is not set: beat needs a broker")
    app.start(["beat", "--loglevel", "INFO", *ctx.args])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="uvicorn's line per request (each costs a public form a little; off by default).")
@click.option("--forwarded-allow-ips", envvar="FORWARDED_ALLOW_IPS", default=None,
              help="The reverse proxy's addresses (comma-separated): a request from one is the client's its "
                   "X-Forwarded-For names, so the limits on rates and wrong tokens hold per client, not for "
                   "everyone behind the proxy at once. Unset: the peer's address, headers ignored.")
def serve(host: str, port: int, workers: int, access_log: bool, forwarded_allow_ips: str | None) -> None:
    """Serve the HTTP API with uvicorn: health, public form intake and webhooks, the item lookup."""
    import uvicorn

    _runtime()
    proxied = bool(forwarded_allow_ips and forwarded_allow_ips.strip())
    if proxied and "*" in forwarded_allow_ips:  # every client could name any address, and dodge the limits
        raise click.BadParameter("name the proxy's own addresses, not '*'", param_hint="--forwarded-allow-ips")
    uvicorn.run("crm_ingest.api.app:app", host=host, port=port, workers=workers,
                proxy_headers=proxied, forwarded_allow_ips=forwarded_allow_ips.strip() if proxied else None,
                server_header=False, access_log=access_log)


# -- bringing things in -------------------------------------------------------------------------

def _land_and_dispatch(rt: Runtime, connectors: Sequence[Connector], *, wait: bool) -> dict:
    """Land files named on the command line (read whole each time; landing is idempotent)."""
    from crm_ingest.workers.dispatch import dispatch, wait_for

    landed: list[int] = []
    received = 0
    for connector in connectors:
        result = run_connector(rt.sessions, connector, checkpoint=False)
        received += result.received
        landed.extend(result.ids)
    dispatch(rt.sessions, landed, rt.settings)
    unfinished = 0
    if wait and not rt.settings.embedded:
        unfinished = wait_for(rt.sessions, landed)
    _acknowledge_now(rt)
    return {"received": received, "landed": len(landed),
            "already_landed": received - len(landed),
            "queued": not rt.settings.embedded, "unfinished": unfinished,
            **_outcomes_of(rt, landed)}


def _acknowledge_now(rt: Runtime) -> None:
    """Embedded, nobody else sends the queued acknowledgements: send them before returning."""
    if rt.settings.embedded and any(s.acknowledge for s in rt.settings.sources.values()):
        from crm_ingest.ingest.acknowledge import send_pending

        send_pending(rt.sessions, rt.settings)


@main.command("acknowledge")
@json_option
def acknowledge_command(as_json: bool) -> None:
    """Send the queued case-number acknowledgements now (beat does this every 30 s)."""
    from crm_ingest.ingest.acknowledge import send_pending

    rt = _runtime()
    result = send_pending(rt.sessions, rt.settings, limit=10_000)
    Out(as_json).emit(result, lambda d: console.print(f"sent {d['sent']}, failed {d['failed']}"))


def _outcomes_of(rt: Runtime, ids: Sequence[int]) -> dict:
    from sqlalchemy import func

    counts: dict[str, int] = {}
    with rt.sessions() as session:
        for start in range(0, len(ids), 5000):
            rows = session.execute(select(RawItem.outcome, RawItem.state, func.count())
                                   .where(RawItem.id.in_(ids[start:start + 5000]))
                                   .group_by(RawItem.outcome, RawItem.state))
            for outcome, state, count in rows:
                key = outcome or state
                counts[key] = counts.get(key, 0) + count
    return {"outcomes": counts}


def _print_landing(result: dict) -> None:
    console.print(f"received {result['received']}, newly landed {result['landed']}, "
                  f"seen before {result['already_landed']}")
    if result["queued"]:
        console.print("queued for the workers" + ("" if not result["unfinished"]
                                                  else f"; {result['unfinished']} still unfinished"))
    if result["outcomes"]:
        console.print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(result["outcomes"].items())))


def _check_source(rt: Runtime, name: str, kind: str | None = None):
    try:
        source = rt.settings.source(name)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if kind and source.kind != kind:
        raise click.ClickException(f"source {name!r} takes {source.kind} items, not {kind}")
    return source


@main.command()
@click.option("--source", "source_name", required=True, help="A configured source name.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@wait_option
@json_option
def land(source_name: str, file: Path, wait: bool, as_json: bool) -> None:
    """Land raw items from JSON Lines (one payload a line): backfill or replay a source."""
    from crm_ingest.connectors.jsonl import JsonLines

    rt = _runtime()
    source = _check_source(rt, source_name)
    result = _land_and_dispatch(rt, [JsonLines(file, source.name, source.kind)], wait=wait)
    Out(as_json).emit(result, _print_landing)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--campaign", default=None, help="Campaign the list belongs to (created if new).")
@click.option("--source", "source_name", default="list", show_default=True,
              help="A configured row source, e.g. purchased_list or trade_show.")
@click.option("--map", "map_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="TOML map: [columns], [values.FIELD], [defaults].")
@click.option("--upsert-by", type=click.Choice(UPSERT_BY), default="email",
              show_default=True, help="Which contact point finds an existing lead or contact.")
@click.option("--consent", default=None, help="Consent basis given for the list (kept on each lead).")
@click.option("--encoding", default=None, help="Text encoding, when the detected one is wrong.")
@click.option("--sheet", default=None, help="A workbook (XLSX, XLS, ODS, XML 2003): the sheet to read (default: the first with a header we know, else the first).")
@click.option("--preview", is_flag=True, help="Show how the first rows are read and mapped; store nothing.")
@wait_option
@json_option
def import_list(file: Path, campaign: str | None, source_name: str, map_file: Path | None,
                upsert_by: str, consent: str | None, encoding: str | None, sheet: str | None,
                preview: bool, wait: bool, as_json: bool) -> None:
    """Import a campaign list: CSV/TSV in any common encoding, XLSX, XLS, ODS or an HTML or XML export; streamed, resumable."""
    from crm_ingest.connectors.listfile import ListFile, MapFile
    from crm_ingest.connectors.listfile import preview as preview_rows
    from crm_ingest.ingest.importjobs import job_summary
    from crm_ingest.workers.dispatch import wait_for_job
    from crm_ingest.workers.imports import ConcurrentImport, ImportRequest, land_list

    try:
        mapping = MapFile.load(map_file) if map_file else None
        list_file = ListFile(file, source_name, encoding=encoding, mapping=mapping, sheet=sheet)
    except (FatalError, LookupError, ValueError) as exc:
        raise click.ClickException(_about(file, exc)) from None
    if preview:
        try:
            shown_rows = preview_rows(list_file)
        except FatalError as exc:
            raise click.ClickException(_about(file, exc)) from None
        Out(as_json).emit(shown_rows, _print_preview)
        return
    for option, value in (("--campaign", campaign), ("--consent", consent)):
        if value is not None and (not value.strip() or CONTROL_CHARACTERS.search(value)):  # NUL, BEL; not a tab
            raise click.BadParameter("blank, or holds a control character", param_hint=option)
    rt = _runtime()
    source = _check_source(rt, source_name, "row")
    request = ImportRequest(source.name, campaign, consent, upsert_by)
    try:
        with _progress(as_json, file) as on_chunk:
            progress = land_list(rt.sessions, list_file, request, rt.settings, on_chunk=on_chunk)
    except FatalError as exc:  # the file turned out unreadable part-way: what landed stays, resumable
        raise click.ClickException(f"{_about(file, exc)}; rows landed before it, if any, are kept (ingest import-report shows "
                                   "them, ingest import-revert takes them back); a mended file is a new file, "
                                   "imported from its first row") from None
    except ConcurrentImport as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if wait and not rt.settings.embedded:
        with _progress(as_json, file, waiting=True) as on_wait:
            wait_for_job(rt.sessions, progress.job_id, on_progress=lambda done, total: on_wait((done, total)))
    from crm_ingest.models import ImportJob

    with rt.sessions.begin() as session:
        summary = job_summary(session, session.get(ImportJob, progress.job_id))
    summary.update(resumed_from_row=progress.resumed_from_row, already_imported=progress.already_imported,
                   sent_on=progress.sent_on, queued=not rt.settings.embedded, makes=_makes(rt, summary))
    if progress.already_imported and consent and consent != summary.get("consent"):
        summary["warning"] = (f"--consent {consent!r} was not recorded: the file's rows were imported before"
                              + (f" with the consent {summary['consent']!r}" if summary.get("consent") else
                                 " without a consent")
                              + "; a consent alone makes no new job (revert it and import again to change it)")
    Out(as_json).emit(summary, _print_job)


def _makes(rt: Runtime, summary: dict) -> str:
    """The record type a job's source makes of its rows (a 'customers' source makes contacts)."""
    source = rt.settings.sources.get(summary.get("source"))
    return source.record_type if source is not None and source.record_type in ("lead", "contact") else "lead"


def _about(file: Path, error: Exception) -> str:
    """An error about a file, naming it once (the reader's own errors begin with its name)."""
    said = str(error)
    return said if said.startswith(f"{file.name}:") else f"{file}: {said}"


class _progress:
    """A live bar on a terminal (rows/s, rejected so far); plain lines otherwise; nothing for --json."""

    def __init__(self, as_json: bool, file: Path, waiting: bool = False) -> None:
        self.as_json, self.file, self.waiting = as_json, file, waiting
        self.bar = None
        self.total = None if waiting else _estimate_rows(file)

    def __enter__(self):
        if not self.as_json and console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn(),
                                TextColumn("{task.fields[note]}"), console=console)
            self.bar.start()
            self.task = self.bar.add_task("processing" if self.waiting else "landing",
                                          total=self.total, rate="-", note="")
        self.started = __import__("time").monotonic()
        return self.update

    def update(self, progress) -> None:
        done, total, note = _progress_numbers(progress)
        elapsed = max(__import__("time").monotonic() - self.started, 1e-6)
        rate = f"{done / elapsed:,.0f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total or self.total, rate=rate, note=note)
        elif not self.as_json:
            click.echo(f"{'processed' if self.waiting else 'read'} {done} rows, {rate} rows/s {note}",
                       err=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _progress_numbers(progress) -> tuple[int, int | None, str]:
    if isinstance(progress, tuple):  # waiting: (finished, total)
        return progress[0], progress[1], ""
    outcomes = progress.outcomes or {}
    note = f"rejected {outcomes.get('rejected', 0)}" if progress.outcomes is not None else "landed"
    return progress.rows_read, None, note


def _estimate_rows(file: Path) -> int | None:
    """Rows in a text file, estimated from its first MiB (for the ETA); None for workbooks."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(1 << 20)
    if head.startswith(b"PK") or not head:
        return None
    lines = head.count(b"\n") or 1
    return max(1, int(size / len(head) * lines) - 1)


def _print_preview(data: dict) -> None:
    console.print(f"format {data['format']}" + (f", encoding {data['encoding']}" if data.get("encoding") else "")
                  + (" (guessed: override with --encoding)" if data.get("encoding_guessed") else "")
                  + (f", delimiter {data['delimiter']!r}" if data.get("delimiter") else "")
                  + (f" (each line one quoted cell, split at {data['wrapped']!r})" if data.get("wrapped") else "")
                  + (f", sheet {data['sheet']!r}" if data.get("sheet") else "")
                  + (f", header on row {data['header_row']}" if data['header_row'] else ", no header row"),
                  highlight=False)
    if data.get("other_sheets"):
        console.print(f"note: sheets {', '.join(map(repr, data['other_sheets']))} hold a list too; "
                      "each is imported with --sheet NAME", highlight=False)
    table = Table(title="Columns")
    table.add_column("column in file")
    table.add_column("read as")
    for column in data["columns"]:
        table.add_row(column["header"], column["field"] or (
            f"{column['fills']} [dim](when the first {column['fills']} column is empty; else kept as extra)[/dim]"
            if column.get("fills") else "[dim](left out: the map says so)[/dim]" if column.get("ignored")
            else "[bold](left out: personal identity numbers are not stored)[/bold]" if column.get("withheld")
            else "[dim](kept as extra)[/dim]"))
    console.print(table)
    rows = Table(title=f"First {len(data['rows'])} rows as they would be read")
    fields = sorted({name for row in data["rows"] for name in row["fields"]})
    rows.add_column("row")
    for name in fields:
        rows.add_column(name)
    for row in data["rows"]:
        rows.add_row(str(row["row"]), *[str(row["fields"].get(name, "")) for name in fields])
    console.print(rows)
    for row in data["rows"]:  # what the reader repaired or set aside, said where it did it
        for note in (row.get("rejoined"), row.get("moved"), row.get("ignore")):
            if note:
                console.print(f"row {row['row']}: {note}", highlight=False, markup=False)


def _print_job(summary: dict) -> None:
    if summary.get("already_imported") and summary.get("sent_on"):
        console.print(f"this file was imported before as job {summary['job']}; its rows an interrupted run "
                      "left waiting were sent on again")
    elif summary.get("already_imported"):
        console.print(f"this file was imported before as job {summary['job']}: nothing new")
    elif summary.get("resumed_from_row"):
        console.print(f"resumed job {summary['job']} after row {summary['resumed_from_row']}")
    counts = summary["counts"]
    table = Table(title=f"Import job {summary['job']} ({summary['state']}): {summary['file']}")
    table.add_column("rows")
    table.add_column("count", justify="right")
    makes = summary.get("makes") or "lead"
    labels = [("created", f"created {shown(makes)}"), ("merged", f"merged into an existing {shown(makes)}"),
              ("linked_contact", f"merged into an existing {shown('contact')}" if makes == "contact"
               else f"existing {shown('contact')}, linked"),
              ("duplicate_in_file", "duplicate of an earlier row"),
              ("rejected", "rejected"), ("suppressed", "suppressed (do not contact)"),
              ("ignored", "ignored"), ("review", "review"), ("pending", "waiting"),
              ("processing", "in progress"), ("failed", "failed")]
    for key, label in labels:
        if counts.get(key) or key in ("created", "merged", "rejected"):
            table.add_row(label, str(counts.get(key, 0)))
    table.add_row("total", str(counts["rows"]), style="bold")
    console.print(table)
    stopped = (summary.get("options") or {}).get("stopped")
    if stopped and summary["state"] == "landing":
        console.print(f"landing stopped after row {stopped.get('after_row')}: {stopped.get('error')}; "
                      "run the import again to resume it", highlight=False, markup=False)
    if summary.get("rejected_file"):
        console.print(f"wrote {summary['rejected_written']} rejected rows with their reasons to {summary['rejected_file']}",
                      highlight=False, markup=False)
    elif counts.get("rejected"):
        console.print(f"rejected rows with reasons: ingest import-report {summary['job']} --rejected rejected.csv")
    if counts.get("merged") or counts.get("linked_contact"):
        console.print(f"what each row changed or kept: ingest items --job {summary['job']} --outcome merged")
    if summary.get("note"):
        console.print(f"note: {summary['note']}", highlight=False)
    if summary.get("warning"):
        console.print(f"[bold]warning:[/bold] {summary['warning']}", highlight=False)


@main.command("import-report")
@click.argument("job_id", type=ID)
@click.option("--rejected", "rejected_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the rejected rows with their reasons to this CSV (safe to open in Excel).")
@json_option
def import_report(job_id: int, rejected_file: Path | None, as_json: bool) -> None:
    """An import job's counts; optionally its rejected rows with reasons."""
    from crm_ingest.ingest.importjobs import job_summary, rejected_csv_rows
    from crm_ingest.models import ImportJob

    rt = _runtime()
    with rt.sessions.begin() as session:
        job = session.get(ImportJob, job_id)
        if job is None:
            raise click.ClickException(f"no import job {job_id}")
        summary = job_summary(session, job)
        if rejected_file:
            with rejected_file.open("w", encoding="utf-8-sig", newline="") as out:
                writer = excel_csv_writer(out)
                written = -1  # the header
                for row in rejected_csv_rows(session, job):
                    writer.writerow(row)
                    written += 1
            summary["rejected_file"] = str(rejected_file)
            summary["rejected_written"] = written
    summary["makes"] = _makes(rt, summary)
    Out(as_json).emit(summary, _print_job)


@main.command("import-revert")
@click.argument("job_id", type=ID)
@json_option
def import_revert(job_id: int, as_json: bool) -> None:
    """Undo an import: delete the records it created, unlink and un-fill what it merged."""
    from crm_ingest.ingest.importjobs import revert_job

    rt = _runtime()
    try:
        with rt.sessions.begin() as session:
            result = revert_job(session, job_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    Out(as_json).emit({"job": job_id, **result},
                      lambda d: console.print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items())))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", default=None, help="Why these must not be contacted (kept with each entry).")
@json_option
def suppress(file: Path, reason: str | None, as_json: bool) -> None:
    """Load a do-not-contact list: one email, phone number or domain a line, or a list's email
    and phone columns (CSV, TSV, .xlsx or .xls, any encoding, as `ingest import` reads one)."""
    from crm_ingest.connectors.listfile import suppression_values
    from crm_ingest.ingest.errors import IngestError
    from crm_ingest.ingest.importjobs import add_suppressions

    rt = _runtime()
    try:
        with rt.sessions.begin() as session:
            result = add_suppressions(session, suppression_values(file), region=rt.settings.region,
                                      source=file.name, reason=reason)
    except IngestError as exc:  # not a list (a PDF, a zip), or unreadable: nothing was loaded
        raise click.ClickException(f"{exc}; nothing was loaded") from None
    Out(as_json).emit(result, lambda d: console.print(
        f"{d['entries']} entries ({d['added']} new), {d['records_marked']} existing records marked "
        f"do-not-contact, {d['invalid_lines']} lines not understood"))


class _WithCampaign:
    """A connector whose items all belong to one campaign (the demo's trade-show list)."""

    def __init__(self, connector: Connector, campaign: str) -> None:
        self.connector, self.campaign, self.source = connector, campaign, connector.source

    def fetch(self, since):
        for item in self.connector.fetch(since):
            yield replace(item, payload={**item.payload, "campaign": self.campaign})


@main.group()
def review() -> None:
    """Possible duplicates the rules found: list them, merge a pair, keep it separate, or undo a
    merge (the rules' own or a person's)."""


@review.command("list")
@click.option("--state", type=click.Choice(["open", "merged", "kept_separate", "all"]), default="open",
              show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
def review_list(state: str, limit: int, as_json: bool) -> None:
    """Queued pairs, the most likely duplicates first."""
    from crm_ingest.ingest.duplicates import review_rows

    rt = _runtime()
    with rt.sessions() as session:
        rows = review_rows(session, None if state == "all" else state, limit)
    Out(as_json).emit({"reviews": rows}, _print_reviews)


def _print_reviews(data: dict) -> None:
    from rich.table import Table

    if not data["reviews"]:
        console.print("no pairs to review")
        return
    table = Table("id", "state", "score", "suggested", "a", "b", "why", title="Possible duplicates")
    for row in data["reviews"]:
        def who(side: dict) -> str:
            name = " ".join(p for p in (side.get("first_name"), side.get("last_name")) if p)
            points = ", ".join(p for p in (side.get("email"), side.get("phone"), side.get("company_name")) if p)
            return f"{shown(side['type'])} {side['id']}: {name or '(no name)'}\n{points}"
        state = row["state"] + (f" by {row['decided_by']}" if row.get("decided_by") else "")
        table.add_row(str(row["id"]), state, f"{row['score']:.2f}", row["suggested"], who(row["a"]), who(row["b"]),
                      "\n".join((row["reasons"] or [])[:4]))
    console.print(table)


@review.command("recheck")
@click.option("--all", "from_start", is_flag=True, help="Every record again (after a rules change).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="Records of each type per run.")
@json_option
def review_recheck(from_start: bool, limit: int, as_json: bool) -> None:
    """Compare records created since the last re-check with their look-alikes (beat runs this
    every few minutes); queue the possible duplicates that slipped in."""
    from crm_ingest.ingest.duplicates import recheck

    rt = _runtime()
    with rt.sessions.begin() as session:
        result = recheck(session, rt.settings, limit=limit, from_start=from_start)
    Out(as_json).emit(result, lambda d: console.print(
        f"checked {d['checked']} records, queued {d['queued']} pairs, merged {d['merged']} records"))


def _decide_pair(action: Callable[..., dict], review_id: int) -> dict:
    """One decision on a queued pair, in its own transaction; a refusal is a clear error."""
    rt = _runtime()
    try:
        with rt.sessions.begin() as session:
            return action(session, review_id)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@review.command("merge")
@click.argument("review_id", type=ID)
@json_option
def review_merge(review_id: int, as_json: bool) -> None:
    """Merge a pair: the older record survives and gains the other's blanks, contact points,
    cases, activities and campaign memberships."""
    from crm_ingest.ingest.duplicates import merge_pair

    result = _decide_pair(merge_pair, review_id)
    Out(as_json).emit(result, lambda d: console.print(
        f"merged {shown(d['record_type'])} {d['merged']} into {d['survivor']}"
        + (f"; filled {', '.join(d['filled'])}" if d["filled"] else "")))


@review.command("keep-separate")
@click.argument("review_id", type=ID)
@json_option
def review_keep_separate(review_id: int, as_json: bool) -> None:
    """Two people after all: remembered, the pair is not queued again."""
    from crm_ingest.ingest.duplicates import keep_separate

    def decide(session, review_id: int) -> dict:
        review = keep_separate(session, review_id)
        return {"review": review.id, "state": review.state}

    result = _decide_pair(decide, review_id)
    Out(as_json).emit(result, lambda d: console.print(f"review {d['review']}: kept separate"))


@review.command("undo")
@click.argument("review_id", type=ID)
@json_option
def review_undo(review_id: int, as_json: bool) -> None:
    """Undo a merged pair: the merged record comes back with its id, values, contact points,
    cases, activities and item outcomes, and the pair is kept separate from then on."""
    from crm_ingest.ingest.duplicates import undo_merge

    result = _decide_pair(undo_merge, review_id)
    Out(as_json).emit(result, lambda d: console.print(
        f"restored {shown(d['record_type'])} {d['restored']} from {d['survivor']}; the pair is kept separate"))


@main.command("import-mail")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--source", "source_name", default="mail", show_default=True)
@wait_option
@json_option
def import_mail(path: Path, source_name: str, wait: bool, as_json: bool) -> None:
    """Import mail: an .eml file, a folder of them, an mbox or a Maildir."""
    from crm_ingest.connectors.mailfiles import MailFiles

    rt = _runtime()
    source = _check_source(rt, source_name, "email")
    result = _land_and_dispatch(rt, [MailFiles(path, source.name)], wait=wait)
    Out(as_json).emit(result, _print_landing)


@main.command()
@click.argument("source_name")
@click.option("--from-start", is_flag=True,
              help="Forget the saved checkpoint first (a cursor the source no longer accepts, e.g. an "
                   "expired X since_id or Graph paging cursor): read again as far back as the API offers. "
                   "What landed before is recognised and not landed twice.")
@wait_option
@json_option
def poll(source_name: str, from_start: bool, wait: bool, as_json: bool) -> None:
    """Poll a source once ([sources.NAME.imap], .twitter or .facebook), now, whatever its
    backoff: land what arrived since its checkpoint and queue it (or process it, embedded)."""
    from crm_ingest.connectors.polling import poll_once
    from crm_ingest.models.landing import forget_checkpoint
    from crm_ingest.workers.dispatch import dispatch, wait_for

    rt = _runtime()
    source = _check_source(rt, source_name)
    if source.polled is None:
        raise click.ClickException(f"source {source_name!r} polls nothing: add [sources.{source_name}.imap], "
                                   f".twitter or .facebook")
    forgotten = None
    if from_start:
        with rt.sessions.begin() as session:
            forgotten = forget_checkpoint(session, source.name)
    result = poll_once(rt.sessions, rt.settings, source.name)
    dispatch(rt.sessions, result.ids, rt.settings)
    if result.error and not result.ids and result.retry_at is None:
        raise click.ClickException(result.error)
    unfinished = wait_for(rt.sessions, result.ids) if wait and not rt.settings.embedded else 0
    _acknowledge_now(rt)
    data = {**result.as_dict(), "already_landed": max(0, result.received - len(result.ids)),
            "queued": not rt.settings.embedded, "unfinished": unfinished, **_outcomes_of(rt, result.ids)}
    if from_start:
        data["checkpoint_forgotten"] = forgotten
    Out(as_json).emit(data, _print_landing)


@main.command()
@json_option
def sources(as_json: bool) -> None:
    """Every configured source: its kind, what it makes, items landed in the last hour, and, for
    polled ones, its health (last success, last error, failures in a row, refused credentials,
    when they expire: Facebook's token; flagged within a week)."""
    from crm_ingest.connectors.health import credentials_expire_at, credentials_expiring, healthy, next_poll
    from crm_ingest.models import SourceHealth, utcnow
    from crm_ingest.ops.snapshot import recent_by_source

    rt = _runtime()
    with rt.sessions() as session:
        rows = {row.source: row for row in session.query(SourceHealth)}
        recent = recent_by_source(session, utcnow())
    result, now = [], utcnow()
    for name, source in sorted(rt.settings.sources.items()):
        row = rows.get(name)
        door = source.polled
        expire_at = credentials_expire_at(row)
        polled = door is not None
        entry = {"source": name, "kind": source.kind, "record_type": source.record_type, "polled": polled,
                 "polls": _polls(source),
                 "healthy": healthy(row) if polled else None,
                 "last_success_at": row.last_success_at if row else None,
                 "last_error": row.last_error if row and row.failures else None,
                 "failures": row.failures if row else 0,
                 "credentials_failed": bool(row and row.credentials_failed),
                 "credentials_expire_at": expire_at,  # known to sources that ask (Facebook)
                 "credentials_expiring": credentials_expiring(expire_at, now),
                 "landed_last_hour": recent.get(name, {}).get("landed_last_hour", 0),
                 "rate_limited_until": row.resume_at if row and row.resume_at else None,
                 "usage": row.usage if row else None,
                 "next_try_after": next_poll(row, door.poll_seconds) if polled else None}
        result.append(entry)

    def render(data: dict) -> None:
        table = Table("source", "kind", "makes", "polls", "health", "landed /h", "last success", "last error",
                      title="Sources")
        for e in data["sources"]:
            state = "" if not e["polled"] else "ok" if e["healthy"] else f"[red]failing ×{e['failures']}[/red]"
            if e["credentials_failed"]:
                state += " [red]credentials refused[/red]"
            elif e["credentials_expiring"]:
                state += f" [yellow]credentials expire {e['credentials_expire_at']:%Y-%m-%d %H:%M} UTC[/yellow]"
            table.add_row(e["source"], e["kind"], shown(e["record_type"]) if e["record_type"] != "auto" else
                          "classified", e["polls"] or "", state, str(e["landed_last_hour"]),
                          str(e["last_success_at"] or ""), (e["last_error"] or "")[:80])
        console.print(table)

    Out(as_json).emit({"sources": result}, render)


def _polls(source) -> str | None:
    """What a polled source reads, in a few words (never its secret)."""
    if source.imap:
        return f"{source.imap.user}@{source.imap.host}/{source.imap.folder}"
    if source.twitter:
        return f"X mentions of {source.twitter.mentions_of}" if source.twitter.mentions_of else \
            f"X search {source.twitter.search!r}"
    if source.facebook:
        return f"Facebook Page {source.facebook.page_id}" if source.facebook.page_id else \
            f"Lead Ads forms {', '.join(source.facebook.form_ids)}"
    return None


@main.command("form-html")
@click.argument("key")
@click.option("--action", default=None, help="Where the form posts (default: /forms/KEY on this server).")
def form_html_command(key: str, action: str | None) -> None:
    """An embeddable HTML form for a configured form: labels, required fields, the honeypot and
    the signed timestamp (valid a day: generate the page's form when the page is served)."""
    from crm_ingest.api.forms import form_html

    rt = _runtime()
    form = rt.settings.forms.get(key)
    if form is None:
        raise click.ClickException(f"no form {key!r}; configured: {', '.join(sorted(rt.settings.forms)) or 'none'}")
    secret = rt.settings.secrets.get(rt.settings.api.form_secret_env)
    if not secret:
        raise click.ClickException(f"set {rt.settings.api.form_secret_env} (the secret that signs form timestamps)")
    click.echo(form_html(form, action or f"/forms/{key}", secret))


# -- classification and entitlements ------------------------------------------------------------

@main.command()
@click.argument("text")
@json_option
def classify(text: str, as_json: bool) -> None:
    """What a message would become, and why: lead, case or other, the confidence, the words
    that weighed most, and for a case its priority. TEXT '-' reads standard input."""
    from crm_ingest.classify.model import default_classifier
    from crm_ingest.ingest.priority import case_priority

    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise click.BadParameter("nothing to classify", param_hint="TEXT")
    guess = default_classifier().predict(text[:20_000], explain=8)
    result = {"label": guess.label, "shown_as": "other" if guess.label == "other" else shown(guess.label),
              "confidence": round(guess.confidence, 3), "probabilities": guess.probabilities,
              "language": guess.language, "words": [{"word": w, "weight": v} for w, v in guess.evidence]}
    if guess.label == "case":
        priority, why = case_priority(text)
        result["priority"], result["priority_reason"] = priority, why

    def render(data: dict) -> None:
        console.print(f"[bold]{data['shown_as']}[/bold] ({data['confidence']:.0%} sure; language "
                      f"{data['language']}): " + ", ".join(f"{k} {v:.0%}" for k, v in data["probabilities"].items()))
        if data.get("priority"):
            console.print(f"priority: {data['priority']}" + (f" ({data['priority_reason']})"
                                                              if data["priority_reason"] else ""))
        if data["words"]:
            console.print("words that weighed most: " + ", ".join(
                f"{w['word']} (+{w['weight']:.2f})" for w in data["words"]), highlight=False)

    Out(as_json).emit(result, render)


@main.command()
@click.argument("item_id", type=ID)
@click.argument("decision", type=click.Choice(["lead", "case", "contact", "ignore"]))
@click.option("--reason", default=None, help="Why (kept with the item's outcome).")
@json_option
def decide(item_id: int, decision: str, reason: str | None, as_json: bool) -> None:
    """Decide an item the rules or the classifier sent to review: make it a lead, a case or a
    contact (the source's rules set aside), or ignore it."""
    from crm_ingest.workers.batch import decide_item

    rt = _runtime()
    try:
        outcome = decide_item(rt.sessions, item_id, decision, rt.settings, reason)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    result = {"item": item_id, "outcome": outcome.outcome, "record_type": outcome.record_type,
              "record_label": shown(outcome.record_type) or None, "record_id": outcome.record_id,
              "reason": outcome.reason}
    Out(as_json).emit(result, lambda d: console.print(
        f"item {d['item']}: {d['outcome']}" + (f" {d['record_label']} {d['record_id']}" if d["record_id"] else "")))


@main.group()
def entitlement() -> None:
    """Support entitlements: a number of cases (or hours) a contact or account may open."""


@entitlement.command("add")
@click.option("--contact", "contact_id", type=ID, default=None)
@click.option("--account", "account_id", type=ID, default=None)
@click.option("--cases", type=click.IntRange(0, 1_000_000), default=None, help="Cases it covers (none: not counted).")
@click.option("--hours", type=click.FloatRange(0, 1_000_000), default=None, help="Hours it covers.")
@click.option("--name", default="Support", show_default=True)
@click.option("--ends", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Last day (UTC).")
@json_option
def entitlement_add(contact_id, account_id, cases, hours, name, ends, as_json) -> None:
    """Give a contact or an account an entitlement."""
    from datetime import timedelta, timezone

    from crm_ingest.models import Account, Contact, Entitlement

    if (contact_id is None) == (account_id is None):
        raise click.UsageError("give exactly one of --contact and --account")
    rt = _runtime()
    with rt.sessions.begin() as session:
        owner = session.get(Contact, contact_id) if contact_id else session.get(Account, account_id)
        if owner is None:
            raise click.ClickException(f"no {shown('contact' if contact_id else 'account')} "
                                       f"{contact_id or account_id}")
        row = Entitlement(name=name[:200], contact_id=contact_id, account_id=account_id, cases_remaining=cases,
                          hours_remaining=hours, state="active",
                          ends_at=(ends.replace(tzinfo=timezone.utc) + timedelta(days=1)) if ends else None)
        session.add(row)
        session.flush()
        result = {"entitlement": row.id, "contact_id": contact_id, "account_id": account_id,
                  "cases_remaining": cases, "hours_remaining": hours, "ends_at": row.ends_at}
    Out(as_json).emit(result, lambda d: console.print(f"entitlement {d['entitlement']} added"))


@entitlement.command("list")
@json_option
def entitlement_list(as_json: bool) -> None:
    """Every entitlement with what remains of it."""
    from crm_ingest.models import Entitlement

    rt = _runtime()
    with rt.sessions() as session:
        rows = [{"id": e.id, "name": e.name, "contact_id": e.contact_id, "account_id": e.account_id,
                 "cases_remaining": e.cases_remaining,
                 "hours_remaining": float(e.hours_remaining) if e.hours_remaining is not None else None,
                 "ends_at": e.ends_at, "state": e.state}
                for e in session.scalars(select(Entitlement).order_by(Entitlement.id))]

    def render(data: dict) -> None:
        from datetime import timedelta

        table = Table("id", "name", shown("contact"), shown("account"), "cases left", "hours left", title="Entitlements")
        table.add_column("last day", no_wrap=True, min_width=10)
        table.add_column("state")
        for e in data["entitlements"]:
            # it ends at the start of the day after its last (UTC), as `--ends` gave that last day
            last_day = f"{e['ends_at'] - timedelta(microseconds=1):%Y-%m-%d}" if e["ends_at"] else ""
            table.add_row(*[str(e[k]) if e[k] is not None else "" for k in
                            ("id", "name", "contact_id", "account_id", "cases_remaining", "hours_remaining")],
                          last_day, e["state"] or "")
        console.print(table)

    Out(as_json).emit({"entitlements": rows}, render)


# -- the demo -----------------------------------------------------------------------------------

@main.command()
@json_option
def demo(as_json: bool) -> None:
    """Ingest the bundled samples (a list, mail, web forms, social posts) and show what was stored."""
    from crm_ingest.connectors.jsonl import JsonLines
    from crm_ingest.connectors.listfile import ListFile
    from crm_ingest.connectors.mailfiles import MailFiles
    from crm_ingest.ingest.report import item_counts, record_counts

    rt = _runtime()
    samples = resources.files("crm_ingest") / "samples"
    with resources.as_file(samples) as folder:
        connectors = [
            _WithCampaign(ListFile(folder / "purchased_list.csv", "list"), "Nordic Expo 2026"),
            MailFiles(folder / "mail", "mail"),
            JsonLines(folder / "web_forms.jsonl", "web", "form"),
            JsonLines(folder / "social_posts.jsonl", "twitter", "post"),
        ]
        run = _land_and_dispatch(rt, connectors, wait=True)
    with rt.sessions() as session:
        result = {"this_run": run, "database": _display_url(rt.settings.database_url),
                  "items": item_counts(session), "records": record_counts(session)}
    Out(as_json).emit(result, _print_demo)


def _display_url(url: str) -> str:
    """A database URL fit to print: never its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _print_demo(result: dict) -> None:
    run, items = result["this_run"], result["items"]
    console.print(f"[bold]crm-ingest demo[/bold] into {result['database']}")
    console.print(f"this run: received {run['received']}, newly landed {run['landed']}, "
                  f"seen before {run['already_landed']}")
    table = Table(title="Items by outcome (all time)")
    table.add_column("outcome")
    table.add_column("items", justify="right")
    table.add_row("received", str(items["received"]), style="bold")
    for outcome, count in items["by_outcome"].items():
        table.add_row(outcome, str(count))
    for state in ("pending", "processing", "failed"):
        if items["by_state"].get(state):
            table.add_row(f"({state})", str(items["by_state"][state]), style="yellow")
    console.print(table)
    records = Table(title="Records by type")
    records.add_column("type")
    records.add_column("records", justify="right")
    for name, count in result["records"].items():
        records.add_row(shown(name, plural=True), str(count))
    console.print(records)


# -- looking at things --------------------------------------------------------------------------

@main.command()
@click.option("--watch", is_flag=True, help="A live view, refreshed every --interval seconds (Ctrl-C ends it).")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True,
              help="Seconds between refreshes of --watch.")
@click.option("--count", type=click.IntRange(1), default=None, help="With --watch: stop after this many refreshes.")
@json_option
def status(watch: bool, interval: float, count: int | None, as_json: bool) -> None:
    """Items by source, record type, state and outcome; queue depth, in flight and workers online;
    latency p50/p95; the oldest unfinished item; failures and their top errors; each source's
    health. `--json` holds the numbers /metrics exposes; `--watch` keeps them on screen, with
    each queue's rate of change."""
    from crm_ingest.ops.snapshot import snapshot

    if watch and as_json:
        raise click.UsageError("--watch and --json do not go together")
    rt = _runtime()
    _roll_up_embedded(rt)
    if not watch:
        Out(as_json).emit(snapshot(rt), _print_status)
        return
    from rich.live import Live

    previous, shown_times = None, 0
    with Live(console=console, auto_refresh=False, screen=False) as live:
        try:
            while True:
                current = snapshot(rt)
                live.update(_status_view(current, previous), refresh=True)
                previous, shown_times = current, shown_times + 1
                if count is not None and shown_times >= count:
                    break
                time.sleep(interval)
                _roll_up_embedded(rt)
        except KeyboardInterrupt:
            pass


def _roll_up_embedded(rt: Runtime) -> None:
    """Embedded, no beat rolls the per-minute history up: `status` does (idempotent, cheap)."""
    if rt.settings.embedded:
        from crm_ingest.ops.rollups import roll_up

        with rt.sessions.begin() as session:
            roll_up(session)


def _print_status(result: dict) -> None:
    items = result["items"]
    table = Table(title=f"{items['received']} items received")
    table.add_column("state / outcome")
    table.add_column("items", justify="right")
    for state, count in items["by_state"].items():
        table.add_row(state, str(count))
    for outcome, count in items["by_outcome"].items():
        table.add_row(f"  {outcome}", str(count))
    console.print(table)
    if result["processed"]:
        processed = Table("source", "makes", "outcome", "items", title="Processed")
        for row in result["processed"]:
            processed.add_row(row["source"], shown(row["record_type"]) if row["record_type"] != "none" else "",
                              row["outcome"], str(row["items"]))
        console.print(processed)
    console.print(_status_view(result, None))


def _status_view(snap: dict, previous: dict | None):
    """Queues (depth, and its change per second since `previous`), sources (throughput and
    health), latency, the oldest unfinished item, failures with their top errors."""
    from rich.console import Group

    parts: list[Any] = []
    latency = snap["latency_seconds"]
    age = snap["oldest_unfinished_age_seconds"]
    workers = snap["workers_online"]
    parts.append(
        f"[bold]{snap['at']:%Y-%m-%d %H:%M:%S} UTC[/bold]  items/s (last minute) {snap['items_per_second_last_minute']}"
        f"  latency p50 {_seconds(latency['p50_last_hour'])} p95 {_seconds(latency['p95_last_hour'])} "
        f"(last hour, {latency['processed_last_hour']} items)  oldest unfinished {_seconds(age)}"
        + ("" if workers is None else f"  workers online {workers}"))
    queues = snap["queues"]
    if queues is None:
        parts.append("queues: none (embedded mode, no broker)")
    elif "error" in queues:
        parts.append(f"[red]queues: {queues['error']}[/red]")
    else:
        table = Table("queue", "depth", "change/s", title="Queues")
        elapsed = (snap["at"] - previous["at"]).total_seconds() if previous else 0
        before = (previous or {}).get("queues") or {}
        for queue, depth in queues["depth"].items():
            rate = ""
            if elapsed > 0 and "depth" in before:
                rate = f"{(depth - before['depth'].get(queue, depth)) / elapsed:+.1f}"
            table.add_row(queue, str(depth), rate)
        table.add_row("in flight (unacked)", str(queues["unacked"]), "")
        parts.append(table)
    active = [s for s in snap["sources"] if s["polled"] or s["landed_last_hour"] or s["processed_last_hour"]
              or s["failed_last_hour"]]
    sources = Table("source", "health", "in/min", "in/h", "done/min", "done/h", "failed/h", "last error",
                    title="Sources (polled, or active in the last hour)")
    for s in active:
        health = ("" if not s["polled"] else "[red]credentials refused[/red]" if s["credentials_failed"]
                  else "ok" if s["healthy"] else f"[red]failing ×{s['failures']}[/red]")
        sources.add_row(s["source"], health, str(s["landed_last_minute"]), str(s["landed_last_hour"]),
                        str(s["processed_last_minute"]), str(s["processed_last_hour"]), str(s["failed_last_hour"]),
                        (s["last_error"] or "")[:60])
    parts.append(sources if active else "sources: none polled, none active in the last hour")
    failed = snap["items"]["by_state"].get("failed", 0)
    parts.append(f"failed items: {failed}" + (" (`ingest retry` queues them again)" if failed else ""))
    for error in snap["top_errors"]:
        parts.append(f"[red]{error['items']}×[/red] {error['error'][:200]}")
    return Group(*parts)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


@main.command()
@click.argument("item_id", type=ID)
@json_option
def outcome(item_id: int, as_json: bool) -> None:
    """Where did this item go: its state, outcome and record."""
    rt = _runtime()
    with rt.sessions() as session:
        item = session.get(RawItem, item_id)
        if item is None:
            raise click.ClickException(f"no item {item_id}")
        result = {"id": item.id, "source": item.source, "external_id": item.external_id,
                  "kind": item.kind, "received_at": item.received_at, "state": item.state,
                  "attempts": item.attempts, "outcome": item.outcome, "reason": item.outcome_reason,
                  "record_type": item.record_type, "record_label": shown(item.record_type) or None,
                  "record_id": item.record_id, "last_error": item.last_error, "finished_at": item.finished_at}

    def render(data: dict) -> None:
        for key, value in data.items():
            if key == "record_type":
                key, value = "record", data["record_label"]
            if value is not None and key != "record_label":
                console.print(f"[bold]{key}[/bold]: {value}", highlight=False)

    Out(as_json).emit(result, render)


@main.command()
@click.option("--outcome", type=click.Choice(ITEM_OUTCOME_NAMES), default=None,
              help="Items with this outcome (review: waiting for `ingest decide`), or of an import's count "
                   "(suppressed, duplicate_in_file, linked_contact).")
@click.option("--state", type=click.Choice(ITEM_STATES), default=None,
              help="Items in this state (failed: set aside; `ingest retry` re-queues them).")
@click.option("--source", "source_name", default=None, help="Items of this source.")
@click.option("--job", "job_id", type=ID, default=None, help="The rows of this import job: what became of each.")
@click.option("--after", "after_id", type=ID_OR_ZERO, default=0, help="Items after this id.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=DEFAULT_PAGE, show_default=True)
@json_option
def items(outcome: str | None, state: str | None, source_name: str | None, job_id: int | None, after_id: int,
          limit: int, as_json: bool) -> None:
    """Raw items by outcome, state, source and import job, oldest first, with who sent each and
    what it says: `ingest items --outcome review` are the items waiting for `ingest decide ITEM`;
    `ingest items --job N --outcome merged` says what an import's rows changed or kept."""
    from crm_ingest.ingest.query import list_items

    rt = _runtime()
    with rt.sessions() as session:
        page = list_items(session, outcome=outcome, state=state, source=source_name, job=job_id,
                          after_id=after_id, limit=limit)

    def render(data: dict) -> None:
        if not data["items"]:
            console.print("no items match")
            return
        asked = " ".join(f"--{name} {value}" for name, value in data["asked"].items())
        table = Table(title=f"Items ({asked})")
        for name in ("id", "source", "received", "from", "says", "outcome", "why"):
            table.add_column(name)
        for item in data["items"]:
            outcome = item["outcome"] or item["state"]
            if item["record_id"] is not None:
                outcome += f" {shown(item['record_type'])} {item['record_id']}"
            table.add_row(str(item["id"]), item["source"], f"{item['received_at']:%Y-%m-%d %H:%M}",
                          item["sender"] or "", item["says"] or "", outcome,
                          item["reason"] or item["last_error"] or "")
        console.print(table)
        if data["next_after_id"]:
            console.print(f"more: ingest items {asked} --after {data['next_after_id']}", highlight=False)

    Out(as_json).emit(page, render)


@main.command()
@json_option
def retry(as_json: bool) -> None:
    """Re-queue every failed item with a fresh set of attempts."""
    from crm_ingest.workers.dispatch import dispatch

    from crm_ingest.models.landing import requeue_failed

    rt = _runtime()
    with rt.sessions.begin() as session:
        ids = requeue_failed(session, None)
    dispatch(rt.sessions, ids, rt.settings)
    Out(as_json).emit({"requeued": len(ids)}, lambda d: console.print(f"re-queued {d['requeued']} items"))


@main.command()
@json_option
def sweep(as_json: bool) -> None:
    """Run the sweeper once: expire dead leases and (re)queue what is due."""
    from crm_ingest.workers.batch import sweep as sweep_items
    from crm_ingest.workers.dispatch import dispatch

    rt = _runtime()
    queue_empty = True
    if not rt.settings.embedded:
        from crm_ingest.workers.queues import process_queue_empty

        queue_empty = process_queue_empty(rt.settings.redis_url)
    ids = sweep_items(rt.sessions, rt.settings, queue_empty=queue_empty)
    dispatch(rt.sessions, ids, rt.settings)
    Out(as_json).emit({"requeued": len(ids)}, lambda d: console.print(f"re-queued {d['requeued']} items"))


def write_rows(stream, fmt: str, columns: list[str], rows: Iterable[dict]) -> None:
    if fmt == "jsonl":
        for row in rows:
            stream.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
        return
    writer = excel_csv_writer(stream)
    writer.writerow(columns)
    for row in rows:  # a JSON column (a lead's details) as JSON, not as Python writes a dict
        writer.writerow([excel_safe(json.dumps(value, default=str, ensure_ascii=False)
                                    if isinstance(value := row[name], (dict, list)) else value) for name in columns])




from crm_ingest import cli_records  # noqa: E402,F401 - registers `lead`, `case`, `assign`
from crm_ingest import cli_read  # noqa: E402,F401 - registers `list`, `show`, `export`

if __name__ == "__main__":  # `python -m crm_ingest.cli`: this file runs as a second copy of the
    # module; the command modules extend the imported one's group, so run that
    from crm_ingest.cli import main as imported_main

    imported_main()
