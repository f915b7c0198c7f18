"""List import jobs: their counts, their rejected rows, suppression, and revert.

Functions on a session the caller opened; the caller commits.
"""
from __future__ import annotations

import csv
import re
from typing import Any, Iterable, Iterator

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from crm_ingest.models import (
    Activity,
    CampaignMember,
    Contact,
    IdentityKey,
    ImportChunk,
    ImportJob,
    Lead,
    MergeLog,
    Opportunity,
    RawItem,
    Suppression,
    utcnow,
)
from crm_ingest.models.bulk import insert_rows
from crm_ingest.models.landing import waiting_chunk_rows

from .errors import InvalidItem
from .identity import take_back_details
from .matching import mailbox_keys
from .normalize import DATE_WRITTEN, normalize_email, normalize_phone, phone_extension, public_suffix
from .plan import as_excel_wrote_it, numbers_in

PEOPLE = {"lead": Lead, "contact": Contact}
UPSERT_BY = ("email", "phone", "none")  # which contact point of a row finds an existing person


def job_counts(session: Session, job_id: int) -> dict[str, int]:
    """Every row of the import accounted for: one count per kind of outcome."""
    kind = case(
        (RawItem.state.in_(["pending", "processing"]), RawItem.state),
        (RawItem.state == "failed", "failed"),
        (and_(RawItem.outcome == "merged", RawItem.outcome_reason.like("duplicate of row%")),
         "duplicate_in_file"),
        (and_(RawItem.outcome == "merged", RawItem.record_type == "contact"), "linked_contact"),
        (and_(RawItem.outcome == "ignored", RawItem.outcome_reason.like("suppressed%")), "suppressed"),
        else_=RawItem.outcome,
    )
    counts = dict.fromkeys(("created", "merged", "duplicate_in_file", "linked_contact", "rejected",
                            "suppressed", "ignored", "review", "pending", "processing", "failed"), 0)
    for name, count in session.execute(select(kind, func.count()).where(RawItem.import_job_id == job_id)
                                       .group_by(kind)):
        counts[name] = counts.get(name, 0) + count
    counts["pending"] += waiting_chunk_rows(session, job_id)  # landed in chunks, not yet processed
    counts["rows"] = sum(counts.values())
    return counts


def job_summary(session: Session, job: ImportJob) -> dict[str, Any]:
    """The job's counts and state. A landed job whose every row has an outcome becomes 'done',
    finished when its last row was (the caller commits that)."""
    counts = job_counts(session, job.id)
    unfinished = counts["pending"] + counts["processing"]
    if job.state == "landed" and not unfinished:
        # only where it is still landed when the write comes: a revert holding the job meanwhile
        # (this read took no lock) made it 'reverted', which must not become 'done' again
        finished_at = session.scalar(select(func.max(RawItem.finished_at))
                                     .where(RawItem.import_job_id == job.id)) or utcnow()
        if session.execute(update(ImportJob).where(ImportJob.id == job.id, ImportJob.state == "landed")
                           .values(state="done", finished_at=finished_at)
                           .execution_options(synchronize_session=False)).rowcount:
            session.expire(job, ["state", "finished_at"])  # read again below, as the update left them
        else:
            session.refresh(job)
            counts = job_counts(session, job.id)
    summary = {"job": job.id, "state": job.state, "file": job.file_name, "source": job.source,
               "campaign_id": job.campaign_id, "consent": job.consent, "rows_read": job.rows_read,
               "rows_landed": job.rows_landed,
               "counts": counts, "options": job.options, "created_at": job.created_at,
               "finished_at": job.finished_at}
    notes = []
    if withheld := (job.options or {}).get("withheld"):
        notes.append(f"column{'s' if len(withheld) > 1 else ''} {', '.join(map(repr, withheld))} left out: "
                     "personal identity numbers are not stored from a list")
    if others := (job.options or {}).get("other_sheets"):
        notes.append(f"only sheet {(job.options or {}).get('sheet')!r} was read; "
                     f"{', '.join(map(repr, others))} hold{'s' if len(others) == 1 else ''} a list too: "
                     "import each with --sheet NAME")
    if notes:
        summary["note"] = "; ".join(notes)
    if job.state == "done" and not counts["rows"]:  # finished, but a file of nothing is rarely what was meant
        header = [str(column) for column, _ in (job.options or {}).get("columns") or []]
        summary["warning"] = (f"no rows under the header ({', '.join(header[:8])})" if header else
                              "no rows: the file holds nothing but blank lines") + \
            "; is it the file you meant? `--preview` shows how it is read"
    return summary


