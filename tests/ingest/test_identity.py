"""Identity resolution when a concurrent worker wins a key first."""
import pytest

from crm_ingest.ingest.identity import Person, _insert_keys, _insert_records, _redirect_losers
from crm_ingest.ingest.plan import ItemPlan, PersonPlan, plan_item
from crm_ingest.ingest.settings import SourceConfig
from crm_ingest.models import IdentityKey, Lead
from crm_ingest.models.bulk import insert_rows


def _new_person(session, email: str | None, phone: str, match_kinds, name: str | None = None):
    """A new person of ours, stored, about to learn that a concurrent worker took its keys."""
    fields = {"email": email, "first_name": name}
    keys = [("email", email)] if email else []
    plan = ItemPlan(1, "lead", person=PersonPlan("lead", fields, [*keys, ("phone", phone)],
                                                 match_kinds=match_kinds))
    person = Person("lead", match_kinds=match_kinds, plans=[plan], fields=fields,
                    new_keys=[("lead", *key) for key in keys] + [("lead", "phone", phone)])
    _insert_records(session, [person], {})
    return person


def test_a_lost_phone_does_not_merge_people_matched_by_email(sqlite_url, sessions_for):
    sessions = sessions_for(sqlite_url)
    with sessions.begin() as session:
        # Given a colleague's lead that a concurrent worker just stored with the shared phone
        insert_rows(session, Lead, [{"id": 1, "email": "anna@firma.se"}])
        insert_rows(session, IdentityKey, [{"scope": "lead", "kind": "phone", "value": "+4681234567", "record_id": 1}])
        # When our new person (matched by email) lost that phone key
        bo = _new_person(session, "bo@firma.se", "+4681234567", ("email",))
        _redirect_losers(session, [bo], {("lead", "phone", "+4681234567")})
        # Then Bo stays his own lead
        assert bo.created and bo.record_id != 1
        # But a person identified by any key (no match_kinds) who lost the same key is merged
        cia = _new_person(session, "cia@firma.se", "+4681234567", None)
        _redirect_losers(session, [cia], {("lead", "phone", "+4681234567")})
        assert (cia.record_id, cia.created) == (1, False)
        assert session.get(Lead, bo.record_id) is not None


def test_a_phone_lost_to_a_concurrent_worker_merges_only_the_same_name(sqlite_url, sessions_for):
    sessions = sessions_for(sqlite_url)
    with sessions.begin() as session:
        # Given Eva's lead, just stored by a concurrent worker with the household phone
        insert_rows(session, Lead, [{"id": 1, "first_name": "Eva"}])
        insert_rows(session, IdentityKey, [{"scope": "lead", "kind": "phone", "value": "+46701234567", "record_id": 1}])

        # When Olle and another 'Eva' of ours, known by the phone alone, each lost that key
        olle = _new_person(session, None, "+46701234567", None, name="Olle")
        eva = _new_person(session, None, "+46701234567", None, name="Eva")
        _redirect_losers(session, [olle, eva], {("lead", "phone", "+46701234567")})

        # Then Olle stays his own lead, and Eva is merged into the winner's Eva
        assert olle.created and olle.record_id != 1
        assert (eva.record_id, eva.created) == (1, False)
        assert session.get(Lead, olle.record_id) is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def both_databases(request, sqlite_url, pg_url, sessions_for):
    return sessions_for(sqlite_url if request.param == "sqlite" else pg_url)


def test_keys_another_record_owns_already_are_reported_lost_and_the_rest_are_won(both_databases):
    sessions = both_databases
    with sessions.begin() as session:
        # Given Anna's lead, whose phone a concurrent worker stored first
        insert_rows(session, Lead, [{"id": 1, "first_name": "Anna"}, {"id": 2, "first_name": "Bo"}])
        insert_rows(session, IdentityKey, [{"scope": "lead", "kind": "phone", "value": "+4681234567", "record_id": 1}])
    with sessions.begin() as session:
        # When Bo's new lead offers its email and that phone, and a lead of its own an email
        bo = Person("lead", record_id=2, new_keys=[("lead", "email", "bo@firma.se"), ("lead", "phone", "+4681234567")])
        cia = Person("lead", record_id=3, new_keys=[("lead", "email", "cia@firma.se")])
        lost = _insert_keys(session, [bo, cia])
        # Then only the phone is lost, and what each won is its own
        assert lost == {("lead", "phone", "+4681234567")}
        assert bo.won_keys == [("lead", "email", "bo@firma.se")]
        assert cia.won_keys == [("lead", "email", "cia@firma.se")]
    with sessions() as session:
        owners = {(k.kind, k.value): k.record_id for k in session.query(IdentityKey)}
    assert owners == {("phone", "+4681234567"): 1, ("email", "bo@firma.se"): 2, ("email", "cia@firma.se"): 3}


