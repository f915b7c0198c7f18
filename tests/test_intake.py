"""The public form intake and the token-guarded item lookup, through the ASGI app on the
embedded database: what people get, what bots get, and what is stored."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_ingest import runtime as runtime_module
from crm_ingest.api import intake
from crm_ingest.api.app import app
from crm_ingest.api.forms import stamp
from crm_ingest.models import IntakeCount, Lead, RawItem
from crm_ingest.models.migrate import upgrade
from crm_ingest.models.db import make_engine, make_session_factory

SECRET = "form-secret-for-tests"
TOKEN = "support-token-123"
CONFIG = '''
[api]
rate_per_ip_per_minute = 5
daily_cap_per_ip = 50
max_body_bytes = 4096

[forms.contact]
fields = { email = "email", name = "full_name", company = "company", message = "message" }
required = ["email", "name"]
labels = { email = "E-post", name = "Namn" }
campaign = "Vår 2026"
allowed_origins = ["https://www.acme.example"]
thank_you_url = "https://www.acme.example/tack"
language = "sv"
min_fill_seconds = 3
'''
ORIGIN = {"origin": "https://www.acme.example"}


@pytest.fixture
def client(tmp_path, monkeypatch):
    (tmp_path / "ingest.toml").write_text(CONFIG, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("INGEST_FORM_SECRET", SECRET)
    monkeypatch.setenv("INGEST_API_TOKENS", f"other-token,{TOKEN}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    upgrade(url)
    runtime_module._for_pid.cache_clear()
    intake._counter = None
    yield TestClient(app, follow_redirects=False)
    runtime_module._for_pid.cache_clear()
    intake._counter = None


def person(**extra) -> dict:
    return {"email": "Anna.Ek@Kund.example", "name": "Anna Ek", "company": "Kund AB",
            "message": "Ring mig om priser", "_ts": stamp("contact", SECRET, time.time() - 10), **extra}


def leads(tmp_path) -> list[Lead]:
    sessions = runtime_module.runtime().sessions
    with sessions() as session:
        return list(session.scalars(select(Lead)))


def counts() -> dict[str, int]:
    """Today's submissions by outcome, over every form."""
    totals: dict[str, int] = {}
    with runtime_module.runtime().sessions() as session:
        for row in session.scalars(select(IntakeCount)):
            totals[row.outcome] = totals.get(row.outcome, 0) + row.count
    return totals


def test_a_person_posting_the_form_lands_on_the_thank_you_page_and_becomes_a_lead(client, tmp_path):
    response = client.post("/forms/contact?utm_source=newsletter&utm_campaign=spring", data=person(),
                           headers=ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "https://www.acme.example/tack"
    [lead] = leads(tmp_path)
    assert (lead.email, lead.first_name, lead.company_name) == ("Anna.Ek@kund.example", "Anna", "Kund AB")
    assert lead.details["utm"] == {"utm_source": "newsletter", "utm_campaign": "spring"}
    with runtime_module.runtime().sessions() as session:
        assert session.get(type(lead), lead.id).campaign_id is not None
    assert counts() == {"landed": 1}


def test_multipart_and_json_land_too_and_json_gets_the_item_id(client, tmp_path):
    multipart = client.post("/forms/contact", files={k: (None, v) for k, v in person(email="bo@kund.example").items()},
                            headers=ORIGIN)
    assert multipart.status_code == 303
    as_json = client.post("/forms/contact", json={"email": "li@kund.example", "name": "Li Berg"})
    assert as_json.status_code == 202
    item_id = as_json.json()["item"]
    assert {lead.email for lead in leads(tmp_path)} == {"bo@kund.example", "li@kund.example"}

    # the item lookup wants a token
    assert client.get(f"/items/{item_id}").status_code == 401
    assert client.get(f"/items/{item_id}", headers={"authorization": "Bearer wrong"}).status_code == 401
    found = client.get(f"/items/{item_id}", headers={"authorization": f"Bearer {TOKEN}"})
    assert found.status_code == 200 and (found.json()["outcome"], found.json()["record_type"]) == ("created", "lead")


def test_missing_and_invalid_fields_come_back_named_in_the_forms_language(client, tmp_path):
    response = client.post("/forms/contact", json={"email": "not-an-address", "name": " "})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "email", "message": "E-post är inte en giltig e-postadress"},
                                         {"field": "name", "message": "Namn måste fyllas i"}]
    assert leads(tmp_path) == [] and counts() == {"invalid": 1}


