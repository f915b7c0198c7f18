"""The Twitter/X source, driven through tweepy itself: vcrpy replays recorded API v2 answers at
the HTTP layer (tests/fixtures/twitter: two real recordings, and synthetic ones for what those
cannot show, see its README). Nothing of tweepy's or ours is mocked.

Synthetic cassettes match on the whole query, and vcrpy plays each answer once: a request the
cassette does not expect, or one asked for twice, fails the test."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import vcr
import yaml
from sqlalchemy import func, select

from crm_ingest import runtime as runtime_module
from crm_ingest.connectors import health
from crm_ingest.connectors.polling import poll_once
from crm_ingest.connectors.twitter import TwitterSource
from crm_ingest.ingest.endpoints import TwitterConfig
from crm_ingest.ingest.errors import CredentialsFailed, RetriableError
from crm_ingest.ingest.plan import plan_item
from crm_ingest.ingest.settings import SourceConfig
from crm_ingest.models import Activity, Case, RawItem, SourceHealth, utcnow
from crm_ingest.models.landing import load_checkpoint
from crm_ingest.models.migrate import upgrade

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "twitter"
BRAND = "1498374021658763264"  # @acme_help in the synthetic cassettes
TOKEN = "AAAAAAAAAAAAAAAAAAAAAfake-bearer-token-for-tests"
MENTIONS = f'[sources.twitter.twitter]\nmentions_of = "{BRAND}"\n'
SEARCH = '''[sources.x_search]
kind = "post"
record_type = "auto"
case_origin = "twitter"
lead_source = "social"

[sources.x_search.twitter]
search = "acme -is:retweet"
max_results = 10
'''


def recorded_params_sent(r1, r2):
    """The recorded request's query parameters were all sent, with the same values. The real
    recordings asked for no fields (`?query=Tweepy`, or nothing); ours asks for more, and the
    answer they hold is what the API gives to either, less the fields."""
    assert set(r2.query) <= set(r1.query), f"{r2.query} not in {r1.query}"


# The real recordings hold gzip bodies recorded under urllib3 1.x, which urllib3 2 replays still
# compressed (vcrpy issue 719): vcrpy's own option unzips them as they load.
REAL = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "path", "recorded_params_sent"],
               decode_compressed_response=True)
REAL.register_matcher("recorded_params_sent", recorded_params_sent)
SYNTHETIC = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "path", "query"])


def recorded(name: str) -> list[dict]:
    """The JSON bodies a cassette answers with (gunzipped where it was recorded gzipped)."""
    cassette = yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))
    bodies = []
    for interaction in cassette["interactions"]:
        body = interaction["response"]["body"]["string"]
        bodies.append(json.loads(gzip.decompress(body) if isinstance(body, bytes) else body))
    return bodies


def moved_to_now(name: str, folder: Path) -> tuple[Path, timedelta]:
    """A copy of a synthetic cassette whose rate-limit reset times moved with the clock, as if
    its first answer came now: a recorded reset time is past by the time the test runs, and a
    past reset is no rate limit. Returns the copy and how far the times moved."""
    cassette = yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))
    first = parsedate_to_datetime(cassette["interactions"][0]["response"]["headers"]["date"][0])
    shift = timedelta(seconds=int((utcnow() - first).total_seconds()))
    for interaction in cassette["interactions"]:
        headers = interaction["response"]["headers"]
        if "x-rate-limit-reset" in headers:
            headers["x-rate-limit-reset"] = [str(int(headers["x-rate-limit-reset"][0]) + int(shift.total_seconds()))]
    path = folder / name
    path.write_text(yaml.safe_dump(cassette, allow_unicode=True), encoding="utf-8")
    return path, shift


def reset_of(name: str, index: int) -> datetime:
    headers = yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))["interactions"][index]["response"]["headers"]
    return datetime.fromtimestamp(int(headers["x-rate-limit-reset"][0]), tz=timezone.utc)


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """The embedded runtime (SQLite, no broker) in a fresh folder; call it with ingest.toml's text."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    upgrade(url)

    def start(config: str):
        (tmp_path / "ingest.toml").write_text(config, encoding="utf-8")
        runtime_module._for_pid.cache_clear()
        return runtime_module.runtime()

    yield start
    runtime_module.runtime().engine.dispose()
    runtime_module._for_pid.cache_clear()


