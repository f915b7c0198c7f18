"""Lists of records, filtered and paged by a keyset cursor, one record with its links, and the
raw items behind a record: one reading of the database for the API, `ingest list` and export.

Pages run newest first on (created_at, id). A cursor names the last row a page gave, so rows
inserted meanwhile (newer, so before page one) never shift a page not yet read. Full-text is a
case-insensitive LIKE on names, emails and subjects, which both SQLite and PostgreSQL run; on a
large PostgreSQL table a pg_trgm GIN index on those columns is the next step.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, union
from sqlalchemy.orm import Session

from crm_ingest.models import RECORD_MODELS, CampaignMember, MergeLog, RawItem
from crm_ingest.models.records import (
    Activity,
    Campaign,
    Case,
    Contact,
    Entitlement,
    Lead,
    Opportunity,
)

from .errors import InvalidItem, NotFound

MAX_PAGE = 500
DEFAULT_PAGE = 50
LINKS_SHOWN = 50  # per kind of link on one record

MODELS: dict[str, Any] = {**RECORD_MODELS, "entitlement": Entitlement}
# the columns full-text looks in
SEARCHED: dict[str, tuple[str, ...]] = {
    "account": ("name", "email", "website_domain"),
    "contact": ("first_name", "last_name", "email", "company_name"),
    "lead": ("first_name", "last_name", "email", "company_name", "topic"),
    "opportunity": ("name",),
    "case": ("title", "ticket_number"),
    "campaign": ("name",),
    "activity": ("subject", "sender"),
    "entitlement": ("name",),
}
FILTERS = ("status", "source", "campaign", "queue", "created_from", "created_to", "search")
PAGING = ("limit", "cursor")


def record_type_of(name: str, label) -> str | None:
    """'account', 'accounts', or a display name of one ('company', 'companies') -> the type;
    None when it names none."""
    wanted = name.strip().lower()
    for record_type in MODELS:
        plural = "opportunities" if record_type == "opportunity" else (
            "activities" if record_type == "activity" else record_type + "s")
        if wanted in (record_type, plural, label(record_type).lower(), label(record_type, True).lower()):
            return record_type
    return None


@dataclass(frozen=True)
class Filters:
    """What a list asks for; every value is checked against the record type it lists."""

    status: str | None = None
    source: str | None = None
    campaign: str | None = None  # an id or a name
    queue: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = None

    @classmethod
    def parse(cls, record_type: str, params: Mapping[str, Any]) -> Filters:
        """Filters from request parameters; an unknown one, or one the type lacks, is an
        InvalidItem naming it (the API answers 422)."""
        unknown = [name for name in params if name not in FILTERS + PAGING]
        if unknown:
            raise InvalidItem(unknown[0], f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTERS)}")
        values = {name: params[name] for name in FILTERS if params.get(name) not in (None, "")}
        model = MODELS[record_type]
        for name, column in (("status", _status_column(model)), ("source", getattr(model, "source", None)),
                             ("queue", getattr(model, "queue", None)), ("campaign", _campaign_column(record_type))):
            if name in values and column is None:
                raise InvalidItem(name, f"{record_type} records cannot be filtered by {name}")
        for name in ("created_from", "created_to"):
            if name in values:
                values[name] = _moment(name, values[name], end=name == "created_to")
        if "search" in values:
            values["search"] = str(values["search"]).strip()[:200] or None
        return cls(**values)

    def fingerprint(self, record_type: str) -> str:
        """Ties a cursor to the list it was made for."""
        data = json.dumps([record_type, self.status, self.source, self.campaign, self.queue,
                           str(self.created_from), str(self.created_to), self.search])
        return hashlib.sha256(data.encode()).hexdigest()[:12]


def _moment(name: str, value: Any, *, end: bool) -> datetime:
    """An ISO date or time; a date alone means the whole day (created_to includes it)."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                moment = datetime.combine(day, time.max if end else time.min)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidItem(name, f"{text!r} is not an ISO date or time") from None
    return _in_range(name, moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))


