"""Possible duplicates the exact keys cannot see go to a review queue; a person merges a pair or
keeps it separate, and the decision is remembered. On the embedded path, through the CLI."""
from __future__ import annotations

import json

import pytest

from sqlalchemy import func, select

from crm_ingest.ingest.duplicates import NewPerson, flag_possible_duplicates, undo_merge
from crm_ingest.models import DuplicateReview, IdentityKey, Lead, RawItem


def land_forms(cli, tmp_path, name: str, *forms: dict) -> dict:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": f"{name}-{n}", "form": "contact", "fields": f}) + "\n"
                            for n, f in enumerate(forms)), encoding="utf-8")
    result = cli("land", "--source", "web", str(path), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def reviews(cli, state: str = "open") -> list[dict]:
    result = cli("review", "list", "--state", state, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["reviews"]


BOB = {"first_name": "Bob", "last_name": "Smith", "email": "bob@acme.example.com", "company": "Acme AB",
       "phone": "070-111 11 11"}
ROBERT = {"first_name": "Robert", "last_name": "Smith", "email": "robert.smith@acme.example.com",
          "company": "ACME Inc.", "phone": "070-222 22 22"}


ROBERT_PRIVATE = {"first_name": "Robert", "last_name": "Smith", "email": "robert.smith@gmail.com",
                  "phone": "070-222 22 22"}  # the same name, nothing else in common: a possible duplicate


def test_a_look_alike_with_other_contact_points_is_queued_and_merged_on_decision(cli, tmp_path, sessions_for):
    # Given Bob Smith's form, then Robert Smith's from a private address and another phone
    land_forms(cli, tmp_path, "a.jsonl", BOB)
    land_forms(cli, tmp_path, "b.jsonl", ROBERT_PRIVATE)

    # Then both are leads for now, and the pair waits for a decision with the rules' reasons
    queued = reviews(cli)
    assert len(queued) == 1
    pair = queued[0]
    assert {pair["a"]["first_name"], pair["b"]["first_name"]} == {"Bob", "Robert"}
    assert pair["suggested"] == "review" and pair["reasons"]

    # When a person merges the pair
    merged = cli("review", "merge", str(pair["id"]), "--json")
    assert merged.exit_code == 0, merged.output

    # Then one lead is left (the first), with both addresses and phones as its contact points,
    # and both forms' outcomes name it
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        leads = session.scalars(select(Lead)).all()
        assert [(lead.first_name, lead.email) for lead in leads] == [("Bob", "bob@acme.example.com")]
        keys = set(session.execute(select(IdentityKey.kind, IdentityKey.value)
                                   .where(IdentityKey.record_id == leads[0].id)).all())
        assert {("email", "bob@acme.example.com"), ("email", "robert.smith@gmail.com"),
                ("phone", "+46701111111"), ("phone", "+46702222222")} <= keys
        assert set(session.scalars(select(RawItem.record_id))) == {leads[0].id}
    done = reviews(cli, "merged")
    assert reviews(cli) == [] and done[0]["id"] == pair["id"] and done[0]["decided_by"] == "person"

    # And a later form from Robert's address finds the merged lead
    land_forms(cli, tmp_path, "c.jsonl", {**ROBERT_PRIVATE, "message": "Any news?"})
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1


def lead_state(sessions) -> dict:
    """Every lead with its identity keys, and every item's outcome and record."""
    with sessions() as session:
        leads = {lead.id: (lead.first_name, lead.last_name, lead.email, lead.phone, lead.company_name)
                 for lead in session.scalars(select(Lead))}
        keys = sorted(session.execute(select(IdentityKey.scope, IdentityKey.kind, IdentityKey.value,
                                             IdentityKey.record_id)).all())
        items = sorted(session.execute(select(RawItem.id, RawItem.outcome, RawItem.record_id)).all())
    return {"leads": leads, "keys": keys, "items": items}


def test_the_same_person_is_merged_automatically_and_the_merge_can_be_undone(cli, tmp_path, sessions_for):
    # Given Bob Smith's form, and Robert Smith's from his work address at the same company
    land_forms(cli, tmp_path, "a.jsonl", BOB)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    land_forms(cli, tmp_path, "b.jsonl", ROBERT)

    # Then the rules merged Robert's new lead into Bob's at once: one lead with both contact
    # points, the item's outcome says so and how to undo it, and the pair is remembered
    with sessions() as session:
        leads = session.scalars(select(Lead)).all()
        assert [(lead.first_name, lead.email) for lead in leads] == [("Bob", "bob@acme.example.com")]
        bob = leads[0].id
        keys = set(session.execute(select(IdentityKey.kind, IdentityKey.value)
                                   .where(IdentityKey.record_id == bob)).all())
        assert {("email", "bob@acme.example.com"), ("email", "robert.smith@acme.example.com"),
                ("phone", "+46701111111"), ("phone", "+46702222222")} <= keys
        robert_item = session.scalar(select(RawItem).where(RawItem.external_id == "b.jsonl-0"))
        assert (robert_item.outcome, robert_item.record_id) == ("merged", bob)
        assert "merged automatically" in robert_item.outcome_reason
        assert "ingest review undo" in robert_item.outcome_reason
    assert reviews(cli) == []
    pair = reviews(cli, "merged")[0]
    assert (pair["suggested"], pair["decided_by"]) == ("merge", "rules")
    assert {pair["a"]["first_name"], pair["b"]["first_name"]} == {"Bob", "Robert"}  # as before the merge

    # When a person undoes the merge
    undone = cli("review", "undo", str(pair["id"]), "--json")
    assert undone.exit_code == 0, undone.output
    restored = json.loads(undone.output)["restored"]

    # Then Robert's lead is back with its id, values and keys; his item names it as created;
    # Bob's lead is as it was before the merge
    after = lead_state(sessions)
    assert after["leads"] == {
        bob: ("Bob", "Smith", "bob@acme.example.com", "+46701111111", "Acme AB"),
        restored: ("Robert", "Smith", "robert.smith@acme.example.com", "+46702222222", "ACME Inc.")}
    assert {(kind, value) for scope, kind, value, owner in after["keys"] if owner == restored} >= {
        ("email", "robert.smith@acme.example.com"), ("phone", "+46702222222")}
    assert {(kind, value) for scope, kind, value, owner in after["keys"] if owner == bob} == {
        ("email", "bob@acme.example.com"), ("phone", "+46701111111")}
    assert [(outcome, record) for _, outcome, record in after["items"]] == [("created", bob),
                                                                          ("created", restored)]
    assert reviews(cli, "kept_separate")[0]["id"] == pair["id"]
    assert cli("review", "undo", str(pair["id"])).exit_code != 0  # not a merge any more

    # And neither the re-check nor a new form from Robert merges them again
    again = json.loads(cli("review", "recheck", "--all", "--json").output)
    assert again["merged"] == 0
    land_forms(cli, tmp_path, "c.jsonl", {**ROBERT, "message": "Any news?"})
    final = lead_state(sessions)
    assert set(final["leads"]) == {bob, restored} and final["items"][-1][1:] == ("merged", restored)


def test_a_rule_set_without_auto_merge_queues_even_the_sure_pairs(cli, tmp_path):
    (tmp_path / "ingest.toml").write_text("[matching.lead-lead]\nauto_merge = false\n", encoding="utf-8")
    land_forms(cli, tmp_path, "a.jsonl", BOB, ROBERT)
    queued = reviews(cli)
    assert [(pair["suggested"], pair["state"]) for pair in queued] == [("merge", "open")]


def test_a_pair_kept_separate_is_not_asked_again(cli, tmp_path, sessions_for):
    # Given the look-alike pair queued, and a person deciding they are two people
    land_forms(cli, tmp_path, "a.jsonl", BOB, ROBERT_PRIVATE)
    pair = reviews(cli)[0]
    kept = cli("review", "keep-separate", str(pair["id"]), "--json")
    assert kept.exit_code == 0, kept.output

    # When the same two records are compared again (a rules change, a re-check)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions.begin() as session:
        leads = session.execute(select(Lead.id, Lead.first_name, Lead.last_name, Lead.email,
                                       Lead.company_name)).all()
        queued = flag_possible_duplicates(session, [
            NewPerson("lead", row.id, {"first_name": row.first_name, "last_name": row.last_name,
                                       "email": row.email, "company_name": row.company_name})
            for row in leads])

    # Then nothing is queued: the decision stands, and both leads stay (indexed once)
    assert (queued.queued, queued.merged) == (0, {})
    with sessions() as session:
        from crm_ingest.models import MatchKey

        keys = session.execute(select(MatchKey.record_id, MatchKey.kind, MatchKey.value)).all()
        assert len(keys) == len(set(keys))
    assert reviews(cli) == [] and reviews(cli, "kept_separate")[0]["id"] == pair["id"]
    assert cli("review", "merge", str(pair["id"])).exit_code != 0  # decided already
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 2


def test_namesakes_at_different_companies_are_not_queued(cli, tmp_path, sessions_for):
    # Given two Anna Eks at different companies, with their own addresses and phones
    land_forms(cli, tmp_path, "a.jsonl",
               {"first_name": "Anna", "last_name": "Ek", "email": "anna.ek@firma.example.se",
                "company": "Firma AB", "phone": "070-333 33 33"},
               {"first_name": "Anna", "last_name": "Ek", "email": "anna@bygg.example.se",
                "company": "Norrbygg AB", "phone": "070-444 44 44"})

    # Then they are two leads and nobody is asked about them
    assert reviews(cli) == []
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 2
        assert session.scalar(select(func.count()).select_from(DuplicateReview)) == 0


def test_a_lead_and_a_contact_are_not_merged_by_review(cli, tmp_path):
    # Given a contact (a support case's) and a look-alike lead, queued as a pair
    support = tmp_path / "ingest.toml"
    support.write_text('[sources.support]\nkind = "form"\nrecord_type = "case"\n', encoding="utf-8")
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": "s-1", "fields": {**BOB, "subject": "Help", "message": "Login fails"}}) + "\n")
    assert cli("land", "--source", "support", str(path)).exit_code == 0
    land_forms(cli, tmp_path, "b.jsonl", ROBERT)
    pair = reviews(cli)[0]
    assert {pair["a"]["type"], pair["b"]["type"]} == {"contact", "lead"}

    # When a person tries to merge them, the command refuses, naming why
    result = cli("review", "merge", str(pair["id"]))
    assert result.exit_code != 0 and "only records of one type merge" in result.output


@pytest.mark.integration
def test_look_alikes_are_queued_on_postgresql_too(pg_url, sessions_for):
    from crm_ingest.ingest.settings import Settings
    from crm_ingest.models.landing import NewItem, land_items
    from crm_ingest.workers.dispatch import process_now

    sessions, settings = sessions_for(pg_url), Settings(database_url=pg_url)
    for number, fields in enumerate((BOB, ROBERT_PRIVATE, {**ROBERT, "phone": "070-555 55 55"})):
        with sessions.begin() as session:
            ids = land_items(session, "web", [NewItem(f"f{number}", "form", {"fields": fields})])
        process_now(sessions, ids, settings)
    with sessions() as session:
        pairs = session.scalars(select(DuplicateReview).order_by(DuplicateReview.id)).all()
        # Bob and the private Robert wait for a person; the work Robert merged into Bob, which
        # settled the private Robert's pair with him (it is Bob's pair now, already open)
        assert [(p.record_type, p.other_type, p.state, p.decided_by) for p in pairs] == [
            ("lead", "lead", "open", None), ("lead", "lead", "merged", "merge"),
            ("lead", "lead", "merged", "rules")]
        assert session.scalar(select(func.count()).select_from(Lead)) == 2
    with sessions.begin() as session:
        undone = undo_merge(session, pairs[2].id)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 3
        assert [p.state for p in session.scalars(select(DuplicateReview).order_by(DuplicateReview.id))] == [
            "open", "open", "kept_separate"]  # the settled pair is asked again
        assert session.get(Lead, undone["restored"]).email == "robert.smith@acme.example.com"


def test_stricter_rules_in_the_config_queue_fewer_pairs(cli, tmp_path):
    # Given rules asking for near-certainty before a pair is even reviewed
    (tmp_path / "ingest.toml").write_text(
        "[matching.lead-lead]\nmerge_threshold = 0.999\nreview_threshold = 0.99\n", encoding="utf-8")

    # When the look-alikes arrive
    land_forms(cli, tmp_path, "a.jsonl", BOB, ROBERT)

    # Then nobody is asked
    assert reviews(cli) == []


def test_the_recheck_merges_look_alikes_that_slipped_in_once(cli, tmp_path, sessions_for):
    from datetime import timedelta

    from sqlalchemy import update

    from crm_ingest.models import utcnow
    from crm_ingest.models.bulk import insert_rows

    # Given Bob and Robert stored by two workers at once, so neither saw the other (no pair
    # queued, no match keys), a few minutes ago
    assert cli("migrate").exit_code == 0
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions.begin() as session:
        insert_rows(session, Lead, [
            {"first_name": "Bob", "last_name": "Smith", "email": "bob@acme.example.com",
             "company_name": "Acme AB", "source": "web"},
            {"first_name": "Robert", "last_name": "Smith", "email": "robert.smith@acme.example.com",
             "company_name": "ACME Inc.", "source": "web"},
            {"first_name": "Rob", "last_name": "Smith", "email": "rob@acme.example.com",
             "company_name": "Acme", "source": "list"}])  # a list row: not reviewed
        session.execute(update(Lead).values(created_at=utcnow() - timedelta(minutes=5)))

    # When the re-check runs, and runs again
    first = json.loads(cli("review", "recheck", "--json").output)
    second = json.loads(cli("review", "recheck", "--json").output)

    # Then the pair is merged once by the same rules, and the list's lead is left to its
    # contact points
    assert (first["checked"], first["queued"], first["merged"]) == (2, 0, 1)
    assert (second["checked"], second["queued"], second["merged"]) == (0, 0, 0)
    pair = reviews(cli, "merged")[0]
    assert (pair["a"]["first_name"], pair["decided_by"]) == ("Bob", "rules")
    with sessions() as session:
        assert sorted(session.scalars(select(Lead.first_name))) == ["Bob", "Rob"]
    # And --all compares every record again, without deciding the same pair twice
    again = json.loads(cli("review", "recheck", "--all", "--json").output)
    assert (again["checked"], again["queued"], again["merged"]) == (1, 0, 0)


def test_auto_merge_is_read_per_record_pair_and_must_be_a_boolean():
    from crm_ingest.ingest.errors import ConfigError
    from crm_ingest.ingest.matching import rules_from_toml

    rules = rules_from_toml({"lead-lead": {"auto_merge": False}})
    assert (rules["lead-lead"].auto_merge, rules["contact-contact"].auto_merge) == (False, True)
    with pytest.raises(ConfigError) as error:
        rules_from_toml({"lead-lead": {"auto_merge": "no"}})
    assert error.value.key == "matching.lead-lead.auto_merge"


def test_a_form_from_a_contacts_address_is_paired_with_the_contact_whatever_the_name(cli, tmp_path):
    # Given a contact, and 60 namesakes that would crowd a name-only lookup
    (tmp_path / "ingest.toml").write_text('[sources.crm]\nkind = "row"\nrecord_type = "contact"\n',
                                          encoding="utf-8")
    crm = tmp_path / "crm.jsonl"
    crm.write_text("".join(json.dumps({"id": f"c{n}", "fields": {
        "first_name": "Anna", "last_name": "Andersson", "email": f"anna{n}@firma{n}.example.se"}}) + "\n"
        for n in range(61)), encoding="utf-8")
    assert cli("land", "--source", "crm", str(crm)).exit_code == 0

    # When the first of them writes through a web form from her address, signing only 'A.'
    land_forms(cli, tmp_path, "f.jsonl", {"first_name": "A.", "email": "Anna0@Firma0.example.se",
                                          "message": "Please call me about pricing"})

    # Then the form's lead and that contact wait in review as a pair (a lead and a contact do
    # not merge by themselves)
    pairs = reviews(cli)
    assert [(p["a"]["type"], p["a"]["email"], p["b"]["type"]) for p in pairs
            if "anna0@" in (p["a"]["email"] or "").lower()] == [("contact", "anna0@firma0.example.se", "lead")]


@pytest.mark.parametrize(("contact", "form"), [("anna+crm@outlook.com", "anna+web@outlook.com"),
                                              ("anna+crm@outlook.com", "anna@outlook.com"),
                                              ("anna@outlook.com", "Anna+web@outlook.com")])
def test_a_form_from_another_spelling_of_a_contacts_mailbox_is_paired_with_the_contact(cli, tmp_path, contact, form):
    # Given a contact known by one spelling of a mailbox that ignores +tags
    (tmp_path / "ingest.toml").write_text('[sources.crm]\nkind = "row"\nrecord_type = "contact"\n',
                                          encoding="utf-8")
    crm = tmp_path / "crm.jsonl"
    crm.write_text(json.dumps({"id": "c1", "fields": {"first_name": "Anna", "last_name": "Berg", "email": contact}})
                   + "\n", encoding="utf-8")
    assert cli("land", "--source", "crm", str(crm)).exit_code == 0
    # When she writes through a web form from another spelling of it
    land_forms(cli, tmp_path, "f.jsonl", {"first_name": "Anna", "email": form, "message": "Call me"})
    # Then her form's lead and the contact wait in review as a pair
    assert [(p["a"]["type"], p["b"]["type"]) for p in reviews(cli)] == [("contact", "lead")]


def campaign_leads(cli, campaign: str) -> list[tuple[str, str]]:
    result = cli("list", "lead", "--campaign", campaign, "--json")
    assert result.exit_code == 0, result.output
    return sorted((row["first_name"], row["email"]) for row in json.loads(result.output)["records"])


def test_a_merged_lead_keeps_the_campaign_it_came_in_on_and_an_undo_gives_it_back(cli, tmp_path):
    # Given Bob's form on one campaign and Robert's on another, each lead on its campaign by
    # its own source campaign
    for name, form, campaign in (("a.jsonl", BOB, "Spring Webinar"), ("b.jsonl", ROBERT_PRIVATE, "Autumn Fair")):
        (tmp_path / name).write_text(json.dumps({"id": name, "form": "contact", "campaign": campaign,
                                                 "fields": form}) + "\n", encoding="utf-8")
        assert cli("land", "--source", "web", str(tmp_path / name)).exit_code == 0
    assert campaign_leads(cli, "Autumn Fair") == [("Robert", "robert.smith@gmail.com")]

    # When a person merges Robert's lead into Bob's
    pair = reviews(cli)[0]
    assert cli("review", "merge", str(pair["id"])).exit_code == 0

    # Then the lead that is left is on both campaigns
    bob = [("Bob", "bob@acme.example.com")]
    assert campaign_leads(cli, "Spring Webinar") == bob and campaign_leads(cli, "Autumn Fair") == bob

    # And undoing the merge puts each lead back on its own campaign only
    assert cli("review", "undo", str(pair["id"])).exit_code == 0
    assert campaign_leads(cli, "Spring Webinar") == bob
    assert campaign_leads(cli, "Autumn Fair") == [("Robert", "robert.smith@gmail.com")]
