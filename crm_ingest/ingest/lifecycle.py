"""Lifecycle actions on records, as Dynamics 365 has them: qualify, disqualify or close a lead;
resolve and reopen a case; assign a lead or a case to a queue.

Each takes a session the caller opened and commits nothing. The lead or case is locked first
(FOR NO KEY UPDATE on PostgreSQL, the write lock of BEGIN IMMEDIATE on SQLite), so two actions
on one record take turns and the second sees what the first did: a lead qualified twice at once
makes one account, one contact and one opportunity. Qualification finds its account and contact
the way ingestion does (identity keys, then the look-alike rules), and a record it creates gets
its keys, so later ingestion finds it.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_ingest.models import (
    Activity,
    Case,
    Contact,
    Entitlement,
    IdentityKey,
    Lead,
    Opportunity,
    utcnow,
)

from .accounts import SCOPE as ACCOUNT_SCOPE
from .accounts import _create as create_accounts
from .accounts import account_keys
from .duplicates import (
    NewPerson,
    flag_possible_duplicate_accounts,
    flag_possible_duplicates,
)
from .errors import InvalidItem, InvalidState, NotFound
from .identity import lookup_keys, resolve_people
from .matching import address_keys
from .normalize import clean_text, normalize_email, normalize_phone
from .plan import ItemPlan, PersonPlan
from .settings import Settings

# A lead's status reason (Dynamics' statuscode) and the state (statecode) it belongs to.
LEAD_OPEN = ("new", "contacted")
LEAD_QUALIFIED = "qualified"
LEAD_DISQUALIFIED = ("lost", "cannot_contact", "no_longer_interested", "canceled")
# A case's status: active, or closed by a resolution or a cancellation (`threads` reads these).
CASE_ACTIVE = "active"
CASE_CLOSED = ("resolved", "cancelled", "closed")
QUEUED = {"lead": Lead, "case": Case}  # record types that sit in a queue
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "mobile_phone", "job_title", "company_name",
                  "street", "postal_code", "city", "state_or_province", "country")


def lead_state(status: str | None) -> str:
    """open, qualified or disqualified (Dynamics' statecode) of a lead's status reason."""
    if status == LEAD_QUALIFIED:
        return "qualified"
    return "disqualified" if status in LEAD_DISQUALIFIED else "open"


# -- leads --------------------------------------------------------------------------------------

def qualify(session: Session, settings: Settings, lead_id: int, account: bool = True, contact: bool = True,
            opportunity: bool = True) -> dict[str, Any]:
    """Dynamics' QualifyLead: find or create the lead's contact (by its email, phone or handle)
    and account (by its work domain or company name), create an opportunity with the lead's
    topic, campaign and source, link them to the lead and close it as qualified. A lead that is
    qualified already gets its links back and nothing is created."""
    lead = _locked(session, Lead, "lead", lead_id)
    state = lead_state(lead.status)
    if state == "qualified":
        return _qualified(session, lead, already=True)
    if state == "disqualified":
        raise InvalidState(f"lead {lead_id} is disqualified ({lead.status}): it cannot be qualified")
    links: dict[str, dict[str, Any] | None] = {"account": None, "contact": None, "opportunity": None}
    if contact:
        links["contact"] = _contact_for(session, settings, lead)
    if account:
        links["account"] = _account_for(session, settings, lead,
                                         links["contact"]["id"] if links["contact"] else None)
    contact_id = links["contact"]["id"] if links["contact"] else None
    account_id = links["account"]["id"] if links["account"] else None
    if contact_id is not None and account_id is not None:  # a contact's company, unless it has one
        session.execute(update(Contact).where(Contact.id == contact_id, Contact.account_id.is_(None))
                        .values(account_id=account_id, updated_at=utcnow()))
    if opportunity:
        row = Opportunity(name=_opportunity_name(lead), status="open", account_id=account_id,
                          contact_id=contact_id, lead_id=lead.id, campaign_id=lead.campaign_id,
                          source=lead.source, lead_source=lead.lead_source, origin_item_id=lead.origin_item_id)
        session.add(row)
        session.flush()
        links["opportunity"] = {"id": row.id, "created": True}
    lead.status, lead.account_id, lead.contact_id, lead.updated_at = LEAD_QUALIFIED, account_id, contact_id, utcnow()
    session.flush()
    return {"lead": lead.id, "status": lead.status, "state": "qualified", "already_qualified": False, **links}


def close_lead(session: Session, lead_id: int, status: str = "canceled", *, field: str = "status") -> dict[str, Any]:
    """Close an open lead without qualifying it, with a disqualified status reason (canceled:
    made by mistake or a duplicate). Closing a closed lead again only changes its reason.
    `field`: what the caller called the reason, named when it is not one."""
    status = _closing_status(status, field)
    lead = _locked(session, Lead, "lead", lead_id)
    if lead_state(lead.status) == "qualified":
        raise InvalidState(f"lead {lead_id} is qualified: it cannot be closed as {status}")
    changed = lead.status != status
    if changed:
        lead.status, lead.updated_at = status, utcnow()
        session.flush()
    return {"lead": lead.id, "status": lead.status, "state": "disqualified", "changed": changed}


def disqualify(session: Session, lead_id: int, reason: str) -> dict[str, Any]:
    """Dynamics' disqualify: close the lead with the reason it will not become business (lost,
    cannot_contact, no_longer_interested, canceled)."""
    return close_lead(session, lead_id, reason, field="reason")


def _closing_status(text: Any, field: str) -> str:
    key = "_".join(str(text or "").strip().lower().replace("-", " ").split())
    key = {"cancelled": "canceled"}.get(key, key)
    if key not in LEAD_DISQUALIFIED:
        raise InvalidItem(field, f"{text!r} is not a reason to close a lead; expected one of "
                                    f"{', '.join(LEAD_DISQUALIFIED)}")
    return key


def _qualified(session: Session, lead: Lead, already: bool) -> dict[str, Any]:
    opportunity = session.scalar(select(Opportunity.id).where(Opportunity.lead_id == lead.id)
                                 .order_by(Opportunity.id.desc()).limit(1))
    return {"lead": lead.id, "status": lead.status, "state": "qualified", "already_qualified": already,
            "account": {"id": lead.account_id, "created": False} if lead.account_id else None,
            "contact": {"id": lead.contact_id, "created": False} if lead.contact_id else None,
            "opportunity": {"id": opportunity, "created": False} if opportunity else None}


def _contact_for(session: Session, settings: Settings, lead: Lead) -> dict[str, Any]:
    """The lead's person among contacts, through the pipeline's identity resolution: an existing
    contact with one of its contact points (a shared one only when the names agree) is reused
    and gains the lead's values where it has blanks; otherwise a contact is created with the keys,
    and compared with its look-alikes like any new contact."""
    fields = {name: getattr(lead, name) for name in CONTACT_FIELDS}
    keys = _person_keys(session, settings, lead)
    plan = ItemPlan(lead.origin_item_id, "contact", person=PersonPlan("contact", fields, keys))
    resolved, _ = resolve_people(session, [plan], {lead.origin_item_id: {"source": lead.source}})
    person = resolved[lead.origin_item_id]
    if not person.created:
        owners = lookup_keys(session, {("contact", kind, value) for kind, value in keys})
        found_by = next((kind for kind, value in keys if owners.get(("contact", kind, value)) == person.record_id),
                        None)
        return {"id": person.record_id, "created": False, "found_by": found_by}
    merged = flag_possible_duplicates(session, [NewPerson("contact", person.record_id, fields)],
                                      settings.matching).merged
    if ("contact", person.record_id) in merged:  # the rules call it an older contact: that one it is
        return {"id": merged[("contact", person.record_id)].survivor_id, "created": False, "found_by": "look-alike"}
    return {"id": person.record_id, "created": True}


def _person_keys(session: Session, settings: Settings, lead: Lead) -> list[tuple[str, str]]:
    """The lead's identity keys as ingestion wrote them (email, the mailbox behind it, phone,
    social handles), strongest first, and those its current values give."""
    order = {"email": 0, "email_canonical": 1, "phone": 2, "handle": 3}
    stored = session.execute(select(IdentityKey.kind, IdentityKey.value)
                             .where(IdentityKey.scope == "lead", IdentityKey.record_id == lead.id)).all()
    keys = [(kind, value) for kind, value in stored]
    if lead.email:
        try:
            _, email_key = normalize_email(lead.email)
            keys += address_keys(email_key)
        except InvalidItem:
            pass
    for number in (lead.phone, lead.mobile_phone):
        if number:
            try:
                keys.append(("phone", normalize_phone(number, settings.region)))
            except InvalidItem:
                pass
    return sorted(dict.fromkeys(keys), key=lambda key: order.get(key[0], len(order)))


def _account_for(session: Session, settings: Settings, lead: Lead, contact_id: int | None) -> dict[str, Any] | None:
    """The lead's company as ingestion finds it (accounts.py): by the domain of a work email,
    then by the normalized company name; else the account the reused contact belongs to; else
    a new account (with its keys, compared with look-alike accounts) when the lead names a
    company. None when it names none and nothing is found: a domain alone makes no account."""
    keys = account_keys(lead.company_name, lead.email)
    owners = lookup_keys(session, {(ACCOUNT_SCOPE, kind, value) for kind, value in keys})
    for kind, value in keys:
        if (ACCOUNT_SCOPE, kind, value) in owners:
            return {"id": owners[(ACCOUNT_SCOPE, kind, value)], "created": False, "found_by": kind}
    if contact_id is not None:
        current = session.scalar(select(Contact.account_id).where(Contact.id == contact_id))
        if current is not None:
            return {"id": current, "created": False, "found_by": "contact"}
    company = dict(keys).get("company")
    if company is None:
        return None
    domain = dict(keys).get("domain")
    linked: dict[int, int] = {}
    new = {company: {"name": lead.company_name.strip()[:300], "website_domain": domain,
                     "keys": set(keys), "contacts": [lead.id]}}
    created = create_accounts(session, new, linked)  # a concurrent worker's account wins a race
    account_id = linked[lead.id]
    if not created:
        return {"id": account_id, "created": False, "found_by": "company"}
    merged = flag_possible_duplicate_accounts(session, [NewPerson("account", account_id, fields)
                                                        for _, fields in created], settings.matching).merged
    if ("account", account_id) in merged:
        return {"id": merged[("account", account_id)].survivor_id, "created": False, "found_by": "look-alike"}
    return {"id": account_id, "created": True}


def _opportunity_name(lead: Lead) -> str:
    person = " ".join(part for part in (lead.first_name, lead.last_name) if part)
    return (lead.topic or lead.company_name or person or lead.email or f"Lead {lead.id}")[:300]


# -- cases --------------------------------------------------------------------------------------

def resolve_case(session: Session, case_id: int, resolution: str | None = None,
                 hours: float | Decimal | str | None = None) -> dict[str, Any]:
    """Resolve an active case: resolved now (the reopen window of a reply counts from this), with
    the resolution as an activity on it, as Dynamics' case resolution is. `hours`, the time the
    case took, is kept on the resolution and taken from the hours left on the case's
    entitlement when that counts hours (as Dynamics decrements a time-based entitlement at
    resolution); it may go below zero, which shows the overuse."""
    spent = _hours(hours)
    case = _locked(session, Case, "case", case_id)
    if case.status != CASE_ACTIVE:
        raise InvalidState(f"case {_ticket(case)} is {case.status}: only an active case can be resolved")
    now = utcnow()
    subject = clean_text(resolution, 998) or "Resolved"
    case.status, case.resolved_at, case.updated_at = "resolved", now, now
    session.add(Activity(kind="resolution", regarding_type="case", regarding_id=case.id, subject=subject,
                         body=f"time spent: {spent} h" if spent is not None else None, occurred_at=now))
    left = None
    if spent is not None and case.entitlement_id is not None:
        entitlement = session.get(Entitlement, case.entitlement_id, with_for_update=True)
        if entitlement is not None and entitlement.hours_remaining is not None:
            entitlement.hours_remaining = Decimal(entitlement.hours_remaining) - spent
            left = entitlement.hours_remaining
    session.flush()
    return {"case": case.id, "ticket_number": case.ticket_number, "status": case.status,
            "resolved_at": case.resolved_at, "resolution": subject,
            "hours": None if spent is None else float(spent), "entitlement_id": case.entitlement_id,
            "entitlement_hours_remaining": None if left is None else float(left)}


def _hours(value: float | Decimal | str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        hours = Decimal(str(value))
    except ArithmeticError:
        raise InvalidItem("hours", f"{value!r} is not a number of hours") from None
    if not hours.is_finite() or hours < 0 or hours > 10_000:
        raise InvalidItem("hours", f"{value!r}: hours are from 0 to 10000")
    return hours.quantize(Decimal("0.01"))


def reopen_case(session: Session, case_id: int) -> dict[str, Any]:
    """Reactivate a resolved or cancelled case, as a reply within the reopen window does."""
    case = _locked(session, Case, "case", case_id)
    if case.status not in CASE_CLOSED:
        raise InvalidState(f"case {_ticket(case)} is {case.status}: there is nothing to reopen")
    case.status, case.resolved_at, case.updated_at = CASE_ACTIVE, None, utcnow()
    session.flush()
    return {"case": case.id, "ticket_number": case.ticket_number, "status": case.status}


def _ticket(case: Case) -> str:
    return case.ticket_number or str(case.id)


# -- queues -------------------------------------------------------------------------------------

def assign(session: Session, record_type: str, record_id: int, queue: str) -> dict[str, Any]:
    """Put a lead or a case in a queue (a person's routing decision; a source's or a rule's
    queue is set by ingestion)."""
    model = QUEUED.get(record_type)
    if model is None:
        raise InvalidItem("record_type", f"{record_type!r} does not sit in a queue; expected one of "
                                         f"{', '.join(QUEUED)}")
    name = clean_text(queue, 1000)
    if not name:
        raise InvalidItem("queue", "a queue name is required")
    if len(name) > 100:
        raise InvalidItem("queue", "a queue name is at most 100 characters")
    row = _locked(session, model, record_type, record_id)
    previous = row.queue
    if previous != name:
        row.queue, row.updated_at = name, utcnow()
        session.flush()
    return {"record_type": record_type, "id": record_id, "queue": name, "previous_queue": previous}


# -- shared -------------------------------------------------------------------------------------

def _locked(session: Session, model, record_type: str, record_id: int):
    """The row, locked for this transaction (read again, never a stale copy); NotFound if none."""
    row = session.execute(select(model).where(model.id == record_id).with_for_update(key_share=True)
                          .execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        raise NotFound(record_type, record_id)
    return row


def with_labels(result: dict[str, Any], label: Callable[[str], str]) -> dict[str, Any]:
    """The result with each record's display name ([labels] in ingest.toml) next to its type."""
    labelled = dict(result)
    for record_type in ("lead", "account", "contact", "opportunity", "case"):
        if isinstance(result.get(record_type), dict):
            labelled[record_type] = {**result[record_type], "record_label": label(record_type)}
    if "record_type" in result:
        labelled["record_label"] = label(result["record_type"])
    labelled["labels"] = {t: label(t) for t in ("lead", "account", "contact", "opportunity", "case")}
    return labelled
