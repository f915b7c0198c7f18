"""Which existing case a message continues: by its In-Reply-To and References against stored
Message-IDs, then by a case number in its subject ('[CAS-01001]'), then by the same subject
(without Re:/Fwd:/SV:/VB:/AW: prefixes) from the same sender within a window. A case resolved
longer ago than the reopen window is not continued: the message opens a new case that names
the old one; resolved within the window, it is reopened.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_ingest.models import Activity, Case, utcnow

from .identity import lookup_keys
from .matching import fold

TICKET = re.compile(r"\bCAS-(\d{5,12})\b", re.IGNORECASE)
# Reply and forward prefixes of mail programs in Swedish, English and the languages around them
# (Italian 'R:', Polish 'Odp:', Finnish 'VL:'), and the tags mail gateways put first ('EXTERNAL:')
_PREFIX = re.compile(r"^\s*((re|fw|fwd|sv|vb|vs|aw|wg|tr|antw|antwort|ang|r|rif|odp|pd|res|enc|doorst|vl|vast|ynt"
                     r"|external|extern|ext)\s*(\[\d+\])?\s*[:：]\s*)+", re.IGNORECASE)
_TAGS = re.compile(r"\[[^\]]{0,40}\]")


@dataclass(frozen=True)
class ThreadingConfig:
    subject_window_days: float = 14.0  # same subject and sender within this: the same case
    reopen_window_days: float = 30.0  # a reply to a case resolved longer ago opens a new one


@dataclass(frozen=True)
class Parent:
    """The case an item continues (`case_id`), or ('item', id) of an earlier item of its batch
    that opens it; `after_resolved`: the case was resolved too long ago, open a new one
    naming it; `reopen`: resolved within the window, reopen it."""

    case_id: int | None = None
    item: int | None = None
    after_resolved: bool = False
    reopen: bool = False
    how: str = "reply"  # reply | ticket | subject


def normalized_subject(subject: str | None) -> str:
    """'Re: SV: [CAS-01001] Order 12 late ' -> 'order 12 late'."""
    text = _PREFIX.sub("", subject or "")
    text = _PREFIX.sub("", _TAGS.sub(" ", text))
    return fold(text)


def tickets_in(subject: str | None) -> list[str]:
    return [f"CAS-{int(number):05d}" for number in TICKET.findall(subject or "")]


def thread_parents(session: Session, plans: Iterable[Any], config: ThreadingConfig | None = None,
                   *, cases_only: bool = True) -> dict[int, Parent]:
    """Item id -> the case it continues, for the plans that make cases (`cases_only=False`: for
    any plan, as routing asks before it knows what an item becomes)."""
    config = config or ThreadingConfig()
    plans = [p for p in plans if p.case is not None or not cases_only]
    if not plans:
        return {}
    parents: dict[int, Parent] = {}
    # 1. In-Reply-To and References, against stored messages and earlier items of the batch
    in_batch = {p.activity.get("message_id"): p.item_id for p in plans if p.activity and p.activity.get("message_id")}
    refs = sorted({ref for p in plans for ref in p.thread_refs})
    stored: dict[str, int] = {}
    for start in range(0, len(refs), 1000):
        stored.update(session.execute(select(Activity.message_id, Activity.regarding_id).where(
            Activity.regarding_type == "case", Activity.message_id.in_(refs[start:start + 1000]))).all())
    for plan in plans:
        for ref in plan.thread_refs:
            if ref in stored:
                parents[plan.item_id] = Parent(case_id=stored[ref])
                break
            if in_batch.get(ref) not in (None, plan.item_id):
                parents[plan.item_id] = Parent(item=in_batch[ref])
                break
    # 2. a case number in the subject
    wanted = {plan.item_id: tickets_in(_subject(plan)) for plan in plans if plan.item_id not in parents}
    numbers = sorted({t for ts in wanted.values() for t in ts})
    by_ticket = dict(session.execute(select(Case.ticket_number, Case.id).where(Case.ticket_number.in_(numbers)))
                     .all()) if numbers else {}
    for item_id, tickets in wanted.items():
        found = next((by_ticket[t] for t in tickets if t in by_ticket), None)
        if found is not None:
            parents[item_id] = Parent(case_id=found, how="ticket")
    # 3. the same subject from the same sender, recently
    rest = [p for p in plans if p.item_id not in parents and p.person is not None and normalized_subject(_subject(p))]
    if rest:
        parents.update(_by_subject(session, rest, config))
    # a resolved case: reopened within the window, else a new case naming it
    return _mind_resolved(session, parents, config)


def _subject(plan: Any) -> str | None:
    return (plan.activity or {}).get("subject") or (plan.case or {}).get("title")


def _by_subject(session: Session, plans: list[Any], config: ThreadingConfig) -> dict[int, Parent]:
    keys = {(("contact", kind, value)): p.item_id for p in plans for kind, value in p.person.keys
            if kind in ("email", "handle")}
    owners = lookup_keys(session, set(keys))
    contact_of = {}
    for key, contact_id in owners.items():
        contact_of.setdefault(keys[key], contact_id)
    if not contact_of:
        return {}
    since = utcnow() - timedelta(days=config.subject_window_days)
    cases = session.execute(select(Case.id, Case.contact_id, Case.title).where(
        Case.contact_id.in_(sorted(set(contact_of.values()))), Case.created_at >= since).order_by(Case.id)).all()
    newest: dict[tuple[int, str], int] = {}
    for case_id, contact_id, title in cases:
        newest[(contact_id, normalized_subject(title))] = case_id
    found = {}
    for plan in plans:
        contact_id = contact_of.get(plan.item_id)
        case_id = newest.get((contact_id, normalized_subject(_subject(plan)))) if contact_id else None
        if case_id is not None:
            found[plan.item_id] = Parent(case_id=case_id, how="subject")
    return found


def _mind_resolved(session: Session, parents: dict[int, Parent], config: ThreadingConfig) -> dict[int, Parent]:
    ids = sorted({p.case_id for p in parents.values() if p.case_id is not None})
    if not ids:
        return parents
    states: Mapping[int, tuple[str, datetime | None]] = {
        row.id: (row.status, row.resolved_at)
        for row in session.execute(select(Case.id, Case.status, Case.resolved_at).where(Case.id.in_(ids)))}
    limit = utcnow() - timedelta(days=config.reopen_window_days)
    result = {}
    for item_id, parent in parents.items():
        status, resolved_at = states.get(parent.case_id, ("active", None)) if parent.case_id else ("active", None)
        if status in ("resolved", "cancelled", "closed"):
            late = resolved_at is None or resolved_at < limit
            parent = Parent(parent.case_id, parent.item, after_resolved=late, reopen=not late, how=parent.how)
        result[item_id] = parent
    return result