def landed_ids(rt, source: str = "twitter") -> list[str]:
    with rt.sessions() as session:
        return sorted(session.scalars(select(RawItem.external_id).where(RawItem.source == source)))


def checkpoint(rt, source: str = "twitter") -> dict | None:
    with rt.sessions() as session:
        return load_checkpoint(session, source)


# --- the real recordings


@pytest.mark.parametrize("cassette, config", [
    ("test_client_get_users_mentions.yaml", TwitterConfig(mentions_of="783214", max_pages=1)),
    ("test_client_search_recent_tweets.yaml", TwitterConfig(search="Tweepy", max_pages=1)),
])
def test_real_answers_become_posts_keyed_by_their_ids(cassette, config):
    # Given a real recorded page of ten posts (no author fields: the recording asked for none)
    body = recorded(cassette)[0]
    # When it is read twice
    runs = []
    for _ in range(2):
        with REAL.use_cassette(str(FIXTURES / cassette)) as played:
            source = TwitterSource(config, "twitter", TOKEN)
            runs.append(list(source.fetch(None)))
            assert played.all_played
    first, second = runs
    # Then every post is an item keyed by its post id, the same each time, oldest first
    ids = [post["id"] for post in body["data"]]
    assert [item.external_id for item in first] == sorted(ids) == [item.external_id for item in second]
    assert {item.kind for item in first} == {"post"}
    texts = {post["id"]: post["text"] for post in body["data"]}
    assert all(item.payload["text"] == texts[item.external_id] for item in first)
    # And only the newest carries the place: part way through a walk, at the recorded next page
    assert [item.cursor for item in first[:-1]] == [None] * 9
    assert first[-1].cursor == {"since_id": None, "newest_id": body["meta"]["newest_id"],
                                "pagination_token": body["meta"]["next_token"]}
    # And the rate limit the answer reported is kept for `ingest sources`
    assert source.usage["limit"] == 450 and source.usage["remaining"] == 448
    # And a post with no author to name is still an item; the plan says why it makes no record
    assert first[0].payload["handle"] is None
    plan = plan_item(1, "post", first[0].payload, SourceConfig("twitter", kind="post", record_type="auto"))
    assert (plan.outcome, plan.reason) == ("rejected", "handle: post without an author handle")


# --- checkpoints across polls


def test_two_pages_land_once_and_the_next_poll_asks_only_for_newer_posts(embedded):
    rt = embedded(MENTIONS)
    first_page, second_page, _ = recorded("synthetic_mentions_two_pages.yaml")
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_two_pages.yaml")) as played:
        # When the source is polled: two pages, newest first
        result = poll_once(rt.sessions, rt.settings, "twitter")
        assert (result.received, len(result.ids), result.error) == (5, 5, None)
        assert played.play_count == 2
        # Then the walk is done and the checkpoint is its newest post
        assert checkpoint(rt) == {"since_id": first_page["meta"]["newest_id"]}
        # When it is polled again: one request with since_id = that post, and nothing new
        again = poll_once(rt.sessions, rt.settings, "twitter")
        assert (again.received, again.ids) == (0, [])
        assert played.all_played
    posts = [post["id"] for page in (first_page, second_page) for post in page["data"]]
    assert landed_ids(rt) == sorted(posts)
    assert checkpoint(rt) == {"since_id": first_page["meta"]["newest_id"]}
    # And the rate limit X reported last is in the source's health
    with rt.sessions() as session:
        assert session.get(SourceHealth, "twitter").usage["remaining"] == 447


