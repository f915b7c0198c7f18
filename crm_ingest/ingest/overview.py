"""The customer's picture: an account (or a contact) with its people, open leads and
opportunities, active cases with their SLA time left and entitlement, recent activities across
channels, and where each record came from. Read-only; the edges open the session."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_ingest.models import utcnow
from crm_ingest.models.records import (
    CASE_PRIORITY,
    Account,
    Activity,
    Case,
    Contact,
    Entitlement,
    Lead,
    Opportunity,
)

from .errors import NotFound
from .lifecycle import CASE_ACTIVE, LEAD_OPEN
from .query import display_name

RECENT_ACTIVITIES = 20
PRIORITY_NAMES = {value: name for name, value in CASE_PRIORITY.items()}


def account_overview(session: Session, account_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("account", account_id)
    contacts = session.scalars(select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)).all()
    contact_ids = [c.id for c in contacts]
    return _picture(session, "account", account, contacts, account_ids=[account_id], contact_ids=contact_ids,
                    now=now or utcnow())


def contact_overview(session: Session, contact_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    account = session.get(Account, contact.account_id) if contact.account_id else None
    picture = _picture(session, "contact", contact, [], account_ids=[], contact_ids=[contact_id], now=now or utcnow())
    picture["account"] = _entry("account", account) if account else None
    return picture


def _picture(session: Session, record_type: str, subject: Any, contacts: list[Contact], *,
             account_ids: list[int], contact_ids: list[int], now: datetime) -> dict[str, Any]:
    def of(model, *extra):
        """Rows of the model tied to the account or its contacts."""
        ties = [model.account_id.in_(account_ids)] if account_ids else []
        ties += [model.contact_id.in_(contact_ids)] if contact_ids else []
        return session.scalars(select(model).where(or_(*ties), *extra).order_by(model.id.desc())).all()

    all_leads = of(Lead)  # open ones are shown; a qualified one's form submission still is history
    leads = [r for r in all_leads if r.status in LEAD_OPEN]
    opportunities = of(Opportunity, Opportunity.status == "open")
    cases = of(Case, Case.status == CASE_ACTIVE)
    entitlements = {e.id: e for e in session.scalars(select(Entitlement).where(
        Entitlement.id.in_({c.entitlement_id for c in cases if c.entitlement_id})))}
    regarding = {"account": account_ids, "contact": contact_ids, "lead": [r.id for r in all_leads],
                 "opportunity": [r.id for r in opportunities], "case": [r.id for r in cases]}
    activities = _recent_activities(session, regarding)
    records = [subject, *contacts, *leads, *opportunities, *cases]
    return {
        "record_type": record_type,
        "id": subject.id,
        record_type: _entry(record_type, subject),
        "contacts": [_entry("contact", c, email=c.email, phone=c.phone, job_title=c.job_title) for c in contacts],
        "open_leads": [_entry("lead", r, status=r.status, topic=r.topic, campaign_id=r.campaign_id,
                              lead_source=r.lead_source, queue=r.queue) for r in leads],
        "open_opportunities": [_entry("opportunity", r, estimated_value=r.estimated_value,
                                      contact_id=r.contact_id, lead_id=r.lead_id) for r in opportunities],
        "open_pipeline_value": sum((r.estimated_value or Decimal(0) for r in opportunities), Decimal(0)),
        "active_cases": [_case(r, entitlements.get(r.entitlement_id), now) for r in cases],
        "recent_activities": [_activity(a) for a in activities],
        "sources": _sources(records),
        "as_of": now,
    }


def _entry(record_type: str, row: Any, **fields: Any) -> dict[str, Any]:
    """A record in the picture, with where it came from (its source and the item that made it)."""
    return {"record_type": record_type, "id": row.id, "name": display_name(record_type, row), **fields,
            "source": getattr(row, "source", None), "origin_item_id": getattr(row, "origin_item_id", None),
            "created_at": row.created_at}


def _case(case: Case, entitlement: Entitlement | None, now: datetime) -> dict[str, Any]:
    return _entry("case", case, ticket_number=case.ticket_number, title=case.title,
                  priority=PRIORITY_NAMES.get(case.priority, str(case.priority)),
                  priority_reason=case.priority_reason, queue=case.queue,
                  first_response_by=case.first_response_by, resolve_by=case.resolve_by,
                  sla=sla_left(case, now),
                  entitlement=None if entitlement is None else {
                      "id": entitlement.id, "name": entitlement.name, "state": entitlement.state,
                      "cases_remaining": entitlement.cases_remaining,
                      "hours_remaining": entitlement.hours_remaining, "ends_at": entitlement.ends_at})


def sla_left(case: Case, now: datetime) -> dict[str, Any]:
    """Seconds left to each SLA deadline (negative: breached by that much); None without one."""
    def left(deadline: datetime | None) -> int | None:
        return None if deadline is None else int((deadline - now).total_seconds())

    first, resolve = left(case.first_response_by), left(case.resolve_by)
    return {"first_response_seconds_left": first, "resolve_seconds_left": resolve,
            "breached": any(s is not None and s < 0 for s in (first, resolve))}


def _recent_activities(session: Session, regarding: dict[str, list[int]]) -> list[Activity]:
    ties = [(Activity.regarding_type == kind) & Activity.regarding_id.in_(ids)
            for kind, ids in regarding.items() if ids]
    if not ties:
        return []
    return list(session.scalars(select(Activity).where(or_(*ties))
                                .order_by(Activity.created_at.desc(), Activity.id.desc())
                                .limit(RECENT_ACTIVITIES)))


def _activity(activity: Activity) -> dict[str, Any]:
    return {"id": activity.id, "kind": activity.kind, "subject": activity.subject, "sender": activity.sender,
            "regarding_type": activity.regarding_type, "regarding_id": activity.regarding_id,
            "occurred_at": activity.occurred_at or activity.created_at, "raw_item_id": activity.raw_item_id}


def _sources(records: list[Any]) -> dict[str, int]:
    """How many of the records in the picture each source made."""
    counts: dict[str, int] = {}
    for row in records:
        name = getattr(row, "source", None) or "unknown"
        counts[name] = counts.get(name, 0) + 1
    return counts
