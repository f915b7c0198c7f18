"""A contact's company: the account found by its web domain (from a work email, never a free-mail
provider's) or by its normalized name (legal suffixes and punctuation dropped: 'ACME Inc.' is
'Acme AB'), created when the contact names a company no account has yet.

Accounts have identity keys like people ('domain', 'company'; scope 'account'), so a lookup is an
index probe and the unique index settles two workers creating the same company at once: the
account whose key lost to a concurrent transaction is dropped and its contacts join the winner.
A domain alone finds an account but never creates one (a domain is not a company's name).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_ingest.models import Account, Contact, IdentityKey
from crm_ingest.models.bulk import allocate_ids, insert_rows, update_rows

from .identity import lookup_keys
from .matching import _email_key, normalize_company, work_domain

SCOPE = "account"


def account_keys(company_name: Any, email: Any) -> list[tuple[str, str]]:
    """('domain', acme.se) from a work email and ('company', acme) from the name, in that order."""
    keys = []
    email_key = _email_key(email) if isinstance(email, str) and email.strip() else None
    domain = work_domain(email_key) if email_key else None
    if domain:
        keys.append(("domain", domain))
    name = normalize_company(company_name) if isinstance(company_name, str) else None
    if name:
        keys.append(("company", name))
    return keys


def link_accounts(session: Session, contacts: Iterable[tuple[int, Mapping[str, Any]]],
                  rules: Mapping[str, Any] | None = None) -> dict[int, int]:
    """Give each contact without an account the account of its company, creating those that do
    not exist; `contacts` are (contact id, fields with company_name and email). A new account is
    compared with its look-alikes (a typo in a company's name) by the account-account `rules`:
    merged or queued for review. Returns contact id -> account id for the contacts linked (an
    account merged since names its survivor)."""
    fields = dict(contacts)
    if not fields:
        return {}
    unlinked = set(session.scalars(select(Contact.id).where(Contact.id.in_(sorted(fields)),
                                                            Contact.account_id.is_(None))))
    wanted = {cid: account_keys(fields[cid].get("company_name"), fields[cid].get("email"))
              for cid in sorted(unlinked)}
    wanted = {cid: keys for cid, keys in wanted.items() if keys}
    if not wanted:
        return {}
    owners = lookup_keys(session, {(SCOPE, kind, value) for keys in wanted.values() for kind, value in keys})
    linked: dict[int, int] = {}
    new: dict[str, dict[str, Any]] = {}  # company key -> the account to create, with its contacts
    for cid, keys in wanted.items():
        found = next((owners[(SCOPE, kind, value)] for kind, value in keys if (SCOPE, kind, value) in owners), None)
        if found is not None:
            linked[cid] = found
            continue
        company = dict(keys).get("company")
        if company is None:
            continue
        account = new.setdefault(company, {"name": fields[cid]["company_name"].strip()[:300],
                                           "website_domain": None, "keys": {("company", company)},
                                           "contacts": []})
        account["contacts"].append(cid)
        for kind, value in keys:
            if kind == "domain":
                account["website_domain"] = account["website_domain"] or value
                account["keys"].add(("domain", value))
    created = _create(session, new, linked) if new else []
    # contacts of this batch with only a domain, at a company created just now
    by_domain = {value: linked[account["contacts"][0]] for account in new.values()
                 for kind, value in account["keys"] if kind == "domain" and account["contacts"][0] in linked}
    for cid, keys in wanted.items():
        if cid not in linked:
            domain = dict(keys).get("domain")
            if domain in by_domain:
                linked[cid] = by_domain[domain]
    update_rows(session, Contact, [{"id": cid, "account_id": account_id} for cid, account_id in linked.items()])
    if created:
        from .duplicates import NewPerson, flag_possible_duplicate_accounts

        merged = flag_possible_duplicate_accounts(session, [NewPerson("account", account_id, fields)
                                                            for account_id, fields in created], rules).merged
        linked = {cid: merged[("account", a)].survivor_id if ("account", a) in merged else a
                  for cid, a in linked.items()}
    return linked


def _create(session: Session, new: dict[str, dict[str, Any]], linked: dict[int, int]
            ) -> list[tuple[int, dict[str, Any]]]:
    """Insert the accounts; returns (id, fields) of those that stand (not lost to a concurrent
    worker)."""
    ordered = [new[company] for company in sorted(new)]
    ids = allocate_ids(session, Account, len(ordered))
    source = "ingest"
    insert_rows(session, Account, [{"id": account_id, "name": account["name"], "source": source,
                                    "website_domain": account["website_domain"]}
                                   for account_id, account in zip(ids, ordered)])
    # keys in one global order, as people's, so concurrent workers wait instead of deadlocking
    rows = sorted(((kind, value, account_id) for account_id, account in zip(ids, ordered)
                   for kind, value in account["keys"]), key=lambda row: (row[1], row[0]))
    won = set(insert_rows(session, IdentityKey, [{"scope": SCOPE, "kind": kind, "value": value,
                                                  "record_id": account_id} for kind, value, account_id in rows],
                          on_conflict_do_nothing=("value", "kind", "scope"), returning=("kind", "value")))
    lost = [(kind, value, account_id) for kind, value, account_id in rows if (kind, value) not in won]
    losers = {account_id for _, _, account_id in lost}
    winners = lookup_keys(session, {(SCOPE, kind, value) for kind, value, _ in lost})
    replacement = {}
    for kind, value, account_id in lost:  # a concurrent worker created the company first
        winner = winners.get((SCOPE, kind, value))
        if winner is not None and winner not in losers:
            replacement.setdefault(account_id, winner)
    for account_id, account in zip(ids, ordered):
        target = replacement.get(account_id, account_id)
        for cid in account["contacts"]:
            linked[cid] = target
    if replacement:
        dropped = sorted(replacement)
        session.execute(delete(IdentityKey).where(IdentityKey.scope == SCOPE, IdentityKey.record_id.in_(dropped)))
        session.execute(delete(Account).where(Account.id.in_(dropped)))
    return [(account_id, {"company_name": account["name"], "website_domain": account["website_domain"]})
            for account_id, account in zip(ids, ordered) if account_id not in replacement]
