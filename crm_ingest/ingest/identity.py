"""Exact identity resolution through the identity-key table; the database settles races.

Keys of the batch are looked up in bulk (an index lookup, never a scan), items sharing a key
join one person, new people get a record, and their keys are inserted in one globally sorted
pass with insert-on-conflict-do-nothing. Sorting makes every transaction take key locks in the
same order, so concurrent workers wait for each other instead of deadlocking. A key lost to a
concurrent transaction redirects that person to the winner's record.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import case, delete, literal, select, text, update
from sqlalchemy.orm import Session

from crm_ingest.models import Contact, IdentityKey, Lead, utcnow
from crm_ingest.models.bulk import allocate_ids, array_literal, copy_rows, index_lookups, insert_rows, update_rows

from .matching import is_role_address, other_first_name, same_person_names
from .plan import ItemPlan

Key = tuple[str, str, str]  # (scope, kind, value)
PERSON_MODELS = {"lead": Lead, "contact": Contact}
_CHUNK = 500
# `= ANY(array)` puts all three columns in the unique index's condition. A join against
# unnest() let a generic plan (psycopg prepares repeated statements) scan every key of the
# scope and kind: 100-400 ms a batch at 800k keys, growing with the table.
_PG_LOOKUP = text(
    "SELECT scope, kind, value, record_id FROM identity_keys WHERE value = ANY(CAST(:values AS TEXT[]))")
_LOOKUP_CHUNK = 2000


@dataclass
class Person:
    """One person of the batch: an existing record, or a new one to create."""

    scope: str
    record_id: int | None = None
    created: bool = False
    redirect: bool = True  # may a key lost to a concurrent worker redirect this person?
    match_kinds: tuple[str, ...] | None = None  # only these kinds identify (None: every kind)
    origin_item_id: int | None = None  # the item that created the record
    do_not_contact: bool = False  # an existing record marked so
    campaign_id: int | None = None  # an existing lead's own campaign (Dynamics' source campaign)
    fields: dict[str, Any] = field(default_factory=dict)
    plans: list[ItemPlan] = field(default_factory=list)
    new_keys: list[Key] = field(default_factory=list)
    won_keys: list[Key] = field(default_factory=list)
    filled: dict[str, Any] = field(default_factory=dict)
    # rows that found this person by its own address but name someone else ('Karl Berg' at
    # anna.berg@): linked, their other details not taken; item id -> the name they met
    strangers: dict[int, str] = field(default_factory=dict)
    # item id -> {field: (the record's value, the row's other)}: what survivorship kept over each row's
    kept: dict[int, dict[str, tuple[Any, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    record_type: str
    record_id: int
    created: bool  # this item created the record
    origin_item_id: int | None  # the item that created the record (for 'duplicate of row N')
    do_not_contact: bool = False  # an existing record marked do-not-contact
    campaign_id: int | None = None  # an existing lead's own campaign
    stranger_of: str | None = None  # the record's name, when this row named someone else (Person.strangers)
    kept: dict[str, tuple[Any, Any]] | None = None  # the record's values the row would have changed (Person.kept)


@dataclass(frozen=True)
class MergeEntry:
    """What one item changed on an existing record: undone by an import revert."""

    raw_item_id: int
    record_type: str
    record_id: int
    filled: dict[str, Any]
    keys_added: list[list[str]]


def resolve_people(session: Session, plans: list[ItemPlan], record_defaults: dict[int, dict[str, Any]]
                   ) -> tuple[dict[int, Resolved], list[MergeEntry]]:
    """Find or create the person record of every plan that has one; item id -> record."""
    with_person = [plan for plan in plans if plan.person is not None]
    if not with_person:
        return {}, []
    owners = lookup_keys(session, {(scope, kind, value) for p in with_person
                                   for scope in _scopes(p) for kind, value in _finding_keys(p)})
    people = _group(with_person, owners, _names_behind_shared_keys(session, owners))

    new = [person for person in people if person.record_id is None]
    _insert_records(session, new, record_defaults)
    lost = _insert_keys(session, people)
    if lost:
        _redirect_losers(session, [p for p in new if p.redirect], lost)
    _merge_into_existing(session, [p for p in people if not p.created])

    resolved: dict[int, Resolved] = {}
    merges: list[MergeEntry] = []
    for person in people:
        origin = person.plans[0].item_id if person.created else person.origin_item_id
        for index, plan in enumerate(person.plans):
            resolved[plan.item_id] = Resolved(person.scope, person.record_id, person.created and index == 0, origin,
                                              do_not_contact=person.do_not_contact,
                                              stranger_of=person.strangers.get(plan.item_id),
                                              kept=person.kept.get(plan.item_id), campaign_id=person.campaign_id)
        if not person.created and (person.filled or person.won_keys):
            merges.append(MergeEntry(person.plans[0].item_id, person.scope, person.record_id,
                                     person.filled, [[k[1], k[2]] for k in person.won_keys]))
    return resolved, merges


def _finding_keys(plan: ItemPlan) -> list[tuple[str, str]]:
    """The keys that may find an existing person: only these are looked up. Any other key
    of the plan is offered with insert-on-conflict, and one owned already stays its owner's."""
    if not plan.person.match:
        return []
    kinds = plan.person.match_kinds
    return [key for key in plan.person.keys if kinds is None or key[0] in kinds]


