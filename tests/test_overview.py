"""The customer's picture of an account or contact: a case and an opportunity of the same
account together, with SLA time left and entitlement remaining, by `ingest show` and the API,
on the embedded database, with accounts shown as 'company'."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from crm_ingest import runtime as runtime_module
from crm_ingest.ingest.overview import account_overview, contact_overview, sla_left
from crm_ingest.models import Activity, Case, Lead, Opportunity, utcnow
from tests.test_lifecycle import LEAD, TOKEN, env, get, ingest, land  # noqa: F401 - fixtures

AUTH = {"authorization": f"Bearer {TOKEN}"}


def customer_with_a_case_and_an_opportunity(ingest, env) -> dict:  # noqa: F811
    """A lead qualified into company + contact + opportunity (worth 12 500), the company given an
    entitlement of 5 cases, then a support email from the same person opening a case."""
    [lead_id] = land(ingest, env, "list", LEAD, campaign="Fair 2026")
    qualified = ingest("lead", "qualify", str(lead_id), "--json")
    account_id, opportunity_id = qualified["account"]["id"], qualified["opportunity"]["id"]
    with runtime_module.runtime().sessions.begin() as session:
        session.execute(update(Opportunity).where(Opportunity.id == opportunity_id)
                        .values(estimated_value=Decimal("12500.00")))
    ingest("entitlement", "add", "--account", str(account_id), "--cases", "5", "--json")
    [case_id] = land(ingest, env, "support", {"email": LEAD["email"], "subject": "Licenses not activated"})
    # the channels' activities (row sources make none): the lead's form, a post, the case's email
    with runtime_module.runtime().sessions.begin() as session:
        session.add_all([
            Activity(kind="form", regarding_type="lead", regarding_id=lead_id, subject="Fair 2026 sign-up"),
            Activity(kind="post", regarding_type="contact", regarding_id=qualified["contact"]["id"],
                     subject="@kund: any news on the licenses?"),
            Activity(kind="email", regarding_type="case", regarding_id=case_id, subject="Licenses not activated"),
        ])
    return {"account": account_id, "contact": qualified["contact"]["id"], "opportunity": opportunity_id,
            "case": case_id, "lead": lead_id}


def test_overview_shows_the_case_and_the_opportunity_of_one_account_with_sla_left(ingest, env):  # noqa: F811
    # Given an account with an open opportunity and an active case opened under its entitlement
    ids = customer_with_a_case_and_an_opportunity(ingest, env)
    case = get(Case, ids["case"])
    assert case.first_response_by is not None and case.entitlement_id is not None
    # When its picture is read as of one hour before the first response is due
    now = case.first_response_by - timedelta(hours=1)
    with runtime_module.runtime().sessions() as session:
        picture = account_overview(session, ids["account"], now=now)
    # Then the opportunity (with its value) and the case (with SLA time left) are both there
    [opportunity] = picture["open_opportunities"]
    assert (opportunity["id"], opportunity["estimated_value"]) == (ids["opportunity"], Decimal("12500.00"))
    assert picture["open_pipeline_value"] == Decimal("12500.00")
    [active] = picture["active_cases"]
    assert (active["id"], active["priority"]) == (ids["case"], "normal")
    assert active["sla"]["first_response_seconds_left"] == 3600
    assert active["sla"]["resolve_seconds_left"] == int((case.resolve_by - now).total_seconds()) > 3600
    assert active["sla"]["breached"] is False
    assert active["entitlement"]["cases_remaining"] == 4  # the case took one of five
    # and the contact, where each record came from, and the case's email among recent activities
    assert [c["id"] for c in picture["contacts"]] == [ids["contact"]]
    assert active["source"] == "support" and opportunity["source"] == "list"
    assert picture["sources"]["support"] == 1
    # recent activities across channels, newest first, the qualified lead's form among them
    assert [(a["kind"], a["regarding_type"]) for a in picture["recent_activities"]] == \
        [("email", "case"), ("post", "contact"), ("form", "lead")]
    # the qualified lead is not open any more
    assert picture["open_leads"] == []
    assert picture["open_leads"] == []


def test_sla_left_is_negative_once_breached():
    case, now = Case(title="x"), utcnow()
    case.first_response_by, case.resolve_by = now - timedelta(minutes=5), now + timedelta(hours=2)
    assert sla_left(case, now) == {"first_response_seconds_left": -300, "resolve_seconds_left": 7200,
                                   "breached": True}
    case.first_response_by = case.resolve_by = None
    assert sla_left(case, now) == {"first_response_seconds_left": None, "resolve_seconds_left": None,
                                   "breached": False}


def test_show_and_the_api_give_the_picture_with_the_renamed_label(ingest, env):  # noqa: F811
    ids = customer_with_a_case_and_an_opportunity(ingest, env)
    # When `ingest show company ID` runs (the display name of account), as JSON and as tables
    shown = ingest("show", "company", str(ids["account"]), "--json")
    assert shown["account"]["record_label"] == "company"
    assert [c["id"] for c in shown["active_cases"]] == [ids["case"]]
    assert shown["active_cases"][0]["sla"]["first_response_seconds_left"] > 0
    assert shown["open_opportunities"][0]["estimated_value"] == "12500.00"
    text = ingest("show", "account", str(ids["account"])).output
    assert "Company" in text and "Licenses not activated" in text and "12500.00" in text
    # And by the contact: the same case and opportunity, and its company
    by_contact = ingest("show", "contact", str(ids["contact"]), "--json")
    assert by_contact["account"]["id"] == ids["account"] and by_contact["account"]["record_label"] == "company"
    assert [c["id"] for c in by_contact["active_cases"]] == [ids["case"]]
    # Unknown records and other types are refused
    assert "no company 999" in ingest("show", "account", "999", ok=False).output
    assert ingest("show", "lead", str(ids["lead"]), ok=False).exit_code != 0
    # When the API is asked, with the token
    from crm_ingest.api.app import app

    runtime_module._for_pid.cache_clear()
    api = TestClient(app)
    response = api.get(f"/accounts/{ids['account']}/overview", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account"]["record_label"] == "company"
    assert [c["id"] for c in body["active_cases"]] == [ids["case"]]
    assert [o["id"] for o in body["open_opportunities"]] == [ids["opportunity"]]
    assert body["active_cases"][0]["sla"]["first_response_seconds_left"] > 0
    assert api.get(f"/contacts/{ids['contact']}/overview", headers=AUTH).json()["account"]["id"] == ids["account"]
    assert api.get("/accounts/999/overview", headers=AUTH).json() == {"detail": "no company 999"}
    assert api.get(f"/accounts/{ids['account']}/overview").status_code == 401
    assert api.get(f"/accounts/{ids['account']}/overview",
                   headers={"authorization": "Bearer wrong"}).status_code == 401


def test_a_lead_who_then_writes_to_support_is_one_customer(ingest, env):  # noqa: F811
    # Given a lead from a trade-show list, and another person's lead at the same company
    [lead_id] = land(ingest, env, "list", LEAD, campaign="Fair 2026")
    [other_id] = land(ingest, env, "list", {**LEAD, "email": "someone.else@" + LEAD["email"].split("@")[1],
                                            "first_name": "Other"}, campaign="Fair 2026")
    # When the lead's person writes to support, the address in capitals
    [case_id] = land(ingest, env, "support", {"email": LEAD["email"].upper(), "subject": "Cannot log in"})
    contact_id = get(Case, case_id).contact_id

    # Then the open lead names the case's contact as its own, and the contact's picture shows it
    assert contact_id is not None
    assert (get(Lead, lead_id).contact_id, get(Lead, lead_id).status) == (contact_id, "new")
    assert get(Lead, other_id).contact_id is None
    with runtime_module.runtime().sessions() as session:
        picture = contact_overview(session, contact_id)
    assert [lead["id"] for lead in picture["open_leads"]] == [lead_id]
    assert [case["id"] for case in picture["active_cases"]] == [case_id]

    # And qualifying the lead later takes that contact instead of making another
    qualified = ingest("lead", "qualify", str(lead_id), "--json")
    assert (qualified["contact"]["id"], qualified["contact"]["created"]) == (contact_id, False)


def test_a_lead_and_the_contact_it_names_are_never_queued_as_duplicates(sqlite_url, sessions_for):
    from crm_ingest.ingest.duplicates import NewPerson, _decide_pairs, _ordered
    from crm_ingest.models import Contact, DuplicateReview
    from crm_ingest.models.migrate import upgrade

    upgrade(sqlite_url)
    sessions = sessions_for(sqlite_url)
    person = {"first_name": "Karin", "last_name": "Lindqvist", "email": "karin@bygg.example.se"}
    with sessions.begin() as session:
        contact, other = Contact(**person), Contact(**person)
        session.add_all([contact, other])
        session.flush()
        lead = Lead(**person, status="qualified", contact_id=contact.id)
        session.add(lead)
        session.flush()
        pairs = {_ordered(("lead", lead.id), ("contact", contact.id)): NewPerson("lead", lead.id, person, None),
                 _ordered(("lead", lead.id), ("contact", other.id)): NewPerson("lead", lead.id, person, None)}
        flagged = _decide_pairs(session, pairs, {}, None)
        queued = session.execute(select(DuplicateReview.record_type, DuplicateReview.record_id,
                                        DuplicateReview.other_type, DuplicateReview.other_id)).all()
    # the contact it was qualified into is the lead's own; the other Karin is still a look-alike
    assert flagged.queued == 1
    assert [set(((a, b), (c, d))) for a, b, c, d in queued] == [{("lead", lead.id), ("contact", other.id)}]


def test_another_person_writing_from_a_leads_address_is_not_made_its_contact(ingest, env):  # noqa: F811
    [lead_id] = land(ingest, env, "list", {**LEAD, "first_name": "Karl", "last_name": "Ek"}, campaign="Fair")
    [case_id] = land(ingest, env, "support", {"email": LEAD["email"], "first_name": "Lisa", "last_name": "Ek",
                                              "subject": "Hjälp"})
    assert get(Case, case_id).contact_id is not None and get(Lead, lead_id).contact_id is None