def test_payloads_carry_author_conversation_and_markers(embedded):
    rt = embedded(MENTIONS)
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_two_pages.yaml")):
        poll_once(rt.sessions, rt.settings, "twitter")
    with rt.sessions() as session:
        payloads = {row.payload["handle"]: row.payload for row in session.scalars(select(RawItem))}
    case_post = payloads["mia_lindqvist"]
    assert case_post["author_name"] == "Mia Lindqvist" and case_post["lang"] == "en"
    assert case_post["conversation_id"] == case_post["post_id"] and case_post["in_reply_to_post_id"] is None
    assert case_post["url"] == f"https://x.com/mia_lindqvist/status/{case_post['post_id']}"
    assert case_post["created_at"] == "2026-12-05T08:03:00.000Z"
    retweet, quote = payloads["pelle_k"], payloads["sara_ek"]
    assert retweet["retweet"] and retweet["referenced"][0]["type"] == "retweeted"
    assert retweet["ignore"] == "retweet of our own post"
    assert quote["quote"] and not quote["retweet"] and "ignore" not in quote
    # a deactivated author is missing from includes: the post lands, named by its author id
    orphan = payloads[None]
    assert orphan["author_id"] == "1719907784510214144"
    assert orphan["url"] == f"https://x.com/i/web/status/{orphan['post_id']}"


def test_own_retweets_can_be_let_through():
    config = TwitterConfig(mentions_of=BRAND, include_own_retweets=True)
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_two_pages.yaml"), allow_playback_repeats=True):
        items = list(TwitterSource(config, "twitter", TOKEN).fetch(None))
    retweet = next(item.payload for item in items if item.payload["retweet"])
    assert "ignore" not in retweet  # the source's rules decide (the built-in one ignores shares)


def test_an_empty_last_page_of_a_backlog_does_not_hold_the_source_back():
    # Given a walk left part way by the last poll, whose next page turns out empty
    left = {"since_id": "2129100000000000000", "newest_id": "2129206655185846277",
            "pagination_token": "7140dibdnow9c7btw4809tkmp4e0q8e7ts0y5jkf1xvxa"}
    _, fresh = recorded("synthetic_mentions_empty_last_page.yaml")
    config = TwitterConfig(mentions_of=BRAND, max_pages=1)
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_empty_last_page.yaml")) as played:
        items = list(TwitterSource(config, "twitter", TOKEN).fetch(left))
        assert played.all_played
    # Then the same poll goes on from the walk's newest post, and its newest post carries the
    # place (an empty page has no post to carry it, and is not counted as one of max_pages)
    assert [item.external_id for item in items] == [fresh["data"][0]["id"]]
    assert items[-1].cursor == {"since_id": fresh["meta"]["newest_id"]}


def test_a_walk_cut_by_a_429_goes_on_at_its_next_page(embedded, tmp_path):
    rt = embedded(MENTIONS)
    newer, _, older, _ = recorded("synthetic_mentions_rate_limited.yaml")
    path, shift = moved_to_now("synthetic_mentions_rate_limited.yaml", tmp_path)
    with SYNTHETIC.use_cassette(str(path)) as played:
        # Given page 1 read, and a 429 for page 2
        cut = poll_once(rt.sessions, rt.settings, "twitter")
        # Then page 1 is landed with the place after it, and the poll waits for the reset
        assert (cut.received, len(cut.ids)) == (2, 2)
        assert cut.retry_at == reset_of("synthetic_mentions_rate_limited.yaml", 1) + shift
        assert checkpoint(rt) == {"since_id": None, "newest_id": newer["meta"]["newest_id"],
                                  "pagination_token": newer["meta"]["next_token"]}
        # When polled again (after the reset): page 2, not page 1; with the walk done and pages
        # to spare, the poll then asks for what is newer than the walk's newest post (nothing)
        resumed = poll_once(rt.sessions, rt.settings, "twitter")
        assert (resumed.received, len(resumed.ids), resumed.retry_at) == (2, 2, None)
        assert played.all_played
        assert checkpoint(rt) == {"since_id": newer["meta"]["newest_id"]}
    # Nothing skipped, nothing twice
    every = sorted(post["id"] for page in (newer, older) for post in page["data"])
    assert landed_ids(rt) == every
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawItem)) == 4


