"""The pipeline: plan each item, resolve the people behind them, write records and outcomes.

`plan_items` is pure. `store` works on a session the caller opened and commits nothing: the
worker commits records and outcomes together, so an item's effects happen exactly once.
"""
from __future__ import annotations

import traceback
from datetime import timedelta
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from crm_ingest.models import (
    CASE_PRIORITY,
    Activity,
    Campaign,
    CampaignMember,
    Case,
    Contact,
    Lead,
    MergeLog,
    RawItem,
    Suppression,
    utcnow,
)
from crm_ingest.models.bulk import allocate_ids, array_literal, id_list, index_lookups, insert_rows

from .accounts import link_accounts
from .duplicates import AutoMerge, NewPerson, flag_possible_duplicates, link_open_leads
from .matching import same_person_names
from .normalize import split_name
from .identity import EMAIL_KINDS, lookup_keys, resolve_people
from .importjobs import suppress_entries
from .plan import ItemPlan, plan_item
from .routing import Route, decide, facts_of
from .threads import ThreadingConfig, thread_parents
from . import acknowledge, cases
from .settings import DEFAULT_SLA, Settings, SlaTerm, SourceConfig


PRIORITY_NAMES = {code: name for name, code in CASE_PRIORITY.items()}


@dataclass(frozen=True)
class Outcome:
    item_id: int
    outcome: str  # created, merged, appended, review, rejected, ignored
    record_type: str | None = None
    record_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ItemRef:
    """What the pipeline needs of a raw item."""

    id: int
    source: str
    kind: str
    payload: Mapping[str, Any]
    import_job_id: int | None = None
    attempts: int = 0  # attempts finished before this one


@dataclass(frozen=True)
class ImportOptions:
    """What a list import says about all of its rows."""

    job_id: int
    campaign_id: int | None = None
    consent: str | None = None
    upsert_by: str = "email"  # email | phone | none


def plan_items(items: Iterable[ItemRef], settings: Settings) -> tuple[list[ItemPlan], dict[int, str]]:
    """Plans for the items, and the error of each item whose planning raised (a poison item)."""
    plans, errors = [], {}
    for item in items:
        try:
            plans.append(plan_item(item.id, item.kind, item.payload, settings.source(item.source)))
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop its batch
            errors[item.id] = describe_error(exc)
    return plans, errors


def route_items(session: Session, items: Iterable[ItemRef], plans: list[ItemPlan],
                settings: Settings) -> list[ItemPlan]:
    """Each source's rules and default ('auto': the text classifier) decide what its items
    become: the plans are remade for the record type chosen, or become ignored or review.
    List-import rows keep their plans (an import says what its rows are)."""
    by_id = {item.id: item for item in items}
    todo = []
    for plan in plans:
        item = by_id[plan.item_id]
        source = settings.source(item.source)
        plan.queue = source.queue
        if plan.outcome is None and item.import_job_id is None and (source.rules or source.record_type == "auto"):
            todo.append((plan, item, source))
    if not todo:
        return plans
    replies = _replies_to_cases(session, [plan for plan, _, _ in todo], settings.threading)
    routed = {}
    for plan, item, source in [t for t in todo if t[0].item_id in replies]:  # a reply stays with its case
        routed[plan.item_id] = _apply_route(plan, item, source, Route("case", "case", reason="reply to an existing case"),
                                            True)
    todo = [t for t in todo if t[0].item_id not in replies]
    known = _known_senders(session, [plan for plan, _, _ in todo])
    facts = {item.id: facts_of(item.kind, item.payload) for _, item, _ in todo}
    classify = _batch_classifier([facts[item.id].text for _, item, source in todo
                                  if source.record_type == "auto" or _asks_classifier(source)])
    for plan, item, source in todo:
        route = decide(source.rules, source.record_type, facts[item.id], known_sender=plan.item_id in known,
                       classify=classify, min_confidence=source.min_confidence)
        routed[plan.item_id] = _apply_route(plan, item, source, route, plan.item_id in known)
    return [routed.get(plan.item_id, plan) for plan in plans]


