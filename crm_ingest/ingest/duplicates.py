"""Possible duplicates the exact keys cannot see: found by blocking keys, scored by the rules,
merged automatically, put in a review queue, or left alone; a merge can be undone.

A new lead or contact is indexed under its blocking keys (`matching.blocking_keys`: canonical
first name + surname, initial + surname, work domain + surname, ...) in `match_keys`, and the
records sharing one are candidates: an index lookup, never a scan, at most `CANDIDATES_PER_KEY`
a key. Each candidate pair is scored with the rule set of its record pair. 'merge' merges two
records of one type at once (the newer into the older; a pair of a lead and a contact, or a
rule set with `auto_merge = false`, goes to review instead); 'review' becomes an open
`duplicate_reviews` row. Every pair is one row whatever its fate, so a decision is remembered:
a pair kept separate is never merged by the rules. A record merge keeps the merged record and
everything moved from it in its merge_log entry, so `undo_merge` puts it back.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from crm_ingest.models import (
    Account,
    Activity,
    Contact,
    Lead,
    Entitlement,
    CampaignMember,
    Case,
    DuplicateReview,
    IdentityKey,
    MatchKey,
    MergeLog,
    Opportunity,
    RawItem,
    utcnow,
)
from crm_ingest.models.bulk import array_literal, index_lookups, insert_rows
from crm_ingest.models.landing import load_checkpoint, save_checkpoint

from .identity import PERSON_MODELS, TWIN_KIND, fill_blanks, lookup_keys
from .matching import (
    DEFAULT_RULES,
    normalize_company,
    RuleSet,
    blocking_keys,
    canonical_email,
    email_keys,
    is_role_address,
    other_first_name,
    score,
)

# Kinds the exact identity keys do not already settle: shared by many records by nature.
# 'name_initial' (a typo in the first name) is left out: with a common surname it makes
# every namesake's initial a candidate, and scoring them cost 8x the item's own processing.
FUZZY_KINDS = ("name", "domain_name", "birth_initial")
CANDIDATES_PER_KEY = 50  # 'anna|andersson' is shared by many: the 50 newest are read
SCORED_PER_PERSON = 5  # those sharing the most keys with the new person are scored
COMPARED = ("first_name", "last_name", "email", "phone", "mobile_phone", "company_name", "job_title")
# what the rules compare of an account, by the field names matching.py reads, and its column
ACCOUNT_COMPARED = {"company_name": "name", "website_domain": "website_domain", "email": "email", "phone": "phone"}
ACCOUNT_KINDS = ("company_word", "company_prefix", "domain_root")  # look-alike keys (exact ones: identity keys)
MODELS = {**PERSON_MODELS, "account": Account}
_PG_CANDIDATES = text(  # per value and record type, a backward scan of ix_match_keys_lookup: bounded
    "SELECT s.scope, k.kind, v.value, k.record_id FROM unnest(CAST(:values AS TEXT[])) AS v(value) "
    "CROSS JOIN unnest(CAST(:scopes AS TEXT[])) AS s(scope) "
    "CROSS JOIN LATERAL (SELECT kind, record_id FROM match_keys m WHERE m.value = v.value "
    "AND m.scope = s.scope ORDER BY m.record_id DESC LIMIT :limit) AS k")


@dataclass(frozen=True)
class NewPerson:
    scope: str  # lead | contact
    record_id: int
    fields: Mapping[str, Any]
    item_id: int | None = None


def pair_rules(rules: Mapping[str, RuleSet] | None, a: str, b: str) -> RuleSet:
    rules = rules or DEFAULT_RULES
    name = "-".join(sorted((a, b), key=("lead", "contact", "account").index))
    return rules.get(name) or DEFAULT_RULES[name]


@dataclass(frozen=True)
class AutoMerge:
    """A record the rules merged into an older one."""

    survivor_id: int
    review_id: int
    merge_id: int
    score: float


@dataclass
class Flagged:
    queued: int = 0  # pairs sent to review
    merged: dict[tuple[str, int], AutoMerge] = field(default_factory=dict)  # (scope, merged id) -> where it went


def flag_possible_duplicates(session: Session, people: list[NewPerson],
                             rules: Mapping[str, RuleSet] | None = None) -> Flagged:
    """Index the new people under their blocking keys; merge the pairs the rules call the same
    person (records of one type) and queue the pairs they call possible duplicates."""
    keyed = {(p.scope, p.record_id): [k for k in blocking_keys(p.fields, p.scope) if k[0] in FUZZY_KINDS]
             for p in people}
    keyed = {owner: keys for owner, keys in keyed.items() if keys}
    same_address = _contacts_sharing_an_address(session, [p for p in people if p.scope == "lead"])
    if not keyed and not same_address:
        return Flagged()
    # keys first, then the lookup: look-alikes within this batch find each other too
    held = _held_keys(session, set(keyed)) if keyed else set()
    insert_rows(session, MatchKey, [{"scope": scope, "kind": kind, "value": value, "record_id": record_id}
                                    for (scope, record_id), keys in keyed.items() for kind, value in keys
                                    if (scope, record_id, kind, value) not in held])
    candidates = _candidates(session, {value for keys in keyed.values() for _, value in keys})
    pairs: dict[tuple, NewPerson] = {}
    for person in people:
        shared: Counter = Counter()  # candidate -> how many blocking keys it shares
        for contact_id in same_address.get(person.record_id, ()) if person.scope == "lead" else ():
            shared[("contact", contact_id)] += 10  # a contact with this very address: always compared
        for kind, value in keyed.get((person.scope, person.record_id), ()):
            for scope in ("contact", "lead") if person.scope == "lead" else ("contact",):
                for other in candidates.get((scope, kind, value), ()):
                    if (scope, other) != (person.scope, person.record_id):
                        shared[(scope, other)] += 1
        best = sorted(shared.items(), key=lambda item: (-item[1], -item[0][1]))[:SCORED_PER_PERSON]
        for other, _ in best:
            pairs.setdefault(_ordered((person.scope, person.record_id), other), person)
    return _decide_pairs(session, pairs, {(p.scope, p.record_id): dict(p.fields) for p in people}, rules)


def _decide_pairs(session: Session, pairs: dict[tuple, NewPerson], known: dict[tuple[str, int], dict[str, Any]],
                  rules: Mapping[str, RuleSet] | None) -> Flagged:
    """Score each candidate pair: merge it (one record type, auto_merge), queue it, or leave it."""
    if not pairs:
        return Flagged()
    fields = _fields(session, {owner for pair in pairs for owner in pair})
    fields.update(known)
    linked = _leads_and_their_contacts(session, {owner[1] for pair in pairs if {a[0] for a in pair} == {"lead", "contact"}
                                                 for owner in pair if owner[0] == "lead"})
    rows, automatic = [], []
    for (a, b), person in sorted(pairs.items()):
        if a not in fields or b not in fields:
            continue
        if frozenset({a, b}) in linked:  # a lead and the contact it names (qualified into, or linked): one person by design
            continue
        ruleset = pair_rules(rules, a[0], b[0])
        decision = score(fields[a], fields[b], ruleset)
        if decision.outcome in ("merge", "review"):
            row = {"record_type": a[0], "record_id": a[1], "other_type": b[0], "other_id": b[1],
                   "score": round(decision.score, 4), "suggested": decision.outcome,
                   "reasons": decision.reasons, "state": "open", "raw_item_id": person.item_id}
            if decision.outcome == "merge" and a[0] == b[0] and ruleset.auto_merge:
                automatic.append(row)
            else:
                rows.append(row)
    result = Flagged(queued=len(insert_rows(session, DuplicateReview, rows, returning=("id",),
                                            on_conflict_do_nothing=PAIR)))
    for row in automatic:
        merged = _merge_automatically(session, row, result.merged)
        if merged:
            result.merged[(row["record_type"], max(row["record_id"], row["other_id"]))] = merged
    return result


PAIR = ("record_type", "record_id", "other_type", "other_id")


def _leads_and_their_contacts(session: Session, lead_ids: set[int]) -> set[frozenset[tuple[str, int]]]:
    """{lead, contact} of the leads that name a contact (Dynamics' parentcontactid)."""
    ordered = sorted(lead_ids)
    linked: set[frozenset[tuple[str, int]]] = set()
    for start in range(0, len(ordered), 1000):
        for lead_id, contact_id in session.execute(select(Lead.id, Lead.contact_id).where(
                Lead.id.in_(ordered[start:start + 1000]), Lead.contact_id.is_not(None))):
            linked.add(frozenset({("lead", lead_id), ("contact", contact_id)}))
    return linked


def _merge_automatically(session: Session, row: dict[str, Any],
                         done: Mapping[tuple[str, int], AutoMerge]) -> AutoMerge | None:
    """Merge a pair the rules call one person, unless a record of it was merged away already
    in this round or the pair was decided before (a pair kept separate stays apart)."""
    scope = row["record_type"]
    if (scope, row["record_id"]) in done or (scope, row["other_id"]) in done:
        return None  # the next re-check compares what is left
    inserted = insert_rows(session, DuplicateReview, [{**row, "state": "merged", "decided_by": "rules",
                                                       "decided_at": utcnow()}],
                           returning=("id",), on_conflict_do_nothing=PAIR)
    if not inserted:
        return None
    review_id = inserted[0][0]
    survivor_id, loser_id = sorted((row["record_id"], row["other_id"]))
    entry = merge_records(session, scope, survivor_id, loser_id, raw_item_id=row["raw_item_id"])
    session.execute(update(DuplicateReview).where(DuplicateReview.id == review_id).values(merge_id=entry.id))
    return AutoMerge(survivor_id, review_id, entry.id, row["score"])


def account_keys_fuzzy(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An account's look-alike keys: the first word of its normalized name ('acme' of 'ACME
    Sverige AB') and that word's first four letters, and its web domain without the public
    suffix ('acme' of acme.co.uk)."""
    keys = []
    name = normalize_company(fields.get("company_name")) if isinstance(fields.get("company_name"), str) else None
    word = next((w for w in (name or "").split() if len(w) >= 3), None)
    if word:
        keys.append(("company_word", word))
        if len(word) >= 5:  # a typo after the fourth letter: Ericsson, Ericson
            keys.append(("company_prefix", word[:4]))
    domain = fields.get("website_domain")
    if isinstance(domain, str) and domain.strip():
        labels = [label for label in domain.strip().lower().split(".") if label]
        while len(labels) > 1 and (labels[-1] in _SUFFIXES or len(labels[-1]) <= 2):
            labels.pop()
        if labels and len(labels[-1]) >= 3:
            keys.append(("domain_root", labels[-1]))
    return keys


_SUFFIXES = {"com", "org", "net", "edu", "gov", "co", "ac", "biz", "info", "nu"}


def flag_possible_duplicate_accounts(session: Session, accounts: list[NewPerson],
                                     rules: Mapping[str, RuleSet] | None = None) -> Flagged:
    """Accounts the exact keys (domain, normalized name) did not join: indexed under their
    look-alike keys, scored with the account-account rules; merged or queued like people."""
    keyed = {account.record_id: account_keys_fuzzy(account.fields) for account in accounts}
    keyed = {record_id: keys for record_id, keys in keyed.items() if keys}
    if not keyed:
        return Flagged()
    held = _held_keys(session, {("account", record_id) for record_id in keyed})
    insert_rows(session, MatchKey, [{"scope": "account", "kind": kind, "value": value, "record_id": record_id}
                                    for record_id, keys in keyed.items() for kind, value in keys
                                    if ("account", record_id, kind, value) not in held])
    candidates = _candidates(session, {value for keys in keyed.values() for _, value in keys}, ("account",))
    pairs: dict[tuple, NewPerson] = {}
    for account in accounts:
        shared: Counter = Counter()
        for kind, value in keyed.get(account.record_id, ()):
            for other in candidates.get(("account", kind, value), ()):
                if other != account.record_id:
                    shared[("account", other)] += 1
        for other, _ in sorted(shared.items(), key=lambda item: (-item[1], -item[0][1]))[:SCORED_PER_PERSON]:
            pairs.setdefault(_ordered(("account", account.record_id), other), account)
    return _decide_pairs(session, pairs, {("account", a.record_id): dict(a.fields) for a in accounts}, rules)


def _contacts_sharing_an_address(session: Session, leads: list[NewPerson]) -> dict[int, set[int]]:
    """New leads whose email (or the mailbox behind it) is a contact's: lead id -> contacts. A
    form never joins a contact by its keys (it makes a lead for sales), so the pair is found
    here and queued, never left to a name that 50 namesakes may crowd out."""
    return _sharing_an_address(session, [(lead.record_id, lead.fields) for lead in leads], "contact")


def _sharing_an_address(session: Session, people: list[tuple[int, Mapping[str, Any]]],
                        scope: str) -> dict[int, set[int]]:
    """People whose email (or the mailbox behind it, role addresses aside) is that of records
    of the scope: record id -> those records."""
    wanted: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for record_id, fields in people:
        for key in email_keys(fields):
            if is_role_address(key):
                continue
            wanted[(scope, "email", key)].add(record_id)
            wanted[(scope, "email_canonical", canonical_email(key))].add(record_id)
    if not wanted:
        return {}
    found: dict[int, set[int]] = defaultdict(set)
    for (owner_scope, kind, value), owner_id in lookup_keys(session, set(wanted)).items():
        # found as asked, or as its twin kind (the mailbox keyed as an address, or the reverse)
        for record_id in wanted.get((owner_scope, kind, value), set()) | \
                wanted.get((owner_scope, TWIN_KIND[kind], value), set()):
            found[record_id].add(owner_id)
    return found


def link_open_leads(session: Session, contacts: list[tuple[int, Mapping[str, Any]]]) -> dict[int, int]:
    """Open leads of the new contacts' addresses, not linked to a contact yet, get the contact
    as theirs (Dynamics' parentcontactid: the lead's existing contact). A list's lead who then
    writes to support is one customer: the contact's picture shows the open lead, and the
    lead's its contact. Qualifying the lead later finds the same contact. Returns lead -> contact."""
    found = _sharing_an_address(session, contacts, "lead")
    if not found:
        return {}
    fields_of = dict(contacts)
    lead_ids = sorted({lead_id for leads in found.values() for lead_id in leads})
    names = {row.id: {"first_name": row.first_name, "last_name": row.last_name}
             for row in session.execute(select(Lead.id, Lead.first_name, Lead.last_name).where(Lead.id.in_(lead_ids)))}
    # the lead of another person writing from that address (a family's, a colleague's) stays apart
    contact_of = {lead_id: contact_id for contact_id, leads in sorted(found.items()) for lead_id in leads
                  if not other_first_name(fields_of[contact_id], names.get(lead_id, {}))}
    now = utcnow()
    linked = {}
    for lead_id in sorted(contact_of):
        if session.execute(update(Lead).where(Lead.id == lead_id, Lead.contact_id.is_(None),
                                              Lead.status.in_(("new", "contacted")))  # lifecycle.LEAD_OPEN
                           .values(contact_id=contact_of[lead_id], updated_at=now)).rowcount:
            linked[lead_id] = contact_of[lead_id]
    return linked


def _held_keys(session: Session, owners: set[tuple[str, int]]) -> set[tuple[str, int, str, str]]:
    """Match keys the records have already (a record compared again keeps one set)."""
    held = set()
    by_scope: dict[str, list[int]] = defaultdict(list)
    for scope, record_id in owners:
        by_scope[scope].append(record_id)
    for scope, ids in by_scope.items():
        for start in range(0, len(ids), 1000):
            held.update(session.execute(select(MatchKey.scope, MatchKey.record_id, MatchKey.kind, MatchKey.value)
                                        .where(MatchKey.scope == scope,
                                               MatchKey.record_id.in_(sorted(ids)[start:start + 1000]))).all())
    return {tuple(row) for row in held}


def _ordered(a: tuple[str, int], b: tuple[str, int]) -> tuple[tuple[str, int], tuple[str, int]]:
    """A pair in one order (contacts before leads, then by id), so it has one review row."""
    rank = {"account": 0, "contact": 1, "lead": 2}
    return (a, b) if (rank[a[0]], a[1]) <= (rank[b[0]], b[1]) else (b, a)


def _candidates(session: Session, values: set[str],
                scopes: tuple[str, ...] = ("contact", "lead")) -> dict[tuple[str, str, str], list[int]]:
    """Owners of the keys, at most CANDIDATES_PER_KEY (the newest) a value and record type, read
    in index order: a key shared by thousands (a common name) costs the same as a rare one, and
    50 contacts of one name do not hide its leads."""
    found: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    ordered = sorted(values)
    if session.get_bind().dialect.name == "postgresql":
        with index_lookups(session):
            for start in range(0, len(ordered), 1000):
                rows = session.execute(_PG_CANDIDATES, {"values": array_literal(ordered[start:start + 1000]),
                                                        "scopes": array_literal(scopes), "limit": CANDIDATES_PER_KEY})
                for scope, kind, value, record_id in rows:
                    found[(scope, kind, value)].append(record_id)
        return found
    for value in ordered:  # SQLite is in-process: a statement per value and record type is cheap
        for scope in scopes:
            for kind, record_id in session.execute(
                    select(MatchKey.kind, MatchKey.record_id).where(MatchKey.value == value, MatchKey.scope == scope)
                    .order_by(MatchKey.record_id.desc()).limit(CANDIDATES_PER_KEY)):
                found[(scope, kind, value)].append(record_id)
    return found


def _fields(session: Session, owners: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    by_scope: dict[str, list[int]] = defaultdict(list)
    for scope, record_id in owners:
        by_scope[scope].append(record_id)
    result = {}
    for scope, ids in by_scope.items():
        model = MODELS[scope]
        names = _compared(scope)
        columns = [getattr(model, column) for column in names.values()]
        for start in range(0, len(ids), 1000):
            for row in session.execute(select(model.id, *columns).where(model.id.in_(ids[start:start + 1000]))):
                result[(scope, row[0])] = dict(zip(names, row[1:]))
    return result


def _compared(scope: str) -> dict[str, str]:
    """Field the rules compare -> its column, for a record type."""
    return dict(ACCOUNT_COMPARED) if scope == "account" else {name: name for name in COMPARED}


# -- the queue --------------------------------------------------------------------------------------


def review_rows(session: Session, state: str | None = "open", limit: int = 100) -> list[dict[str, Any]]:
    """Queued pairs with both records' names and contact points, best score first."""
    query = select(DuplicateReview).order_by(DuplicateReview.score.desc(), DuplicateReview.id).limit(limit)
    if state:
        query = query.where(DuplicateReview.state == state)
    reviews = session.scalars(query).all()
    fields = _fields(session, {(r.record_type, r.record_id) for r in reviews}
                     | {(r.other_type, r.other_id) for r in reviews})
    merges = [r.merge_id for r in reviews if r.merge_id is not None]
    for entry in session.scalars(select(MergeLog).where(MergeLog.id.in_(merges))) if merges else ():
        gone = (entry.record_type, entry.merged_id)  # a merged record, as it was before the merge
        fields.setdefault(gone, {name: (entry.filled or {}).get("merged_record", {}).get(column)
                                 for name, column in _compared(entry.record_type).items()})
    return [{"id": r.id, "state": r.state, "score": r.score, "suggested": r.suggested,
             "a": {"type": r.record_type, "id": r.record_id, **fields.get((r.record_type, r.record_id), {})},
             "b": {"type": r.other_type, "id": r.other_id, **fields.get((r.other_type, r.other_id), {})},
             "reasons": r.reasons, "decided_at": r.decided_at, "decided_by": r.decided_by} for r in reviews]


def keep_separate(session: Session, review_id: int) -> DuplicateReview:
    review = _open(session, review_id)
    review.state, review.decided_at = "kept_separate", utcnow()
    return review


def merge_pair(session: Session, review_id: int) -> dict[str, Any]:
    """A person's decision: merge the pair's newer record into the older one (same record type
    only). See `merge_records`."""
    review = _open(session, review_id)
    if review.record_type != review.other_type:
        raise ValueError(f"review {review_id} pairs a {review.record_type} and a {review.other_type}; "
                         "only records of one type merge (qualify the lead to join it to the contact)")
    scope = review.record_type
    survivor_id, loser_id = sorted((review.record_id, review.other_id))
    entry = merge_records(session, scope, survivor_id, loser_id, raw_item_id=review.raw_item_id)
    review.state, review.decided_at, review.decided_by, review.merge_id = "merged", utcnow(), "person", entry.id
    moved = entry.filled["moved"]
    return {"review": review_id, "record_type": scope, "survivor": survivor_id, "merged": loser_id,
            "filled": sorted(entry.filled["filled"]),
            **{name: len(moved.get(name, ())) for name in ("campaign_members", "cases", "opportunities",
                                                   "activities", "items")}}


def merge_records(session: Session, scope: str, survivor_id: int, loser_id: int,
                  raw_item_id: int | None = None) -> MergeLog:
    """Merge one lead or contact into another: the survivor keeps its values and gains the
    other's where it has blanks, every contact point, case, opportunity, activity, campaign
    membership and item outcome; the other is deleted. The returned merge_log entry holds the
    deleted record and what moved, for `undo_merge`."""
    model = MODELS[scope]
    first, second = (session.get(model, record_id, with_for_update=True)  # one lock order
                     for record_id in sorted((survivor_id, loser_id)))
    survivor, loser = (first, second) if first is not None and first.id == survivor_id else (second, first)
    if survivor is None or loser is None:
        raise LookupError(f"{scope} {survivor_id if survivor is None else loser_id} no longer exists")
    columns = [c.name for c in model.__table__.columns if c.name not in ("id", "updated_at")]
    snapshot = {name: _plain(getattr(loser, name)) for name in columns}
    current = {name: getattr(survivor, name) for name in columns if name != "created_at"}
    filled = fill_blanks(current, {name: getattr(loser, name) for name in current})
    for name, value in filled.items():
        setattr(survivor, name, value)
    survivor.updated_at = utcnow()
    moved = _repoint(session, scope, loser_id, survivor_id)
    moved["campaign_members_implied"] = _keep_own_campaign(session, scope, survivor, loser)
    session.delete(loser)
    entry = MergeLog(raw_item_id=raw_item_id, record_type=scope, record_id=survivor_id, merged_id=loser_id,
                     filled={"merged_record": {"id": loser_id, **snapshot},
                             "filled": {k: _plain(v) for k, v in filled.items()}, "moved": moved})
    session.add(entry)
    session.flush()
    return entry


def _keep_own_campaign(session: Session, scope: str, survivor, loser) -> list[int]:
    """A lead is on its own campaign by its campaign_id, with no member row (pipeline.
    _link_campaign_members); merged into a lead of another campaign, the survivor joins the
    merged lead's campaign as a member. Returns the new member row's id (for the undo)."""
    if scope != "lead" or loser.campaign_id is None or loser.campaign_id == survivor.campaign_id:
        return []
    if session.scalar(select(CampaignMember.id).where(
            CampaignMember.campaign_id == loser.campaign_id, CampaignMember.record_type == scope,
            CampaignMember.record_id == survivor.id)) is not None:
        return []
    member = CampaignMember(campaign_id=loser.campaign_id, record_type=scope, record_id=survivor.id,
                            raw_item_id=loser.origin_item_id, created_at=utcnow())
    session.add(member)
    session.flush()
    return [member.id]


def undo_merge(session: Session, review_id: int) -> dict[str, Any]:
    """Undo a merged pair (by the rules or a person): the merged record comes back with its id
    and values, with what moved from it (contact points, cases, opportunities, activities,
    campaign memberships, item outcomes); values it filled in on the survivor are blanked again
    where nobody changed them since. The pair is then 'kept_separate', so neither the rules nor
    the re-check merges it again. Items that arrived after the merge stay where they went."""
    review = session.get(DuplicateReview, review_id, with_for_update=True)
    if review is None:
        raise LookupError(f"no duplicate review {review_id}")
    if review.state != "merged" or review.merge_id is None:
        raise ValueError(f"review {review_id} is {review.state}, not a merge that can be undone")
    entry = session.get(MergeLog, review.merge_id, with_for_update=True)
    if entry is None or entry.undone_at is not None:
        raise ValueError(f"the merge of review {review_id} was undone already")
    scope, survivor_id, loser_id = entry.record_type, entry.record_id, entry.merged_id
    model = MODELS[scope]
    survivor = session.get(model, survivor_id, with_for_update=True)
    if survivor is None:
        raise LookupError(f"{scope} {survivor_id}, the record it was merged into, no longer exists")
    if session.get(model, loser_id) is not None:
        raise ValueError(f"{scope} {loser_id} exists already")
    snapshot = dict(entry.filled["merged_record"])
    restored = model(**{name: _restore(model, name, value) for name, value in snapshot.items()})
    restored.updated_at = utcnow()
    session.add(restored)
    blanked = []
    for name, value in entry.filled["filled"].items():
        if _plain(getattr(survivor, name)) == value:
            setattr(survivor, name, None)
            blanked.append(name)
    survivor.updated_at = utcnow()
    session.flush()
    moved = entry.filled["moved"]
    back = {}
    for name, model_, column, owner in _moved_columns(scope):
        ids = moved.get(name) or []
        back[name] = 0
        for start in range(0, len(ids), 1000):
            conditions = [model_.id.in_(ids[start:start + 1000]), column == survivor_id]
            if owner is not None:
                conditions.append(owner == scope)
            back[name] += session.execute(update(model_).where(*conditions)
                                          .values({column.key: loser_id})).rowcount
    origin = snapshot.get("origin_item_id")
    if origin is not None:  # the item that created the record created it again
        session.execute(update(RawItem).where(RawItem.id == origin, RawItem.record_type == scope,
                                              RawItem.record_id == loser_id, RawItem.outcome == "merged")
                        .values(outcome="created", outcome_reason=f"merge into {scope} {survivor_id} undone"))
    joined = moved.get("campaign_members_implied") or []
    if joined:  # the merged lead is back on its own campaign by its campaign_id
        session.execute(delete(CampaignMember).where(CampaignMember.id.in_(joined)))
    for row in moved.get("campaign_members_dropped") or []:
        session.add(CampaignMember(**{**row, "record_id": loser_id,
                                      "created_at": _restore(CampaignMember, "created_at", row["created_at"])}))
    reopened = moved.get("reviews_closed") or []
    if reopened:
        session.execute(update(DuplicateReview).where(DuplicateReview.id.in_(reopened),
                                                      DuplicateReview.state == "merged",
                                                      DuplicateReview.merge_id.is_(None))
                        .values(state="open", decided_at=None, decided_by=None))
    entry.undone_at = utcnow()
    review.state, review.decided_at, review.decided_by = "kept_separate", utcnow(), "person"
    return {"review": review_id, "record_type": scope, "restored": loser_id, "survivor": survivor_id,
            "blanked": sorted(blanked), **back}


def _moved_columns(scope: str):
    """(name in merge_log 'moved', model, column naming the record, record type column or None)."""
    if scope == "account":
        return [("identity_keys", IdentityKey, IdentityKey.record_id, IdentityKey.scope),
                ("match_keys", MatchKey, MatchKey.record_id, MatchKey.scope),
                ("contacts", Contact, Contact.account_id, None),
                ("cases", Case, Case.account_id, None),
                ("opportunities", Opportunity, Opportunity.account_id, None),
                ("entitlements", Entitlement, Entitlement.account_id, None),
                ("qualified_leads", Lead, Lead.account_id, None),  # a qualified lead's account
                ("merge_log", MergeLog, MergeLog.record_id, MergeLog.record_type)]
    person_column = Opportunity.contact_id if scope == "contact" else Opportunity.lead_id
    specs = [("identity_keys", IdentityKey, IdentityKey.record_id, IdentityKey.scope),
             ("match_keys", MatchKey, MatchKey.record_id, MatchKey.scope),
             ("campaign_members", CampaignMember, CampaignMember.record_id, CampaignMember.record_type),
             ("cases", Case, Case.contact_id, None) if scope == "contact" else None,
             ("qualified_leads", Lead, Lead.contact_id, None) if scope == "contact" else None,
             ("opportunities", Opportunity, person_column, None),
             ("activities", Activity, Activity.regarding_id, Activity.regarding_type),
             ("items", RawItem, RawItem.record_id, RawItem.record_type),
             ("merge_log", MergeLog, MergeLog.record_id, MergeLog.record_type)]
    return [spec for spec in specs if spec is not None]


def _repoint(session: Session, scope: str, loser: int, survivor: int) -> dict[str, list]:
    """Everything that named the merged record names the survivor: what moved, by row id."""
    moved: dict[str, list] = {}
    # the survivor's campaigns: the merged record's membership there is dropped (kept for undo)
    members = set(session.scalars(select(CampaignMember.campaign_id).where(
        CampaignMember.record_type == scope, CampaignMember.record_id == survivor)))
    dropped = session.scalars(select(CampaignMember).where(
        CampaignMember.record_type == scope, CampaignMember.record_id == loser,
        CampaignMember.campaign_id.in_(members or {-1}))).all()
    moved["campaign_members_dropped"] = [
        {"campaign_id": m.campaign_id, "record_type": m.record_type, "import_job_id": m.import_job_id,
         "raw_item_id": m.raw_item_id, "created_at": _plain(m.created_at)} for m in dropped]
    for member in dropped:
        session.delete(member)
    session.flush()
    for name, model, column, owner in _moved_columns(scope):
        conditions = [column == loser] + ([owner == scope] if owner is not None else [])
        ids = list(session.scalars(select(model.id).where(*conditions).order_by(model.id)))
        for start in range(0, len(ids), 1000):
            session.execute(update(model).where(model.id.in_(ids[start:start + 1000]))
                            .values({column.key: survivor}))
        moved[name] = ids
    # other open pairs naming the merged record are settled by this merge (reopened by an undo)
    closed = list(session.scalars(select(DuplicateReview.id).where(
        DuplicateReview.state == "open",
        ((DuplicateReview.record_type == scope) & (DuplicateReview.record_id == loser))
        | ((DuplicateReview.other_type == scope) & (DuplicateReview.other_id == loser)))))
    if closed:
        session.execute(update(DuplicateReview).where(DuplicateReview.id.in_(closed))
                        .values(state="merged", decided_at=utcnow(), decided_by="merge"))
    moved["reviews_closed"] = closed
    return moved


def _open(session: Session, review_id: int) -> DuplicateReview:
    review = session.get(DuplicateReview, review_id, with_for_update=True)
    if review is None:
        raise LookupError(f"no duplicate review {review_id}")
    if review.state != "open":
        raise ValueError(f"review {review_id} was decided already: {review.state}")
    return review


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _restore(model, name: str, value: Any) -> Any:
    """A value `_plain` wrote, back in its column's Python type."""
    if not isinstance(value, str):
        return value
    try:
        column_type = model.__table__.columns[name].type
        python_type = getattr(column_type, "impl_instance", column_type).python_type  # a TypeDecorator's own
    except (KeyError, NotImplementedError):
        return value
    if python_type is datetime:
        return datetime.fromisoformat(value)
    if python_type is date:
        return date.fromisoformat(value)
    return value


# -- the re-check -----------------------------------------------------------------------------------

RECHECK_CHECKPOINT = "_duplicates"  # a connector_checkpoints row: how far records were re-checked
RECHECK_SETTLE_SECONDS = 60  # records younger than this may still have a concurrent look-alike in flight


def recheck(session: Session, settings, *, limit: int = 5000, from_start: bool = False) -> dict[str, int]:
    """Compare records created since the last re-check (older than a minute) with their
    look-alikes, by the same rules: what slipped in past the online check (two look-alikes
    created by two workers at once) or past the rules of the day. `from_start` re-checks every
    record (after a rules change). Returns records checked, pairs queued and records merged."""
    done = {} if from_start else (load_checkpoint(session, RECHECK_CHECKPOINT) or {})
    settled = utcnow() - timedelta(seconds=RECHECK_SETTLE_SECONDS)
    result = {"checked": 0, "queued": 0, "merged": 0}
    for scope, model in PERSON_MODELS.items():
        rows = session.execute(
            select(model.id, model.source, *[getattr(model, name) for name in COMPARED])
            .where(model.id > done.get(scope, 0), model.created_at < settled)
            .order_by(model.id).limit(limit)).all()
        people = [NewPerson(scope, row[0], dict(zip(COMPARED, row[2:]))) for row in rows
                  if _reviewed(settings, row[1])]
        flagged = flag_possible_duplicates(session, people, settings.matching)
        result["queued"] += flagged.queued
        result["merged"] += len(flagged.merged)
        result["checked"] += len(people)
        if rows:
            done[scope] = rows[-1][0]
    accounts = session.execute(
        select(Account.id, *[getattr(Account, column) for column in ACCOUNT_COMPARED.values()])
        .where(Account.id > done.get("account", 0), Account.created_at < settled)
        .order_by(Account.id).limit(limit)).all()
    flagged = flag_possible_duplicate_accounts(
        session, [NewPerson("account", row[0], dict(zip(ACCOUNT_COMPARED, row[1:]))) for row in accounts],
        settings.matching)
    result["queued"] += flagged.queued
    result["merged"] += len(flagged.merged)
    result["checked"] += len(accounts)
    if accounts:
        done["account"] = accounts[-1][0]
    save_checkpoint(session, RECHECK_CHECKPOINT, done)
    return result


def _reviewed(settings, source: str | None) -> bool:
    """Records of sources that review duplicates (an unknown or removed source: yes)."""
    config = settings.sources.get(source) if source else None
    return config is None or config.reviews_duplicates
