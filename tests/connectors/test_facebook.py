"""The Facebook source driven through facebook-sdk at the HTTP layer (`responses`; the library is
not mocked), with the Graph API shapes in tests/fixtures/facebook, on the embedded database:
checkpoints across polls, new posts before a backlog, Lead Ads leads stored once however they
arrive, rate limits, a refused token, a lead the Graph API will not give, and when the token
expires (debug_token)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

import pytest
import responses
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_ingest import runtime as runtime_module
from crm_ingest.connectors.facebook import parse_usage, rate_limit_until
from crm_ingest.connectors.polling import poll_once
from crm_ingest.models import Lead, RawItem, SourceHealth, utcnow
from crm_ingest.models.landing import load_checkpoint
from crm_ingest.models.migrate import upgrade
from crm_ingest.workers.dispatch import dispatch

FIXTURES = Path(__file__).parent.parent / "fixtures" / "facebook"
GRAPH = "https://graph.facebook.com/v22.0"
PAGE, FORM = "109876543210987", "1203456789012345"
TOKEN = "FAKE_PAGE_ACCESS_TOKEN"
FEED, LEADS = f"{PAGE}/feed", f"{FORM}/leads"
CONFIG = f'''
[sources.facebook.facebook]
page_id = "{PAGE}"
page_size = 3
check_token_expiry = false  # the tests of the token's expiry turn it on

[sources.facebook_leads.facebook]
form_ids = ["{FORM}"]
page_size = 3
check_token_expiry = false
field_map = {{ "what_type_of_bike_are_you_interested_in?" = "subject", firma = "company" }}

[sources.facebook_leads.facebook.form_field_maps."{FORM}"]
butik = "company"   # this form's own question; the source's map still applies to the rest
'''


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def epoch(graph_time: str) -> int:
    return int(datetime.strptime(graph_time, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def query(**expected):
    """A `responses` matcher on query parameters: each equal to the given value, or absent (None)."""
    def match(request):
        got = dict(parse_qsl(urlparse(request.url).query))
        for key, value in expected.items():
            if got.get(key) != (None if value is None else str(value)):
                return False, f"{key}: {got.get(key)!r}, wanted {value!r}"
        return True, ""
    return match


def answer(rsps, name: str, *, url: str | None = None, body=None, **params) -> None:
    """Answer a request with a fixture's Graph response (status, headers, body), at its URL or
    another, when the query has the given parameters."""
    data = fixture(name)
    response = data["response"]
    headers = {k: v for k, v in response["headers"].items() if k != "content-type"}
    rsps.add(responses.GET, url or data["request"]["url"], json=response["body"] if body is None else body,
             status=response["status"], headers=headers, content_type=response["headers"]["content-type"],
             match=[query(**params)])


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The embedded runtime (SQLite, no broker) with the Page feed and the Lead Ads form configured;
    call it with more TOML to reconfigure."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FACEBOOK_PAGE_TOKEN", TOKEN)
    monkeypatch.setenv("FACEBOOK_APP_SECRET", fixture("leadgen_webhook_post")["signing"]["app_secret"])
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    upgrade(url)

    def configure(toml: str = CONFIG):
        (tmp_path / "ingest.toml").write_text(toml, encoding="utf-8")
        runtime_module._for_pid.cache_clear()
        return runtime_module.runtime()

    configure()
    yield configure
    runtime_module._for_pid.cache_clear()


def poll(source: str, process: bool = False):
    rt = runtime_module.runtime()
    result = poll_once(rt.sessions, rt.settings, source)
    if process:
        dispatch(rt.sessions, result.ids, rt.settings)  # embedded: processed before it returns
    return result


def items(source: str) -> list[RawItem]:
    with runtime_module.runtime().sessions() as session:
        return list(session.scalars(select(RawItem).where(RawItem.source == source).order_by(RawItem.id)))


def checkpoint(source: str) -> dict | None:
    with runtime_module.runtime().sessions() as session:
        return load_checkpoint(session, source)


def health(source: str) -> SourceHealth:
    with runtime_module.runtime().sessions() as session:
        return session.get(SourceHealth, source)


def leads() -> list[Lead]:
    with runtime_module.runtime().sessions() as session:
        return list(session.scalars(select(Lead).order_by(Lead.email)))


# -- the Page feed -----------------------------------------------------------------------------

PAGE1 = fixture("page_feed_page1")["response"]["body"]
FIRST_POST = PAGE1["data"][0]
NEWEST = epoch(FIRST_POST["created_time"])


def more_comments(rsps) -> None:
    """The first post has 5 comments and the fixture's page carries 2; the other 3 follow its
    `next` (this answer is made in the fixture's shape)."""
    cursor = FIRST_POST["comments"]["paging"]["cursors"]["after"]
    rest = [{**FIRST_POST["comments"]["data"][0], "id": f"3456789012345678_11876543210987{n}",
             "message": f"Comment {n}", "created_time": f"2025-03-14T11:0{n}:00+0000"} for n in (7, 8, 9)]
    rsps.add(responses.GET, f"{GRAPH}/{FIRST_POST['id']}/comments", json={"data": rest},
             match=[query(after=cursor, access_token=TOKEN)])


def test_a_feed_is_read_page_by_page_and_the_next_poll_asks_only_for_what_is_newer(env):
    with responses.RequestsMock() as rsps:
        answer(rsps, "page_feed_page1", after=None, since=None, access_token=TOKEN)
        more_comments(rsps)
        answer(rsps, "page_feed_page2_empty", after=PAGE1["paging"]["cursors"]["after"], access_token=TOKEN)
        first = poll("facebook")

    posts = [p["id"] for p in PAGE1["data"]]
    landed = items("facebook")
    # Then every post and every comment (all five of the first post's) is an item, once
    assert (first.error, first.received, len(first.ids)) == (None, 9, 9)
    assert [i.external_id for i in landed if "_" in i.external_id and i.external_id.startswith(PAGE)] == posts
    comment = next(i for i in landed if i.external_id == "3456789012345678_1187654321098765")
    assert comment.kind == "post" and comment.payload == {
        "post_id": "3456789012345678_1187654321098765", "network": "facebook", "handle": "7712345678901234",
        "author_id": "7712345678901234", "author_name": "Jordan Sample", "text": "Do you do e-bike motors too?",
        "created_at": "2025-03-14T10:21:44+00:00", "conversation_id": posts[0], "in_reply_to_post_id": posts[0],
        "url": FIRST_POST["permalink_url"], "public": True}
    photo = next(i for i in landed if i.external_id == posts[2])
    assert photo.payload["text"] is None  # a photo without words still lands (the plan rejects it: empty post)
    # And the checkpoint holds the newest post's time, no walk left, and never the token
    saved = checkpoint("facebook")
    assert saved == {FEED: {"newest": NEWEST, "at_newest": [posts[0]], "walks": []}}
    assert TOKEN not in json.dumps(saved)

    # When it polls again, it asks only for posts since the newest; the newest itself is not read again
    with responses.RequestsMock() as rsps:
        answer(rsps, "page_feed_page1", body={"data": [FIRST_POST]}, since=NEWEST - 1, after=None)
        second = poll("facebook")
    assert (second.error, second.received, second.ids) == (None, 0, [])
    assert checkpoint("facebook") == saved


def test_a_posts_refused_comments_do_not_hold_back_the_posts_after_it(env):
    """A post whose comments edge kept refusing (deleted meanwhile) failed every poll at it:
    the posts behind it never landed."""
    refused = {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100,
                         "error_subcode": 33}}
    with responses.RequestsMock() as rsps:
        answer(rsps, "page_feed_page1", after=None, since=None, access_token=TOKEN)
        rsps.add(responses.GET, f"{GRAPH}/{FIRST_POST['id']}/comments", json=refused, status=400)
        answer(rsps, "page_feed_page2_empty", after=PAGE1["paging"]["cursors"]["after"], access_token=TOKEN)
        first = poll("facebook")
    posts = [p["id"] for p in PAGE1["data"]]
    assert first.error is None
    assert set(posts) <= {i.external_id for i in items("facebook")}  # every post, the one refused too