def _replies_to_cases(session: Session, plans: list[ItemPlan], threading: ThreadingConfig | None) -> set[int]:
    """Items that continue a stored case (by headers, case number or subject): they stay cases."""
    return {item_id for item_id, parent in thread_parents(session, plans, threading, cases_only=False).items()
            if parent.case_id is not None}


def _asks_classifier(source: SourceConfig) -> bool:
    return any(rule.label is not None or rule.action == "classify" for rule in source.rules)


def _batch_classifier(texts: list[str]):
    """A `classify(text)` that answers from one batch prediction of the texts likely to need
    it (much faster than one at a time), and predicts any other text on demand."""
    from crm_ingest.classify.model import default_classifier  # numpy and scikit-learn only where needed

    if not texts:
        return lambda text: default_classifier().predict(text, explain=5)
    classifier = default_classifier()
    known = dict(zip(texts, classifier.predict_many(texts, explain=5)))
    return lambda text: known[text] if text in known else classifier.predict(text, explain=5)


def _known_senders(session: Session, plans: list[ItemPlan]) -> set[int]:
    """Items whose sender an existing contact or lead has (by address or handle)."""
    wanted = {(scope, kind, value) for plan in plans if plan.person is not None
              for kind, value in plan.person.keys if kind in ("email", "email_canonical", "handle")
              for scope in ("contact", "lead")}
    owners = lookup_keys(session, wanted)
    return {plan.item_id for plan in plans if plan.person is not None
            and any((scope, kind, value) in owners for kind, value in plan.person.keys
                    for scope in ("contact", "lead"))}


def _apply_route(plan: ItemPlan, item: ItemRef, source: SourceConfig, route, known: bool) -> ItemPlan:
    why = route.reason or (f"by {route.rule}" if route.rule else None)
    if route.action in ("ignore", "review"):
        return ItemPlan(plan.item_id, source.record_type, outcome="ignored" if route.action == "ignore" else "review",
                        reason=f"{route.rule}: {route.reason}" if route.rule and route.reason and
                        not route.reason.startswith(route.rule) else route.reason)
    if route.record_type == "case" and not known and not route.create_contact:
        return ItemPlan(plan.item_id, source.record_type, outcome="review",
                        reason=f"{route.rule or 'the source'}: the sender is unknown and no contact is "
                               "created for unknown senders")
    record_type = route.record_type or source.record_type
    if record_type != plan.record_type or source.record_type == "auto":
        plan = plan_item(item.id, item.kind, item.payload, replace(source, record_type=record_type))
        if plan.outcome is not None:
            return plan
    plan.queue = route.queue or source.queue
    plan.require_entitlement = route.require_entitlement
    plan.append_open = route.action == "append"
    if why and route.rule and not why.startswith(("by ", route.rule)):
        why = f"{route.rule}: {why}"
    plan.route_reason = why
    return plan