def _in_range(name: str, moment: datetime) -> datetime:
    """A moment the database can compare: in UTC, within years 1 to 9999 there too
    ('0001-01-01T00:00:00+05:00' is before year 1 in UTC: the driver overflowed, a 500)."""
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise InvalidItem(name, f"{moment.isoformat()} is out of range") from None


def _status_column(model):
    return getattr(model, "status", None) or getattr(model, "state", None)


def _campaign_column(record_type: str):
    return {"lead": Lead.campaign_id, "opportunity": Opportunity.campaign_id,
            "contact": Contact.id, "campaign": Campaign.id}.get(record_type)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(session: Session, record_type: str, filters: Filters) -> list:
    model = MODELS[record_type]
    clauses = []
    if filters.status:
        clauses.append(_status_column(model) == filters.status)
    if filters.source:
        clauses.append(model.source == filters.source)
    if filters.queue:
        clauses.append(model.queue == filters.queue)
    if filters.campaign:
        campaign_id = _campaign_id(session, filters.campaign)
        if record_type == "campaign":
            clauses.append(model.id == campaign_id)
        else:
            member = select(CampaignMember.record_id).where(CampaignMember.campaign_id == campaign_id,
                                                            CampaignMember.record_type == record_type)
            direct = getattr(model, "campaign_id", None)
            clauses.append(or_(model.id.in_(member), direct == campaign_id) if direct is not None
                           else model.id.in_(member))
    if filters.created_from:
        clauses.append(model.created_at >= filters.created_from)
    if filters.created_to:
        clauses.append(model.created_at <= filters.created_to)
    if filters.search:
        pattern = f"%{_escaped(filters.search.lower())}%"
        clauses.append(or_(*(func.lower(getattr(model, name)).like(pattern, escape="\\")
                             for name in SEARCHED[record_type])))
    return clauses


def _campaign_id(session: Session, given: str) -> int | None:
    """A campaign by name, else by id ('2026' is the campaign so named, when there is one); an
    unknown one matches nothing."""
    text = str(given).strip()
    named = session.scalar(select(Campaign.id).where(Campaign.name == text[:300]))
    if named is not None:
        return named
    if text.isascii() and text.isdigit() and len(text) <= 18:  # '²' is a digit to Python; 19+ past BIGINT
        return int(text)
    return -1


# -- cursors ------------------------------------------------------------------------------------

def encode_cursor(created_at: datetime, record_id: int, fingerprint: str) -> str:
    raw = json.dumps({"c": created_at.isoformat(), "i": record_id, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[datetime, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor[:2000] + "=" * (-len(cursor[:2000]) % 4)))
        created_at, record_id, made_for = datetime.fromisoformat(raw["c"]), int(raw["i"]), raw["f"]
        created_at = _in_range("cursor", created_at if created_at.tzinfo else created_at.replace(tzinfo=timezone.utc))
        if not 0 <= record_id < 2**63:
            raise ValueError("an id out of range")
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError, InvalidItem):  # nested past json's depth
        raise InvalidItem("cursor", "not a cursor this API gave") from None
    if made_for != fingerprint:
        raise InvalidItem("cursor", "the cursor belongs to another list (other type or filters)")
    return created_at, record_id


# -- reading ------------------------------------------------------------------------------------

@dataclass
class Page:
    record_type: str
    rows: list[dict[str, Any]]
    next_cursor: str | None