def test_a_page_cursor_given_again_ends_the_walk_instead_of_reading_it_for_ever(env):
    looping = {**PAGE1, "data": PAGE1["data"][1:], "paging": {
        "cursors": {"after": "SAME"}, "next": f"{GRAPH}/{PAGE}/feed?after=SAME&limit=25"}}
    with responses.RequestsMock() as rsps:
        answer(rsps, "page_feed_page1", body={**PAGE1, "paging": looping["paging"]}, after=None, since=None,
               access_token=TOKEN)
        more_comments(rsps)
        rsps.add(responses.GET, f"{GRAPH}/{PAGE}/feed", json=looping, match=[query(after="SAME", access_token=TOKEN)])
        first = poll("facebook")
        assert len([c for c in rsps.calls if "after=SAME" in c.request.url]) == 1  # read once, not to max_pages
    assert first.error is None and checkpoint("facebook")[FEED]["walks"] == []


def test_a_photo_post_without_words_is_rejected_as_an_empty_post():
    from crm_ingest.connectors.facebook import _post_payload
    from crm_ingest.ingest.plan import plan_item
    from crm_ingest.ingest.settings import builtin_sources

    plan = plan_item(1, "post", _post_payload(PAGE1["data"][2], None, None), builtin_sources("SE")["facebook"])
    assert (plan.outcome, plan.reason) == ("rejected", "text: empty post")