def _scopes(plan: ItemPlan) -> tuple[str, ...]:
    """Record types whose keys identify this plan's person, the most established first."""
    return (*plan.person.also_scopes, plan.person.scope)


def lookup_keys(session: Session, keys: Iterable[Key]) -> dict[Key, int]:
    """Owners of the given keys. The unique index leads with the value, so one statement looks
    up every value of the batch at once, whatever its scope and kind."""
    wanted = set(keys)
    wanted.update((scope, TWIN_KIND[kind], value) for scope, kind, value in list(wanted) if kind in TWIN_KIND)
    values = sorted({value for _, _, value in wanted})
    owners: dict[Key, int] = {}
    pg = session.get_bind().dialect.name == "postgresql"
    with index_lookups(session):
        for start in range(0, len(values), _LOOKUP_CHUNK):
            chunk = values[start:start + _LOOKUP_CHUNK]
            if pg:  # one array parameter: no long statement of placeholders to parse and plan
                rows = session.execute(_PG_LOOKUP, {"values": array_literal(chunk)})
            else:
                rows = session.execute(select(IdentityKey.scope, IdentityKey.kind, IdentityKey.value,
                                              IdentityKey.record_id).where(IdentityKey.value.in_(chunk)))
            for scope, kind, value, record_id in rows:
                if (scope, kind, value) in wanted:
                    owners[(scope, kind, value)] = record_id
    return owners


EMAIL_KINDS = ("email", "email_canonical")
# One mailbox as either kind: a list's ciaberg@gmail.com is the cia.berg@gmail.com of an
# earlier one (whose canonical mailbox it is); the lookup by value returns both kinds anyway
TWIN_KIND = {"email": "email_canonical", "email_canonical": "email"}


def _is_shared(kind: str, value: str) -> bool:
    """A contact point several people may use: a role address (info@, sales@, kundtjanst@)
    or a phone (a switchboard, a household)."""
    return kind == "phone" or (kind in EMAIL_KINDS and is_role_address(value))


def _may_join(key: tuple[str, str], fields: dict[str, Any], other: dict[str, Any]) -> bool:
    """A shared contact point finds a person only when the names agree: on its own it must
    not merge two colleagues or two members of a family."""
    return not _is_shared(*key) or same_person_names(fields, other)


def _completes(kind: str, person: Person, other: dict[str, Any]) -> bool:
    """A row matched by its address alone still finds the person its phone names when that
    person has no address yet (a trade show's list gave the mobile, a later list the address):
    the address then fills the blank. A record with an address of its own is someone else,
    or a person this row's list does not know as such (matching by email, a shared phone must
    not join two people with addresses). The names must agree as well (`_may_join`)."""
    return kind == "phone" and bool(person.fields.get("email")) and not other.get("email") \
        and bool(other.get("first_name") or other.get("last_name"))  # a nameless number: no one's yet