def list_records(session: Session, record_type: str, filters: Filters, *, limit: int = DEFAULT_PAGE,
                 cursor: str | None = None) -> Page:
    """One page, newest first; `next_cursor` is None on the last page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidItem("limit", f"limit must be between 1 and {MAX_PAGE}")
    model = MODELS[record_type]
    fingerprint = filters.fingerprint(record_type)
    clauses = _where(session, record_type, filters)
    if cursor:
        created_at, record_id = decode_cursor(cursor, fingerprint)
        clauses.append(or_(model.created_at < created_at,
                           and_(model.created_at == created_at, model.id < record_id)))
    rows = session.scalars(select(model).where(*clauses)
                           .order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id, fingerprint) if more else None
    return Page(record_type, [as_dict(row) for row in rows], next_cursor)


def iterate_records(session: Session, record_type: str, filters: Filters, *, batch: int = MAX_PAGE
                    ) -> Iterator[dict[str, Any]]:
    """Every row of a filtered list, page by page (for export: memory stays one page)."""
    cursor = None
    while True:
        page = list_records(session, record_type, filters, limit=batch, cursor=cursor)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def columns_of(record_type: str) -> list[str]:
    return list(MODELS[record_type].__table__.columns.keys())


def as_dict(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def display_name(record_type: str, row: Any) -> str:
    """What people call a record: a person's name, an account's, a case's title."""
    if record_type in ("contact", "lead"):
        person = " ".join(p for p in (row.first_name, row.last_name) if p)
        return person or row.email or (getattr(row, "topic", None) or "") or f"#{row.id}"
    if record_type == "case":
        return f"{row.ticket_number} {row.title}" if row.ticket_number else row.title
    if record_type == "activity":
        return row.subject or row.kind
    return getattr(row, "name", None) or f"#{row.id}"


def get_record(session: Session, record_type: str, record_id: int) -> dict[str, Any]:
    """One record's fields and its links: record type -> [{id, name}] (or one, or None)."""
    row = session.get(MODELS[record_type], record_id)
    if row is None:
        raise NotFound(record_type, record_id)
    return {"record": as_dict(row), "name": display_name(record_type, row),
            "links": _links(session, record_type, row)}


def _link(session: Session, record_type: str, record_id: int | None) -> dict[str, Any] | None:
    if record_id is None:
        return None
    row = session.get(MODELS[record_type], record_id)
    return None if row is None else {"record_type": record_type, "id": row.id,
                                     "name": display_name(record_type, row)}


def _linked(session: Session, record_type: str, *where) -> list[dict[str, Any]]:
    model = MODELS[record_type]
    rows = session.scalars(select(model).where(*where).order_by(model.id.desc()).limit(LINKS_SHOWN)).all()
    return [{"record_type": record_type, "id": r.id, "name": display_name(record_type, r)} for r in rows]


def _links(session: Session, record_type: str, row: Any) -> dict[str, Any]:
    one, many = _link, _linked
    if record_type == "account":
        return {"contacts": many(session, "contact", Contact.account_id == row.id),
                "leads": many(session, "lead", Lead.account_id == row.id),
                "opportunities": many(session, "opportunity", Opportunity.account_id == row.id),
                "cases": many(session, "case", Case.account_id == row.id),
                "entitlements": many(session, "entitlement", Entitlement.account_id == row.id)}
    if record_type == "contact":
        return {"account": one(session, "account", row.account_id),
                "leads": many(session, "lead", Lead.contact_id == row.id),
                "opportunities": many(session, "opportunity", Opportunity.contact_id == row.id),
                "cases": many(session, "case", Case.contact_id == row.id),
                "entitlements": many(session, "entitlement", Entitlement.contact_id == row.id),
                "activities": many(session, "activity", Activity.regarding_type == "contact",
                                   Activity.regarding_id == row.id),
                "campaigns": many(session, "campaign", Campaign.id.in_(
                    select(CampaignMember.campaign_id).where(CampaignMember.record_type == "contact",
                                                             CampaignMember.record_id == row.id)))}
    if record_type == "lead":
        return {"campaign": one(session, "campaign", row.campaign_id),
                "account": one(session, "account", row.account_id),
                "contact": one(session, "contact", row.contact_id),
                "opportunities": many(session, "opportunity", Opportunity.lead_id == row.id)}
    if record_type == "opportunity":
        return {"account": one(session, "account", row.account_id),
                "contact": one(session, "contact", row.contact_id),
                "lead": one(session, "lead", row.lead_id),
                "campaign": one(session, "campaign", row.campaign_id)}
    if record_type == "case":
        return {"account": one(session, "account", row.account_id),
                "contact": one(session, "contact", row.contact_id),
                "entitlement": one(session, "entitlement", row.entitlement_id),
                "related_case": one(session, "case", row.related_case_id),
                "activities": many(session, "activity", Activity.regarding_type == "case",
                                   Activity.regarding_id == row.id)}
    if record_type == "campaign":
        return {"leads": many(session, "lead", Lead.campaign_id == row.id),
                "opportunities": many(session, "opportunity", Opportunity.campaign_id == row.id)}
    if record_type == "activity":
        regarding = row.regarding_type if row.regarding_type in MODELS else None
        return {"regarding": one(session, regarding, row.regarding_id) if regarding else None}
    if record_type == "entitlement":
        return {"account": one(session, "account", row.account_id),
                "contact": one(session, "contact", row.contact_id),
                "cases": many(session, "case", Case.entitlement_id == row.id)}
    return {}