class FakeFeed:
    """A Page feed answered the way the Graph API pages one: newest first, `limit` a page, an
    opaque `after` cursor naming the last post of the page before, `since` a lower time bound,
    and a `next` link while more is left."""

    def __init__(self, count: int) -> None:
        self.posts: list[dict] = []
        self.queries: list[dict] = []
        self.add(count)

    def add(self, count: int, comments: int = 0) -> None:
        start = len(self.posts)
        for n in range(start + 1, start + count + 1):
            at = datetime(2025, 3, 1, tzinfo=timezone.utc) + timedelta(hours=n)
            said = [{"id": f"{n}_{c}", "message": f"Comment {c}", "from": {"name": "Reader", "id": f"9{c}"},
                     "created_time": (at + timedelta(minutes=c)).strftime("%Y-%m-%dT%H:%M:%S+0000")}
                    for c in range(1, comments + 1)]
            self.posts.append({"id": f"{PAGE}_{n}", "message": f"Post {n}", "from": {"name": "Visitor", "id": str(n)},
                               "created_time": at.strftime("%Y-%m-%dT%H:%M:%S+0000"), "comments": {"data": said}})

    def __call__(self, request):
        q = dict(parse_qsl(urlparse(request.url).query))
        self.queries.append(q)
        rows = sorted(self.posts, key=lambda p: epoch(p["created_time"]), reverse=True)
        if "since" in q:
            rows = [p for p in rows if epoch(p["created_time"]) > int(q["since"])]
        if "after" in q:
            last = base64.b64decode(q["after"]).decode()
            rows = rows[[p["id"] for p in rows].index(last) + 1:]
        limit = int(q["limit"])
        page, rest = rows[:limit], rows[limit:]
        body: dict = {"data": page}
        if page:
            cursor = base64.b64encode(page[-1]["id"].encode()).decode()
            body["paging"] = {"cursors": {"after": cursor}}
            if rest:
                body["paging"]["next"] = f"{GRAPH}/{FEED}?" + urlencode({**q, "after": cursor})
        return 200, {}, json.dumps(body)

    def numbers(self, ids: list[int], source: str = "facebook") -> list[int]:
        return [int(i.external_id.rsplit("_", 1)[1]) for i in items(source) if i.id in ids]