def describe_error(exc: BaseException) -> str:
    """The error in a line or a few, with where it was raised. A database error is the
    database's own words: SQLAlchemy's text adds the statement and its parameters, which hold
    rows' names, addresses and numbers (kept on items and jobs, shown by reports)."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    said = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return f"{type(exc).__name__}: {said}".strip()[:2000] + where


def store(session: Session, plans: list[ItemPlan], sources: Mapping[int, SourceConfig],
          imports: Mapping[int, ImportOptions] | None = None,
          rules: Mapping[str, Any] | None = None, sla: Mapping[str, SlaTerm] | None = None,
          threading: ThreadingConfig | None = None, external_ids: Mapping[int, str] | None = None
          ) -> list[Outcome]:
    """Write the records the plans call for; return one outcome per plan.

    `external_ids`: of items not in raw_items yet (an import chunk's rows are written there
    with their outcomes), for naming the row a duplicate repeats.

    `imports` maps item ids of list-import rows to their import's options. A lead or contact
    created by an item of a source that reviews duplicates (forms, mail, posts by default) is
    compared with its look-alikes (`rules`, per record pair), and a possible duplicate is
    queued for review; list rows match by their contact points only.
    """
    imports = imports or {}
    outcomes: dict[int, Outcome] = {}
    for plan in plans:
        if plan.item_id in imports:
            _apply_import(plan, imports[plan.item_id])
    _opted_out(session, plans, imports)
    for item_id, reason in suppressed(session, [p for p in plans if p.marketing and p.outcome is None]).items():
        outcomes[item_id] = Outcome(item_id, "ignored", reason=reason)
    for plan in plans:
        if plan.outcome is not None:
            outcomes[plan.item_id] = Outcome(plan.item_id, plan.outcome, reason=plan.reason)
    active = [plan for plan in plans if plan.item_id not in outcomes]

    campaigns = campaign_ids(session, {plan.campaign for plan in active if plan.campaign})
    defaults = {
        plan.item_id: {"source": sources[plan.item_id].name,
                       "lead_source": sources[plan.item_id].lead_source,
                       "campaign_id": imports[plan.item_id].campaign_id if plan.item_id in imports
                       and imports[plan.item_id].campaign_id else campaigns.get(plan.campaign)}
        for plan in active
    }
    parents, related = _thread_parents(session, active, threading)
    for plan in active:
        if plan.queue and plan.person is not None and plan.person.scope == "lead":
            plan.person.fields["queue"] = plan.queue
    people, merges = resolve_people(session, active, defaults)
    link_accounts(session, _contacts_of(active, people, imports), rules)  # before cases: entitlements are per account
    link_open_leads(session, [(people[plan.item_id].record_id, plan.person.fields) for plan in active
                              if plan.item_id in people and people[plan.item_id].created
                              and people[plan.item_id].record_type == "contact"])
    parents.update(_open_cases_to_append_to(session, active, parents, people))

    new_cases = [p for p in active if p.case is not None and p.item_id not in parents]
    entitled, refused = cases.entitlements(session, new_cases, people)
    for item_id, reason in refused.items():
        outcomes[item_id] = Outcome(item_id, "review", reason=reason)
    new_cases = [p for p in new_cases if p.item_id not in refused]
    case_ids = _insert_cases(session, new_cases, people, defaults, entitled, sla or DEFAULT_SLA, related)
    acknowledge.queue(session, [(case_ids[p.item_id], ticket_number(case_ids[p.item_id]), sources[p.item_id].name, p)
                                for p in new_cases if sources[p.item_id].acknowledge is not None
                                and p.activity and p.activity.get("kind") == "email"])
    duplicates = _duplicates_in_file(session, people, imports, external_ids or {})
    for plan in active:
        if plan.item_id in refused:
            continue
        case_id = case_ids.get(plan.item_id) or _parent_case(plan.item_id, parents, case_ids)
        if plan.case is not None and plan.item_id in parents and case_id is not None:
            outcomes[plan.item_id] = Outcome(plan.item_id, "appended", "case", case_id,
                                             reason="added to the sender's active case" if plan.append_open
                                             and not plan.thread_refs else "reply to an existing case")
        elif case_id is not None:
            why = plan.route_reason
            if plan.item_id in related:
                why = f"a reply to case {related[plan.item_id]}, resolved longer ago than the reopen window"
            outcomes[plan.item_id] = Outcome(plan.item_id, "created", "case", case_id, reason=why)
        else:
            person = people[plan.item_id]
            if plan.marketing and not person.created and person.do_not_contact:
                # found by a contact point the do-not-contact list lacks (a suppressed address's
                # phone): still the person who must not be contacted, and no campaign's member
                outcomes[plan.item_id] = Outcome(plan.item_id, "ignored", reason=(
                    f"suppressed: {person.record_type} {person.record_id}, whom this row names, "
                    "is marked do-not-contact"))
                continue
            reason = duplicates.get(plan.item_id)
            if person.stranger_of is not None:
                row_name = " ".join(plan.person.fields.get(n) or "" for n in ("first_name", "last_name")).strip()
                reason = (f"the address is {person.stranger_of}'s ({person.record_type} {person.record_id}"
                          + (", made by an earlier row of this file" if reason else "")
                          + f"); this row names {row_name}: linked to it, the row's other details not taken")
            elif reason is None and not person.created and person.record_type != plan.person.scope:
                reason = f"existing {person.record_type}, linked"
            reason = reason or plan.route_reason
            if plan.person.remarks:  # what the row gave that was not taken as given ('4.67012E+10')
                reason = "; ".join(filter(None, (reason, *plan.person.remarks)))
            if person.kept and not person.created:  # survivorship kept these: the row's are said, not lost in silence
                said = ", ".join(f"{name} {current!r} (the row: {given!r})" for name, (current, given) in person.kept.items())
                reason = (f"{reason}; " if reason else "") + f"kept the {person.record_type}'s {said}"[:600]
            outcomes[plan.item_id] = Outcome(plan.item_id, "created" if person.created else "merged",
                                             person.record_type, person.record_id, reason=reason)
            if plan.item_id in imports and person.record_type == "contact" and person.stranger_of is None:
                _note_for_a_contact(plan)  # a list's note on a contact it links, or makes ('Kund sedan 2019')
    flagged = flag_possible_duplicates(session, [
        NewPerson(people[plan.item_id].record_type, people[plan.item_id].record_id, plan.person.fields,
                  plan.item_id)
        for plan in active if plan.item_id not in imports and plan.item_id in people
        and people[plan.item_id].created and sources[plan.item_id].reviews_duplicates], rules)
    if flagged.merged:
        _follow_automatic_merges(session, outcomes, flagged.merged)
        merges = [replace(m, record_id=flagged.merged[(m.record_type, m.record_id)].survivor_id)
                  if (m.record_type, m.record_id) in flagged.merged else m for m in merges]
    _insert_activities(session, active, outcomes)
    _log_merges(session, merges)
    _link_campaign_members(session, active, outcomes, defaults, imports, people)
    return [outcomes[plan.item_id] for plan in plans]


def _contacts_of(plans: list[ItemPlan], people: Mapping[int, Any],
                 imports: Mapping[int, ImportOptions]) -> list[tuple[int, Mapping[str, Any]]]:
    """The contacts these items created or reached (list rows aside: an import only links)."""
    return [(people[plan.item_id].record_id, plan.person.fields) for plan in plans
            if plan.item_id not in imports and plan.item_id in people
            and people[plan.item_id].record_type == "contact"]


def _follow_automatic_merges(session: Session, outcomes: dict[int, Outcome],
                             merged: Mapping[tuple[str, int], AutoMerge]) -> None:
    """Items whose record the rules merged into an older one went to that one; the merge's log
    entry lists them, so an undo brings them back with the record."""
    moved: dict[int, list[int]] = {}
    for item_id, outcome in list(outcomes.items()):
        auto = merged.get((outcome.record_type, outcome.record_id)) if outcome.record_id else None
        if auto is None:
            continue
        outcomes[item_id] = Outcome(
            item_id, "merged", outcome.record_type, auto.survivor_id,
            reason=f"the same person as {outcome.record_type} {auto.survivor_id} by the matching rules "
                   f"(score {auto.score:.2f}); merged automatically (undo: ingest review undo {auto.review_id})")
        moved.setdefault(auto.merge_id, []).append(item_id)
    for merge_id, item_ids in moved.items():
        entry = session.get(MergeLog, merge_id)
        entry.filled = {**entry.filled, "moved": {**entry.filled["moved"],
                                                  "items": sorted({*entry.filled["moved"]["items"], *item_ids})}}


def _opted_out(session: Session, plans: list[ItemPlan], imports: Mapping[int, ImportOptions]) -> None:
    """List rows that say their person opted out put the addresses or numbers they opted out
    of on the do-not-contact list (first: the batch's other rows of that person are suppressed
    too) and mark the records that have them. A number another person's record holds under
    another name (a switchboard, a household) is left off: one colleague's opt-out must not
    silence the company. An import's revert keeps what was added: an opt-out is not undone."""
    opted = [plan for plan in plans if plan.opted_out]
    if not opted:
        return
    shared = _numbers_of_others(session, opted)
    by_source: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (source, reason) -> entries
    unmarked: dict[str, set[tuple[str, str]]] = {}  # a register's numbers that others hold: barred, their records not marked
    for plan in opted:
        options = imports.get(plan.item_id)
        source = f"opted out in list import {options.job_id}" if options else "opted out in a list"
        why = plan.opted_out_why or "the list marks the person opted out"
        for entry in plan.opted_out:
            if (plan.item_id, entry) not in shared:
                by_source.setdefault((source, why), set()).add(entry)
            elif plan.opted_out_registered:  # the number is barred; another person's email is not
                unmarked.setdefault(source, set()).add(entry)
    for (source, why), entries in sorted(by_source.items()):
        if entries:
            suppress_entries(session, entries, source=source, reason=why)
    for source, entries in sorted(unmarked.items()):
        marked = set().union(*(entries for (of, _), entries in by_source.items() if of == source))
        suppress_entries(session, entries - marked, source=source, mark=False,
                         reason="the list marks the number in a register against telemarketing")