# -- the raw items behind a record ----------------------------------------------------------------

def record_items(session: Session, record_type: str, record_id: int, *, limit: int = DEFAULT_PAGE,
                 cursor: str | None = None) -> dict[str, Any]:
    """The raw items that made or changed a record, newest first: those whose outcome names it,
    its origin item, the items merged into it (merge_log) and those that made a record merged
    away into it. Paged by item id."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidItem("limit", f"limit must be between 1 and {MAX_PAGE}")
    row = session.get(MODELS[record_type], record_id)
    if row is None:
        raise NotFound(record_type, record_id)
    merged_away = select(MergeLog.merged_id).where(MergeLog.record_type == record_type,
                                                   MergeLog.record_id == record_id,
                                                   MergeLog.merged_id.is_not(None))
    sources = [
        select(RawItem.id).where(RawItem.record_type == record_type, RawItem.record_id == record_id),
        select(MergeLog.raw_item_id.label("id")).where(MergeLog.record_type == record_type,
                                                       MergeLog.record_id == record_id,
                                                       MergeLog.raw_item_id.is_not(None)),
        select(RawItem.id).where(RawItem.record_type == record_type, RawItem.record_id.in_(merged_away)),
    ]
    origin = getattr(row, "origin_item_id", None) or getattr(row, "raw_item_id", None)
    if origin:
        sources.append(select(RawItem.id).where(RawItem.id == origin))
    ids = union(*sources).subquery()
    fingerprint = f"items:{record_type}:{record_id}"
    clauses = [RawItem.id.in_(select(ids.c.id))]
    if cursor:
        _, after = decode_cursor(cursor, fingerprint)
        clauses.append(RawItem.id < after)
    items = session.scalars(select(RawItem).where(*clauses).order_by(RawItem.id.desc()).limit(limit + 1)).all()
    more = len(items) > limit
    items = items[:limit]
    changed = set(session.scalars(select(MergeLog.raw_item_id).where(
        MergeLog.record_type == record_type, MergeLog.record_id == record_id,
        MergeLog.raw_item_id.in_([i.id for i in items]))))
    return {"items": [_item(i, record_type, record_id, origin, changed) for i in items],
            "next_cursor": encode_cursor(items[-1].received_at, items[-1].id, fingerprint) if more else None}


def _item(item: RawItem, record_type: str, record_id: int, origin: int | None, changed: set[int]) -> dict:
    if item.id == origin or (item.outcome == "created" and item.record_id == record_id
                             and item.record_type == record_type):
        how = "created"
    elif item.id in changed or item.record_id == record_id:
        how = "changed"
    else:
        how = "made a record merged into it"
    return {"id": item.id, "source": item.source, "external_id": item.external_id, "kind": item.kind,
            "received_at": item.received_at, "state": item.state, "outcome": item.outcome,
            "reason": item.outcome_reason, "how": how, "payload": item.payload}


def plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO text, decimals as text (no float rounding of money)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def labelled(value: Any, label) -> Any:
    """Every dict naming a record_type gets its display name beside it ('company' for account)."""
    if isinstance(value, dict):
        out = {k: labelled(v, label) for k, v in value.items()}
        if isinstance(value.get("record_type"), str):
            out["record_label"] = label(value["record_type"])
        return out
    if isinstance(value, list):
        return [labelled(v, label) for v in value]
    return value


ITEM_STATES = ("pending", "processing", "done", "failed")
ITEM_OUTCOMES = ("created", "merged", "appended", "review", "rejected", "ignored")
# An import job's counts by their names (importjobs.job_counts): the outcome and what tells them apart
OUTCOME_KINDS = {
    "suppressed": lambda: and_(RawItem.outcome == "ignored", RawItem.outcome_reason.like("suppressed%")),
    "duplicate_in_file": lambda: and_(RawItem.outcome == "merged", RawItem.outcome_reason.like("duplicate of row%")),
    "linked_contact": lambda: and_(RawItem.outcome == "merged", RawItem.record_type == "contact"),
}
ITEM_OUTCOME_NAMES = (*ITEM_OUTCOMES, *OUTCOME_KINDS)


def list_items(session: Session, *, outcome: str | None = None, state: str | None = None,
               source: str | None = None, job: int | None = None, after_id: int = 0,
               limit: int = DEFAULT_PAGE) -> dict[str, Any]:
    """Raw items by outcome or state, source and import job, oldest first (a work queue: those
    waiting for a decision, `outcome='review'`, or set aside, `state='failed'`; or what became of
    each row of an import, `job=N`), each with who sent it and what it says. The next page starts
    after `next_after_id`. Asked nothing, it lists what waits for a person: the items in review."""
    if outcome is None and state is None and source is None and job is None:
        outcome = "review"
    if outcome is not None and outcome not in ITEM_OUTCOME_NAMES:
        raise InvalidItem("outcome", f"{outcome!r} is not an outcome; expected one of {', '.join(ITEM_OUTCOME_NAMES)}")
    if state is not None and state not in ITEM_STATES:
        raise InvalidItem("state", f"{state!r} is not a state; expected one of {', '.join(ITEM_STATES)}")
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(RawItem).where(RawItem.id > after_id).order_by(RawItem.id).limit(limit + 1)
    if outcome in OUTCOME_KINDS:  # a job's count by its name: 'suppressed' rows are ignored ones, said so
        stmt = stmt.where(OUTCOME_KINDS[outcome]())
    elif outcome is not None:
        stmt = stmt.where(RawItem.outcome == outcome)
    if state is not None:
        stmt = stmt.where(RawItem.state == state)
    if source is not None:
        stmt = stmt.where(RawItem.source == source)
    if job is not None:
        stmt = stmt.where(RawItem.import_job_id == job)
    rows = session.scalars(stmt).all()
    items = [{"id": row.id, "source": row.source, "kind": row.kind, "received_at": row.received_at,
              "state": row.state, "outcome": row.outcome, "reason": row.outcome_reason,
              "last_error": row.last_error, "record_type": row.record_type, "record_id": row.record_id,
              **item_gist(row.payload)} for row in rows[:limit]]
    return {"items": items, "next_after_id": items[-1]["id"] if len(rows) > limit else None,
            "asked": {name: value for name, value in (("outcome", outcome), ("state", state), ("source", source),
                                                      ("job", job)) if value is not None}}


def item_gist(payload: Any) -> dict[str, str | None]:
    """Who sent an item and the first words of what it says, from whatever kind it is (a mail,
    a form, a post, a list row), for a person choosing what to look at."""
    if not isinstance(payload, Mapping):
        return {"sender": None, "says": None}
    fields = payload.get("fields") if isinstance(payload.get("fields"), Mapping) else {}

    def first(*values: Any) -> str | None:
        for value in values:
            if isinstance(value, str) and value.strip():  # printable only: no terminal's escape codes
                return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())[:120] or None
        return None

    name = first(payload.get("from_name"), payload.get("author_name"), fields.get("full_name"),
                 " ".join(str(fields.get(key) or "") for key in ("first_name", "last_name")))
    handle = payload.get("handle")
    address = first(payload.get("from_email"), f"@{handle.lstrip('@')}" if isinstance(handle, str) and handle else None,
                    fields.get("email"), fields.get("phone"))
    sender = f"{name} <{address}>" if name and address else name or address
    return {"sender": sender, "says": first(payload.get("subject"), fields.get("subject"), payload.get("text"),
                                            fields.get("message"), fields.get("topic"))}