def test_new_posts_come_first_and_the_backlog_goes_on_where_it_stopped(env):
    env(CONFIG.replace("page_size = 3", "page_size = 2\nmax_pages = 3", 1))
    feed = FakeFeed(9)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, f"{GRAPH}/{FEED}", callback=feed, content_type="application/json")

        # Given a first poll that runs out of pages in the backlog (3 pages of 2 posts)
        first = poll("facebook")
        assert feed.numbers(first.ids) == [9, 8, 7, 6, 5, 4]
        assert len(checkpoint("facebook")[FEED]["walks"]) == 1  # the backlog walk, unfinished

        # When two posts arrive and it polls again
        feed.add(2)
        feed.queries.clear()
        second = poll("facebook")
        # Then the new ones land first, then the backlog goes on from its cursor with the page left
        assert feed.numbers(second.ids) == [11, 10, 3, 2]
        assert [("since" in q, "after" in q) for q in feed.queries] == [(True, False), (True, True), (False, True)]
        assert second.received == 4  # the newest before (post 9) was asked for but not yielded again

        third, fourth = poll("facebook"), poll("facebook")
    assert feed.numbers(third.ids) == [1] and fourth.received == 0
    # And every post landed exactly once, none skipped, nothing left to walk
    assert sorted(int(i.external_id.rsplit("_", 1)[1]) for i in items("facebook")) == list(range(1, 12))
    assert checkpoint("facebook")[FEED]["walks"] == []


def test_resuming_from_any_items_checkpoint_leaves_no_gap_and_repeats_at_most_the_cut_post():
    from crm_ingest.connectors.facebook import FacebookSource
    from crm_ingest.ingest.endpoints import FacebookConfig

    config = FacebookConfig(page_id=PAGE, page_size=2, max_pages=100)
    feed = FakeFeed(0)
    feed.add(5, comments=2)  # rows of three items: a post and its two comments
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, f"{GRAPH}/{FEED}", callback=feed, content_type="application/json")
        everything = list(FacebookSource(config, "facebook", TOKEN).fetch(None))
        ids = [item.external_id for item in everything]
        assert len(ids) == 15
        for k, item in enumerate(everything, start=1):  # a runner that saved this item's cursor, then stopped
            rest = [i.external_id for i in FacebookSource(config, "facebook", TOKEN).fetch(item.cursor)]
            row_start = (k - 1) // 3 * 3 if k % 3 else k  # mid-row: the row is read again
            assert rest == ids[row_start:], k


def test_a_rate_limit_mid_poll_lands_what_came_before_and_the_next_poll_resumes_there(env):
    with responses.RequestsMock() as rsps:
        answer(rsps, "page_feed_page1", after=None, since=None)
        more_comments(rsps)
        answer(rsps, "graph_error_80001_page_buc_rate_limit", url=f"{GRAPH}/{FEED}",
               after=PAGE1["paging"]["cursors"]["after"])
        limited = poll("facebook")
    assert limited.retry_at is not None and (limited.received, len(limited.ids)) == (9, 9)
    assert checkpoint("facebook")[FEED]["walks"][0]["next"]["after"] == PAGE1["paging"]["cursors"]["after"]

    with responses.RequestsMock() as rsps:
        answer(rsps, "page_feed_page1", body={"data": [FIRST_POST]}, since=NEWEST - 1, after=None)
        answer(rsps, "page_feed_page2_empty", after=PAGE1["paging"]["cursors"]["after"])
        resumed = poll("facebook")
    assert (resumed.error, resumed.received) == (None, 0)  # nothing read twice
    assert checkpoint("facebook")[FEED]["walks"] == []


# -- errors, limits, usage -----------------------------------------------------------------------

