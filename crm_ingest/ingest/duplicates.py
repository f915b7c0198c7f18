"""Possible duplicates the exact keys cannot see: found by blocking keys, scored by the rules,
put in a review queue, and merged or kept apart by a person's decision (remembered per pair).

A new lead or contact is indexed under its blocking keys (`matching.blocking_keys`: canonical
first name + surname, initial + surname, work domain + surname, ...) in `match_keys`, and the
records sharing one are candidates: an index lookup, never a scan, at most `CANDIDATES_PER_KEY`
a key. Each candidate pair is scored with the rule set of its record pair; 'merge' and 'review'
outcomes become an open `duplicate_reviews` row (the rules' outcome kept as `suggested`).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from crm_ingest.models import (
    Activity,
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

from .identity import PERSON_MODELS, fill_blanks
from .matching import DEFAULT_RULES, RuleSet, blocking_keys, score

# Kinds the exact identity keys do not already settle: shared by many records by nature.
# 'name_initial' (a typo in the first name) is left out: with a common surname it makes
# every namesake's initial a candidate, and scoring them cost 8x the item's own processing.
FUZZY_KINDS = ("name", "domain_name", "birth_initial")
CANDIDATES_PER_KEY = 50  # 'anna|andersson' is shared by many: the 50 newest are read
SCORED_PER_PERSON = 5  # those sharing the most keys with the new person are scored
COMPARED = ("first_name", "last_name", "email", "phone", "company_name", "job_title")
_PG_CANDIDATES = text(  # a bounded index scan per value, whatever its popularity
    "SELECT k.scope, k.kind, v.value, k.record_id FROM unnest(CAST(:values AS TEXT[])) AS v(value) "
    "CROSS JOIN LATERAL (SELECT scope, kind, record_id FROM match_keys m WHERE m.value = v.value "
    "ORDER BY m.kind, m.scope, m.record_id DESC LIMIT :limit) AS k")


@dataclass(frozen=True)
class NewPerson:
    scope: str  # lead | contact
    record_id: int
    fields: Mapping[str, Any]
    item_id: int | None = None


def pair_rules(rules: Mapping[str, RuleSet] | None, a: str, b: str) -> RuleSet:
    rules = rules or DEFAULT_RULES
    name = "-".join(sorted((a, b), key=("lead", "contact").index))
    return rules.get(name) or DEFAULT_RULES[name]


def flag_possible_duplicates(session: Session, people: list[NewPerson],
                             rules: Mapping[str, RuleSet] | None = None) -> int:
    """Index the new people under their blocking keys and queue the pairs the rules call a
    possible duplicate; returns how many pairs were queued."""
    keyed = {(p.scope, p.record_id): [k for k in blocking_keys(p.fields, p.scope) if k[0] in FUZZY_KINDS]
             for p in people}
    keyed = {owner: keys for owner, keys in keyed.items() if keys}
    if not keyed:
        return 0
    # keys first, then the lookup: look-alikes within this batch find each other too
    held = _held_keys(session, set(keyed))
    insert_rows(session, MatchKey, [{"scope": scope, "kind": kind, "value": value, "record_id": record_id}
                                    for (scope, record_id), keys in keyed.items() for kind, value in keys
                                    if (scope, record_id, kind, value) not in held])
    candidates = _candidates(session, {value for keys in keyed.values() for _, value in keys})
    pairs: dict[tuple, NewPerson] = {}
    for person in people:
        shared: Counter = Counter()  # candidate -> how many blocking keys it shares
        for kind, value in keyed.get((person.scope, person.record_id), ()):
            for scope in ("contact", "lead") if person.scope == "lead" else ("contact",):
                for other in candidates.get((scope, kind, value), ()):
                    if (scope, other) != (person.scope, person.record_id):
                        shared[(scope, other)] += 1
        best = sorted(shared.items(), key=lambda item: (-item[1], -item[0][1]))[:SCORED_PER_PERSON]
        for other, _ in best:
            pairs.setdefault(_ordered((person.scope, person.record_id), other), person)
    if not pairs:
        return 0
    fields = _fields(session, {owner for pair in pairs for owner in pair})
    fields.update({(p.scope, p.record_id): dict(p.fields) for p in people})
    rows = []
    for (a, b), person in sorted(pairs.items()):
        if a not in fields or b not in fields:
            continue
        decision = score(fields[a], fields[b], pair_rules(rules, a[0], b[0]))
        if decision.outcome in ("merge", "review"):
            rows.append({"record_type": a[0], "record_id": a[1], "other_type": b[0], "other_id": b[1],
                         "score": round(decision.score, 4), "suggested": decision.outcome,
                         "reasons": decision.reasons, "state": "open", "raw_item_id": person.item_id})
    return len(insert_rows(session, DuplicateReview, rows, returning=("id",),
                           on_conflict_do_nothing=("record_type", "record_id", "other_type", "other_id")))


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
    rank = {"contact": 0, "lead": 1}
    return (a, b) if (rank[a[0]], a[1]) <= (rank[b[0]], b[1]) else (b, a)


def _candidates(session: Session, values: set[str]) -> dict[tuple[str, str, str], list[int]]:
    """Owners of the keys, at most CANDIDATES_PER_KEY (the newest) a key and kind: a key shared
    by thousands (a common name) costs the same as a rare one."""
    found: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    ordered = sorted(values)
    if session.get_bind().dialect.name == "postgresql":
        with index_lookups(session):
            for start in range(0, len(ordered), 1000):
                rows = session.execute(_PG_CANDIDATES, {"values": array_literal(ordered[start:start + 1000]),
                                                        "limit": CANDIDATES_PER_KEY})
                for scope, kind, value, record_id in rows:
                    found[(scope, kind, value)].append(record_id)
        return found
    for value in ordered:  # SQLite is in-process: a statement per value is cheap
        for scope, kind, record_id in session.execute(
                select(MatchKey.scope, MatchKey.kind, MatchKey.record_id).where(MatchKey.value == value)
                .order_by(MatchKey.record_id.desc()).limit(CANDIDATES_PER_KEY * 4)):
            if len(found[(scope, kind, value)]) < CANDIDATES_PER_KEY:
                found[(scope, kind, value)].append(record_id)
    return found


def _fields(session: Session, owners: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    by_scope: dict[str, list[int]] = defaultdict(list)
    for scope, record_id in owners:
        by_scope[scope].append(record_id)
    result = {}
    for scope, ids in by_scope.items():
        model = PERSON_MODELS[scope]
        columns = [getattr(model, name) for name in COMPARED]
        for start in range(0, len(ids), 1000):
            for row in session.execute(select(model.id, *columns).where(model.id.in_(ids[start:start + 1000]))):
                result[(scope, row[0])] = dict(zip(COMPARED, row[1:]))
    return result


# -- the queue --------------------------------------------------------------------------------------


def review_rows(session: Session, state: str | None = "open", limit: int = 100) -> list[dict[str, Any]]:
    """Queued pairs with both records' names and contact points, best score first."""
    query = select(DuplicateReview).order_by(DuplicateReview.score.desc(), DuplicateReview.id).limit(limit)
    if state:
        query = query.where(DuplicateReview.state == state)
    reviews = session.scalars(query).all()
    fields = _fields(session, {(r.record_type, r.record_id) for r in reviews}
                     | {(r.other_type, r.other_id) for r in reviews})
    return [{"id": r.id, "state": r.state, "score": r.score, "suggested": r.suggested,
             "a": {"type": r.record_type, "id": r.record_id, **fields.get((r.record_type, r.record_id), {})},
             "b": {"type": r.other_type, "id": r.other_id, **fields.get((r.other_type, r.other_id), {})},
             "reasons": r.reasons, "decided_at": r.decided_at} for r in reviews]