def rejected_rows(session: Session, job_id: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(row number, reason, the row's values) of every rejected row, in file order."""
    rows = session.execute(
        select(RawItem.external_id, RawItem.outcome_reason, RawItem.payload)
        .where(RawItem.import_job_id == job_id, RawItem.outcome == "rejected")
        .order_by(RawItem.id).execution_options(yield_per=2000))
    for external_id, reason, payload in rows:
        row = payload.get("row") if isinstance(payload, dict) else None
        yield (row if isinstance(row, int) else int(external_id.rpartition(":")[2] or 0)), reason or "", payload


def reason_with_columns(reason: str, columns: Iterable[tuple[str, str | None]]) -> str:
    """'email: invalid ...' -> 'E-post: invalid ...': name the file's column, not our field."""
    header_of = {}
    for header, field_name in columns:
        if field_name and field_name not in header_of:
            header_of[field_name] = header
    head, sep, rest = reason.partition(": ")
    if not sep or not re.fullmatch(r"[a-z_]+(/[a-z_]+)*", head):
        return reason
    named = "/".join(header_of.get(name, name) for name in head.split("/"))
    return f"{named}: {rest}"


EXPORT_LIMIT_CELL = 32_000  # Excel's limit on a cell is 32,767 characters


def excel_safe(value: Any) -> str:
    """A cell Excel will not run as a formula: leading = + - @ (and tab, CR, LF, and the
    full-width = + - @, which a spreadsheet may turn into them) get a quote."""
    if value is None:
        return ""
    text = str(value)[:EXPORT_LIMIT_CELL]
    if CONTROL_CHARACTERS.search(text):  # a terminal's escape codes, a bell: no cell's content (tab and line breaks are)
        text = CONTROL_CHARACTERS.sub("", text)
    if text and text[0] in _FORMULA_STARTS:
        return "'" + text
    return text


_FORMULA_STARTS = "=+-@\t\r\n\uff1d\uff0b\uff0d\uff20"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def excel_csv_writer(stream):
    """A CSV writer for files people open in Excel: every cell quoted, so a cell holding the
    list separator of another locale ('Åsa;=2+2' in a Swedish Excel, which splits at ';') stays
    one cell, its formula text with it (OWASP's advice for CSV injection, with excel_safe)."""
    return csv.writer(stream, quoting=csv.QUOTE_ALL)


def original_values(payload: dict, columns: list[tuple[str, str | None]]) -> dict[str, Any]:
    """The row's cells by the file's headers, from the landed payload (fields and extra)."""
    fields = payload.get("fields") or {}
    values = dict(payload.get("extra") or {})
    for header, field_name in columns:
        if field_name and field_name in fields and header not in values:
            values[header] = fields[field_name]
    return values


def rejected_csv_rows(session: Session, job: ImportJob) -> Iterator[list[str]]:
    """The rejected-rows report as CSV rows (header first): row number, the reason naming the
    file's column, and the row's cells as in the file, every cell safe to open in Excel."""
    columns = [tuple(pair) for pair in (job.options or {}).get("columns", [])]
    headers = [header for header, _ in columns]
    above = (job.options or {}).get("header_row")  # the header's own row: a spreadsheet's numbering from it
    yield ["row", *(["row in file"] if above is not None else []), "reason",
           *map(excel_safe, headers)]  # a header cell is the file's too
    for row, reason, payload in rejected_rows(session, job.id):
        values = original_values(payload, columns)
        yield [str(row), *([str(above + row)] if above is not None else []),
               excel_safe(reason_with_columns(reason, columns)), *[excel_safe(values.get(h)) for h in headers]]


def revert_job(session: Session, job_id: int) -> dict[str, int]:
    """Undo an import: delete the records it created with their keys and links, take back what
    it filled in on records it merged into, and drop its raw items; the job stays, 'reverted'."""
    job = session.get(ImportJob, job_id, with_for_update=True)
    if job is None:
        raise LookupError(f"no import job {job_id}")
    if job.state == "reverted":  # said, not counted again as nothing done
        raise LookupError(f"import job {job_id} was reverted already"
                          + (f" at {job.finished_at:%Y-%m-%d %H:%M} UTC" if job.finished_at else ""))
    if session.get_bind().dialect.name == "postgresql":
        # Chunks still waiting are taken from the workers (locked, then deleted with the job's
        # rows); one a worker is storing right now would meet this revert's deletes, a deadlock
        pending = ImportChunk.state == "pending"
        held = len(session.scalars(select(ImportChunk.id).where(ImportChunk.import_job_id == job_id, pending)
                                   .with_for_update(skip_locked=True)).all())
        waiting = session.scalar(select(func.count()).select_from(ImportChunk)
                                 .where(ImportChunk.import_job_id == job_id, pending))
        if waiting > held:
            raise LookupError(f"a worker is storing rows of import job {job_id} right now; revert it in a moment, "
                              f"or once the job is done (ingest import-report {job_id})")
    items = select(RawItem.id).where(RawItem.import_job_id == job_id).scalar_subquery()
    result = {"records_deleted": 0, "records_kept": 0, "fields_restored": 0, "keys_removed": 0,
              "links_removed": 0}
    for record_type, model in PEOPLE.items():
        created = list(session.scalars(select(model.id).where(model.origin_item_id.in_(items))))
        # A record that items from elsewhere (a form, another list) have since merged into is
        # theirs too: it stays, owned by the earliest of them.
        others: dict[int, int] = {}
        for start in range(0, len(created), 10_000):  # a statement holds at most 65,535 parameters
            others.update(session.execute(
                select(RawItem.record_id, func.min(RawItem.id))
                .where(RawItem.record_type == record_type, RawItem.record_id.in_(created[start:start + 10_000]),
                       or_(RawItem.import_job_id.is_(None), RawItem.import_job_id != job_id))
                .group_by(RawItem.record_id)).all())
        for record_id, item_id in others.items():
            session.execute(update(model).where(model.id == record_id).values(origin_item_id=item_id))
        if record_type == "lead" and others:
            _hand_over_provenance(session, job, others)
        result["records_kept"] += len(others)
        created = [record_id for record_id in created if record_id not in others]
        # A lead qualified since, and the contact its qualifying made, are someone's work now
        # (an opportunity names them): they stay, with their keys and links, and are said to.
        worked_on = _qualified_since(session, record_type, created)
        if worked_on:
            kept = sorted(worked_on)
            for start in range(0, len(kept), 10_000):
                session.execute(update(model).where(model.id.in_(kept[start:start + 10_000])).values(origin_item_id=None))
            result["records_kept"] += len(worked_on)
            result.setdefault("kept_qualified", []).extend(f"{record_type} {i}" for i in sorted(worked_on))
            created = [record_id for record_id in created if record_id not in worked_on]
        for start in range(0, len(created), 1000):
            chunk = created[start:start + 1000]
            result["keys_removed"] += session.execute(delete(IdentityKey).where(
                IdentityKey.scope == record_type, IdentityKey.record_id.in_(chunk))).rowcount
            result["links_removed"] += session.execute(delete(CampaignMember).where(
                CampaignMember.record_type == record_type, CampaignMember.record_id.in_(chunk))).rowcount
            session.execute(delete(MergeLog).where(MergeLog.record_type == record_type,
                                                   MergeLog.record_id.in_(chunk)))
            result["records_deleted"] += session.execute(delete(model).where(model.id.in_(chunk))).rowcount
            if record_type == "contact":  # open leads the new contacts were linked to (link_open_leads)
                session.execute(update(Lead).where(Lead.contact_id.in_(chunk), Lead.status != "qualified")
                                .values(contact_id=None))
    for entry in session.scalars(select(MergeLog).where(MergeLog.raw_item_id.in_(items))
                                 .order_by(MergeLog.id.desc())):
        model = PEOPLE[entry.record_type]
        filled = entry.filled or {}
        if filled:
            record = session.get(model, entry.record_id)
            # only what still holds the value the import put there: never undo a later edit
            columns = set(model.__table__.columns.keys())
            back = {name: None for name, value in filled.items()
                    if name in columns and name != "details" and record is not None and getattr(record, name) == value}
            if "details_added" in filled and record is not None:  # what this import added, whatever came since
                back["details"] = take_back_details(record.details, filled["details_added"])
            elif "details" in filled and record is not None and record.details == filled["details"]:
                back["details"] = None  # (a blank the import filled, in a log from before details_added)
            if back:
                session.execute(update(model).where(model.id == entry.record_id).values(back))
                result["fields_restored"] += len(back)
        for kind, value in entry.keys_added or []:
            result["keys_removed"] += session.execute(delete(IdentityKey).where(
                IdentityKey.scope == entry.record_type, IdentityKey.kind == kind,
                IdentityKey.value == value, IdentityKey.record_id == entry.record_id)).rowcount
    session.execute(delete(MergeLog).where(MergeLog.raw_item_id.in_(items)))
    session.execute(delete(Activity).where(Activity.raw_item_id.in_(items)))  # a row's note on a contact
    result["links_removed"] += session.execute(
        delete(CampaignMember).where(CampaignMember.import_job_id == job_id)).rowcount
    result["raw_items_removed"] = session.execute(delete(RawItem).where(RawItem.import_job_id == job_id)).rowcount
    result["raw_items_removed"] += waiting_chunk_rows(session, job_id)  # rows never processed
    session.execute(delete(ImportChunk).where(ImportChunk.import_job_id == job_id))
    job.state = "reverted"
    job.finished_at = utcnow()
    job.options = {**(job.options or {}), "reverted": result}
    return result


def _hand_over_provenance(session: Session, job: ImportJob, owners: dict[int, int]) -> None:
    """Leads a reverted import made and another item keeps: where they came from is now that
    item's (its file and row, its import's campaign), not the reverted job's."""
    ids = sorted(owners)
    for start in range(0, len(ids), 10_000):
        part = ids[start:start + 10_000]
        items = {row.id: row for row in session.execute(
            select(RawItem.id, RawItem.import_job_id, RawItem.payload)
            .where(RawItem.id.in_([owners[record_id] for record_id in part])))}
        jobs = {row.id: row.campaign_id for row in session.execute(
            select(ImportJob.id, ImportJob.campaign_id)
            .where(ImportJob.id.in_({item.import_job_id for item in items.values() if item.import_job_id})))}
        for lead in session.scalars(select(Lead).where(Lead.id.in_(part))):
            owner = items.get(owners[lead.id])
            if owner is None:
                continue
            if job.campaign_id is not None and lead.campaign_id == job.campaign_id:
                lead.campaign_id = jobs.get(owner.import_job_id)
            details = dict(lead.details or {})
            if details.get("import_job") == job.id:
                payload = owner.payload if isinstance(owner.payload, dict) else {}
                details.update(row=payload.get("row"), file=payload.get("file"), import_job=owner.import_job_id)
                lead.details = {key: value for key, value in details.items() if value is not None}


def _qualified_since(session: Session, record_type: str, ids: list[int]) -> set[int]:
    if record_type == "lead":
        model = Lead
        named = or_(Lead.status == "qualified", Lead.id.in_(select(Opportunity.lead_id)
                                                            .where(Opportunity.lead_id.is_not(None))))
    else:
        model = Contact
        named = or_(Contact.id.in_(select(Opportunity.contact_id).where(Opportunity.contact_id.is_not(None))),
                    Contact.id.in_(select(Lead.contact_id).where(Lead.status == "qualified",
                                                                 Lead.contact_id.is_not(None))))
    found: set[int] = set()
    for start in range(0, len(ids), 10_000):  # a statement holds at most 65,535 parameters
        found.update(session.scalars(select(model.id).where(model.id.in_(ids[start:start + 10_000]), named)))
    return found


def parse_suppression(value: str, region: str) -> tuple[str, str]:
    """One do-not-contact entry: an email, a phone number or a domain ('@ekab.se', 'ekab.se',
    'www.ekab.se', 'https://www.ekab.se/kontakt': every address at ekab.se and its subdomains)."""
    text = value.strip()
    if "@" in text and not text.startswith("@"):  # 'bo@' is an address mistyped, not a number
        return "email", normalize_email(text)[1]
    site = _SITE.fullmatch(text)
    if text.startswith("@") or site is not None:
        host = site.group(1) if site is not None else text.lstrip("@")
        domain = re.sub(r"^www\d*\.", "", host.lower().rstrip("."))
        if not domain or "." not in domain and not site or public_suffix(domain):
            # '@co.uk' would bar every address in Britain, '@' every address there is
            raise InvalidItem("entry", f"{text[:80]!r} is no one's domain: every address under it would be barred")
        return "domain", domain
    text = as_excel_wrote_it(text.translate(_DASHES))  # '701,234,570': a number cell Excel wrote out
    if DATE_WRITTEN.fullmatch(text):
        raise InvalidItem("entry", f"a date, not an address, a domain or a number: {text[:80]!r}")
    if not _A_NUMBER_WRITTEN.fullmatch(text):
        # 'tel: 08-123 456', 'Anna Berg 070 999 88 77': the number written last, as a number is
        # written (with its 0 or +); 'faktura 4711-2024' is none, whatever digits it holds
        found = _A_NUMBER_AT_THE_END.search(text)
        if found is None:
            raise InvalidItem("entry", f"not an address, a domain or a number: {text[:80]!r}")
        text = found.group(1)
    number = normalize_phone(text, region)
    # the key is the number without its extension: the switchboard's, everyone's at it ('(ankn. 12)' too)
    if phone_extension(text, region) or _AN_EXTENSION.search(text):
        raise InvalidItem("entry", f"{text[:80]!r} is an extension of {number}, a switchboard: barring it would "
                                   "bar everyone called through it; give the person's own number")
    return "phone", number


def parse_suppressions(value: str, region: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A do-not-contact cell's entries: the one it holds, or each number of a cell listing
    several ('070-111 22 33 / 08-123 456'); and (part, why) of each part not understood. Raises
    for the cell when no part is one."""
    try:
        return [parse_suppression(value, region)], []
    except InvalidItem as exc:
        error = exc
    entries, refused = [], []
    for part in numbers_in(value):
        try:
            entries.append(parse_suppression(part, region))
        except InvalidItem as exc:
            refused.append((part, str(exc)))
    if not entries:
        raise error
    return entries, refused


_AN_EXTENSION = re.compile(r"\b(?:ankn(?:ytning)?|ext(?:ension)?|anknr|dir)\b\.?\s*:?\s*\d", re.IGNORECASE)
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-"})
_A_NUMBER_AT_THE_END = re.compile(r"(?:^|[\s:;,])((?:\+|00|0|\()[\d\s().\-/]{5,}\d(?:\s*(?:\([^)]*\)|[^\W\d_]+\.?))?)\s*$")
_A_NUMBER_WRITTEN = re.compile(r"[+(]?\d[\d\s().\-/]{4,}(?:\s*(?:\([^)]*\)|[^\W\d_]+\.?)(?:\s*\d+)?)?")
_SITE = re.compile(r"(?:https?://)?([A-Za-z0-9.-]+\.[A-Za-z]{2,}\.?)(?:[/?#].*)?", re.IGNORECASE)


SUPPRESSION_BATCH = 50_000  # entries held at a time: a national do-not-call register has millions
MAX_INVALID_SHOWN = 1000


def add_suppressions(session: Session, values: Iterable[tuple[int, str]], *, region: str, source: str,
                     reason: str | None = None) -> dict[str, Any]:
    """Load do-not-contact entries, (line, value) pairs, a batch at a time (one transaction);
    mark existing leads and contacts they match. `entries` counts each batch's distinct entries
    (an entry repeated in two batches counts twice; `added` counts what was new); `invalid`
    shows the first MAX_INVALID_SHOWN lines not understood, `invalid_lines` counts them all."""
    entries: dict[tuple[str, str], None] = {}
    invalid: list[dict[str, Any]] = []
    result = {"entries": 0, "added": 0, "invalid_lines": 0, "records_marked": 0}

    def load() -> None:
        rows = [{"kind": kind, "value": val, "reason": reason, "source": source} for kind, val in entries]
        for start in range(0, len(rows), 1000):
            result["added"] += len(insert_rows(session, Suppression, rows[start:start + 1000],
                                               on_conflict_do_nothing=("kind", "value"), returning=("id",)))
        result["records_marked"] += mark_do_not_contact(session, list(entries))
        result["entries"] += len(entries)
        entries.clear()

    for number, value in values:
        if not value.strip() or value.strip().startswith("#"):
            continue
        try:
            found, refused = parse_suppressions(value, region)
        except InvalidItem as exc:
            found, refused = [], [(value.strip(), str(exc))]
        for kind, key in found:
            entries[(kind, key)] = None
            if kind == "email":  # and the mailbox behind it: a.b+x@gmail.com is ab@gmail.com
                entries.update(dict.fromkeys(("email", v) for v in mailbox_keys(key)))
        if refused:  # the line, or a part of it ('070… / 08… ankn. 12'), not understood: said, not passed over
            result["invalid_lines"] += 1
            for part, why in refused:
                if len(invalid) < MAX_INVALID_SHOWN:
                    invalid.append({"line": number, "value": part[:200], "reason": why})
        if len(entries) >= SUPPRESSION_BATCH:
            load()
    load()
    return {**result, "invalid": invalid}


def suppress_entries(session: Session, entries: Iterable[tuple[str, str]], *, source: str, reason: str,
                     mark: bool = True) -> int:
    """Put normalized entries (kind, value) on the do-not-contact list (in sorted order, so two
    workers adding the same ones take their locks alike) and mark the people already matching
    them (unless `mark` is False); returns how many entries were new."""
    rows = [{"kind": kind, "value": value, "reason": reason[:300], "source": source[:300]}
            for kind, value in sorted(set(entries))]
    added = 0
    for start in range(0, len(rows), 1000):
        added += len(insert_rows(session, Suppression, rows[start:start + 1000],
                                 on_conflict_do_nothing=("kind", "value"), returning=("id",)))
    if mark:
        mark_do_not_contact(session, [(row["kind"], row["value"]) for row in rows])
    return added


def _under(domain: str, suppressed: set[str]) -> bool:
    """The domain or one of its parents is in the set."""
    parts = domain.split(".")
    return any(".".join(parts[index:]) in suppressed for index in range(len(parts) - 1))


def mark_do_not_contact(session: Session, entries: list[tuple[str, str]]) -> int:
    """Existing leads and contacts matching suppression entries become do-not-contact."""
    marked = 0
    for scope, model in PEOPLE.items():
        ids: set[int] = set()
        for kind, key_kinds in (("email", ("email", "email_canonical")), ("phone", ("phone",))):
            values = [v for k, v in entries if k == kind]
            for start in range(0, len(values), 1000):
                ids.update(session.scalars(select(IdentityKey.record_id).where(
                    IdentityKey.scope == scope, IdentityKey.kind.in_(key_kinds),
                    IdentityKey.value.in_(values[start:start + 1000]))))
        suppressed = {v for k, v in entries if k == "domain"}
        if suppressed:  # one pass over the scope's addresses for them all (a LIKE '%@x' a domain was a pass each)
            at = func.strpos(IdentityKey.value, "@") if session.get_bind().dialect.name == "postgresql" \
                else func.instr(IdentityKey.value, "@")
            domain_of = func.substr(IdentityKey.value, at + 1)
            # the scope's domains at a suppressed one or below it (sub.ek.se under ek.se), as new rows are
            domains = sorted(domain for domain in session.scalars(
                select(domain_of).where(IdentityKey.scope == scope, IdentityKey.kind == "email").distinct())
                if domain and _under(domain, suppressed))
            for start in range(0, len(domains), 10_000):
                ids.update(session.scalars(select(IdentityKey.record_id).where(
                    IdentityKey.scope == scope, IdentityKey.kind == "email",
                    domain_of.in_(domains[start:start + 10_000]))))
        ids_list = sorted(ids)
        for start in range(0, len(ids_list), 1000):
            marked += session.execute(update(model).where(model.id.in_(ids_list[start:start + 1000]),
                                                          model.do_not_contact.is_(False))
                                      .values(do_not_contact=True)).rowcount
    return marked
