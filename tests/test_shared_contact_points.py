"""One person, one record, but not one record for two people: gmail-style addresses find their
mailbox, and shared contact points (role addresses, switchboards, household phones) join
people only when their names agree. On the embedded path, with real forms and list rows."""
from __future__ import annotations

from sqlalchemy import func, select

from crm_ingest.ingest.matching import same_person_names
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import IdentityKey, Lead, RawItem
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.workers.dispatch import process_now


def submit(sessions, settings, *forms: dict) -> list[str]:
    """Land web forms one batch each (as they arrive over time); return their outcomes."""
    outcomes = []
    for number, fields in enumerate(forms):
        with sessions.begin() as session:
            existing = session.scalar(select(func.count()).select_from(RawItem))
            ids = land_items(session, "web", [NewItem(f"f{existing + number}", "form", {"fields": fields})])
        report = process_now(sessions, ids, settings)
        outcomes.extend(report.outcomes.elements())
    return outcomes


def leads(sessions) -> list[tuple]:
    with sessions() as session:
        return session.execute(select(Lead.first_name, Lead.last_name, Lead.email).order_by(Lead.id)).all()


def test_colleagues_writing_from_a_role_address_stay_two_leads(sqlite_url, sessions_for):
    sessions, settings = sessions_for(sqlite_url), Settings(database_url=sqlite_url)

    # Given Anna and then Bo writing from their company's info@ address
    outcomes = submit(sessions, settings,
                      {"first_name": "Anna", "last_name": "Ek", "email": "info@firma.example.se"},
                      {"first_name": "Bo", "last_name": "Berg", "email": "Info@Firma.example.se"})

    # Then they are two leads
    assert outcomes == ["created", "created"]
    assert [row[0] for row in leads(sessions)] == ["Anna", "Bo"]


def test_the_same_person_from_a_role_address_is_found_again(sqlite_url, sessions_for):
    sessions, settings = sessions_for(sqlite_url), Settings(database_url=sqlite_url)

    # Given Karl Jönsson, then 'Kalle Jonsson' and a nameless message, all from sales@
    outcomes = submit(sessions, settings,
                      {"first_name": "Karl", "last_name": "Jönsson", "email": "sales@firma.example.se"},
                      {"first_name": "Kalle", "last_name": "Jonsson", "email": "sales@firma.example.se"},
                      {"email": "sales@firma.example.se", "message": "Ring mig"})

    # Then it is one lead: nickname and diacritics agree, and no name cannot tell people apart
    assert outcomes == ["created", "merged", "merged"]
    assert len(leads(sessions)) == 1


def test_a_shared_phone_joins_only_people_whose_names_agree(sqlite_url, sessions_for):
    sessions, settings = sessions_for(sqlite_url), Settings(database_url=sqlite_url)

    # Given a household: Eva Lund, then Olle Lund with the same phone and no email, then Eva again
    outcomes = submit(sessions, settings,
                      {"first_name": "Eva", "last_name": "Lund", "phone": "070-123 45 67"},
                      {"first_name": "Olle", "last_name": "Lund", "phone": "+46 70 123 45 67"},
                      {"first_name": "Eva", "last_name": "Lund", "phone": "0701234567"})

    # Then Olle is his own lead, and Eva's second form finds her
    assert outcomes == ["created", "created", "merged"]
    assert [row[0] for row in leads(sessions)] == ["Eva", "Olle"]


def test_a_gmail_address_written_with_dots_or_a_tag_finds_its_mailbox(sqlite_url, sessions_for):
    sessions, settings = sessions_for(sqlite_url), Settings(database_url=sqlite_url)

    # Given one person writing from three spellings of one Gmail mailbox
    outcomes = submit(sessions, settings,
                      {"first_name": "Anna", "last_name": "Svensson", "email": "anna.svensson@gmail.com"},
                      {"first_name": "Anna", "last_name": "Svensson", "email": "AnnaSvensson+nyhet@gmail.com"},
                      {"email": "a.nna.svensson@googlemail.com"})

    # Then it is one lead, with the address as first entered, and each spelling kept as a key
    assert outcomes == ["created", "merged", "merged"]
    assert leads(sessions) == [("Anna", "Svensson", "anna.svensson@gmail.com")]
    with sessions() as session:
        # the mailbox behind them is a key of the lead too, as an address (two spellings stored
        # at once meet on it)
        assert set(session.execute(select(IdentityKey.kind, IdentityKey.value))) == {
            ("email", "anna.svensson@gmail.com"), ("email", "annasvensson+nyhet@gmail.com"),
            ("email", "a.nna.svensson@googlemail.com"), ("email", "annasvensson@gmail.com")}


