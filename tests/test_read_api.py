"""The read API and `ingest list` / `ingest export`: filters, full-text, cursor pages that hold
while rows are inserted, one record with its links, the raw items behind a record, the token,
and the configured display names (accounts shown as 'company'); on the embedded database."""
from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from crm_ingest import runtime as runtime_module
from crm_ingest.api import intake
from crm_ingest.models import Account, Campaign, Lead
from tests.test_lifecycle import LEAD, TOKEN, env, ingest, land  # noqa: F401 - fixtures

AUTH = {"authorization": f"Bearer {TOKEN}"}
DAY = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def api(ingest, env):  # noqa: F811
    ingest("list", "lead", "--json")  # the schema, migrated
    from crm_ingest.api.app import app

    runtime_module._for_pid.cache_clear()
    return TestClient(app)


def add_leads(*leads: dict) -> list[int]:
    with runtime_module.runtime().sessions.begin() as session:
        rows = [Lead(**lead) for lead in leads]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


@pytest.fixture
def leads(api) -> dict[str, int]:
    """Five leads a day apart: two from a fair campaign, one in a queue, one closed, one whose
    name holds the LIKE wildcards % and _."""
    with runtime_module.runtime().sessions.begin() as session:
        session.add(Campaign(id=7, name="Fair 2026"))
    names = ["fair_one", "fair_two", "queued", "closed", "percent"]
    ids = add_leads(
        {"first_name": "Åsa", "last_name": "Berg", "email": "ASA@Kund.example", "source": "list", "campaign_id": 7,
         "created_at": DAY},
        {"first_name": "Bo", "last_name": "Ek", "email": "bo@kund.example", "source": "list", "campaign_id": 7,
         "created_at": DAY + timedelta(days=1)},
        {"first_name": "Cai", "last_name": "Lund", "email": "cai@other.example", "source": "web", "queue": "Nordics",
         "created_at": DAY + timedelta(days=2)},
        {"first_name": "Dan", "last_name": "Berglund", "email": "dan@other.example", "source": "web", "status": "lost",
         "created_at": DAY + timedelta(days=3)},
        {"first_name": "Eva", "last_name": "100%_sure", "email": "eva@third.example", "source": "web",
         "created_at": DAY + timedelta(days=4)},
    )
    return dict(zip(names, ids))


def listed(api, path: str = "/leads", **params) -> list[int]:
    response = api.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["records"]]


# -- the token ----------------------------------------------------------------------------------

READS = ["/leads", "/leads/{lead}", "/leads/{lead}/items", "/records/companies", "/records/lead/{lead}",
         "/accounts/{account}/overview", "/contacts/1/overview", "/leads?limit=99999", "/leads?bogus=1"]


def test_every_read_refuses_a_missing_or_wrong_token(api, leads):
    with runtime_module.runtime().sessions.begin() as session:
        session.add(Account(id=3, name="Kund AB"))
    for route in READS:
        url = route.format(lead=leads["fair_one"], account=3)
        intake._counter = None  # wrong tokens are limited per address
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                        {"authorization": f"Basic {TOKEN}"}):
            response = api.get(url, headers=headers)
            assert response.status_code == 401, (url, headers, response.text)
            assert "Åsa" not in response.text
    assert api.get("/leads", headers=AUTH).status_code == 200


# -- filters and full-text ----------------------------------------------------------------------