LIMITS = {  # fixture -> minutes to wait, as the usage headers in it say (see rate_limit_until)
    "graph_error_4_app_rate_limit": 60 * (1 - 80 / 104),  # X-App-Usage 104%
    "graph_error_17_user_rate_limit": 5,  # 47%: the least wait
    "graph_error_32_page_rate_limit": 12,  # 100%
    "graph_error_613_custom_rate_limit": 5,  # 63%
    "graph_error_80001_page_buc_rate_limit": 17,  # estimated_time_to_regain_access
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_a_rate_limit_reschedules_the_poll_for_when_the_usage_headers_say(env, name):
    before = utcnow()
    with responses.RequestsMock() as rsps:
        answer(rsps, name, url=f"{GRAPH}/{FEED}")
        result = poll("facebook")
    error = fixture(name)["response"]["body"]["error"]
    expected = before + timedelta(minutes=LIMITS[name])
    assert abs((result.retry_at - expected).total_seconds()) < 5
    assert str(error["code"]) in result.error and error["fbtrace_id"] in result.error
    row = health("facebook")
    assert row.resume_at is not None and abs((row.resume_at.replace(tzinfo=timezone.utc) - result.retry_at)
                                             .total_seconds()) < 1
    assert not row.credentials_failed


def test_the_usage_headers_are_read_as_documented():
    for case in fixture("rate_limit_usage_headers")["cases"]:
        if "parsed" in case:
            assert parse_usage(case["headers"]) == case["parsed"], case["name"]
    now = datetime(2025, 3, 14, tzinfo=timezone.utc)
    cases = {c["name"]: parse_usage(c["headers"]) for c in fixture("rate_limit_usage_headers")["cases"]}
    assert rate_limit_until(cases["buc_throttled_with_regain_time"], now) == now + timedelta(minutes=17)
    assert rate_limit_until(cases["leadgen_buc_near_limit"], now) == now + timedelta(minutes=60 * (1 - 80 / 91))
    assert rate_limit_until(cases["page_token_buc"], now) == now + timedelta(minutes=5)  # 12%: the least wait
    assert rate_limit_until(cases["no_usage_headers"], now) == now + timedelta(minutes=15)


@pytest.mark.parametrize("name", ["graph_error_190_expired_token", "graph_error_190_invalid_token"])
def test_a_refused_token_marks_the_source_unhealthy_and_the_scheduled_poll_waits(env, name):
    from crm_ingest.workers.tasks import poll_source

    with responses.RequestsMock() as rsps:
        answer(rsps, name)
        result = poll("facebook_leads")
    error = fixture(name)["response"]["body"]["error"]
    assert result.credentials and error["fbtrace_id"] in result.error and "190" in result.error
    row = health("facebook_leads")
    assert (row.credentials_failed, row.failures) == (True, 1)
    with responses.RequestsMock() as rsps:  # no request at all: not a retry storm
        assert "next try after" in poll_source.run("facebook_leads")["skipped"]


def test_a_missing_token_is_refused_credentials(env, monkeypatch):
    monkeypatch.delenv("FACEBOOK_PAGE_TOKEN")
    env()
    result = poll("facebook")
    assert result.credentials and "FACEBOOK_PAGE_TOKEN is not set" in result.error


def test_the_usage_headers_are_kept_in_source_health(env):
    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        poll("facebook_leads")
    last = fixture("leads_form_leads_page2_last")["response"]["headers"]["x-business-use-case-usage"]
    assert health("facebook_leads").usage == {"x-business-use-case-usage": json.loads(last)}


# -- Lead Ads ------------------------------------------------------------------------------------

LEADS1 = fixture("leads_form_leads_page1")["response"]["body"]
LEAD_IDS = ["1634008812345671", "1634008812345672", "1634008812345673", "1634008812345674"]


def form_leads(rsps, page1=None) -> None:
    answer(rsps, "leads_form_leads_page1", body=page1, after=None, filtering=None, access_token=TOKEN)
    answer(rsps, "leads_form_leads_page2_last", after=LEADS1["paging"]["cursors"]["after"], access_token=TOKEN)


def test_a_form_is_read_page_by_page_and_the_next_poll_asks_only_for_newer_leads(env):
    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        first = poll("facebook_leads")
    landed = items("facebook_leads")
    assert (first.error, first.received, len(first.ids)) == (None, 4, 4)
    assert [i.external_id for i in landed] == [f"leadgen:{n}" for n in LEAD_IDS]
    assert landed[2].payload["ad_id"] is None  # an organic lead has no ad
    assert landed[0].payload["field_map"]["firma"] == "company"
    assert landed[0].payload["field_map"]["butik"] == "company"  # the form's own map
    newest = epoch(LEADS1["data"][0]["created_time"])
    assert checkpoint("facebook_leads") == {LEADS: {"newest": newest, "at_newest": [LEAD_IDS[0]], "walks": []}}

    newer = json.dumps([{"field": "time_created", "operator": "GREATER_THAN", "value": newest - 1}])
    with responses.RequestsMock() as rsps:
        answer(rsps, "leads_form_leads_page1", body={"data": [LEADS1["data"][0]]}, filtering=newer)
        second = poll("facebook_leads")
    assert (second.error, second.received, second.ids) == (None, 0, [])


def test_the_field_map_makes_a_lead_of_the_answers(env):
    page1 = json.loads(json.dumps(LEADS1))
    page1["data"][0]["field_data"].append({"name": "firma", "values": ["Northwind Fixture AB"]})
    with responses.RequestsMock() as rsps:
        form_leads(rsps, page1)
        poll("facebook_leads", process=True)
    dana = next(lead for lead in leads() if lead.email == "dana.fixture@example.com")
    assert (dana.first_name, dana.last_name, dana.phone, dana.company_name, dana.topic) == \
        ("Dana", "Fixture", "+15555550123", "Northwind Fixture AB", "e-bike")
    assert dana.details["leadgen_id"] == LEAD_IDS[0] and dana.source == "facebook_leads"
    assert len(leads()) == 4 and {i.outcome for i in items("facebook_leads")} == {"created"}


def webhook(client) -> dict:
    request = fixture("leadgen_webhook_post")["request"]
    return client.post("/webhooks/facebook", content=request["raw_body"].encode(),
                       headers={"content-type": "application/json",
                                "x-hub-signature-256": request["headers"]["x-hub-signature-256"]}).json()


def test_a_lead_announced_by_the_webhook_gets_its_answers_from_the_form_poll(env):
    from crm_ingest.api.app import app

    # Given two leads the webhook landed, waiting in review for their answers
    assert webhook(TestClient(app)) == {"landed": 2, "received": 2}
    assert {(i.outcome, "field_data" in i.payload) for i in items("facebook_leads")} == {("review", False)}

    # When the form poll reads them (and two more)
    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        result = poll("facebook_leads", process=True)

    # Then each lead is one item and one lead with its answers, and none waits in review
    assert result.received == 4 and len(result.ids) == 4  # two landed, two given their answers
    landed = items("facebook_leads")
    assert [i.external_id for i in landed] == [f"leadgen:{n}" for n in LEAD_IDS]
    assert {(i.state, i.outcome) for i in landed} == {("done", "created")}
    assert landed[0].payload["page_id"] == PAGE and landed[0].payload["field_data"]  # the webhook's ids kept
    assert [lead.email for lead in leads()] == ["ana.placeholder@example.net", "dana.fixture@example.com",
                                                "lee.testperson@example.org", "sam.example@example.com"]


def test_a_lead_read_by_the_poll_first_is_not_landed_again_by_the_webhook(env):
    from crm_ingest.api.app import app

    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        poll("facebook_leads", process=True)
    assert webhook(TestClient(app)) == {"landed": 0, "received": 2}
    assert len(items("facebook_leads")) == 4 and len(leads()) == 4


def test_a_waiting_lead_is_read_by_its_id_and_one_the_graph_refuses_fails_with_its_error(env):
    from crm_ingest.api.app import app

    # Given a poll of another form (no leads), and two webhook leads waiting for their answers
    env(CONFIG.replace(f'form_ids = ["{FORM}"]', 'form_ids = ["777"]'))
    webhook(TestClient(app))
    refused = {"error": {"message": "Unsupported get request. Object with ID '1634008812345672' does not exist",
                         "type": "GraphMethodException", "code": 100, "error_subcode": 33,
                         "fbtrace_id": "AbCdTraceForMissingLead"}}  # the error envelope of the fixtures
    with responses.RequestsMock() as rsps:
        answer(rsps, "leads_form_leads_page1", url=f"{GRAPH}/777/leads", body={"data": []})
        answer(rsps, "lead_get_by_id", fields="created_time,id,ad_id,form_id,field_data")
        rsps.add(responses.GET, f"{GRAPH}/1634008812345672", json=refused, status=400)
        result = poll("facebook_leads", process=True)

    # Then the one the Graph API gave becomes its lead; the other fails with the Graph's words, and the poll goes on
    assert result.error is None and len(result.ids) == 1
    given, missing = items("facebook_leads")
    assert (given.state, given.outcome) == ("done", "created")
    assert [lead.email for lead in leads()] == ["dana.fixture@example.com"]
    assert missing.state == "failed" and missing.outcome is None
    assert "does not exist" in missing.last_error and "100/33" in missing.last_error
    assert "AbCdTraceForMissingLead" in missing.last_error

    # And the next poll asks for neither again
    with responses.RequestsMock() as rsps:
        answer(rsps, "leads_form_leads_page1", url=f"{GRAPH}/777/leads", body={"data": []})
        assert poll("facebook_leads").error is None


def test_a_lead_whose_read_by_id_failed_gets_its_answers_when_the_form_poll_reads_them(env):
    """It stayed failed for good: the form poll received its answers, landed nothing (the item
    exists) and moved on; only `ingest retry` and another poll made the lead."""
    from crm_ingest.api.app import app

    env(CONFIG.replace(f'form_ids = ["{FORM}"]', 'form_ids = ["777"]'))
    webhook(TestClient(app))
    refused = {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100,
                         "error_subcode": 33}}
    with responses.RequestsMock() as rsps:
        answer(rsps, "leads_form_leads_page1", url=f"{GRAPH}/777/leads", body={"data": []})
        answer(rsps, "lead_get_by_id", fields="created_time,id,ad_id,form_id,field_data")
        rsps.add(responses.GET, f"{GRAPH}/1634008812345672", json=refused, status=400)
        poll("facebook_leads", process=True)
    assert [i.state for i in items("facebook_leads")] == ["done", "failed"]

    # When the form's own poll reads the lead with its answers
    env(CONFIG)
    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        poll("facebook_leads", process=True)

    # Then the failed item is given them and becomes its lead, once
    failed_one = next(i for i in items("facebook_leads") if i.external_id == "leadgen:1634008812345672")
    assert (failed_one.state, failed_one.outcome) == ("done", "created")
    assert len(leads()) == 4


