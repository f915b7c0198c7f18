"""What a new case needs from the database: the customer's account, their other active cases,
their newest active case (for 'append' rules), and the entitlement the case is opened under.

An entitlement (Dynamics' term) belongs to a contact or an account, runs in a period and counts
cases and/or hours; a case opened while the customer has a valid one takes one case from it
(decremented in the same transaction, only while some remain). A rule with
`require_entitlement = true` sends a case without a valid entitlement to review instead.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from crm_ingest.models import Case, Contact, Entitlement, utcnow

ACTIVE = "active"
OTHER_CASES_SHOWN = 20


def accounts_of(session: Session, contact_ids: Iterable[int]) -> dict[int, int]:
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    return dict(session.execute(select(Contact.id, Contact.account_id)
                                .where(Contact.id.in_(ids), Contact.account_id.is_not(None))).all())


def active_cases(session: Session, contact_ids: set[int], account_ids: set[int]) -> dict[int, list[str]]:
    """contact id -> ticket numbers of the active cases of the contact or its account."""
    if not contact_ids:
        return {}
    condition = Case.contact_id.in_(sorted(contact_ids))
    if account_ids:
        condition = or_(condition, Case.account_id.in_(sorted(account_ids)))
    rows = session.execute(select(Case.contact_id, Case.account_id, Case.ticket_number)
                           .where(Case.status == ACTIVE, condition).order_by(Case.id.desc())).all()
    accounts = accounts_of(session, contact_ids)
    by_contact: dict[int, list[str]] = defaultdict(list)
    for contact_id in contact_ids:
        account_id = accounts.get(contact_id)
        for case_contact, case_account, ticket in rows:
            if case_contact == contact_id or (account_id is not None and case_account == account_id):
                if len(by_contact[contact_id]) < OTHER_CASES_SHOWN:
                    by_contact[contact_id].append(ticket)
    return dict(by_contact)


def newest_active_case(session: Session, contact_ids: set[int]) -> dict[int, int]:
    if not contact_ids:
        return {}
    newest: dict[int, int] = {}
    for contact_id, case_id in session.execute(
            select(Case.contact_id, Case.id).where(Case.contact_id.in_(sorted(contact_ids)), Case.status == ACTIVE)
            .order_by(Case.id)):
        newest[contact_id] = case_id
    return newest


def entitlements(session: Session, plans: list[Any], people: Mapping[int, Any]
                 ) -> tuple[dict[int, int], dict[int, str]]:
    """For the new cases: item id -> the entitlement each is opened under (one case taken from
    it), and item id -> why a case that requires one was refused."""
    if not plans:
        return {}, {}
    contacts = {people[p.item_id].record_id for p in plans}
    accounts = accounts_of(session, contacts)
    now = utcnow()
    valid = and_(Entitlement.state == "active",
                 or_(Entitlement.starts_at.is_(None), Entitlement.starts_at <= now),
                 or_(Entitlement.ends_at.is_(None), Entitlement.ends_at >= now),
                 or_(Entitlement.cases_remaining.is_(None), Entitlement.cases_remaining > 0),
                 or_(Entitlement.hours_remaining.is_(None), Entitlement.hours_remaining > 0))
    owners = or_(Entitlement.contact_id.in_(sorted(contacts)),
                 Entitlement.account_id.in_(sorted(set(accounts.values()) or {-1})))
    found = session.execute(select(Entitlement.id, Entitlement.contact_id, Entitlement.account_id)
                            .where(valid, owners).order_by(Entitlement.ends_at.is_(None), Entitlement.ends_at,
                                                           Entitlement.id)).all()
    entitled: dict[int, int] = {}
    refused: dict[int, str] = {}
    for plan in plans:
        contact_id = people[plan.item_id].record_id
        account_id = accounts.get(contact_id)
        # the contact's own first, then the account's; the one ending soonest first
        candidates = [row.id for row in found if row.contact_id == contact_id] + \
                     [row.id for row in found if account_id is not None and row.account_id == account_id
                      and row.contact_id is None]
        for entitlement_id in candidates:
            taken = session.execute(
                update(Entitlement).where(Entitlement.id == entitlement_id,
                                          or_(Entitlement.cases_remaining.is_(None),
                                              Entitlement.cases_remaining > 0))
                .values(cases_remaining=Entitlement.cases_remaining - 1)).rowcount
            if taken:
                entitled[plan.item_id] = entitlement_id
                break
        if plan.item_id not in entitled and plan.require_entitlement:
            whose = f"contact {contact_id}" + (f" (account {account_id})" if account_id else "")
            refused[plan.item_id] = f"a case needs a valid entitlement and {whose} has none"
    return entitled, refused