def test_a_search_stops_before_asking_past_its_rate_limit(embedded, tmp_path):
    rt = embedded(SEARCH)
    first, second, _ = recorded("synthetic_search_paced.yaml")
    path, shift = moved_to_now("synthetic_search_paced.yaml", tmp_path)
    with SYNTHETIC.use_cassette(str(path)) as played:
        # Given a first page that used the window's last request, with a next page to read
        paced = poll_once(rt.sessions, rt.settings, "x_search")
        # Then the poll lands it and stops there, without asking for a 429
        assert played.play_count == 1
        assert (paced.received, len(paced.ids)) == (2, 2)
        assert paced.retry_at == reset_of("synthetic_search_paced.yaml", 0) + shift
        # When polled after the reset: the next page, by search's next_token (then what is newer)
        rest = poll_once(rt.sessions, rt.settings, "x_search")
        assert (rest.received, len(rest.ids)) == (1, 1)
        assert played.all_played
    assert checkpoint(rt, "x_search") == {"since_id": first["meta"]["newest_id"]}
    assert landed_ids(rt, "x_search") == sorted(p["id"] for p in first["data"] + second["data"])


# --- rate limits and credentials, as the poll task sees them


def test_a_429_reschedules_the_poll_at_the_reset_time(embedded, tmp_path):
    from crm_ingest.workers.tasks import poll_source

    rt = embedded(MENTIONS)
    path, shift = moved_to_now("synthetic_mentions_429.yaml", tmp_path)
    reset = reset_of("synthetic_mentions_429.yaml", 0) + shift
    with SYNTHETIC.use_cassette(str(path)) as played:
        # When beat's poll meets a 429
        answer = poll_source.run("twitter")
        assert played.all_played
        # Then the poll is due again at the reset time X gave, and not before
        assert answer["rate_limited_until"] == reset.isoformat()
        with rt.sessions() as session:
            row = session.get(SourceHealth, "twitter")
            assert row.resume_at == reset and not row.credentials_failed
            assert health.next_poll(row, 60) == reset
        # And the poll was sent to the broker (embedded: Celery's in-memory one) due at that time
        assert reset.isoformat() in rescheduled_polls()
        # And the polls beat schedules meanwhile are skipped without a request
        skipped = poll_source.run("twitter")
        assert skipped["skipped"] == f"next try after {reset.isoformat()}"


def rescheduled_polls() -> list[str]:
    """The due times (eta) of the polls waiting in the `poll` queue, taken off it."""
    from crm_ingest.workers.app import app

    due = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("poll")
        try:
            while True:
                message = queue.get(timeout=0.2)
                if message.headers.get("task") == "crm_ingest.poll_source":
                    due.append(message.headers.get("eta"))
                message.ack()
        except queue.Empty:
            pass
        finally:
            queue.close()
    return due


@pytest.mark.parametrize("cassette, says", [
    ("synthetic_mentions_401.yaml", "401 Unauthorized"),
    ("synthetic_mentions_403.yaml", "403 Client Forbidden"),
])
def test_refused_credentials_mark_the_source_unhealthy(embedded, cassette, says):
    from crm_ingest.workers.tasks import poll_source

    rt = embedded(MENTIONS)
    with SYNTHETIC.use_cassette(str(FIXTURES / cassette)) as played:
        answer = poll_source.run("twitter")
        assert played.all_played
        # Then the error says what is wrong and what to do
        assert answer["credentials"] is True
        assert says in answer["error"] and "TWITTER_BEARER_TOKEN" in answer["error"]
        assert "ingest poll twitter" in answer["error"]
        with rt.sessions() as session:
            row = session.get(SourceHealth, "twitter")
            assert row.credentials_failed and row.failures == 1
            assert health.next_poll(row, 60) == row.last_error_at + health.MAX_BACKOFF
        # And the next scheduled poll is skipped (no request: the cassette has no second answer)
        assert "skipped" in poll_source.run("twitter")


def test_a_missing_token_is_a_credentials_error_before_any_request(embedded, monkeypatch):
    monkeypatch.delenv("TWITTER_BEARER_TOKEN")
    rt = embedded(MENTIONS)
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_401.yaml")) as played:
        result = poll_once(rt.sessions, rt.settings, "twitter")
        assert played.play_count == 0
    assert result.credentials and "set the environment variable TWITTER_BEARER_TOKEN" in result.error