def _names_behind_shared_keys(session: Session, owners: dict[Key, int]) -> dict[tuple[str, int], dict]:
    """Names (and address) of the existing records that own a shared contact point the batch uses,
    or an address (a family's, or one a row names someone else at: see _group)."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for (scope, kind, value), record_id in owners.items():
        if (kind in EMAIL_KINDS or _is_shared(kind, value)) and scope in PERSON_MODELS:
            wanted[scope].add(record_id)
    names = {}
    for scope, ids in wanted.items():
        model = PERSON_MODELS[scope]
        for row in session.execute(select(model.id, model.first_name, model.last_name, model.email)
                                   .where(model.id.in_(sorted(ids)))):
            names[(scope, row.id)] = {"first_name": row.first_name, "last_name": row.last_name,
                                      "email": row.email}
    return names


def _group(plans: list[ItemPlan], owners: dict[Key, int],
           names: dict[tuple[str, int], dict] | None = None) -> list[Person]:
    """Items that share a key are one person; a key already owned names the existing record
    (a list row whose email is a known contact's is that contact, not a new lead). A shared
    contact point joins only people whose names agree (`names`: of the existing records that
    own one)."""
    names = names or {}
    people: list[Person] = []
    by_key: dict[Key, Person] = {}  # (scope, kind, value): a case's contact never joins a lead
    existing: dict[tuple[str, int], Person] = {}
    for plan in plans:
        keys, fields, kinds = plan.person.keys, plan.person.fields, plan.person.match_kinds
        finding = keys if kinds is None else [k for k in keys if k[0] in kinds]
        scopes = _scopes(plan)
        person = None
        if plan.person.match:
            person = _sharing_a_key(by_key, scopes, finding, fields)
            if person is None and kinds is not None and "phone" not in kinds:  # matched by address
                person = _known_by_phone_alone(by_key, scopes, keys, fields)
            for scope in scopes if person is None else ():
                record_id = _owner(owners, names, scope, finding, fields)
                if record_id is not None:
                    slot = (scope, record_id)
                    if slot not in existing:
                        existing[slot] = Person(scope, record_id=record_id)
                        people.append(existing[slot])
                    person = existing[slot]
                    break
        if person is None:
            person = Person(plan.person.scope, redirect=plan.person.match,
                            match_kinds=plan.person.match_kinds)
            people.append(person)
        person.plans.append(plan)
        if person.record_id is None and person.plans[0] is not plan and other_first_name(fields, person.fields):
            person.strangers[plan.item_id] = _name_of(person.fields)  # found by the address of an earlier row's person
            continue
        if person.record_id is not None and (known := names.get((person.scope, person.record_id))) \
                and other_first_name(fields, known):
            # found by a known person's address, naming someone else (Karl at the family's address
            # Anna's lead holds): linked to her, and nothing of the row is hers, not even its
            # number for the batch's next row to find her by (_set_apart_strangers does the rest)
            person.strangers[plan.item_id] = _name_of(known)
            continue
        fill_blanks(person.fields, plan.person.fields)
        for kind, value in keys:
            key = (person.scope, kind, value)
            if key not in owners and key not in person.new_keys and key not in by_key:
                person.new_keys.append(key)
            by_key.setdefault(key, person)
    return people


def _name_of(fields: dict[str, Any]) -> str:
    return " ".join(str(fields[n]) for n in ("first_name", "last_name") if fields.get(n)) or "no name"


def _sharing_a_key(by_key: dict[Key, Person], scopes: tuple[str, ...], finding: list[tuple[str, str]],
                   fields: dict[str, Any]) -> Person | None:
    """The person of the batch that has one of these keys first (scope by scope), if any may be joined."""
    for scope in scopes:
        for kind, value in finding:
            other = by_key.get((scope, kind, value))
            if other is None and kind in TWIN_KIND:
                other = by_key.get((scope, TWIN_KIND[kind], value))
            if other is not None and _may_join((kind, value), fields, other.fields):
                return other
    return None


def _known_by_phone_alone(by_key: dict[Key, Person], scopes: tuple[str, ...], keys: list[tuple[str, str]],
                          fields: dict[str, Any]) -> Person | None:
    """A person of the batch, without an address, whom this row's phone and name find (a row
    matched by its address; see `_completes`)."""
    if not fields.get("email"):
        return None
    for scope in scopes:
        for kind, value in keys:
            other = by_key.get((scope, kind, value)) if kind == "phone" else None
            if other is not None and not other.fields.get("email") and _may_join((kind, value), fields, other.fields) \
                    and (other.fields.get("first_name") or other.fields.get("last_name")):
                return other
    return None


def _owner(owners: dict[Key, int], names: dict[tuple[str, int], dict], scope: str,
           finding: list[tuple[str, str]], fields: dict[str, Any]) -> int | None:
    """The existing record of the scope that owns one of these keys first, if it may be joined."""
    for kind, value in finding:
        record_id = owners.get((scope, kind, value))
        if record_id is None and kind in TWIN_KIND:
            record_id = owners.get((scope, TWIN_KIND[kind], value))
        if record_id is not None and _may_join((kind, value), fields, names.get((scope, record_id), {})):
            return record_id
    return None


# A record's values a row may differ in: said on the row's outcome (survivorship keeps the record's)
_COMPARED = ("first_name", "last_name", "company_name", "job_title", "phone", "mobile_phone", "street",
             "postal_code", "city", "state_or_province", "country")


def _set_apart_strangers(session: Session, person: Person, record: dict[str, Any]) -> None:
    """Rows that found an existing record by its address but name another person by first
    name ('Karl Berg' at Anna Berg's anna.berg@) are linked to it and nothing more: their
    other details fill none of its blanks, and their numbers, inserted as its keys a moment
    ago, are taken out again (a call from Karl's phone must not find Anna)."""
    if not record.get("first_name"):
        return
    strangers = [plan for plan in person.plans if other_first_name(plan.person.fields, record)]
    if not strangers:
        return
    name = _name_of(record)
    person.strangers.update((plan.item_id, name) for plan in strangers)
    kept = [plan for plan in person.plans if plan not in strangers]
    person.fields = {}
    for plan in kept:
        fill_blanks(person.fields, plan.person.fields)
    own = {(person.scope, kind, value) for plan in kept for kind, value in plan.person.keys}
    theirs = [key for key in person.won_keys if key not in own]
    for scope, kind, value in theirs:
        session.execute(delete(IdentityKey).where(IdentityKey.scope == scope, IdentityKey.kind == kind,
                                                  IdentityKey.value == value, IdentityKey.record_id == person.record_id))
    person.won_keys = [key for key in person.won_keys if key in own]


def fill_blanks(target: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Survivorship: a value fills a blank, never overwrites one. Returns what changed. A lead's
    `details` are merged, not taken whole or not at all (see merged_details)."""
    if not target:  # a new person's first item: every value that is not blank
        changed = {name: value for name, value in values.items() if value is not None and value != ""}
        target.update(changed)
        return changed
    changed = {}
    for name, value in values.items():
        if value in (None, ""):
            continue
        if target.get(name) in (None, ""):
            target[name] = changed[name] = value
        elif name == "details" and type(value) is dict and type(target[name]) is dict:
            merged = merged_details(target[name], value)
            if merged is not None:
                target[name] = changed[name] = merged
    return changed


MAX_NOTES_CHARS = 4000  # a lead's notes gathered from rows: the newest kept, as a row's own note is capped


def _notes_together(current: str, given: str) -> str:
    """A lead's note and a later row's: a CRM's running note written out again ('Called 1 March',
    then 'Called 1 March, met 2 April') replaces the one it holds; a note held already adds
    nothing; another is added after it. At most MAX_NOTES_CHARS, the newest kept."""
    if given in current:
        return current
    together = given if current in given else f"{current}\n\n{given}"
    return together if len(together) <= MAX_NOTES_CHARS else "…" + together[-(MAX_NOTES_CHARS - 1):]


def details_added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What merging a row changed in a lead's details, for a revert to take back that alone
    (another import's additions since, or before, stay): each field as it was and became, the
    extra columns, addresses, numbers and consents added."""
    added: dict[str, Any] = {}
    fields_before, fields_after = before.get("fields") or {}, after.get("fields") or {}
    changed = {name: [fields_before.get(name), value] for name, value in fields_after.items()
               if fields_before.get(name) != value}
    if changed:
        added["fields"] = changed
    extra_before = before.get("extra") or {}
    if extra := {name: value for name, value in (after.get("extra") or {}).items() if name not in extra_before}:
        added["extra"] = extra
    for name in ("other_emails", "other_phones", "other_consents"):
        if items := [item for item in after.get(name) or [] if item not in (before.get(name) or [])]:
            added[name] = items
    if after.get("consent") and not before.get("consent"):
        added["consent"] = after["consent"]
    own = {"fields", "extra", "other_emails", "other_phones", "other_consents", "consent"}
    if keys := {name: value for name, value in after.items() if name not in own and name not in before}:
        added["keys"] = keys  # where the row came from, on a lead that had no details: 'file', 'row', 'import_job'
    return added


def _without_note(notes: str, piece: str) -> str | None:
    """The notes without one note among them, as whole paragraphs (a note of several paragraphs
    too); None when it was all of them."""
    bounded, target = f"\n\n{notes}\n\n", f"\n\n{piece}\n\n"
    if target in bounded:
        bounded = bounded.replace(target, "\n\n", 1)
    return bounded.strip("\n") or None


def take_back_details(current: dict[str, Any] | None, added: dict[str, Any]) -> dict[str, Any] | None:
    """A lead's details without what one merge added (see details_added): a field still as that
    merge left it goes back to what it was; a note it appended is taken out of the note wherever
    it stands now; what it added to lists is removed."""
    if not current:
        return current
    details = dict(current)
    fields = dict(details.get("fields") or {})
    for name, (was, became) in (added.get("fields") or {}).items():
        now = fields.get(name)
        if now == became:
            fields[name] = was
        elif name == "notes" and isinstance(became, str) and isinstance(now, str):
            # the note this merge gave, taken out of the note as it stands after later merges
            piece = became[len(was) + 2:] if was and became.startswith(f"{was}\n\n") else None if was else became
            if piece:
                fields[name] = _without_note(now, piece)
        if fields.get(name) is None:
            fields.pop(name, None)
    if fields:
        details["fields"] = fields
    else:
        details.pop("fields", None)
    extra = {name: value for name, value in (details.get("extra") or {}).items()
             if (added.get("extra") or {}).get(name, object()) != value}
    if extra:
        details["extra"] = extra
    else:
        details.pop("extra", None)
    for name in ("other_emails", "other_phones", "other_consents"):
        if name in added:
            kept = [item for item in details.get(name) or [] if item not in added[name]]
            if kept:
                details[name] = kept
            else:
                details.pop(name, None)
    if added.get("consent") and details.get("consent") == added["consent"]:
        details.pop("consent")
        if details.get("other_consents"):  # the next one given is the lead's consent now
            details["consent"], *rest = details["other_consents"]
            if rest:
                details["other_consents"] = rest
            else:
                details.pop("other_consents")
    for name, value in (added.get("keys") or {}).items():
        if details.get(name) == value:
            details.pop(name)
    return details or None


def merged_details(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any] | None:
    """A lead's details with a later row's added (None when it adds nothing): where the lead came
    from stays its first row's, but what a later row says of the person is kept too, a trade
    show's note ('Wants a quote by May') added after the lead's own, a column or a consent basis
    the lead lacks filled in, another consent kept beside its own."""
    merged = dict(current)
    fields = dict(current.get("fields") or {})
    for name, value in (given.get("fields") or {}).items():
        if value in (None, ""):
            continue
        if fields.get(name) in (None, ""):
            fields[name] = value
        elif name == "notes":
            fields[name] = _notes_together(str(fields[name]), str(value))
    if fields != (current.get("fields") or {}):
        merged["fields"] = fields
    extra = {**(given.get("extra") or {}), **(current.get("extra") or {})}
    if extra != (current.get("extra") or {}):
        merged["extra"] = extra
    for name in ("other_emails", "other_phones"):
        if given.get(name):
            others = list(dict.fromkeys([*(current.get(name) or []), *given[name]]))
            if others != (current.get(name) or []):
                merged[name] = others
    consent = given.get("consent")
    if consent and not current.get("consent"):
        merged["consent"] = consent
    elif consent and consent != current.get("consent") and consent not in (current.get("other_consents") or []):
        merged["other_consents"] = [*(current.get("other_consents") or []), consent]
    return merged if merged != current else None


def _insert_records(session: Session, new: list[Person], record_defaults: dict[int, dict[str, Any]]) -> None:
    for scope, model in PERSON_MODELS.items():
        batch = [person for person in new if person.scope == scope]
        if not batch:
            continue
        columns = set(model.__table__.columns.keys())
        rows = []
        for person in batch:
            first_item = person.plans[0].item_id
            row = {**record_defaults.get(first_item, {}), **person.fields, "origin_item_id": first_item}
            rows.append({name: value for name, value in row.items() if name in columns})
        ids = allocate_ids(session, model, len(rows))
        for person, row, record_id in zip(batch, rows, ids):
            row["id"] = record_id
            person.record_id, person.created = record_id, True
        copy_rows(session, model, rows)  # new ids: nothing to conflict with


def _insert_keys(session: Session, people: list[Person]) -> set[Key]:
    """Insert every new key in sorted order; return the keys another transaction owns already."""
    lost = _insert_sorted_keys(session, people)
    for person in people:
        person.won_keys = [key for key in person.new_keys if key not in lost]
    return lost


def _insert_sorted_keys(session: Session, people: list[Person]) -> set[Key]:
    # flat (scope, kind, value, record_id) rows: sorting nested (key, record_id) pairs compared
    # a tuple inside a tuple at every step
    rows = sorted([(scope, kind, value, person.record_id)
                   for person in people for scope, kind, value in person.new_keys])
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        return _pg_insert_sorted_keys(session, rows)
    named = [{"scope": scope, "kind": kind, "value": value, "record_id": record_id}
             for scope, kind, value, record_id in rows]
    won: set[Key] = set()
    for start in range(0, len(named), _CHUNK):
        won.update(insert_rows(session, IdentityKey, named[start:start + _CHUNK],
                               on_conflict_do_nothing=("scope", "kind", "value"),
                               returning=("scope", "kind", "value")))
    return {row[:3] for row in rows} - won


# One statement for a chunk's keys, in the sorted order (a CTE scan keeps the array order,
# so every transaction takes the key locks in the same order), answering with the keys it
# could not insert: those a concurrent worker's record owns already. PostgreSQL compares what
# went in with what was offered; returning every inserted key to Python cost a round of
# thousands of rows a chunk.
_PG_INSERT_KEYS = text(
    "WITH u AS MATERIALIZED (SELECT * FROM unnest(CAST(:scopes AS TEXT[]), CAST(:kinds AS TEXT[]), "
    "CAST(:values AS TEXT[]), CAST(:record_ids AS BIGINT[])) AS u(scope, kind, value, record_id)), "
    "ins AS (INSERT INTO identity_keys (scope, kind, value, record_id, created_at) "
    "SELECT scope, kind, value, record_id, CAST(:now AS TIMESTAMPTZ) FROM u "
    "ON CONFLICT (value, kind, scope) DO NOTHING RETURNING scope, kind, value) "
    "SELECT scope, kind, value FROM u EXCEPT SELECT scope, kind, value FROM ins")
_PG_KEYS_CHUNK = 5000


def _pg_insert_sorted_keys(session: Session, rows: list[tuple[str, str, str, int]]) -> set[Key]:
    lost: set[Key] = set()
    now = utcnow().isoformat()
    for start in range(0, len(rows), _PG_KEYS_CHUNK):
        scopes, kinds, values, record_ids = zip(*rows[start:start + _PG_KEYS_CHUNK])
        lost.update(map(tuple, session.execute(_PG_INSERT_KEYS, {
            "now": now, "scopes": array_literal(scopes), "kinds": array_literal(kinds),
            "values": array_literal(values), "record_ids": array_literal(record_ids)})))
    return lost


def _redirect_losers(session: Session, new: list[Person], lost: set[Key]) -> None:
    """A new person whose identifying key a concurrent worker took is that worker's person:
    merge into it. A lost key of a kind that does not identify this person (a phone shared
    with a colleague, when matching by email), or a shared one (a phone, a role address)
    whose owner has another name, just stays with its owner."""
    winners = lookup_keys(session, lost)
    names = _names_behind_shared_keys(session, winners)
    moved: dict[str, dict[int, int]] = defaultdict(dict)  # scope -> provisional record -> winner
    for person in new:
        taken = [key for key in person.new_keys if key in lost
                 and (person.match_kinds is None or key[1] in person.match_kinds
                      or _completes(key[1], person, names.get((key[0], winners[key]), {})))
                 and _may_join(key[1:], person.fields, names.get((key[0], winners[key]), {}))]
        if taken:
            moved[person.scope][person.record_id] = winners[taken[0]]
            person.record_id, person.created = winners[taken[0]], False
    # a few statements for all of them: two a person were most of an early chunk's time, when
    # the rows repeating the first chunk's people meet it still uncommitted in the other worker
    for scope, winner_of in moved.items():
        model = PERSON_MODELS[scope]
        provisional = sorted(winner_of)
        for start in range(0, len(provisional), _CHUNK):
            part = provisional[start:start + _CHUNK]
            session.execute(delete(model).where(model.id.in_(part)))
            session.execute(update(IdentityKey)
                            .where(IdentityKey.scope == scope, IdentityKey.record_id.in_(part))
                            .values(record_id=case({record_id: winner_of[record_id] for record_id in part},
                                                   value=IdentityKey.record_id))
                            .execution_options(synchronize_session=False))


def _merge_into_existing(session: Session, people: list[Person]) -> None:
    """Fill the blanks of existing records, locking them in id order (no deadlocks); each
    person learns what it filled and who created the record."""
    for scope, model in PERSON_MODELS.items():
        by_record: dict[int, list[Person]] = defaultdict(list)
        for person in people:
            if person.scope == scope:
                by_record[person.record_id].append(person)
        if not by_record:
            continue
        columns = set(model.__table__.columns.keys())
        names = sorted({n for group in by_record.values() for p in group for n in p.fields} & columns)
        ids = sorted(by_record)
        current: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            own_campaign = model.campaign_id if scope == "lead" else literal(None)
            stmt = (select(model.id, model.origin_item_id, model.do_not_contact, own_campaign,
                           *[getattr(model, n) for n in names])
                    .where(model.id.in_(ids[start:start + _CHUNK])).order_by(model.id)
                    .with_for_update(key_share=True))
            for row in session.execute(stmt):
                current[row[0]] = {"origin_item_id": row[1], "do_not_contact": row[2], "own_campaign": row[3],
                                   **dict(zip(names, row[4:]))}
        missing = set(ids) - set(current)
        if missing:
            raise LookupError(f"identity keys point to missing {scope} records {sorted(missing)[:5]}")
        updates, now = [], utcnow()
        for record_id in ids:
            record = current[record_id]
            changed: dict[str, Any] = {}
            for person in by_record[record_id]:
                person.origin_item_id, person.do_not_contact = record["origin_item_id"], bool(record["do_not_contact"])
                person.campaign_id = record["own_campaign"]
                _set_apart_strangers(session, person, record)
                for plan in person.plans:
                    if plan.item_id not in person.strangers:
                        given = plan.person.fields
                        kept = {n: (record[n], given[n]) for n in names if n in _COMPARED
                                and record[n] not in (None, "") and given.get(n) not in (None, "")
                                and str(record[n]).casefold() != str(given[n]).casefold()}
                        if kept:
                            person.kept[plan.item_id] = kept
                before = record.get("details")
                person.filled = fill_blanks(record, {n: person.fields.get(n) for n in names})
                changed.update(person.filled)
                if "details" in person.filled:  # what a revert takes back, and only that
                    person.filled = {**person.filled, "details_added": details_added(before or {},
                                                                                     person.filled["details"])}
            if changed:
                updates.append({"id": record_id, **changed})
        if updates:
            update_rows(session, model, [{**row, "updated_at": now} for row in updates])