def test_people_redirected_together_each_go_to_their_own_winner_with_the_keys_they_won(both_databases):
    sessions = both_databases
    with sessions.begin() as session:
        # Given Anna's and Bo's leads, stored by a concurrent worker with their emails
        insert_rows(session, Lead, [{"id": 9001, "first_name": "Anna"}, {"id": 9002, "first_name": "Bo"}])
        insert_rows(session, IdentityKey, [
            {"scope": "lead", "kind": "email", "value": "anna@firma.se", "record_id": 9001},
            {"scope": "lead", "kind": "email", "value": "bo@firma.se", "record_id": 9002}])
    with sessions.begin() as session:
        # When our new Anna, Bo and Cia offer their keys and Anna's and Bo's emails are lost
        anna = _new_person(session, "anna@firma.se", "+46701111111", None, name="Anna")
        bo = _new_person(session, "bo@firma.se", "+46702222222", None, name="Bo")
        cia = _new_person(session, "cia@firma.se", "+46703333333", None, name="Cia")
        provisional = {anna.record_id, bo.record_id}
        lost = _insert_keys(session, [anna, bo, cia])
        _redirect_losers(session, [anna, bo, cia], lost)
        # Then each is the winner's record, and only Cia's is new
        assert [(p.record_id, p.created) for p in (anna, bo)] == [(9001, False), (9002, False)]
        assert cia.created and cia.record_id not in (9001, 9002)
    with sessions() as session:
        # the provisional records are gone, and the phones they won went with them to the winners
        assert {lead.id for lead in session.query(Lead)} == {9001, 9002, cia.record_id}
        assert not provisional & {lead.id for lead in session.query(Lead)}
        owners = {(k.kind, k.value): k.record_id for k in session.query(IdentityKey)}
    assert owners == {("email", "anna@firma.se"): 9001, ("email", "bo@firma.se"): 9002,
                      ("phone", "+46701111111"): 9001, ("phone", "+46702222222"): 9002,
                      ("email", "cia@firma.se"): cia.record_id, ("phone", "+46703333333"): cia.record_id}


@pytest.mark.parametrize(("theirs", "ours"), [("cia.berg@gmail.com", "ciaberg@gmail.com"),
                                              ("anna@outlook.com", "Anna+news@outlook.com"),
                                              ("anna+news@outlook.com", "anna@outlook.com"),
                                              ("anna+crm@hotmail.com", "anna+news@hotmail.com")])
def test_two_spellings_of_one_mailbox_stored_at_once_are_one_lead(both_databases, theirs, ours):
    sessions = both_databases
    source = SourceConfig("list", record_type="lead")
    their_plan = plan_item(1, "row", {"fields": {"email": theirs}}, source)
    our_plan = plan_item(2, "row", {"fields": {"email": ours}}, source)
    with sessions.begin() as session:
        # Given a concurrent worker's new lead for one spelling, stored with its keys (committed
        # after our lookup: we did not see it)
        insert_rows(session, Lead, [{"id": 9001, "email": theirs}])
        insert_rows(session, IdentityKey, [{"scope": "lead", "kind": kind, "value": value, "record_id": 9001}
                                           for kind, value in their_plan.person.keys])
    with sessions.begin() as session:
        # When our new lead for another spelling of the mailbox offers its keys
        new = Person("lead", plans=[our_plan], fields=dict(our_plan.person.fields),
                     new_keys=[("lead", *key) for key in our_plan.person.keys])
        _insert_records(session, [new], {})
        _redirect_losers(session, [new], _insert_keys(session, [new]))
        # Then the two meet on the mailbox's key, and ours is the other worker's lead
        assert (new.record_id, new.created) == (9001, False)
    with sessions() as session:
        assert [lead.id for lead in session.query(Lead)] == [9001]
