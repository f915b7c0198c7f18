"""Lifecycle actions: qualifying a lead into account, contact and opportunity (reusing what the
dedup engine finds), disqualifying and closing leads, resolving and reopening cases, queues; by
the command line and the API on the embedded database, and two concurrent qualifications on
PostgreSQL."""
from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crm_ingest import runtime as runtime_module
from crm_ingest.api import intake
from crm_ingest.ingest import lifecycle
from crm_ingest.ingest.settings import Settings
from crm_ingest.ingest.threads import thread_parents
from crm_ingest.models import (
    Account,
    Activity,
    Campaign,
    Case,
    Contact,
    Entitlement,
    IdentityKey,
    Lead,
    Opportunity,
    RawItem,
)

TOKEN = "lifecycle-token-123"
CONFIG = '''
[sources.crm]
kind = "row"
record_type = "contact"

[sources.support]
kind = "row"
record_type = "case"

[labels]
account = "company"
'''
LEAD = {"first_name": "Per", "last_name": "Holm", "email": "per.holm@kund.example", "phone": "070-111 22 33",
        "mobile_phone": "073-999 88 77", "city": "Umeå", "company": "Kund AB", "topic": "50 licenses for the sales team", "lead_source": "trade show"}
EVA = {"first_name": "Eva", "last_name": "Lind", "email": "eva@other.example", "company": "Other AB"}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A working folder with ingest.toml (accounts shown as 'company'), SQLite, an API token."""
    (tmp_path / "ingest.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("INGEST_API_TOKENS", f"other-token,{TOKEN}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    runtime_module._for_pid.cache_clear()
    yield tmp_path
    runtime_module.runtime().engine.dispose()
    runtime_module._for_pid.cache_clear()


@pytest.fixture
def ingest(env, cli):
    """Run `ingest ...`; with --json, its parsed output."""
    def run(*args: str, ok: bool = True):
        result = cli(*args)
        if ok:
            assert result.exit_code == 0, result.output
        return json.loads(result.output) if ok and "--json" in args else result
    return run


def land(ingest, env, source: str, *rows: dict, campaign: str | None = None) -> list[int]:
    """Rows landed and processed (embedded); the record id each became."""
    name = f"{source}-{len(list(env.glob('*.jsonl')))}"
    path = env / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": f"{name}-{n}", "fields": row, "campaign": campaign}) + "\n"
                            for n, row in enumerate(rows)), encoding="utf-8")
    ingest("land", "--source", source, str(path))
    with runtime_module.runtime().sessions() as session:
        items = session.execute(select(RawItem.outcome, RawItem.record_id)
                                .where(RawItem.external_id.like(f"{name}-%")).order_by(RawItem.id)).all()
    assert all(outcome in ("created", "merged") for outcome, _ in items), items
    return [record_id for _, record_id in items]


def count(model) -> int:
    with runtime_module.runtime().sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def get(model, record_id: int):
    with runtime_module.runtime().sessions() as session:
        return session.get(model, record_id)


# -- qualify ------------------------------------------------------------------------------------

def test_qualifying_creates_account_contact_and_opportunity_and_closes_the_lead(ingest, env):
    # Given a lead from a purchased list, in a campaign
    [lead_id] = land(ingest, env, "list", LEAD, campaign="Fair 2026")
    # When it is qualified
    result = ingest("lead", "qualify", str(lead_id), "--json")
    # Then an account, a contact and an opportunity are made and linked to the lead
    assert (result["account"]["created"], result["contact"]["created"], result["opportunity"]["created"]) == \
        (True, True, True)
    lead, opportunity = get(Lead, lead_id), get(Opportunity, result["opportunity"]["id"])
    contact, account = get(Contact, result["contact"]["id"]), get(Account, result["account"]["id"])
    assert (lead.status, lead.account_id, lead.contact_id) == ("qualified", account.id, contact.id)
    assert lifecycle.lead_state(lead.status) == "qualified"
    # the opportunity carries the lead's topic, campaign and source
    assert (opportunity.name, opportunity.lead_id, opportunity.account_id, opportunity.contact_id) == \
        (LEAD["topic"], lead_id, account.id, contact.id)
    assert opportunity.campaign_id == lead.campaign_id == get(Campaign, lead.campaign_id).id
    assert (opportunity.source, opportunity.lead_source, opportunity.status) == ("list", "trade_show", "open")
    assert (contact.first_name, contact.email, contact.phone, contact.mobile_phone, contact.city, contact.account_id) \
        == ("Per", "per.holm@kund.example", "+46701112233", "+46739998877", "Umeå", account.id)
    assert (account.name, account.website_domain) == ("Kund AB", "kund.example")
    # and the new records have identity keys: later ingestion finds them
    with runtime_module.runtime().sessions() as session:
        keys = set(session.execute(select(IdentityKey.scope, IdentityKey.kind, IdentityKey.value)
                                   .where(IdentityKey.record_id.in_((contact.id, account.id)))).all())
    assert {("contact", "email", "per.holm@kund.example"), ("contact", "phone", "+46701112233"),
            ("contact", "phone", "+46739998877"), ("account", "domain", "kund.example"), ("account", "company", "kund")} <= keys
    [again] = land(ingest, env, "crm", {"email": "Per.Holm@kund.example", "job_title": "CFO"})
    assert again == contact.id and get(Contact, contact.id).job_title == "CFO"


def test_qualifying_twice_creates_nothing_the_second_time(ingest, env):
    [lead_id] = land(ingest, env, "list", LEAD)
    first = ingest("lead", "qualify", str(lead_id), "--json")
    counts = [count(m) for m in (Account, Contact, Opportunity, IdentityKey)]
    # When it is qualified again
    second = ingest("lead", "qualify", str(lead_id), "--json")
    # Then the same links come back and nothing is created
    assert [count(m) for m in (Account, Contact, Opportunity, IdentityKey)] == counts == [1, 1, 1, counts[3]]
    assert second["already_qualified"] is True and first["already_qualified"] is False
    assert [second[k]["id"] for k in ("account", "contact", "opportunity")] == \
        [first[k]["id"] for k in ("account", "contact", "opportunity")]
    assert not any(second[k]["created"] for k in ("account", "contact", "opportunity"))
    text = " ".join(ingest("lead", "qualify", str(lead_id)).output.split())  # unwrapped
    assert "qualified already" in text and "nothing created" in text


@pytest.mark.parametrize("flags, made", [
    (("--no-account",), {"contact", "opportunity"}),
    (("--no-contact",), {"account", "opportunity"}),
    (("--no-opportunity",), {"account", "contact"}),
    (("--no-account", "--no-contact", "--no-opportunity"), set()),
])
def test_each_option_leaves_out_its_record(ingest, env, flags, made):
    [lead_id] = land(ingest, env, "list", LEAD)
    result = ingest("lead", "qualify", str(lead_id), *flags, "--json")
    assert {k for k in ("account", "contact", "opportunity") if result[k]} == made
    assert (count(Account), count(Contact), count(Opportunity)) == \
        tuple(int(k in made) for k in ("account", "contact", "opportunity"))
    lead = get(Lead, lead_id)
    assert lead.status == "qualified"
    assert (lead.account_id is not None, lead.contact_id is not None) == ("account" in made, "contact" in made)
    if "opportunity" in made:
        opportunity = get(Opportunity, result["opportunity"]["id"])
        assert (opportunity.account_id, opportunity.contact_id) == (lead.account_id, lead.contact_id)
    if made == {"contact", "opportunity"}:  # no account asked for: the new contact gets none either
        assert get(Contact, lead.contact_id).account_id is None


def test_qualifying_reuses_the_account_found_by_domain_and_the_contact_found_by_email(ingest, env):
    # Given a contact at kund.example (its account 'Kund AB' was made by ingestion), and a
    # colleague already a contact
    [anna] = land(ingest, env, "crm", {"first_name": "Anna", "email": "anna@kund.example", "company": "Kund AB"})
    [bo] = land(ingest, env, "crm", {"first_name": "Bo", "email": "bo@kund.example"})
    account_id = get(Contact, anna).account_id
    assert account_id is not None and get(Contact, bo).account_id == account_id
    # and two web leads: one naming the company differently, one who is that colleague
    [per, bo_lead] = land(ingest, env, "web", {**LEAD, "company": "Kund Sverige Holding"},
                          {"first_name": "Bo", "email": "bo@kund.example", "topic": "Renewal"})
    # When both are qualified
    first = ingest("lead", "qualify", str(per), "--json")
    second = ingest("lead", "qualify", str(bo_lead), "--json")
    # Then the existing account is reused (found by the work domain), no second one is made
    assert first["account"] == {"id": account_id, "created": False, "found_by": "domain", "record_label": "company"}
    assert count(Account) == 1
    assert get(Contact, first["contact"]["id"]).account_id == account_id
    # and the colleague is the existing contact, found by email
    assert second["contact"] == {"id": bo, "created": False, "found_by": "email", "record_label": "contact"}
    assert count(Contact) == 3
    assert get(Opportunity, second["opportunity"]["id"]).contact_id == bo


def test_a_renamed_record_type_appears_in_cli_output(ingest, env):
    [lead_id] = land(ingest, env, "list", LEAD)
    text = " ".join(ingest("lead", "qualify", str(lead_id)).output.split())
    assert "company 1 (new)" in text and "account" not in text
    again = ingest("lead", "qualify", str(lead_id), "--json")
    assert again["account"]["record_label"] == "company" and again["labels"]["account"] == "company"
    assert "no lead 99" in ingest("lead", "qualify", "99", ok=False).output


# -- disqualify and close -----------------------------------------------------------------------

def test_a_disqualified_lead_cannot_be_qualified(ingest, env):
    [lead_id] = land(ingest, env, "list", LEAD)
    result = ingest("lead", "disqualify", str(lead_id), "--reason", "no_longer_interested", "--json")
    assert (result["status"], result["state"], result["changed"]) == ("no_longer_interested", "disqualified", True)
    refused = ingest("lead", "qualify", str(lead_id), ok=False)
    assert refused.exit_code != 0 and "is disqualified (no_longer_interested)" in refused.output
    assert (count(Account), count(Contact), count(Opportunity)) == (0, 0, 0)
    assert ingest("lead", "disqualify", str(lead_id), "--reason", "maybe", ok=False).exit_code != 0


def test_closing_a_lead_and_refusing_to_close_a_qualified_one(ingest, env):
    [open_lead, qualified] = land(ingest, env, "list", LEAD, EVA)
    assert ingest("lead", "close", str(open_lead), "--json")["status"] == "canceled"
    assert ingest("lead", "close", str(open_lead), "--json")["changed"] is False
    ingest("lead", "qualify", str(qualified), "--json")
    refused = ingest("lead", "close", str(qualified), ok=False)
    assert refused.exit_code != 0 and "is qualified" in refused.output
    assert get(Lead, qualified).status == "qualified"


# -- cases and queues ---------------------------------------------------------------------------

def test_resolving_a_case_makes_a_reply_reopen_it_and_reopen_refuses_an_active_case(ingest, env):
    [case_id] = land(ingest, env, "support", {"email": "kim@kund.example", "subject": "Charger broken"})
    ticket = get(Case, case_id).ticket_number
    reply = SimpleNamespace(item_id=1, case={}, activity={"subject": f"Re: [{ticket}] Charger broken"},
                            thread_refs=[], person=None)
    # When it is resolved
    resolved = ingest("case", "resolve", str(case_id), "--resolution", "Sent a new charger", "--json")
    # Then it is resolved now, with its resolution, and a reply within the window reopens it
    case = get(Case, case_id)
    assert (case.status, resolved["resolution"]) == ("resolved", "Sent a new charger")
    assert case.resolved_at is not None
    with runtime_module.runtime().sessions() as session:
        assert session.scalar(select(Activity.subject).where(Activity.regarding_id == case_id,
                                                             Activity.kind == "resolution")) == "Sent a new charger"
        assert thread_parents(session, [reply])[1].reopen is True
    assert "is resolved: only an active case can be resolved" in ingest("case", "resolve", str(case_id),
                                                                          ok=False).output
    # When it is reopened: active again; reopening an active case is refused
    assert ingest("case", "reopen", str(case_id), "--json")["status"] == "active"
    assert (get(Case, case_id).status, get(Case, case_id).resolved_at) == ("active", None)
    refused = ingest("case", "reopen", str(case_id), ok=False)
    assert refused.exit_code != 0 and "is active: there is nothing to reopen" in refused.output


def test_resolving_with_hours_takes_them_from_an_hours_entitlement(ingest, env):
    # Given a case opened under an entitlement of 10 hours (and none of cases)
    [first] = land(ingest, env, "support", {"email": "kim@kund.example", "subject": "Charger broken"})
    contact_id = get(Case, first).contact_id
    added = ingest("entitlement", "add", "--contact", str(contact_id), "--hours", "10", "--json")
    [case_id] = land(ingest, env, "support", {"email": "kim@kund.example", "subject": "Screen flickers"})
    entitlement_id = get(Case, case_id).entitlement_id
    assert entitlement_id == added["entitlement"]

    # When it is resolved after 2.5 hours of work
    resolved = ingest("case", "resolve", str(case_id), "--resolution", "New cable", "--hours", "2.5", "--json")

    # Then the entitlement has 7.5 hours left, and the resolution keeps the time
    assert (resolved["hours"], resolved["entitlement_hours_remaining"]) == (2.5, 7.5)
    assert float(get(Entitlement, entitlement_id).hours_remaining) == 7.5
    with runtime_module.runtime().sessions() as session:
        assert session.scalar(select(Activity.body).where(Activity.regarding_id == case_id,
                                                          Activity.kind == "resolution")) == "time spent: 2.50 h"
    # A case under no entitlement keeps its time only; a negative time is refused, naming the field
    assert ingest("case", "resolve", str(first), "--hours", "1", "--json")["entitlement_hours_remaining"] is None
    refused = ingest("case", "reopen", str(case_id), "--json") and ingest("case", "resolve", str(case_id),
                                                                           "--hours", "-1", ok=False)
    assert refused.exit_code != 0 and "hours: '-1': hours are from 0 to 10000" in refused.output
    assert float(get(Entitlement, entitlement_id).hours_remaining) == 7.5


def test_assign_puts_a_lead_or_case_in_a_queue(ingest, env):
    [case_id] = land(ingest, env, "support", {"email": "kim@kund.example", "subject": "Invoice"})
    [lead_id] = land(ingest, env, "list", LEAD)
    assert ingest("assign", "case", str(case_id), "Billing", "--json")["queue"] == "Billing"
    assert ingest("assign", "leads", str(lead_id), "Nordics sales", "--json")["previous_queue"] is None
    assert (get(Case, case_id).queue, get(Lead, lead_id).queue) == ("Billing", "Nordics sales")
    assert ingest("assign", "company", "1", "Billing", ok=False).exit_code != 0
    assert "no case 99" in ingest("assign", "case", "99", "Billing", ok=False).output


# -- the API ------------------------------------------------------------------------------------

@pytest.fixture
def api(ingest, env):
    from crm_ingest.api.app import app

    runtime_module._for_pid.cache_clear()
    return TestClient(app)


AUTH = {"authorization": f"Bearer {TOKEN}"}
ROUTES = [("/leads/{lead}/qualify", {}), ("/leads/{lead}/disqualify", {"reason": "lost"}),
          ("/leads/{lead}/close", {}), ("/cases/{case}/resolve", {}), ("/cases/{case}/reopen", {}),
          ("/cases/{case}/assign", {"queue": "Billing"}), ("/leads/{lead}/assign", {"queue": "Billing"})]


def test_the_api_refuses_a_missing_or_wrong_token_on_every_route(ingest, env, api):
    [lead_id] = land(ingest, env, "list", LEAD)
    [case_id] = land(ingest, env, "support", {"email": "kim@kund.example", "subject": "Invoice"})
    for route, body in ROUTES:
        url = route.format(lead=lead_id, case=case_id)
        intake._counter = None  # wrong tokens are limited per address (test_wrong_tokens_are_limited_...)
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            response = api.post(url, json=body, headers=headers)
            assert response.status_code == 401, (url, headers, response.text)
        assert api.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 401
    lead, case = get(Lead, lead_id), get(Case, case_id)
    assert (lead.status, lead.queue, case.status, case.queue) == ("new", None, "active", None)
    assert count(Opportunity) == 0


def test_wrong_tokens_are_limited_per_address_at_every_door_then_even_the_right_one_waits(ingest, env, api):
    for attempt in range(10):  # [api] logins_per_ip_per_minute, the default
        assert api.get("/items/1", headers={"authorization": f"Bearer guess{attempt}"}).status_code == 401
    refused = api.post("/cases/1/resolve", json={}, headers={"authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert api.get("/items/1").status_code == 401  # no token at all is no guess, and says so


def test_ids_past_the_databases_range_are_422_never_500(ingest, env, api):
    land(ingest, env, "list", LEAD)
    auth = {"authorization": f"Bearer {TOKEN}"}
    for url in ("/items/99999999999999999999", "/leads/99999999999999999999", "/imports/99999999999999999999",
                "/contacts/99999999999999999999/overview"):
        assert api.get(url, headers=auth).status_code == 422, url
    # a campaign filter that names no campaign (nor an id one could have) matches nothing
    assert api.get("/leads?campaign=99999999999999999999", headers=auth).json()["records"] == []
    assert api.post("/leads/99999999999999999999/qualify", json={}, headers=auth).status_code == 422


def test_a_body_past_the_limit_is_413_before_it_is_read_whole(ingest, env, api):
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    big = b'{"resolution": "' + b"r" * 200_000 + b'"}'
    assert api.post("/cases/1/resolve", content=big, headers=auth).status_code == 413

    def chunked():  # no Content-Length: counted as it streams in
        yield big[:100_000]
        yield big[100_000:]
    assert api.post("/cases/1/resolve", content=chunked(), headers=auth).status_code == 413


def test_the_api_qualifies_with_labels_and_answers_404_409_422(ingest, env, api):
    [lead_id, other] = land(ingest, env, "list", LEAD, EVA)
    response = api.post(f"/leads/{lead_id}/qualify", json={"opportunity": False}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account"]["record_label"] == "company" and body["labels"]["account"] == "company"
    assert (body["opportunity"], body["contact"]["created"]) == (None, True)
    again = api.post(f"/leads/{lead_id}/qualify", headers=AUTH).json()
    assert again["already_qualified"] is True and count(Opportunity) == 0
    assert api.post("/leads/999/qualify", headers=AUTH).json() == {"detail": "no lead 999"}
    assert api.post("/leads/999/qualify", headers=AUTH).status_code == 404
    assert api.post(f"/leads/{other}/qualify", json={"account": "yes please"}, headers=AUTH).status_code == 422
    assert api.post(f"/leads/{other}/qualify", json={"acount": False}, headers=AUTH).status_code == 422
    refused = api.post(f"/leads/{other}/disqualify", json={"reason": "bored"}, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "reason"
    closing = api.post(f"/leads/{other}/close", json={"status": "qualified"}, headers=AUTH)  # the field it names
    assert closing.status_code == 422 and closing.json()["detail"][0]["field"] == "status"
    assert api.post(f"/leads/{other}/disqualify", json={"reason": "lost"}, headers=AUTH).json()["state"] == \
        "disqualified"
    conflict = api.post(f"/leads/{other}/qualify", headers=AUTH)
    assert conflict.status_code == 409 and "disqualified" in conflict.json()["detail"]
    assert api.post(f"/companies/{lead_id}/assign", json={"queue": "x"}, headers=AUTH).status_code == 404


def test_the_api_resolves_reopens_and_assigns_a_case(ingest, env, api):
    [case_id] = land(ingest, env, "support", {"email": "kim@kund.example", "subject": "Invoice"})
    resolved = api.post(f"/cases/{case_id}/resolve", json={"resolution": "Credited"}, headers=AUTH)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert api.post(f"/cases/{case_id}/resolve", headers=AUTH).status_code == 409
    assert api.post(f"/cases/{case_id}/reopen", headers=AUTH).json()["status"] == "active"
    assert api.post(f"/cases/{case_id}/reopen", headers=AUTH).status_code == 409
    refused = api.post(f"/cases/{case_id}/resolve", json={"hours": -2}, headers=AUTH)
    assert refused.status_code == 422 and "hours" in refused.text
    timed = api.post(f"/cases/{case_id}/resolve", json={"hours": 1.25}, headers=AUTH).json()
    assert (timed["status"], timed["hours"]) == ("resolved", 1.25)
    assert api.post(f"/cases/{case_id}/reopen", headers=AUTH).status_code == 200
    assigned = api.post(f"/cases/{case_id}/assign", json={"queue": "Billing"}, headers=AUTH).json()
    assert (assigned["queue"], assigned["record_label"]) == ("Billing", "case")
    assert api.post(f"/cases/{case_id}/assign", json={"queue": "  "}, headers=AUTH).status_code == 422


# -- PostgreSQL: two qualifications at once -----------------------------------------------------

def test_two_concurrent_qualifications_of_one_lead_create_once(pg_url, sessions_for):
    sessions = sessions_for(pg_url)
    with sessions.begin() as session:
        lead = Lead(first_name="Per", last_name="Holm", email="per.holm@kund.example", company_name="Kund AB",
                    topic="Licenses", status="new")
        session.add(lead)
        session.flush()
        lead_id = lead.id
    settings = Settings(database_url=pg_url)
    results, started = {}, threading.Event()

    def first() -> None:  # qualifies, then holds its transaction open a moment
        with sessions.begin() as session:
            results["first"] = lifecycle.qualify(session, settings, lead_id)
            started.set()
            time.sleep(0.5)

    def second() -> None:  # starts while the first is uncommitted: waits for its lock
        started.wait(10)
        with sessions.begin() as session:
            results["second"] = lifecycle.qualify(session, settings, lead_id)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results["first"]["already_qualified"] is False and results["second"]["already_qualified"] is True
    assert [results["second"][k]["id"] for k in ("account", "contact", "opportunity")] == \
        [results["first"][k]["id"] for k in ("account", "contact", "opportunity")]
    with sessions() as session:
        assert [session.scalar(select(func.count()).select_from(m)) for m in (Account, Contact, Opportunity)] == \
            [1, 1, 1]
