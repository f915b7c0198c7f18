"""`ingest list`, `ingest show`, `ingest export`: reading records from the command line, with
the same filters and cursors as the read API (ingest/query.py) and the configured display names."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from crm_ingest.cli import ID, Out, _runtime, console, json_option, main, shown, write_rows
from crm_ingest.ingest import overview, query
from crm_ingest.ingest.errors import InvalidItem, NotFound


def filter_options(command: Callable) -> Callable:
    """The list filters, as options (the API's query parameters, with dashes)."""
    for option in reversed([
        click.option("--status", default=None, help="Status (state, for entitlements)."),
        click.option("--source", default=None, help="The configured source that made the record."),
        click.option("--campaign", default=None, help="Campaign id or name."),
        click.option("--queue", default=None, help="Owner queue (leads and cases)."),
        click.option("--created-from", default=None, help="ISO date or time, inclusive."),
        click.option("--created-to", default=None, help="ISO date or time, inclusive (a date: the whole day)."),
        click.option("--search", default=None, help="Text in names, emails, subjects (any case)."),
    ]):
        command = option(command)
    return command


def _record_type(name: str) -> str:
    record_type = query.record_type_of(name, shown)
    if record_type is None:
        choices = ", ".join(shown(t) for t in query.MODELS)
        raise click.BadParameter(f"{name!r} is not a record type; choose one of {choices}", param_hint="RECORD_TYPE")
    return record_type


def _filters(record_type: str, given: dict[str, Any]) -> query.Filters:
    try:
        return query.Filters.parse(record_type, {k: v for k, v in given.items() if v is not None})
    except InvalidItem as exc:
        raise click.BadParameter(exc.reason, param_hint=f"--{exc.field.replace('_', '-')}") from None


def _read(work: Callable[..., Any]) -> Any:
    rt = _runtime()
    try:
        with rt.sessions() as session:
            result = work(session)
    except NotFound as exc:
        raise click.ClickException(f"no {shown(exc.record_type)} {exc.record_id}") from None
    except InvalidItem as exc:
        raise click.ClickException(f"{exc.field}: {exc.reason}") from None
    return query.plain(query.labelled(result, shown))


@click.command("list")
@click.argument("record_type")
@filter_options
@click.option("--limit", type=click.IntRange(1, query.MAX_PAGE), default=query.DEFAULT_PAGE, show_default=True)
@click.option("--cursor", default=None, help="The next_cursor a previous page printed.")
@json_option
def list_command(record_type: str, limit: int, cursor: str | None, as_json: bool, **given: Any) -> None:
    """List records of a type (by its name or display name), newest first, filtered."""
    _runtime()  # the display names, before the type is read
    kind = _record_type(record_type)
    filters = _filters(kind, given)

    def work(session) -> dict:
        page = query.list_records(session, kind, filters, limit=limit, cursor=cursor)
        return {"record_type": kind, "record_label_plural": shown(kind, plural=True),
                "records": [{"record_type": kind, **row} for row in page.rows], "next_cursor": page.next_cursor}

    Out(as_json).emit(_read(work), lambda data: _print_list(kind, data))


def _print_list(record_type: str, data: dict) -> None:
    if not data["records"]:  # an empty table prints nothing at all
        console.print(f"no {shown(record_type, plural=True)} match")
        return
    columns = [c for c in ("id", *query.SEARCHED[record_type], "status", "state", "source", "queue", "created_at")
               if data["records"] and c in data["records"][0]]
    table = Table(title=shown(record_type, plural=True).capitalize())
    for column in columns:
        table.add_column(column)
    for row in data["records"]:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    console.print(table)
    if data["next_cursor"]:
        console.print(f"more: --cursor {data['next_cursor']}")


@click.command("show")
@click.argument("record_type", metavar="account|contact")
@click.argument("record_id", type=ID)
@json_option
def show(record_type: str, record_id: int, as_json: bool) -> None:
    """The customer's picture of an account or contact: people, open leads and opportunities,
    active cases with SLA time left, recent activities, and where each came from."""
    _runtime()
    kind = _record_type(record_type)
    if kind not in ("account", "contact"):
        raise click.BadParameter(f"choose {shown('account')} or {shown('contact')}", param_hint="RECORD_TYPE")
    picture = overview.account_overview if kind == "account" else overview.contact_overview
    Out(as_json).emit(_read(lambda session: picture(session, record_id)), _print_picture)


def _print_picture(data: dict) -> None:
    subject = data[data["record_type"]]
    console.print(f"[bold]{subject['record_label'].capitalize()} {subject['id']}: {subject['name']}[/bold]"
                  f" (from {subject['source'] or 'unknown'})")
    if data.get("account"):
        console.print(f"{data['account']['record_label']}: {data['account']['name']}")

    def table(title: str, rows: list[dict], columns: list[tuple[str, Callable[[dict], Any]]]) -> None:
        if not rows:
            return
        out = Table(title=title)
        for name, _ in columns:
            out.add_column(name)
        for row in rows:
            out.add_row(*("" if get(row) is None else str(get(row)) for _, get in columns))
        console.print(out)

    source = ("source", lambda r: r["source"])
    table(shown("contact", plural=True).capitalize(), data["contacts"],
          [("id", lambda r: r["id"]), ("name", lambda r: r["name"]), ("email", lambda r: r["email"]), source])
    table(f"Open {shown('lead', plural=True)}", data["open_leads"],
          [("id", lambda r: r["id"]), ("name", lambda r: r["name"]), ("topic", lambda r: r["topic"]),
           ("status", lambda r: r["status"]), source])
    table(f"Open {shown('opportunity', plural=True)} (total {data['open_pipeline_value']})",
          data["open_opportunities"],
          [("id", lambda r: r["id"]), ("name", lambda r: r["name"]),
           ("estimated value", lambda r: r["estimated_value"]), source])
    table(f"Active {shown('case', plural=True)}", data["active_cases"],
          [("id", lambda r: r["id"]), ("title", lambda r: r["name"]), ("priority", lambda r: r["priority"]),
           ("first response in", lambda r: _left(r["sla"]["first_response_seconds_left"])),
           ("resolve in", lambda r: _left(r["sla"]["resolve_seconds_left"])),
           ("entitlement left", lambda r: _entitled(r["entitlement"])), source])
    table("Recent activities", data["recent_activities"],
          [("when", lambda r: r["occurred_at"]), ("kind", lambda r: r["kind"]), ("subject", lambda r: r["subject"]),
           ("on", lambda r: f"{shown(r['regarding_type'])} {r['regarding_id']}")])
    console.print("Sources: " + ", ".join(f"{name} {n}" for name, n in data["sources"].items()))


def _left(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(abs(seconds), 3600)
    text = f"{hours}h {rest // 60:02d}m"
    return f"overdue {text}" if seconds < 0 else text


def _entitled(entitlement: dict | None) -> str:
    if entitlement is None:
        return "-"
    parts = [f"{entitlement['cases_remaining']} cases" if entitlement["cases_remaining"] is not None else "",
             f"{entitlement['hours_remaining']} h" if entitlement["hours_remaining"] is not None else ""]
    return ", ".join(p for p in parts if p) or "unlimited"


@click.command("export")
@click.argument("record_type")
@filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
def export(record_type: str, fmt: str, output: Path | None, **given: Any) -> None:
    """Export a filtered list of records (account, contact, lead, ... or its configured label) as
    CSV (safe to open in Excel) or JSON Lines, newest first."""
    rt = _runtime()
    kind = _record_type(record_type)
    filters = _filters(kind, given)
    # a CSV file with UTF-8's mark: Excel reads 'Åsa' right only so (a pipe gets none)
    stream = output.open("w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") if output else sys.stdout
    try:
        with rt.sessions() as session:
            write_rows(stream, fmt, query.columns_of(kind), query.iterate_records(session, kind, filters))
    except InvalidItem as exc:
        raise click.ClickException(f"{exc.field}: {exc.reason}") from None
    finally:
        if output:
            stream.close()


for _command in (list_command, show, export):
    main.add_command(_command)