def test_a_forms_own_map_applies_to_that_form_only():
    import tomllib

    from crm_ingest.ingest.errors import ConfigError
    from crm_ingest.ingest.settings import from_toml

    config = from_toml(tomllib.loads(CONFIG)).sources["facebook_leads"].facebook
    assert config.field_map_for(FORM)["butik"] == "company"
    assert "butik" not in config.field_map_for("999") and config.field_map_for("999")["firma"] == "company"
    with pytest.raises(ConfigError, match="form_field_maps"):
        from_toml(tomllib.loads(CONFIG.replace('butik = "company"', 'butik = "budget"')))
    with pytest.raises(ConfigError, match="table of tables"):
        from_toml(tomllib.loads('[sources.facebook_leads.facebook]\nform_ids = ["1"]\nform_field_maps = { 1 = "x" }\n'))


# -- when the token expires (debug_token) ------------------------------------------------------------

CHECKED = CONFIG.replace("check_token_expiry = false", "check_token_expiry = true") + \
    '\n[alerts]\nwebhook_url = "http://alerts.invalid/hook"\n'
DEBUG = fixture("debug_token")["response"]["body"]


def no_new_leads(rsps) -> None:
    answer(rsps, "leads_form_leads_page1", body={"data": []})


def test_a_poll_records_when_the_token_expires_and_asks_again_only_a_day_later(env):
    env(CHECKED)
    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        answer(rsps, "debug_token", input_token=TOKEN, access_token=TOKEN)
        first = poll("facebook_leads")
    assert first.error is None and first.received == 4
    usage = health("facebook_leads").usage
    assert (usage["token_expires_at"], usage["token_data_access_expires_at"], usage["token_valid"]) == \
        ("2025-05-13T09:00:00+00:00", "2025-06-12T09:00:00+00:00", True)
    assert "x-business-use-case-usage" in usage  # the usage headers stay beside it

    # The next poll within the day does not ask again (no debug_token answer is registered) and keeps it
    with responses.RequestsMock() as rsps:
        no_new_leads(rsps)
        assert poll("facebook_leads").error is None
    assert health("facebook_leads").usage["token_expires_at"] == "2025-05-13T09:00:00+00:00"