def _numbers_of_others(session: Session, plans: list[ItemPlan]) -> set[tuple[int, tuple[str, str]]]:
    """(item, entry) of the opted-out rows' numbers that a lead or contact of another name holds."""
    wanted = {(scope, "phone", value) for plan in plans for kind, value in plan.opted_out if kind == "phone"
              for scope in ("lead", "contact")}
    if not wanted:
        return set()
    owners = lookup_keys(session, wanted)
    names: dict[tuple[str, int], dict[str, Any]] = {}
    for scope, model in (("lead", Lead), ("contact", Contact)):
        ids = sorted({record_id for (owner_scope, _, _), record_id in owners.items() if owner_scope == scope})
        for start in range(0, len(ids), 1000):
            for record_id, first, last in session.execute(select(model.id, model.first_name, model.last_name)
                                                          .where(model.id.in_(ids[start:start + 1000]))):
                names[(scope, record_id)] = {"first_name": first, "last_name": last}
    others = set()
    for plan in plans:
        first, last, full = plan.opted_out_name or (None, None, None)
        if not (first or last) and full:
            first, last = split_name(full)
        row = {"first_name": first, "last_name": last}
        for kind, value in plan.opted_out:
            if kind != "phone":
                continue
            for scope in ("lead", "contact"):
                owner = owners.get((scope, "phone", value))
                if owner is not None and not same_person_names(row, names.get((scope, owner), {})):
                    others.add((plan.item_id, (kind, value)))
    return others


