"""A contact's company is one account, found by its work domain or its normalized name."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from crm_ingest.ingest.accounts import account_keys, link_accounts
from crm_ingest.models import Account, Contact, IdentityKey

CONFIG = '[sources.crm]\nkind = "row"\nrecord_type = "contact"\n'


def land_contacts(cli, tmp_path, name: str, *rows: dict) -> None:
    (tmp_path / "ingest.toml").write_text(CONFIG, encoding="utf-8")
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": f"{name}-{n}", "fields": row}) + "\n"
                            for n, row in enumerate(rows)), encoding="utf-8")
    result = cli("land", "--source", "crm", str(path))
    assert result.exit_code == 0, result.output


def accounts_of(sessions) -> dict[str, str | None]:
    """contact email -> its account's name."""
    with sessions() as session:
        return dict(session.execute(select(Contact.email, Account.name)
                                    .outerjoin(Account, Account.id == Contact.account_id)).all())


def test_account_keys_use_the_work_domain_and_the_name_without_its_legal_form():
    assert account_keys("ACME Inc.", "Bob@Acme.example.com") == [("domain", "acme.example.com"),
                                                                  ("company", "acme")]
    assert account_keys("Acme AB", "bob.smith@gmail.com") == [("company", "acme")]  # free mail: no domain
    assert account_keys(None, "anna@firma.example.se") == [("domain", "firma.example.se")]
    assert account_keys("  ", "not an address") == []


def test_contacts_of_one_company_share_one_account_however_it_is_written(cli, tmp_path, sessions_for):
    # Given contacts naming their company in different ways, across two loads
    land_contacts(cli, tmp_path, "a.jsonl",
                  {"first_name": "Bob", "email": "bob@acme.example.com", "company": "ACME Inc."},
                  {"first_name": "Eva", "email": "eva.lind@gmail.com", "company": "Acme AB"},
                  {"first_name": "Per", "email": "per@bygg.example.se", "company": "Norrbygg Aktiebolag"})
    land_contacts(cli, tmp_path, "b.jsonl",
                  {"first_name": "Kim", "email": "kim@acme.example.com"},  # the domain alone finds it
                  {"first_name": "Lo", "email": "lo@hotmail.com"},  # nothing to go by: no account
                  {"first_name": "Al", "email": "al@other.example.com", "company": "Norrbygg"})

    # Then: one Acme, one Norrbygg; the contact with only a free-mail address has none
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    assert accounts_of(sessions) == {
        "bob@acme.example.com": "ACME Inc.", "eva.lind@gmail.com": "ACME Inc.",
        "kim@acme.example.com": "ACME Inc.", "per@bygg.example.se": "Norrbygg Aktiebolag",
        "al@other.example.com": "Norrbygg Aktiebolag", "lo@hotmail.com": None}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 2
        acme = session.scalar(select(Account).where(Account.name == "ACME Inc."))
        assert acme.website_domain == "acme.example.com"
        assert set(session.execute(select(IdentityKey.kind, IdentityKey.value)
                                   .where(IdentityKey.scope == "account", IdentityKey.record_id == acme.id))) == {
            ("domain", "acme.example.com"), ("company", "acme")}


def test_a_list_row_never_creates_an_account(cli, tmp_path, sessions_for):
    land_contacts(cli, tmp_path, "a.jsonl", {"first_name": "Bob", "email": "bob@acme.example.com"})
    listing = tmp_path / "list.csv"
    listing.write_text("First Name,E-mail,Company\nBob,bob@acme.example.com,Acme AB\n", encoding="utf-8")
    assert cli("import", str(listing), "--campaign", "Q1").exit_code == 0
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 0


@pytest.mark.integration
def test_a_company_created_by_two_transactions_at_once_ends_as_one_account(pg_url, sessions_for):
    import threading
    import time

    from sqlalchemy import text

    from crm_ingest.models.bulk import insert_rows

    sessions = sessions_for(pg_url)
    with sessions.begin() as session:
        ids = [row[0] for row in insert_rows(session, Contact, [
            {"first_name": n, "email": f"{n}@acme.example.com"} for n in ("a", "b")], returning=("id",))]
    fields = {"company_name": "Acme AB"}
    # Given a first transaction that created Acme and has not committed
    first = sessions()
    first.begin()
    one = link_accounts(first, [(ids[0], {**fields, "email": "a@acme.example.com"})])

    # When a second one, which cannot see it yet, creates Acme too (its key insert waits)
    result = {}

    def second() -> None:
        with sessions.begin() as session:
            result["two"] = link_accounts(session, [(ids[1], {**fields, "email": "b@acme.example.com"})])

    thread = threading.Thread(target=second)
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        with sessions() as session:
            if session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND datname = current_database()")):
                break
        assert time.monotonic() < deadline, "the second transaction never waited for the first's keys"
        time.sleep(0.01)
    first.commit()
    first.close()
    thread.join(60)

    # Then the second gave its account up for the first's: one Acme, both contacts in it
    assert one[ids[0]] == result["two"][ids[1]]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 1
        assert set(session.scalars(select(Contact.account_id))) == {one[ids[0]]}
        assert session.scalar(select(func.count()).select_from(IdentityKey)
                              .where(IdentityKey.scope == "account")) == 2


def test_a_company_name_with_a_typo_is_queued_as_a_possible_duplicate_account(cli, tmp_path, sessions_for):
    # Given Ericsson's account, then a contact naming 'Ericson AB' from another domain
    land_contacts(cli, tmp_path, "a.jsonl", {"first_name": "Eva", "email": "eva@ericsson.example",
                                             "company": "Ericsson AB"})
    land_contacts(cli, tmp_path, "b.jsonl", {"first_name": "Bo", "email": "bo@ericson-group.example",
                                             "company": "Ericson AB"})

    # Then two accounts for now, and the pair waits for a person with the account rules' reasons
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    pairs = json.loads(cli("review", "list", "--json").output)["reviews"]
    assert [(p["a"]["type"], p["a"]["company_name"], p["b"]["company_name"]) for p in pairs] == [
        ("account", "Ericsson AB", "Ericson AB")]

    # When a person merges them, Bo's contact moves to Ericsson; an undo moves it back
    assert cli("review", "merge", str(pairs[0]["id"])).exit_code == 0
    assert set(accounts_of(sessions).values()) == {"Ericsson AB"}
    assert cli("review", "undo", str(pairs[0]["id"])).exit_code == 0
    assert accounts_of(sessions) == {"eva@ericsson.example": "Ericsson AB", "bo@ericson-group.example": "Ericson AB"}


def test_namesake_companies_in_other_forms_are_not_queued(cli, tmp_path):
    land_contacts(cli, tmp_path, "a.jsonl", {"email": "a@acme.example", "company": "Acme AB"},
                  {"email": "b@acme-sverige.example", "company": "Acme Sverige Holding AB"},
                  {"email": "c@nordic.example", "company": "Nordic Solutions"})
    assert json.loads(cli("review", "list", "--json").output)["reviews"] == []
