"""`ingest lead …`, `ingest case …`, `ingest assign`: lifecycle actions on one record, each in
its own transaction (ingest/lifecycle.py decides; this edge opens, commits and prints with the
configured display names)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from crm_ingest.cli import ID, Out, _runtime, console, json_option, main, shown
from crm_ingest.ingest import lifecycle
from crm_ingest.ingest.errors import InvalidItem, InvalidState, NotFound


def _act(action: Callable[..., dict], *args: Any, settings: bool = False) -> dict:
    """Run one action in its own transaction; a refusal is a clear error naming the record as
    the configuration calls it."""
    rt = _runtime()
    try:
        with rt.sessions.begin() as session:
            result = action(session, rt.settings, *args) if settings else action(session, *args)
    except NotFound as exc:
        raise click.ClickException(f"no {shown(exc.record_type)} {exc.record_id}") from None
    except (InvalidState, InvalidItem) as exc:
        raise click.ClickException(str(exc)) from None
    return lifecycle.with_labels(result, shown)


@click.group()
def lead() -> None:
    """Qualify, disqualify or close a lead."""


@lead.command("qualify")
@click.argument("lead_id", type=ID)
@click.option("--account/--no-account", default=True, show_default=True,
              help="Find or create the lead's account (by work domain or company name).")
@click.option("--contact/--no-contact", default=True, show_default=True,
              help="Find or create the lead's contact (by email, phone or handle).")
@click.option("--opportunity/--no-opportunity", default=True, show_default=True,
              help="Create an opportunity with the lead's topic, campaign and source.")
@json_option
def lead_qualify(lead_id: int, account: bool, contact: bool, opportunity: bool, as_json: bool) -> None:
    """Qualify a lead, as Dynamics' QualifyLead: its account and contact are reused when they
    exist, the opportunity links them, and the lead is closed as qualified. Again: nothing new."""
    result = _act(lifecycle.qualify, lead_id, account, contact, opportunity, settings=True)
    Out(as_json).emit(result, _print_qualified)


def _print_qualified(data: dict) -> None:
    def part(record_type: str) -> str | None:
        entry = data[record_type]
        if entry is None:
            return None
        if data["already_qualified"]:
            return f"{shown(record_type)} {entry['id']}"
        how = "new" if entry["created"] else "existing" + (f", found by {entry['found_by']}"
                                                           if entry.get("found_by") else "")
        return f"{shown(record_type)} {entry['id']} ({how})"

    parts = ", ".join(p for p in map(part, ("account", "contact", "opportunity")) if p) or "nothing linked"
    if data["already_qualified"]:
        console.print(f"{shown('lead')} {data['lead']} was qualified already: {parts}; nothing created")
    else:
        console.print(f"{shown('lead')} {data['lead']} qualified: {parts}")


@lead.command("disqualify")
@click.argument("lead_id", type=ID)
@click.option("--reason", required=True, type=click.Choice(lifecycle.LEAD_DISQUALIFIED),
              help="Why it will not become business (Dynamics' status reasons).")
@json_option
def lead_disqualify(lead_id: int, reason: str, as_json: bool) -> None:
    """Disqualify a lead with a reason."""
    Out(as_json).emit(_act(lifecycle.disqualify, lead_id, reason), _print_closed)


@lead.command("close")
@click.argument("lead_id", type=ID)
@click.option("--status", type=click.Choice(lifecycle.LEAD_DISQUALIFIED), default="canceled", show_default=True)
@json_option
def lead_close(lead_id: int, status: str, as_json: bool) -> None:
    """Close a lead without qualifying it (canceled: made by mistake, or a duplicate)."""
    Out(as_json).emit(_act(lifecycle.close_lead, lead_id, status), _print_closed)


def _print_closed(data: dict) -> None:
    said = "closed" if data["changed"] else "was closed already"
    console.print(f"{shown('lead')} {data['lead']} {said}: {data['status']}")


@click.group()
def case() -> None:
    """Resolve or reopen a case."""


@case.command("resolve")
@click.argument("case_id", type=ID)
@click.option("--resolution", default=None, help="What solved it (kept as the case's resolution activity).")
@click.option("--hours", default=None, help="Time the case took; taken from an hours entitlement it is under.")
@json_option
def case_resolve(case_id: int, resolution: str | None, hours: str | None, as_json: bool) -> None:
    """Resolve an active case; a reply within the reopen window reopens it."""
    def said(d: dict) -> None:
        console.print(f"{shown('case')} {d['ticket_number'] or d['case']} resolved: {d['resolution']}"
                      + (f" ({d['hours']} h)" if d["hours"] is not None else "")
                      + (f"; entitlement {d['entitlement_id']} has {d['entitlement_hours_remaining']} h left"
                         if d["entitlement_hours_remaining"] is not None else ""))

    Out(as_json).emit(_act(lifecycle.resolve_case, case_id, resolution, hours), said)


@case.command("reopen")
@click.argument("case_id", type=ID)
@json_option
def case_reopen(case_id: int, as_json: bool) -> None:
    """Reactivate a resolved or cancelled case."""
    Out(as_json).emit(_act(lifecycle.reopen_case, case_id), lambda d: console.print(
        f"{shown('case')} {d['ticket_number'] or d['case']} is active again"))


@click.command("assign")
@click.argument("record_type")
@click.argument("record_id", type=ID)
@click.argument("queue")
@json_option
def assign(record_type: str, record_id: int, queue: str, as_json: bool) -> None:
    """Put a lead or a case (RECORD_TYPE, by its name or its display name) in a queue."""
    _runtime()  # the display names, before the type is read
    result = _act(lifecycle.assign, queued_type(record_type), record_id, queue)
    Out(as_json).emit(result, lambda d: console.print(
        f"{d['record_label']} {d['id']} is in queue {d['queue']}"
        + (f" (was {d['previous_queue']})" if d["previous_queue"] and d["previous_queue"] != d["queue"] else "")))


def queued_type(name: str) -> str:
    """'case', 'cases' or a display name ('ticket') -> the record type."""
    wanted = name.strip().lower()
    for record_type in lifecycle.QUEUED:
        if wanted in (record_type, record_type + "s", shown(record_type).lower(), shown(record_type, plural=True).lower()):
            return record_type
    choices = ", ".join(shown(t) for t in lifecycle.QUEUED)
    raise click.BadParameter(f"{name!r} does not sit in a queue; choose one of {choices}", param_hint="RECORD_TYPE")


for _command in (lead, case, assign):
    main.add_command(_command)