def test_filters_pick_by_status_source_campaign_queue_and_created_range(api, leads):
    newest_first = [leads[n] for n in ("percent", "closed", "queued", "fair_two", "fair_one")]
    assert listed(api) == newest_first
    assert listed(api, status="lost") == [leads["closed"]]
    assert listed(api, source="list") == [leads["fair_two"], leads["fair_one"]]
    assert listed(api, campaign="Fair 2026") == listed(api, campaign="7") == [leads["fair_two"], leads["fair_one"]]
    assert listed(api, campaign="No such") == []
    assert listed(api, campaign="²") == [] == listed(api, campaign="9" * 25)  # no id: never a 500
    with runtime_module.runtime().sessions.begin() as session:  # a campaign named with digits, by its name
        session.add(Campaign(id=8, name="7"))
    assert listed(api, campaign="7") == []  # 'campaign 7' is now the one named so, which has no leads
    assert listed(api, queue="Nordics") == [leads["queued"]]
    # a date alone takes the whole day; both ends inclusive
    assert listed(api, created_from="2026-03-03", created_to="2026-03-04") == [leads["queued"], leads["fair_two"]]
    assert listed(api, created_from=(DAY + timedelta(days=3)).isoformat()) == [leads["percent"], leads["closed"]]
    assert listed(api, source="web", status="new") == [leads["percent"], leads["queued"]]


def test_search_is_case_insensitive_on_names_and_emails_and_takes_wildcards_literally(api, leads):
    assert listed(api, search="BERG") == [leads["closed"], leads["fair_one"]]  # Berglund, Berg
    assert listed(api, search="kund.EXAMPLE") == [leads["fair_two"], leads["fair_one"]]
    assert listed(api, search="%") == [leads["percent"]]
    assert listed(api, search="_") == [leads["percent"]]
    assert listed(api, search="nobody") == []
    # letters past ASCII fold too (SQLite's own lower() folds ASCII only: 'Åsa' found nothing)
    assert listed(api, search="åSA") == [leads["fair_one"]] == listed(api, search="ÅSA BERG"[:3])


def test_an_unknown_filter_or_bad_value_is_a_422_naming_it(api, leads):
    def refused(path: str = "/leads", **params) -> str:
        response = api.get(path, params=params, headers=AUTH)
        assert response.status_code == 422, response.text
        return response.json()["detail"][0]["field"]

    assert refused(owner="x") == "owner"
    assert refused("/accounts", status="active") == "status"
    assert refused("/accounts", queue="Nordics") == "queue"
    assert refused(created_from="yesterday") == "created_from"
    assert refused(limit="501") == "limit"
    assert refused(limit="0") == "limit"
    assert refused(cursor="garbage!") == "cursor"
    # a cursor is for the list it came from, not another filter's
    cursor = api.get("/leads", params={"limit": 1}, headers=AUTH).json()["next_cursor"]
    assert refused(cursor=cursor, source="web") == "cursor"
    assert api.get("/records/widgets", headers=AUTH).status_code == 404


# -- cursor pages -------------------------------------------------------------------------------

def test_pages_neither_repeat_nor_skip_rows_when_rows_are_inserted_between_them(api, leads):
    # Given the first page of two
    first = api.get("/leads", params={"limit": 2}, headers=AUTH).json()
    assert [r["id"] for r in first["records"]] == [leads["percent"], leads["closed"]]
    # When new leads arrive (newer), and one with the same created_at as the page's last row
    arrived = add_leads(*({"first_name": f"New {n}", "source": "web"} for n in range(4)))
    add_leads({"first_name": "Same moment", "source": "web", "created_at": DAY + timedelta(days=3)})
    # Then the following pages give every lead there was before, once, and the page ends
    seen, cursor = [r["id"] for r in first["records"]], first["next_cursor"]
    while cursor:
        page = api.get("/leads", params={"limit": 2, "cursor": cursor}, headers=AUTH).json()
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in leads.values()] == \
        [leads[n] for n in ("percent", "closed", "queued", "fair_two", "fair_one")]
    assert not set(arrived) & set(seen)
    # and a fresh read from the top has the new ones first
    assert listed(api, limit="4") == list(reversed(arrived))