def test_a_token_expiring_in_three_days_shows_as_expiring_and_alerts_once(env):
    from click.testing import CliRunner

    from crm_ingest.cli import main
    from crm_ingest.ops.alerts import check_alerts
    from crm_ingest.ops.metrics import render
    from crm_ingest.ops.snapshot import snapshot

    rt = env(CHECKED)
    soon = utcnow().replace(microsecond=0) + timedelta(days=3)
    with responses.RequestsMock() as rsps:
        no_new_leads(rsps)
        answer(rsps, "debug_token", body={"data": {**DEBUG["data"], "expires_at": int(soon.timestamp()),
                                                   "data_access_expires_at": 0}})
        assert poll("facebook_leads").error is None

    listed = {s["source"]: s for s in snapshot(rt)["sources"]}
    assert (listed["facebook_leads"]["credentials_expire_at"], listed["facebook_leads"]["credentials_expiring"]) \
        == (soon, True)
    assert (listed["facebook"]["credentials_expire_at"], listed["facebook"]["credentials_expiring"]) == (None, False)
    result = CliRunner().invoke(main, ["sources", "--json"])
    assert result.exit_code == 0, result.output
    shown = {s["source"]: s for s in json.loads(result.output)["sources"]}
    assert shown["facebook_leads"]["credentials_expiring"] is True
    assert datetime.fromisoformat(shown["facebook_leads"]["credentials_expire_at"]) == soon
    assert shown["facebook"]["credentials_expiring"] is False
    table = CliRunner().invoke(main, ["sources"], env={"COLUMNS": "300"})
    assert table.exit_code == 0 and f"credentials expire {soon:%Y-%m-%d %H:%M} UTC" in table.output
    gauges = {line.split(" ")[0]: float(line.split(" ")[1]) for line in render(snapshot(rt)).decode().splitlines()
              if line.startswith("crm_ingest_source_credentials_expiry_timestamp_seconds")}
    assert gauges == {'crm_ingest_source_credentials_expiry_timestamp_seconds{source="facebook_leads"}':
                      soon.timestamp()}  # only the source that knows it

    # The alert fires once, and resolves once a renewed token is seen
    sent: list[dict] = []
    post = lambda url, body, timeout: sent.append(body)  # noqa: E731
    check_alerts(rt, post=post), check_alerts(rt, post=post)
    assert [(a["alert"], a["status"], a["source"]) for a in sent] == \
        [("credentials_expiring", "firing", "facebook_leads")]
    with rt.sessions.begin() as session:
        row = session.get(SourceHealth, "facebook_leads")
        row.usage = {**row.usage, "token_expires_at": None}  # renewed: a token that never expires
    check_alerts(rt, post=post)
    assert [(a["alert"], a["status"]) for a in sent] == [("credentials_expiring", "firing"),
                                                        ("credentials_expiring", "resolved")]


def test_a_debug_token_error_leaves_the_poll_successful(env):
    env(CHECKED)
    refused = {"error": {"message": "(#100) You must provide an app access token, or a user access token that "
                                    "is an owner or developer of the app", "type": "OAuthException", "code": 100,
                         "fbtrace_id": "AbCdTraceForDebugToken"}}  # the error envelope of the fixtures
    with responses.RequestsMock() as rsps:
        form_leads(rsps)
        rsps.add(responses.GET, f"{GRAPH}/debug_token", json=refused, status=400)
        result = poll("facebook_leads")
    assert (result.error, result.received, result.credentials) == (None, 4, False)
    row = health("facebook_leads")
    assert row.failures == 0 and not row.credentials_failed and "token_expires_at" not in row.usage