@pytest.mark.parametrize("change, why", [  # made when the test runs: stamps are about now
    (lambda: {"website": "http://spam.example"}, "refused: honeypot"),
    (lambda: {"_ts": stamp("contact", SECRET)}, "refused: sent too fast"),
    (lambda: {"_ts": f"{int(time.time()) - 60}.forged"}, "refused: no valid timestamp"),
    (lambda: {"_ts": stamp("other-form", SECRET, time.time() - 60)}, "refused: no valid timestamp"),
])
def test_a_bot_gets_the_same_answer_and_no_lead(client, tmp_path, change, why):
    response = client.post("/forms/contact", data=person(**change()), headers=ORIGIN)
    assert response.status_code == 303  # nothing to learn from the answer
    assert leads(tmp_path) == [] and counts() == {why: 1}


def test_a_post_from_a_page_without_the_stamp_is_refused_and_the_log_says_why(client, tmp_path, caplog):
    intake._UNSTAMPED_SAID.clear()
    unstamped = {name: value for name, value in person().items() if name != "_ts"}
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert client.post("/forms/contact", data=unstamped, headers=ORIGIN).status_code == 303
        assert client.post("/forms/contact", data={**unstamped, "_ts": ""}, headers=ORIGIN).status_code == 303
    assert leads(tmp_path) == [] and counts() == {"refused: no timestamp": 4}
    assert caplog.text.count("form contact: a browser post without the _ts field was refused") == 1


def test_a_form_generated_weeks_ago_still_takes_a_persons_post(client, tmp_path):
    """A page embeds `ingest form-html`'s output, stamp and all, for as long as it is up."""
    response = client.post("/forms/contact", data=person(_ts=stamp("contact", SECRET, time.time() - 30 * 86400)),
                           headers=ORIGIN)
    assert response.status_code == 303 and len(leads(tmp_path)) == 1


def test_without_the_form_secret_posts_are_taken_without_the_fill_time_check(client, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("INGEST_FORM_SECRET")
    runtime_module._for_pid.cache_clear()
    with caplog.at_level("ERROR"), TestClient(app, follow_redirects=False) as started:  # runs the app's start
        response = started.post("/forms/contact", data=person(_ts="whatever"), headers=ORIGIN)
    assert response.status_code == 303 and len(leads(tmp_path)) == 1
    assert "INGEST_FORM_SECRET is not set: forms contact cannot check" in caplog.text


@pytest.mark.parametrize("body", [
    '{"email": "a@kund.example", "name": "Anna", "utm_medium": "\\ud800"}',  # a lone surrogate
    '{"email": "a@kund.example", "name": "Anna \\udfff"}',
    '{"email": "a@kund.example", "name": "Anna", "_ts": "\\ud800"}',
    '{"email": "a@kund.example", "name": NaN}',
    '{"email": "a@kund.example", "name": 1e999}',
])
def test_json_that_is_not_json_or_not_unicode_is_refused_at_the_door(client, tmp_path, body):
    response = client.post("/forms/contact", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert leads(tmp_path) == []


def test_a_json_field_holding_an_object_is_named_in_the_422(client, tmp_path):
    response = client.post("/forms/contact", json={"email": "a@kund.example", "name": {"first": "Anna"}})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "name", "message": "Namn måste vara text"}]