# --- what posts become, end to end through `ingest poll`


def test_ingest_poll_lands_and_classifies_posts(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    (tmp_path / "ingest.toml").write_text(MENTIONS, encoding="utf-8")
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_two_pages.yaml")):
        result = cli("poll", "twitter", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert (data["received"], data["landed"]) == (5, 5)
        assert sum(data["outcomes"].values()) == 5 and "pending" not in data["outcomes"]
        assert json.loads(cli("poll", "twitter", "--json").output)["received"] == 0
    sessions = runtime_module.runtime().sessions
    with sessions() as session:
        outcomes = {row.payload["handle"]: (row.outcome, row.record_type, row.outcome_reason)
                    for row in session.scalars(select(RawItem))}
    assert outcomes["pelle_k"] == ("ignored", None, "retweet of our own post")
    assert outcomes["mia_lindqvist"][:2] == ("created", "case")
    assert outcomes["oskarberg_nw"][:2] == ("created", "lead")


def test_poll_from_start_forgets_a_refused_cursor_and_lands_nothing_twice(cli, tmp_path, monkeypatch):
    # Given a source polled once, whose saved since_id the API would now refuse
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    (tmp_path / "ingest.toml").write_text(MENTIONS, encoding="utf-8")
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_two_pages.yaml"), allow_playback_repeats=True):
        assert cli("poll", "twitter", "--json").exit_code == 0
        saved = checkpoint(runtime_module.runtime())

        # When it is polled --from-start
        result = cli("poll", "twitter", "--from-start", "--json")

    # Then the API is read again without the cursor, the posts are recognised, none lands twice
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert saved and data["checkpoint_forgotten"] == saved
    assert (data["received"], data["landed"], data["already_landed"]) == (5, 0, 5)
    assert len(landed_ids(runtime_module.runtime())) == 5
    assert checkpoint(runtime_module.runtime()) == saved  # the newest post seen is the cursor again


def test_a_reply_in_a_conversation_with_a_case_is_appended_to_it(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    (tmp_path / "ingest.toml").write_text(MENTIONS, encoding="utf-8")
    first, replies = recorded("synthetic_mentions_conversation.yaml")
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_conversation.yaml")) as played:
        # Given a post the classifier makes a case of
        assert cli("poll", "twitter", "--json").exit_code == 0
        # When the author asks for news, and someone else answers our reply in the same conversation
        assert cli("poll", "twitter", "--json").exit_code == 0
        assert played.all_played
    root = first["data"][0]["id"]
    sessions = runtime_module.runtime().sessions
    with sessions() as session:
        rows = {row.external_id: row for row in session.scalars(select(RawItem))}
        assert (rows[root].outcome, rows[root].record_type) == ("created", "case")
        case_id = rows[root].record_id
        # Then both are appended to that case: one by the post it answers, one by its conversation
        for reply in replies["data"]:
            row = rows[reply["id"]]
            assert (row.outcome, row.record_id, row.outcome_reason) == ("appended", case_id, "reply to an existing case")
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        threaded = session.scalars(select(Activity.message_id).where(Activity.regarding_type == "case",
                                                                     Activity.regarding_id == case_id))
        assert sorted(threaded) == sorted(f"twitter:post:{i}" for i in [root] + [r["id"] for r in replies["data"]])


# --- the plan of a post


def test_a_post_plan_threads_by_post_ids():
    source = SourceConfig("twitter", kind="post", record_type="case", case_origin="twitter")
    plan = plan_item(7, "post", {"post_id": "30", "network": "twitter", "handle": "mia", "text": "any news?",
                                 "in_reply_to_post_id": "20", "conversation_id": "10"}, source)
    assert plan.activity["message_id"] == "twitter:post:30"
    assert plan.thread_refs == ["twitter:post:20", "twitter:post:10"]
    root = plan_item(8, "post", {"post_id": "10", "network": "twitter", "handle": "mia", "text": "broken",
                                 "conversation_id": "10"}, source)
    assert root.thread_refs == []
    orphan = plan_item(9, "post", {"post_id": "11", "network": "twitter", "author_id": "42", "handle": None,
                                   "text": "down?"}, source)
    assert orphan.person.keys == [("handle", "twitter:id:42")]
    ignored = plan_item(10, "post", {"post_id": "12", "handle": "pelle", "text": "RT", "ignore": "retweet of our own post"},
                        source)
    assert (ignored.outcome, ignored.reason) == ("ignored", "retweet of our own post")


def test_a_long_post_lands_whole_from_its_note_tweet():
    config = TwitterConfig(mentions_of=BRAND)
    with SYNTHETIC.use_cassette(str(FIXTURES / "synthetic_mentions_two_pages.yaml"), allow_playback_repeats=True):
        items = list(TwitterSource(config, "twitter", TOKEN).fetch(None))
    status = next(i for i in items if i.external_id == "2129130151080887827")
    assert len(status.payload["text"]) > 280 and status.payload["text"].endswith("the number in our account.")


# --- bad moments of a real API (answers replayed at the HTTP layer with `responses`)

def _mentions_url():
    import re

    return re.compile(r"https://api\.(twitter|x)\.com/2/users/\d+/mentions.*")


def _page(ids: list[str], next_token: str | None = None) -> dict:
    meta = {"result_count": len(ids), "newest_id": ids[0], "oldest_id": ids[-1]} if ids else {"result_count": 0}
    if next_token:
        meta["next_token"] = next_token
    return {"data": [{"id": i, "text": f"@brand post {i}", "author_id": "42", "created_at": "2026-12-07T10:00:00.000Z",
                      "conversation_id": i} for i in ids],
            "includes": {"users": [{"id": "42", "username": "kund", "name": "Kund"}]}, "meta": meta}


def test_a_next_page_token_given_twice_ends_the_walk_instead_of_reading_it_for_ever():
    """Every poll read the same page again ('LOOP') and never asked for what came since."""
    import responses

    config = TwitterConfig(mentions_of=BRAND, max_pages=5, max_results=5)
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, _mentions_url(), json=_page(["105", "104"], next_token="LOOP"))
        mock.add(responses.GET, _mentions_url(), json=_page(["103", "102"], next_token="LOOP"))
        source = TwitterSource(config, "twitter", TOKEN)
        items, error = [], None
        try:
            for item in source.fetch(None):
                items.append(item)
        except RetriableError as exc:
            error = exc
    assert [item.external_id for item in items] == ["102", "103", "104", "105"]
    assert items[-1].cursor == {"since_id": "105"}  # the next poll asks for what came since
    assert "next-page token 'LOOP' twice" in str(error)


def test_an_answer_saying_the_account_is_gone_is_a_failure_naming_it():
    import responses

    gone = {"errors": [{"value": BRAND, "detail": f"Could not find user with id: [{BRAND}].", "title": "Not Found Error",
                        "resource_type": "user", "parameter": "id",
                        "type": "https://api.twitter.com/2/problems/resource-not-found"}]}
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, _mentions_url(), json=gone)
        with pytest.raises(CredentialsFailed, match="Could not find user.*check mentions_of"):
            list(TwitterSource(TwitterConfig(mentions_of=BRAND), "twitter", TOKEN).fetch(None))


def test_a_since_id_x_no_longer_takes_is_dropped_and_the_newest_posts_read_again():
    """It failed every poll ('One or more parameters to your request was invalid') for ever."""
    import responses

    too_old = {"errors": [{"parameters": {"since_id": ["105"]},
                           "message": "Invalid 'since_id':'105'. 'since_id' must be a tweet id created after ..."}],
               "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
               "type": "https://api.twitter.com/2/problems/invalid-request"}
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, _mentions_url(), json=too_old, status=400)
        mock.add(responses.GET, _mentions_url(), json=_page(["900"]))
        items = list(TwitterSource(TwitterConfig(mentions_of=BRAND), "twitter", TOKEN).fetch({"since_id": "105"}))
        assert "since_id" not in mock.calls[1].request.url
    assert [item.external_id for item in items] == ["900"] and items[-1].cursor == {"since_id": "900"}