def test_outlook_dots_matter_so_they_are_two_mailboxes(sqlite_url, sessions_for):
    sessions, settings = sessions_for(sqlite_url), Settings(database_url=sqlite_url)
    outcomes = submit(sessions, settings,
                      {"first_name": "Anna", "email": "anna.svensson@outlook.com"},
                      {"first_name": "Anna", "email": "annasvensson@outlook.com"})
    assert outcomes == ["created", "created"]


def test_names_agree_across_nicknames_and_diacritics_but_not_across_people():
    assert same_person_names({"first_name": "Bob", "last_name": "Åkesson"}, {"first_name": "Robert", "last_name": "Akesson"})
    assert same_person_names({"first_name": "Anna"}, {"first_name": "Anna", "last_name": "Ek"})
    assert same_person_names({}, {"first_name": "Bo"})
    assert not same_person_names({"first_name": "Anna", "last_name": "Ek"}, {"first_name": "Bo", "last_name": "Ek"})
    assert not same_person_names({"first_name": "Anna", "last_name": "Ek"}, {"first_name": "Anna", "last_name": "Berg"})


def test_a_tweet_from_a_handle_a_support_form_named_lands_on_that_contact(sqlite_url, sessions_for):
    from crm_ingest.ingest.settings import from_toml
    from crm_ingest.models import Case, Contact

    sessions = sessions_for(sqlite_url)
    loaded = from_toml({"sources": {"support": {"kind": "form", "record_type": "case"}}})
    settings = Settings(database_url=sqlite_url, sources=loaded.sources, pipeline=loaded.pipeline)

    # Given a support form from Maria Holm that names her X profile by its URL
    with sessions.begin() as session:
        ids = land_items(session, "support", [NewItem("form-1", "form", {"fields": {
            "first_name": "Maria", "last_name": "Holm", "email": "maria@nordicdev.example.se",
            "twitter": "https://x.com/NordicDev_Maria", "subject": "Inloggning", "message": "Kan inte logga in"}})])
    process_now(sessions, ids, settings)

    # When she later tweets from @nordicdev_maria (the network says 'x')
    with sessions.begin() as session:
        ids = land_items(session, "twitter", [NewItem("t-1", "post", {
            "post_id": "t-1", "network": "x", "handle": "@nordicdev_maria", "author_name": "Maria H",
            "text": "Still cannot log in, please help", "created_at": "2026-11-03T09:41:00Z"})])
    report = process_now(sessions, ids, settings)

    # Then the tweet's case is on the contact her form created: one contact, two cases
    assert report.outcomes == {"created": 1}
    with sessions() as session:
        contacts = session.scalars(select(Contact)).all()
        assert [(c.first_name, c.last_name) for c in contacts] == [("Maria", "Holm")]
        assert {case.contact_id for case in session.scalars(select(Case))} == {contacts[0].id}
        assert session.scalar(select(func.count()).select_from(Case)) == 2


def test_a_profile_is_one_key_however_it_is_written():
    from crm_ingest.ingest.normalize import normalize_handle

    spellings = ["@Maria_H", "maria_h", "https://twitter.com/Maria_H", "http://www.x.com/maria_h?s=20",
                 "x.com/MARIA_H"]
    assert {normalize_handle("x", s) for s in spellings} | {normalize_handle("twitter", "@maria_h")} == {
        "twitter:maria_h"}
    assert normalize_handle("facebook", "https://www.facebook.com/anna.ek") == "facebook:anna.ek"