def test_filtered_pages_hold_too(api, leads):
    page = api.get("/leads", params={"limit": 1, "source": "list"}, headers=AUTH).json()
    add_leads({"first_name": "Late", "source": "list", "campaign_id": 7})
    rest = api.get("/leads", params={"limit": 5, "source": "list", "cursor": page["next_cursor"]},
                   headers=AUTH).json()
    assert [r["id"] for r in page["records"] + rest["records"]] == [leads["fair_two"], leads["fair_one"]]
    assert rest["next_cursor"] is None


# -- one record, its links, its items; labels ----------------------------------------------------

def test_a_record_with_its_links_and_the_items_that_made_and_changed_it(api, ingest, env):  # noqa: F811
    # Given a lead from a list in a campaign, qualified into company, contact and opportunity,
    # and the same person arriving again from the CRM source (merged into the contact)
    [lead_id] = land(ingest, env, "list", LEAD, campaign="Fair 2026")
    qualified = ingest("lead", "qualify", str(lead_id), "--json")
    contact_id, account_id = qualified["contact"]["id"], qualified["account"]["id"]
    [again] = land(ingest, env, "crm", {"email": LEAD["email"], "job_title": "CTO"})
    assert again == contact_id
    # When the lead is read, with its links
    body = api.get(f"/leads/{lead_id}", headers=AUTH).json()
    assert body["record"]["email"] == LEAD["email"] and body["record_type"] == "lead"
    assert body["links"]["campaign"]["name"] == "Fair 2026"
    assert body["links"]["account"] == {"record_type": "account", "record_label": "company", "id": account_id,
                                        "name": "Kund AB"}
    assert [o["id"] for o in body["links"]["opportunities"]] == [qualified["opportunity"]["id"]]
    # the company lists its contact, by its own route and under its display name
    company = api.get(f"/records/companies/{account_id}", headers=AUTH).json()
    assert company["record_label_plural"] == "companies"
    assert [c["id"] for c in company["links"]["contacts"]] == [contact_id]
    assert api.get("/leads/999", headers=AUTH).json() == {"detail": "no lead 999"}
    # Then the lead's items: the list row that made it
    [item] = api.get(f"/leads/{lead_id}/items", headers=AUTH).json()["items"]
    assert (item["source"], item["how"], item["outcome"]) == ("list", "created", "created")
    # and the contact's, newest first: the CRM row that changed it, the list row it was made from
    items = api.get(f"/contacts/{contact_id}/items", headers=AUTH).json()["items"]
    assert [(i["source"], i["outcome"], i["how"]) for i in items] == \
        [("crm", "merged", "changed"), ("list", "created", "created")]
    assert items[0]["payload"]["fields"]["job_title"] == "CTO"
    assert items[1]["id"] == item["id"]
    # paged by cursor like the lists
    page = api.get(f"/contacts/{contact_id}/items", params={"limit": 1}, headers=AUTH).json()
    rest = api.get(f"/contacts/{contact_id}/items", params={"limit": 1, "cursor": page["next_cursor"]},
                   headers=AUTH).json()
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in items]
    assert rest["next_cursor"] is None


def test_labels_from_configuration_in_api_and_cli_output(api, ingest):  # noqa: F811
    with runtime_module.runtime().sessions.begin() as session:
        session.add(Account(name="Kund AB", source="crm"))
    listed_api = api.get("/records/companies", headers=AUTH).json()
    assert (listed_api["record_type"], listed_api["record_label_plural"]) == ("account", "companies")
    assert listed_api["records"][0]["record_label"] == "company"
    assert api.get("/accounts", headers=AUTH).json()["records"][0]["record_label"] == "company"
    listed_cli = ingest("list", "companies", "--json")
    assert listed_cli["record_label_plural"] == "companies" and listed_cli["records"][0]["record_label"] == "company"
    table = ingest("list", "company").output
    assert "Companies" in table and "Kund AB" in table


def test_the_openapi_document_describes_the_filters(api):
    spec = api.get("/openapi.json").json()
    parameters = {p["name"] for p in spec["paths"]["/leads"]["get"]["parameters"]}
    assert {"status", "source", "campaign", "queue", "created_from", "created_to", "search", "limit",
            "cursor"} <= parameters
    assert "/accounts/{record_id}/overview" in spec["paths"] and "/cases/{record_id}/items" in spec["paths"]