def keep_separate(session: Session, review_id: int) -> DuplicateReview:
    review = _open(session, review_id)
    review.state, review.decided_at = "kept_separate", utcnow()
    return review


def merge_pair(session: Session, review_id: int) -> dict[str, Any]:
    """Merge the pair's newer record into the older one (same record type only): the survivor
    keeps its values and gains the other's where it has blanks, every contact point, case,
    activity, campaign membership and item outcome; the other is deleted, its values kept in
    the merge log."""
    review = _open(session, review_id)
    if review.record_type != review.other_type:
        raise ValueError(f"review {review_id} pairs a {review.record_type} and a {review.other_type}; "
                         "only records of one type merge (qualify the lead to join it to the contact)")
    scope = review.record_type
    survivor_id, loser_id = sorted((review.record_id, review.other_id))
    model = PERSON_MODELS[scope]
    survivor = session.get(model, survivor_id, with_for_update=True)
    loser = session.get(model, loser_id, with_for_update=True)
    if survivor is None or loser is None:
        raise LookupError(f"review {review_id}: a record of the pair no longer exists")
    columns = [c.name for c in model.__table__.columns if c.name not in ("id", "created_at", "updated_at")]
    snapshot = {name: _plain(getattr(loser, name)) for name in columns}
    current = {name: getattr(survivor, name) for name in columns}
    filled = fill_blanks(current, {name: getattr(loser, name) for name in columns})
    for name, value in filled.items():
        setattr(survivor, name, value)
    survivor.updated_at = utcnow()
    moved = _repoint(session, scope, loser_id, survivor_id)
    session.add(MergeLog(raw_item_id=review.raw_item_id or 0, record_type=scope, record_id=survivor_id,
                         filled={"merged_record": {"id": loser_id, **snapshot},
                                 "filled": {k: _plain(v) for k, v in filled.items()}}))
    session.delete(loser)
    review.state, review.decided_at = "merged", utcnow()
    return {"review": review_id, "record_type": scope, "survivor": survivor_id, "merged": loser_id,
            "filled": sorted(filled), **moved}