def _apply_import(plan: ItemPlan, options: ImportOptions) -> None:
    """The import's choices: which key finds existing people, consent and provenance."""
    if plan.person is None:
        return
    kinds = {kind for kind, _ in plan.person.keys}
    if options.upsert_by == "none":
        plan.person.match = False
    elif not kinds & {"email", "phone"}:  # known by a profile alone (a LinkedIn connection): found by it
        plan.person.match_kinds = ("handle",)
    elif options.upsert_by == "phone":
        if "phone" in kinds:  # the phone first; a row its phone finds no one by (a new number, a name
            # that differs: 'Lindqvist-Berg') is still found by its address, never made a second person
            plan.person.match_kinds = ("phone", *EMAIL_KINDS)
            plan.person.keys.sort(key=lambda key: key[0] != "phone")
        else:
            plan.person.match_kinds = EMAIL_KINDS
    else:  # a shared switchboard or household phone must not join two people with emails
        plan.person.match_kinds = EMAIL_KINDS if "email" in kinds else ("phone",)
    if plan.person.match_kinds != ("handle",) and "handle" in kinds and options.upsert_by != "none":
        # a profile is one person's, as an address is: the lead a profile-only row made is found by it
        plan.person.match_kinds = (*plan.person.match_kinds, "handle")
    details = dict(plan.person.fields.get("details") or {})
    details["import_job"] = options.job_id
    if options.consent:
        details["consent"] = options.consent
    plan.person.fields["details"] = details


_PG_SUPPRESSED = text(  # the unique index leads with the value: every kind in one statement
    "SELECT kind, value FROM suppressions WHERE value = ANY(CAST(:values AS TEXT[]))")