# -- the command line: list and export of a filtered list ----------------------------------------

def test_cli_list_pages_with_the_same_filters_and_cursor(api, ingest, leads):  # noqa: F811
    first = ingest("list", "lead", "--source", "web", "--limit", "2", "--json")
    assert [r["id"] for r in first["records"]] == [leads["percent"], leads["closed"]]
    rest = ingest("list", "lead", "--source", "web", "--limit", "2", "--cursor", first["next_cursor"], "--json")
    assert [r["id"] for r in rest["records"]] == [leads["queued"]] and rest["next_cursor"] is None
    refused = ingest("list", "account", "--queue", "x", ok=False)
    assert refused.exit_code != 0 and "--queue" in refused.output


def test_export_writes_the_filtered_list_as_excel_safe_csv_and_jsonl(api, ingest, leads, env):  # noqa: F811
    add_leads({"first_name": "=HYPERLINK(\"http://evil.example\")", "last_name": "Berg", "source": "web"})
    rows = list(csv.DictReader(io.StringIO(ingest("export", "lead", "--search", "berg").output)))
    assert [r["last_name"] for r in rows] == ["Berg", "Berglund", "Berg"]
    assert rows[0]["first_name"] == "'=HYPERLINK(\"http://evil.example\")"
    out = env / "web.jsonl"
    ingest("export", "leads", "--source", "web", "--status", "new", "--format", "jsonl", "-o", str(out))
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in exported][1:] == [leads["percent"], leads["queued"]]
    assert exported[0]["first_name"].startswith("=HYPERLINK")  # JSON Lines is data, not a sheet


@pytest.mark.parametrize("params", [
    {"created_to": "0001-01-01T00:00:00+05:00"},  # before year 1 in UTC
    {"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()},  # nested past json's depth
    "a real cursor moved past year 9999 in UTC",
])
def test_a_moment_or_cursor_out_of_range_is_a_422_never_a_500(api, leads, params):
    if isinstance(params, str):  # the page's own cursor, its time changed: it passes the filters' check
        given = api.get("/leads", params={"limit": 1}, headers=AUTH).json()["next_cursor"]
        raw = json.loads(base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)))
        raw["c"] = "9999-12-31T23:59:59-05:00"
        params = {"limit": 1, "cursor": base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")}
    response = api.get("/leads", params=params, headers=AUTH)
    assert response.status_code == 422, response.text


def test_items_are_listed_by_outcome_for_a_token_holder(api, ingest, env):  # noqa: F811
    [lead_id] = land(ingest, env, "list", LEAD)
    assert api.get("/items?outcome=created").status_code == 401
    page = api.get("/items?outcome=created&source=list", headers=AUTH).json()
    [item] = page["items"]
    assert (item["record_type"], item["record_id"], item["sender"]) == ("lead", lead_id, "Per Holm <per.holm@kund.example>")
    assert api.get("/items?outcome=review", headers=AUTH).json() == \
        {"items": [], "next_after_id": None, "asked": {"outcome": "review"}}
    assert api.get("/items", headers=AUTH).json()["items"] == []  # unasked, what waits in review
    refused = api.get("/items?outcome=lost", headers=AUTH)
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "outcome"


def test_an_items_sender_and_words_are_shown_without_a_terminals_escape_codes():
    from crm_ingest.ingest.query import item_gist

    gist = item_gist({"from_name": "E\x1b[31mRED", "from_email": "e@kund.example",
                      "subject": "\x1b[2J\x1b]0;pwned\x07Hej"})
    assert all(ch.isprintable() for text in gist.values() for ch in text)
    assert gist["says"].endswith("Hej") and gist["sender"].endswith("<e@kund.example>")