def _repoint(session: Session, scope: str, loser: int, survivor: int) -> dict[str, int]:
    """Everything that named the merged record names the survivor; duplicates are dropped."""
    moved = {}
    owned = set(session.execute(select(IdentityKey.kind, IdentityKey.value)
                                .where(IdentityKey.scope == scope, IdentityKey.record_id == survivor)).all())
    for key in session.scalars(select(IdentityKey).where(IdentityKey.scope == scope,
                                                         IdentityKey.record_id == loser)):
        if (key.kind, key.value) in owned:
            session.delete(key)
        else:
            key.record_id = survivor
    session.execute(update(MatchKey).where(MatchKey.scope == scope, MatchKey.record_id == loser)
                    .values(record_id=survivor))
    members = set(session.scalars(select(CampaignMember.campaign_id).where(
        CampaignMember.record_type == scope, CampaignMember.record_id == survivor)))
    session.execute(delete(CampaignMember).where(CampaignMember.record_type == scope,
                                                 CampaignMember.record_id == loser,
                                                 CampaignMember.campaign_id.in_(members or {-1})))
    moved["campaign_members"] = session.execute(
        update(CampaignMember).where(CampaignMember.record_type == scope, CampaignMember.record_id == loser)
        .values(record_id=survivor)).rowcount
    moved["cases"] = session.execute(update(Case).where(Case.contact_id == loser).values(
        contact_id=survivor)).rowcount if scope == "contact" else 0
    column = Opportunity.contact_id if scope == "contact" else Opportunity.lead_id
    moved["opportunities"] = session.execute(update(Opportunity).where(column == loser)
                                             .values({column.key: survivor})).rowcount
    moved["activities"] = session.execute(
        update(Activity).where(Activity.regarding_type == scope, Activity.regarding_id == loser)
        .values(regarding_id=survivor)).rowcount
    moved["items"] = session.execute(
        update(RawItem).where(RawItem.record_type == scope, RawItem.record_id == loser)
        .values(record_id=survivor)).rowcount
    session.execute(update(MergeLog).where(MergeLog.record_type == scope, MergeLog.record_id == loser)
                    .values(record_id=survivor))
    # other open pairs naming the merged record now name the survivor (or vanish into it)
    for review in session.scalars(select(DuplicateReview).where(
            DuplicateReview.state == "open",
            ((DuplicateReview.record_type == scope) & (DuplicateReview.record_id == loser))
            | ((DuplicateReview.other_type == scope) & (DuplicateReview.other_id == loser)))):
        review.state, review.decided_at = "merged", utcnow()
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


# -- the re-check -----------------------------------------------------------------------------------

RECHECK_CHECKPOINT = "_duplicates"  # a connector_checkpoints row: how far records were re-checked
RECHECK_SETTLE_SECONDS = 60  # records younger than this may still have a concurrent look-alike in flight


def recheck(session: Session, settings, *, limit: int = 5000, from_start: bool = False) -> dict[str, int]:
    """Compare records created since the last re-check (older than a minute) with their
    look-alikes, by the same rules: what slipped in past the online check (two look-alikes
    created by two workers at once) or past the rules of the day. `from_start` re-checks every
    record (after a rules change). Returns records checked and pairs queued."""
    done = {} if from_start else (load_checkpoint(session, RECHECK_CHECKPOINT) or {})
    settled = utcnow() - timedelta(seconds=RECHECK_SETTLE_SECONDS)
    result = {"checked": 0, "queued": 0}
    for scope, model in PERSON_MODELS.items():
        rows = session.execute(
            select(model.id, model.source, *[getattr(model, name) for name in COMPARED])
            .where(model.id > done.get(scope, 0), model.created_at < settled)
            .order_by(model.id).limit(limit)).all()
        people = [NewPerson(scope, row[0], dict(zip(COMPARED, row[2:]))) for row in rows
                  if _reviewed(settings, row[1])]
        result["queued"] += flag_possible_duplicates(session, people, settings.matching)
        result["checked"] += len(people)
        if rows:
            done[scope] = rows[-1][0]
    save_checkpoint(session, RECHECK_CHECKPOINT, done)
    return result


def _reviewed(settings, source: str | None) -> bool:
    """Records of sources that review duplicates (an unknown or removed source: yes)."""
    config = settings.sources.get(source) if source else None
    return config is None or config.reviews_duplicates