def suppressed(session: Session, plans: list[ItemPlan]) -> dict[int, str]:
    """Plans whose email, phone or email domain is on the do-not-contact list: item id -> reason."""
    # looked up by value alone first; which plan a hit names is worked out after (hits are rare)
    values = {value for plan in plans if plan.person is not None
              for _, value in _suppression_keys(plan.person.keys)}
    if not values:
        return {}
    found: set[tuple[str, str]] = set()
    ordered = sorted(values)
    pg = session.get_bind().dialect.name == "postgresql"
    with index_lookups(session):
        for start in range(0, len(ordered), 2000):
            chunk = ordered[start:start + 2000]
            if pg:  # one array parameter, as identity lookups do
                rows = session.execute(_PG_SUPPRESSED, {"values": array_literal(chunk)})
            else:
                rows = session.execute(select(Suppression.kind, Suppression.value)
                                       .where(Suppression.value.in_(chunk)))
            found.update(map(tuple, rows))
    if not found:
        return {}
    reasons: dict[int, str] = {}
    for plan in plans:
        if plan.person is None:
            continue
        hits = [hit for hit in _suppression_keys(plan.person.keys) if hit in found]
        if hits:
            kind, value = min(hits)
            reasons[plan.item_id] = f"suppressed: {kind} {value} is on the do-not-contact list"
    return reasons


