"""`ingest`: the command line. An edge: it opens sessions, lands, dispatches and prints."""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update

from crm_ingest.connectors.base import Connector, run_connector
from crm_ingest.ingest.errors import ConfigError, IngestError
from crm_ingest.ingest.settings import ITEM_KINDS, Settings
from crm_ingest.models import FAILED, PENDING, RECORD_MODELS, RawItem
from crm_ingest.models.migrate import is_current, upgrade
from crm_ingest.runtime import Runtime, runtime

console = Console()
EXPORT_LIMIT_CELL = 32_000


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
    try:
        rt = runtime()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    url = rt.settings.database_url
    if url.startswith("sqlite"):
        if migrate_embedded:
            upgrade(url)
    elif not is_current(url):
        raise click.ClickException("the database schema is not current: run `ingest migrate` first")
    return rt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--schedule", default="celerybeat-schedule", show_default=True,
              help="File where beat keeps when each periodic task last ran.")
@click.pass_context
def beat(ctx: click.Context, schedule: str) -> None:
    """Run the Celery beat scheduler (the sweeper and, later, source polls). Run one."""
    from crm_ingest.workers.app import app

    rt = _runtime()
    if rt.settings.embedded:
        raise click.ClickException("REDIS_URL is not set: beat needs a broker")
    app.start(["beat", "--loglevel", "INFO", "--schedule", schedule, *ctx.args])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (health checks for now) with uvicorn."""
    import uvicorn

    _runtime()
    uvicorn.run("crm_ingest.api.app:app", host=host, port=port, workers=workers,
                proxy_headers=False, server_header=False)


# -- bringing things in -------------------------------------------------------------------------

def _land_and_dispatch(rt: Runtime, connectors: Sequence[Connector], *, wait: bool) -> dict:
    """Land files named on the command line (read whole each time; landing is idempotent)."""
    from crm_ingest.workers.dispatch import dispatch, wait_for

    landed: list[int] = []
    received = 0
    for connector in connectors:
        ids = run_connector(rt.sessions, _counting(connector), checkpoint=False)
        received += connector.counted  # type: ignore[attr-defined]
        landed.extend(ids)
    dispatch(rt.sessions, landed, rt.settings)
    unfinished = 0
    if wait and not rt.settings.embedded:
        unfinished = wait_for(rt.sessions, landed)
    return {"received": received, "landed": len(landed),
            "already_landed": received - len(landed),
            "queued": not rt.settings.embedded, "unfinished": unfinished,
            **_outcomes_of(rt, landed)}


def _counting(connector: Connector) -> Connector:
    """Count what a connector yields, so a re-run can say how many it had seen before."""
    fetch = connector.fetch
    connector.counted = 0  # type: ignore[attr-defined]

    def counted_fetch(since):
        for item in fetch(since):
            connector.counted += 1  # type: ignore[attr-defined]
            yield item

    connector.fetch = counted_fetch  # type: ignore[method-assign]
    return connector


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
@click.option("--source", "source_name", default="list", show_default=True)
@click.option("--campaign", default=None, help="Campaign the leads belong to.")
@click.option("--encoding", default=None, help="Text encoding of the file (default UTF-8).")
@wait_option
@json_option
def import_list(file: Path, source_name: str, campaign: str | None, encoding: str | None,
                wait: bool, as_json: bool) -> None:
    """Import a CSV list (a first cut: the list-import issue completes it)."""
    from crm_ingest.connectors.csvlist import CsvList

    rt = _runtime()
    source = _check_source(rt, source_name, "row")
    connector = CsvList(file, source.name, encoding=encoding)
    if campaign:
        connector = _with_campaign(connector, campaign)
    result = _land_and_dispatch(rt, [connector], wait=wait)
    Out(as_json).emit(result, _print_landing)


def _with_campaign(connector: Connector, campaign: str) -> Connector:
    fetch = connector.fetch

    def fetch_with_campaign(since):
        for item in fetch(since):
            yield type(item)(item.external_id, item.kind, {**item.payload, "campaign": campaign},
                             item.cursor)

    connector.fetch = fetch_with_campaign  # type: ignore[method-assign]
    return connector


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


# -- the demo -----------------------------------------------------------------------------------

@main.command()
@json_option
def demo(as_json: bool) -> None:
    """Ingest the bundled samples (a list, mail, web forms, social posts) and show what was stored."""
    from crm_ingest.connectors.csvlist import CsvList
    from crm_ingest.connectors.jsonl import JsonLines
    from crm_ingest.connectors.mailfiles import MailFiles
    from crm_ingest.ingest.report import item_counts, record_counts

    rt = _runtime()
    samples = resources.files("crm_ingest") / "samples"
    with resources.as_file(samples) as folder:
        connectors = [
            _with_campaign(CsvList(folder / "purchased_list.csv", "list"), "Nordic Expo 2026"),
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
        records.add_row(name, str(count))
    console.print(records)


# -- looking at things --------------------------------------------------------------------------

@main.command()
@json_option
def status(as_json: bool) -> None:
    """Items by state and outcome, queue depth per queue, items/s over the last minute."""
    from crm_ingest.ingest.report import item_counts, record_counts, throughput, top_errors

    rt = _runtime()
    with rt.sessions() as session:
        result: dict[str, Any] = {
            "items": item_counts(session), "records": record_counts(session),
            "items_per_second_last_minute": round(throughput(session), 2),
            "top_errors": [{"error": e, "items": n} for e, n in top_errors(session)],
        }
    result["queues"] = None
    if not rt.settings.embedded:
        from crm_ingest.workers.queues import queue_depths, unacked_count

        try:
            result["queues"] = {"depth": queue_depths(rt.settings.redis_url),
                                "unacked": unacked_count(rt.settings.redis_url)}
        except Exception as exc:  # noqa: BLE001 - status must still show the database side
            result["queues"] = {"error": f"broker unreachable: {type(exc).__name__}"}
    Out(as_json).emit(result, _print_status)


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
    console.print(f"items/s over the last minute: {result['items_per_second_last_minute']}")
    queues = result["queues"]
    if queues is None:
        console.print("queues: none (embedded mode, no broker)")
    elif "error" in queues:
        console.print(f"queues: {queues['error']}", style="red")
    else:
        console.print("queue depth: " + ", ".join(f"{q} {n}" for q, n in queues["depth"].items())
                      + f"; in flight (unacked) {queues['unacked']}")
    for error in result["top_errors"]:
        console.print(f"[red]{error['items']}×[/red] {error['error']}")


@main.command()
@click.argument("item_id", type=int)
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
                  "record_type": item.record_type, "record_id": item.record_id,
                  "last_error": item.last_error, "finished_at": item.finished_at}

    def render(data: dict) -> None:
        for key, value in data.items():
            if value is not None:
                console.print(f"[bold]{key}[/bold]: {value}", highlight=False)

    Out(as_json).emit(result, render)


@main.command()
@json_option
def retry(as_json: bool) -> None:
    """Re-queue every failed item with a fresh set of attempts."""
    from crm_ingest.workers.dispatch import dispatch

    rt = _runtime()
    with rt.sessions.begin() as session:
        ids = list(session.scalars(update(RawItem).where(RawItem.state == FAILED)
                                   .values(state=PENDING, attempts=0, finished_at=None,
                                           lease_until=None)
                                   .returning(RawItem.id)))
    dispatch(rt.sessions, ids, rt.settings)
    Out(as_json).emit({"requeued": len(ids)}, lambda d: console.print(f"re-queued {d['requeued']} items"))


@main.command()
@json_option
def sweep(as_json: bool) -> None:
    """Run the sweeper once: expire dead leases and (re)queue what is due."""
    from crm_ingest.workers.batch import sweep as sweep_items
    from crm_ingest.workers.dispatch import dispatch

    rt = _runtime()
    ids = sweep_items(rt.sessions, rt.settings)
    dispatch(rt.sessions, ids, rt.settings)
    Out(as_json).emit({"requeued": len(ids)}, lambda d: console.print(f"re-queued {d['requeued']} items"))


@main.command()
@click.argument("record_type", type=click.Choice(sorted(RECORD_MODELS)))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
def export(record_type: str, fmt: str, output: Path | None) -> None:
    """Export every record of a type as CSV (safe to open in Excel) or JSON Lines."""
    rt = _runtime()
    model = RECORD_MODELS[record_type]
    columns = list(model.__table__.columns.keys())
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        with rt.sessions() as session:
            rows = session.execute(select(*model.__table__.columns).order_by(model.id)
                                   .execution_options(yield_per=2000))
            write_rows(stream, fmt, columns, (row._asdict() for row in rows))
    finally:
        if output:
            stream.close()


def write_rows(stream, fmt: str, columns: list[str], rows: Iterable[dict]) -> None:
    if fmt == "jsonl":
        for row in rows:
            stream.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(stream)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([excel_safe(row[name]) for name in columns])


def excel_safe(value: Any) -> str:
    """A cell Excel will not run as a formula: leading = + - @ (and tab, CR) get a quote."""
    if value is None:
        return ""
    text = str(value)[:EXPORT_LIMIT_CELL]
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


if __name__ == "__main__":
    main()