def test_a_windows_1252_page_posts_its_letters_as_written(client, tmp_path):
    body = b"email=a%40kund.example&name=J%F6rgen+%C5berg&_ts=" + person()["_ts"].encode()
    response = client.post("/forms/contact", content=body,
                           headers={**ORIGIN, "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303
    assert [(lead.first_name, lead.last_name) for lead in leads(tmp_path)] == [("Jörgen", "Åberg")]


def test_a_double_click_lands_once(client, tmp_path):
    form = person()
    assert client.post("/forms/contact", data=form, headers=ORIGIN).status_code == 303
    assert client.post("/forms/contact", data=form, headers=ORIGIN).status_code == 303
    with runtime_module.runtime().sessions() as session:
        assert len(session.scalars(select(RawItem)).all()) == 1


def test_rate_limits_answer_429_with_retry_after(client, tmp_path):
    answers = [client.post("/forms/contact", json={"email": f"p{n}@kund.example", "name": f"P {n}"}).status_code
               for n in range(7)]
    assert answers == [202] * 5 + [429] * 2
    limited = client.post("/forms/contact", json={"email": "x@kund.example", "name": "X"})
    assert 0 < int(limited.headers["retry-after"]) <= 61
    assert len(leads(tmp_path)) == 5 and counts()["refused: rate limit"] == 3
    page = client.post("/forms/contact", data=person(), headers=ORIGIN)  # a person's browser: a page
    assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
    assert "försök igen om" in page.text


def test_an_oversize_body_and_a_foreign_origin_are_refused(client, tmp_path):
    big = client.post("/forms/contact", json={"email": "a@kund.example", "name": "A", "message": "x" * 10_000})
    assert big.status_code == 413
    foreign = client.post("/forms/contact", data=person(), headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    no_origin = client.post("/forms/contact", data=person())
    assert no_origin.status_code == 403  # a browser post without Origin or Referer
    referer = client.post("/forms/contact", data=person(), headers={"referer": "https://www.acme.example/kontakt"})
    assert referer.status_code == 303
    assert client.post("/forms/nope", json={}).status_code == 404
    assert client.post("/forms/contact", content=b"[1,2]", headers={"content-type": "application/json"}).status_code == 400
    nested = b'{"email": "a@kund.example", "x": ' + b"[" * 1500 + b"]" * 1500 + b"}"  # deeper than json's recursion
    assert client.post("/forms/contact", content=nested, headers={"content-type": "application/json"}).status_code == 400


def test_injection_strings_are_stored_as_text(client, tmp_path):
    hostile = "Robert'); DROP TABLE leads;-- <script>alert(1)</script>"
    response = client.post("/forms/contact", json={"email": "r@kund.example", "name": hostile,
                                                   "company": "=HYPERLINK(\"http://x\")"})
    assert response.status_code == 202
    [lead] = leads(tmp_path)
    assert f"{lead.first_name} {lead.last_name}" == hostile and lead.company_name.startswith("=HYPERLINK")
    item = client.get(f"/items/{response.json()['item']}", headers={"authorization": f"Bearer {TOKEN}"})
    # it comes back as JSON data, which no browser is allowed to sniff into a page
    assert item.headers["content-type"] == "application/json"
    assert item.headers["x-content-type-options"] == "nosniff"
    with runtime_module.runtime().sessions() as session:  # and every table is still there
        assert session.scalars(select(Lead)).all()


def test_form_html_has_labels_required_fields_the_honeypot_and_a_signed_timestamp(cli, tmp_path, monkeypatch):
    (tmp_path / "ingest.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("INGEST_FORM_SECRET", SECRET)
    result = cli("form-html", "contact", "--action", "https://crm.acme.example/forms/contact")
    assert result.exit_code == 0, result.output
    page = result.output
    assert 'action="https://crm.acme.example/forms/contact"' in page
    assert '<label for="f-email">E-post</label>' in page and 'name="email" type="email" required' in page
    assert 'name="website"' in page and 'tabindex="-1"' in page and 'name="_ts"' in page
    assert "Skicka" in page and "Lämna tomt" in page and "Leave this" not in page
    # fields the configuration gives no label are named in the form's language
    assert '<label for="f-company">Företag</label>' in page and '<label for="f-message">Meddelande</label>' in page
    # the campaign link's UTM parameters ride along in hidden fields the page's address fills
    assert '<input type="hidden" name="utm_source">' in page and "URLSearchParams(window.location.search)" in page
    monkeypatch.delenv("INGEST_FORM_SECRET")
    assert cli("form-html", "contact").exit_code != 0


FIXTURES = Path(__file__).parent / "fixtures" / "facebook"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def facebook(client, monkeypatch):
    monkeypatch.setenv("FACEBOOK_VERIFY_TOKEN", fixture("webhook_verification_get.json")["configured_verify_token"])
    monkeypatch.setenv("FACEBOOK_APP_SECRET", fixture("leadgen_webhook_post.json")["signing"]["app_secret"])
    runtime_module._for_pid.cache_clear()
    return client


def test_the_facebook_verification_handshake(facebook):
    for case in fixture("webhook_verification_get.json")["cases"]:
        response = facebook.get("/webhooks/facebook", params=case["request"]["query"])
        assert response.status_code == case["expected_response"]["status"], case["name"]
        assert response.text == case["expected_response"]["body"]


def test_a_signed_leadgen_delivery_lands_each_lead_once_and_a_bad_or_missing_signature_nothing(facebook):
    good = fixture("leadgen_webhook_post.json")["request"]
    bad = fixture("leadgen_webhook_post_bad_signature.json")["request"]
    body = good["raw_body"].encode()
    signed = {"content-type": "application/json", "x-hub-signature-256": good["headers"]["x-hub-signature-256"]}

    assert facebook.post("/webhooks/facebook", content=bad["raw_body"].encode(),
                         headers={"content-type": "application/json",
                                  "x-hub-signature-256": bad["headers"]["x-hub-signature-256"]}).status_code == 403
    assert facebook.post("/webhooks/facebook", content=body,
                         headers={"content-type": "application/json"}).status_code == 403
    first = facebook.post("/webhooks/facebook", content=body, headers=signed)
    again = facebook.post("/webhooks/facebook", content=body, headers=signed)  # Meta retries
    assert first.status_code == 200 and first.json() == {"landed": 2, "received": 2}
    assert again.json() == {"landed": 0, "received": 2}
    with runtime_module.runtime().sessions() as session:
        items = session.scalars(select(RawItem).order_by(RawItem.id)).all()
    assert [i.external_id for i in items] == ["leadgen:1634008812345671", "leadgen:1634008812345672"]
    # the answers come from the Graph API (the Facebook connector): until then, in review, saying so
    assert {(i.state, i.outcome) for i in items} == {("done", "review")}
    assert "not fetched from the Graph API yet" in items[0].outcome_reason


@pytest.mark.parametrize("data", [{"entry": 5}, {"entry": [{"changes": ["x"]}]}, {"entry": [{"changes": 5}]}])
def test_a_signed_delivery_of_an_odd_shape_lands_nothing_and_breaks_nothing(facebook, data):
    body = json.dumps(data).encode()
    signature = "sha256=" + hmac.new(fixture("leadgen_webhook_post.json")["signing"]["app_secret"].encode(), body,
                                     hashlib.sha256).hexdigest()
    response = facebook.post("/webhooks/facebook", content=body,
                             headers={"content-type": "application/json", "x-hub-signature-256": signature})
    assert response.status_code == 200 and response.json() == {"landed": 0, "received": 0}


def test_long_leadgen_ids_are_kept_whole_never_cut_into_one(facebook):
    secret = fixture("leadgen_webhook_post.json")["signing"]["app_secret"].encode()
    ids = ["1" * 41 + "a", "1" * 41 + "b", "9" * 150 + "a", "9" * 150 + "b"]
    body = json.dumps({"entry": [{"changes": [{"field": "leadgen", "value": {"leadgen_id": i}} for i in ids]}]}).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    response = facebook.post("/webhooks/facebook", content=body,
                             headers={"content-type": "application/json", "x-hub-signature-256": signature})
    assert response.json() == {"landed": 4, "received": 4}


def test_a_fetched_lead_becomes_a_lead_with_its_answers():
    from crm_ingest.ingest.plan import plan_item
    from crm_ingest.ingest.settings import builtin_sources

    lead = fixture("lead_get_by_id.json")["response"]["body"]
    plan = plan_item(1, "leadgen", {**lead, "leadgen_id": lead["id"]}, builtin_sources("SE")["facebook_leads"])
    assert plan.outcome is None and plan.person.scope == "lead"
    assert plan.person.fields["email"] and plan.person.fields["details"]["leadgen_id"] == lead["id"]


def reconfigure(tmp_path, extra: str, api: str = "") -> None:
    """The same app with more configuration (read again on the next request)."""
    (tmp_path / "ingest.toml").write_text(CONFIG.replace("[api]\n", "[api]\n" + api) + extra, encoding="utf-8")
    runtime_module._for_pid.cache_clear()
    intake._counter = None


def test_a_form_key_that_could_break_out_of_a_url_or_the_page_is_refused(client, tmp_path):
    from crm_ingest.ingest.errors import ConfigError

    reconfigure(tmp_path, '[forms."x\\"><script>"]\nfields = { email = "email" }\n')
    with pytest.raises(ConfigError, match="letters, digits"):
        runtime_module.runtime()


def test_daily_caps_per_form_and_per_ip_answer_429_until_tomorrow(client, tmp_path):
    reconfigure(tmp_path, '''
[forms.small]
fields = { email = "email" }
rate_per_minute = 100
daily_cap = 3
''')
    answers = [client.post("/forms/small", json={"email": f"s{n}@kund.example"}).status_code for n in range(4)]
    assert answers == [202, 202, 202, 429]
    capped = client.post("/forms/small", json={"email": "late@kund.example"})
    assert 60 < int(capped.headers["retry-after"]) <= 86401  # the cap is per day, not per minute
    # another form is not capped by this one's cap, but the per-IP rate (5 a minute) still counts
    # every post this address made: five already
    assert client.post("/forms/contact", json={"email": "x@kund.example", "name": "X"}).status_code == 429
    assert counts() == {"landed": 3, "refused: rate limit": 3}


def test_a_browser_post_with_an_invalid_field_gets_a_page_showing_the_value_escaped(client, tmp_path):
    hostile = '"><script>alert(1)</script>'
    response = client.post("/forms/contact", data=person(email=hostile), headers=ORIGIN)
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "E-post är inte en giltig e-postadress" in page and 'lang="sv"' in page
    assert leads(tmp_path) == []


class LoopbackDns:
    """A real DNS server on loopback (UDP), answering from a table: {name: {type: [rdata]}}.
    A name missing from the table is NXDOMAIN; a name mapped to None is never answered."""

    def __init__(self, table: dict[str, dict[str, list[str]] | None]) -> None:
        import socket
        import threading

        self.table = {name.rstrip(".") + ".": records for name, records in table.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.asked: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name, kind = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            self.asked.append((name, kind))
            if name in self.table and self.table[name] is None:
                continue  # silence: the resolver times out
            answer = dns.message.make_response(query)
            if name not in self.table:
                answer.set_rcode(dns.rcode.NXDOMAIN)
            elif kind in self.table[name]:
                answer.answer.append(dns.rrset.from_text(name, 300, "IN", kind, *self.table[name][kind]))
            self.sock.sendto(answer.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_the_mx_check_refuses_domains_that_take_no_mail_and_never_a_slow_answer(client, tmp_path):
    from crm_ingest.api import mx

    server = LoopbackDns({"kund.example": {"MX": ["10 mail.kund.example."]},
                          "bara-a.example": {"A": ["93.184.215.14"]},  # no MX: the A fallback
                          "ingen-post.example": {"MX": ["0 ."]},  # RFC 7505 null MX
                          "lokal.example": {"A": ["10.1.2.3"]},  # only a private address
                          "seg.example": None})  # never answers
    try:
        dns = f'dns_servers = ["127.0.0.1:{server.port}"]\ndns_timeout_seconds = 0.5\n'
        reconfigure(tmp_path, '''
[forms.mx]
fields = { email = "email" }
mx_check = true
language = "sv"
labels = { email = "E-post" }
''', api=dns)
        mx.forget()
        posted = {domain: client.post("/forms/mx", json={"email": f"anna@{domain}"})
                  for domain in ("kund.example", "bara-a.example", "ingen-post.example", "finns-inte.example",
                                 "lokal.example")}
        assert {d: r.status_code for d, r in posted.items()} == {
            "kund.example": 202, "bara-a.example": 202, "ingen-post.example": 422,
            "finns-inte.example": 422, "lokal.example": 422}
        assert posted["finns-inte.example"].json()["errors"] == [
            {"field": "email", "message": "E-post är en adress vars domän inte tar emot e-post"}]
        intake._counter = None  # a new minute for the per-IP rate: five posts were made
        assert client.post("/forms/mx", json={"email": "bo@seg.example"}).status_code == 202  # no answer: accepted
        asked = len(server.asked)
        assert client.post("/forms/mx", json={"email": "li@kund.example"}).status_code == 202
        assert len(server.asked) == asked  # the verdict on kund.example was kept
        assert {lead.email for lead in leads(tmp_path)} == {"anna@kund.example", "anna@bara-a.example",
                                                            "bo@seg.example", "li@kund.example"}
    finally:
        server.close()
        mx.forget()


def test_a_script_posting_raw_utf8_is_read_as_written(client, tmp_path):
    body = "email=a%40kund.example&name=Jörgen Åberg&_ts=".encode() + person()["_ts"].encode()
    response = client.post("/forms/contact", content=body,
                           headers={**ORIGIN, "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303
    assert [(lead.first_name, lead.last_name) for lead in leads(tmp_path)] == [("Jörgen", "Åberg")]


def test_a_server_started_without_tokens_says_so(client, monkeypatch, caplog):
    monkeypatch.delenv("INGEST_API_TOKENS")
    runtime_module._for_pid.cache_clear()
    with caplog.at_level("ERROR"), TestClient(app) as started:
        assert started.get("/items/1", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401
    assert "INGEST_API_TOKENS is not set: every route but /health" in caplog.text and TOKEN not in caplog.text


def test_a_post_while_the_broker_is_away_is_taken_and_waits_for_the_sweeper(tmp_path):
    """A real server whose Redis does not answer: the post is stored, answered 202, and left
    for the sweeper; its rate limits are counted in the process meanwhile."""
    import json
    import os
    import urllib.request

    from tests.test_acknowledge import free_port
    from tests.test_browser_form import serve_api, stop_api

    (tmp_path / "ingest.toml").write_text(CONFIG, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
           "INGEST_CONFIG": str(tmp_path / "ingest.toml"), "INGEST_API_TOKENS": TOKEN}
    proc = serve_api(env, tmp_path, port)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/forms/contact", method="POST",
                                         data=json.dumps({"email": "anna@kund.example", "name": "Anna"}).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202
            item_id = json.loads(answer.read())["item"]
    finally:
        stop_api(proc)
    with make_session_factory(make_engine(url))() as session:
        item = session.get(RawItem, item_id)
        assert (item.state, item.outcome) == ("pending", None)  # landed: the sweeper sends it on
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "rate limits counted in this process alone" in log and "are landed but not yet queued" in log