def _suppression_keys(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The suppression entries that would name a person with these identity keys."""
    entries = []
    for kind, value in keys:
        if kind == "email":  # its domain and the domains above it: '@ekab.se' covers 'bo@lab.ekab.se'
            labels = value.rpartition("@")[2].split(".")
            entries += [("email", value), *(("domain", ".".join(labels[at:])) for at in range(len(labels) - 1))]
        elif kind == "phone":
            entries.append(("phone", value))
        elif kind == "email_canonical":  # suppressions hold the canonical mailbox too
            entries.append(("email", value))
    return entries


def _duplicates_in_file(session: Session, people: Mapping[int, Any], imports: Mapping[int, ImportOptions],
                        external_ids: Mapping[int, str]) -> dict[int, str]:
    """Merged import rows whose record an earlier row of the same file created."""
    origins = {item_id: r.origin_item_id for item_id, r in people.items()
               if item_id in imports and not r.created and r.origin_item_id}
    if not origins:
        return {}
    rows = {origin: _Origin(origin, imports[origin].job_id, external_ids[origin])
            for item_id, origin in origins.items() if origin in external_ids and origin in imports}
    ids = sorted(set(origins.values()) - set(rows))
    pg = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        if pg:
            found = session.connection().exec_driver_sql(
                f"SELECT id, import_job_id, external_id FROM raw_items WHERE id IN ({id_list(chunk)})")
        else:
            found = session.execute(select(RawItem.id, RawItem.import_job_id, RawItem.external_id)
                                    .where(RawItem.id.in_(chunk)))
        rows.update({row.id: row for row in found})
    reasons = {}
    for item_id, origin in origins.items():
        row = rows.get(origin)
        if row is not None and row.import_job_id == imports[item_id].job_id:
            reasons[item_id] = f"duplicate of row {row.external_id.rpartition(':')[2]} in this file"
    return reasons


@dataclass(frozen=True)
class _Origin:
    id: int
    import_job_id: int | None
    external_id: str


def _log_merges(session: Session, merges) -> None:
    insert_rows(session, MergeLog, [
        {"raw_item_id": m.raw_item_id, "record_type": m.record_type, "record_id": m.record_id,
         "filled": m.filled or None, "keys_added": m.keys_added or None} for m in merges])


def _link_campaign_members(session: Session, plans: list[ItemPlan], outcomes: Mapping[int, Outcome],
                           defaults: Mapping[int, dict[str, Any]], imports: Mapping[int, ImportOptions],
                           people: Mapping[int, Any]) -> None:
    """Put the records these items reached on the items' campaigns. A lead created on its
    campaign is on it by its own campaign_id (Dynamics' source campaign; the record queries
    read both), so neither it nor a repeat of it in the same batch gets a member row: the row
    would repeat it, and was a sixth of a list import's database writes."""
    rows = []
    for plan in plans:
        campaign_id = defaults[plan.item_id]["campaign_id"]
        outcome = outcomes[plan.item_id]
        if not campaign_id or outcome.record_type not in ("lead", "contact"):
            continue
        person = people.get(plan.item_id)
        origin = person.origin_item_id if person is not None and person.record_id == outcome.record_id else None
        if outcome.record_type == "lead" and origin in defaults and defaults[origin]["campaign_id"] == campaign_id:
            continue  # a lead this batch created on this campaign (by this item, or one before it)
        if outcome.record_type == "lead" and person is not None and person.record_id == outcome.record_id \
                and person.campaign_id == campaign_id:
            continue  # an earlier batch's lead of this campaign: on it by its own campaign_id already
        job = imports.get(plan.item_id)
        rows.append({"campaign_id": campaign_id, "record_type": outcome.record_type,
                     "record_id": outcome.record_id, "raw_item_id": plan.item_id,
                     "import_job_id": job.job_id if job else None})
    rows.sort(key=lambda r: (r["campaign_id"], r["record_type"], r["record_id"]))
    insert_rows(session, CampaignMember, rows,
                on_conflict_do_nothing=("campaign_id", "record_type", "record_id"))


def campaign_ids(session: Session, names: set[str]) -> dict[str, int]:
    """Campaign ids by name, creating the campaigns not there yet (concurrency-safe). A name is
    the campaign of that name in any letters' case ('vår 2026' is 'Vår 2026'), the oldest first."""
    if not names:
        return {}
    found: dict[str, int] = {}
    for name, campaign_id in session.execute(select(Campaign.name, Campaign.id)
                                             .where(func.lower(Campaign.name).in_({n.lower() for n in names}))
                                             .order_by(Campaign.id.desc())):
        found[name.lower()] = campaign_id  # the oldest last: it wins
    missing = sorted(name for name in names if name.lower() not in found)
    if missing:
        insert_rows(session, Campaign, [{"name": name} for name in missing], on_conflict_do_nothing=("name",))
        found.update((name.lower(), campaign_id) for name, campaign_id in session.execute(
            select(Campaign.name, Campaign.id).where(Campaign.name.in_(missing))))
    return {name: found[name.lower()] for name in names}


def _thread_parents(session: Session, plans: list[ItemPlan], threading: ThreadingConfig | None = None
                    ) -> tuple[dict[int, int | tuple[str, int]], dict[int, int]]:
    """Replies (threads.thread_parents): item id -> existing case id, or ('item', id) of an
    earlier item in this batch; and item id -> the case resolved too long ago that the new case
    the item opens names. Cases resolved within the reopen window are reopened here."""
    found = thread_parents(session, plans, threading)
    parents: dict[int, int | tuple[str, int]] = {}
    related: dict[int, int] = {}
    reopen = set()
    for item_id, parent in found.items():
        if parent.after_resolved:
            related[item_id] = parent.case_id
        elif parent.case_id is not None:
            parents[item_id] = parent.case_id
            if parent.reopen:
                reopen.add(parent.case_id)
        else:
            parents[item_id] = ("item", parent.item)
    if reopen:
        session.execute(update(Case).where(Case.id.in_(sorted(reopen))).values(status="active", resolved_at=None,
                                                                             updated_at=utcnow()))
    return parents, related


def _parent_case(item_id: int, parents: Mapping[int, Any], case_ids: Mapping[int, int]) -> int | None:
    seen = set()
    parent = parents.get(item_id)
    while isinstance(parent, tuple) and parent[1] not in seen:
        seen.add(parent[1])
        parent = case_ids.get(parent[1]) or parents.get(parent[1])
    return parent if isinstance(parent, int) else None


def _insert_cases(session: Session, plans: list[ItemPlan], people, defaults, entitled: Mapping[int, int],
                  sla: Mapping[str, SlaTerm], related: Mapping[int, int] | None = None) -> dict[int, int]:
    """New cases with their ticket numbers, SLA times by priority, entitlement, queue and the
    customer's other active cases at the time."""
    if not plans:
        return {}
    ids = allocate_ids(session, Case, len(plans))
    contacts = {people[plan.item_id].record_id for plan in plans}
    accounts = cases.accounts_of(session, contacts)
    others = cases.active_cases(session, contacts, set(accounts.values()))
    now = utcnow()
    rows = []
    for plan, case_id in zip(plans, ids):
        contact_id = people[plan.item_id].record_id
        term = sla[PRIORITY_NAMES[plan.case["priority"]]]
        rows.append({**plan.case, "id": case_id, "ticket_number": ticket_number(case_id),
                     "contact_id": contact_id, "account_id": accounts.get(contact_id),
                     "queue": plan.queue, "entitlement_id": entitled.get(plan.item_id),
                     "first_response_by": now + timedelta(hours=term.first_response_hours),
                     "resolve_by": now + timedelta(hours=term.resolve_hours),
                     "other_active_cases": others.get(contact_id) or None,
                     "related_case_id": (related or {}).get(plan.item_id),
                     "source": defaults[plan.item_id]["source"], "origin_item_id": plan.item_id})
    insert_rows(session, Case, rows)
    return {plan.item_id: case_id for plan, case_id in zip(plans, ids)}


def _open_cases_to_append_to(session: Session, active: list[ItemPlan], parents: Mapping[int, Any],
                             people) -> dict[int, int | tuple[str, int]]:
    """Items a rule appends to their sender's newest active case: item id -> that case, or
    ('item', id) of an earlier item of this batch that opens the sender's case."""
    def contact(plan: ItemPlan) -> int | None:
        person = people.get(plan.item_id)
        return person.record_id if person is not None and person.record_type == "contact" else None

    plans = [p for p in active if p.append_open and p.item_id not in parents and contact(p) is not None]
    if not plans:
        return {}
    newest = cases.newest_active_case(session, {contact(p) for p in plans})
    found: dict[int, int | tuple[str, int]] = {}
    opened: dict[int, int] = {}  # contact -> the first item of the batch that opens a case for it
    for plan in active:
        if plan.item_id in found or contact(plan) is None or plan.case is None:
            continue
        if plan in plans and (contact(plan) in newest or contact(plan) in opened):
            found[plan.item_id] = newest.get(contact(plan)) or ("item", opened[contact(plan)])
        elif plan.item_id not in parents:
            opened.setdefault(contact(plan), plan.item_id)
    return found


def ticket_number(case_id: int) -> str:
    """Dynamics-style case number, e.g. CAS-01001."""
    return f"CAS-{case_id:05d}"


def _note_for_a_contact(plan: ItemPlan) -> None:
    """A list row's note about a known contact ('Wants a quote by May', from a trade show) as a
    note activity on the contact: a contact has no details to keep it in, as a lead has."""
    details = plan.person.fields.get("details") or {}
    note = (details.get("fields") or {}).get("notes")
    if note:
        where = " ".join(part for part in (str(details.get("file") or ""), f"row {details['row']}" if details.get("row")
                                           else "") if part)
        plan.activity = {"kind": "note", "subject": f"Note from a list ({where})" if where else "Note from a list",
                         "body": note}


def _insert_activities(session: Session, plans: list[ItemPlan], outcomes: Mapping[int, Outcome]) -> None:
    rows = []
    for plan in plans:
        outcome = outcomes[plan.item_id]
        if not plan.activity or outcome.record_id is None:
            continue
        rows.append({"kind": plan.activity["kind"], "regarding_type": outcome.record_type,
                     "regarding_id": outcome.record_id, "subject": plan.activity.get("subject"),
                     "body": plan.activity.get("body"), "sender": plan.activity.get("sender"),
                     "message_id": plan.activity.get("message_id"),
                     "occurred_at": plan.activity.get("occurred_at"), "raw_item_id": plan.item_id})
    notes = [row for row in rows if row["kind"] == "note"]
    if notes:  # a list's note a contact has already (the same row twice, the file imported again): not twice
        had = set(session.execute(select(Activity.regarding_id, Activity.body).where(
            Activity.kind == "note", Activity.regarding_type == "contact",
            Activity.regarding_id.in_(sorted({row["regarding_id"] for row in notes})))).all())
        kept = []
        for row in rows:
            if row["kind"] == "note":
                if (row["regarding_id"], row["body"]) in had:
                    continue
                had.add((row["regarding_id"], row["body"]))
            kept.append(row)
        rows = kept
    insert_rows(session, Activity, rows)
