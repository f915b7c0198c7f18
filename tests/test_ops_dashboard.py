"""The /ops dashboard on the embedded database. In headless Chromium against the real app under
uvicorn: after logging in with the token it loads with no request beyond the app, its charts
carry the run's numbers from the rollups, and Retry re-queues a failed item (a screenshot is
kept in artifacts/). Through the test client: no data without a session, a wrong or expired
session refused, no state change without the CSRF value, hostile error text escaped."""
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from crm_ingest import runtime as runtime_module
from crm_ingest.api.app import app
from crm_ingest.api.dashboard import SESSION_COOKIE, SESSION_SECONDS, csrf_value, new_session
from crm_ingest.models import FAILED, PENDING, QueueDepthMinute, RawItem, utcnow
from crm_ingest.models.migrate import upgrade
from crm_ingest.ops.rollups import UNFINISHED, depth_history, roll_up
from tests.test_browser_form import CHROMIUM, CHROMIUM_ARGS, serve_api, stop_api
from tests.test_ops_metrics import known_run, write_jsonl

TOKEN = "dashboard-token-4711"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sessions():
    return runtime_module.runtime().sessions


@pytest.fixture
def client(cli, tmp_path, monkeypatch):
    """A migrated SQLite file in the `cli` fixture's folder, the API token set, a test client."""
    from crm_ingest.api import intake

    upgrade(f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("INGEST_API_TOKENS", TOKEN)
    monkeypatch.setattr(intake, "_counter", None)  # fresh rate-limit counters (logins too)
    runtime_module._for_pid.cache_clear()
    return TestClient(app)


def dashboard_run(cli, tmp_path) -> dict[str, int]:
    """`known_run` (two leads, one rejected, web's W-1 failed), plus a second failed item with a
    hostile error, one item sent to review and one still waiting; everything moved five minutes
    back (closed minutes, inside the last hour), then rolled up as the beat would."""
    known_run(cli, tmp_path)
    extra = [{"external_id": f"X-{n}", "fields": {"email": f"x{n}@kund.example", "first_name": f"X{n}"}}
             for n in range(3)]
    assert cli("land", "--source", "web", str(write_jsonl(tmp_path, extra, "extra.jsonl"))).exit_code == 0
    with sessions().begin() as session:
        ids = dict(session.execute(select(RawItem.external_id, RawItem.id)).all())
        session.execute(update(RawItem).where(RawItem.external_id == "X-0").values(
            state=FAILED, outcome=None, record_type=None, record_id=None, last_error=HOSTILE, attempts=5))
        session.execute(update(RawItem).where(RawItem.external_id == "X-1").values(
            outcome="review", record_type=None, record_id=None))
        session.execute(update(RawItem).where(RawItem.external_id == "X-2").values(
            state=PENDING, outcome=None, record_type=None, record_id=None, finished_at=None))
        for row in session.scalars(select(RawItem)):
            row.received_at -= timedelta(minutes=5)
            if row.finished_at:
                row.finished_at -= timedelta(minutes=5)
    with sessions().begin() as session:
        roll_up(session)
    return ids


def count(session, *where) -> int:
    return session.scalar(select(func.count()).select_from(RawItem).where(*where)) or 0


# -- the test client ------------------------------------------------------------------------------

def log_in(client, token=TOKEN):
    return client.post("/ops/login", data={"token": token}, follow_redirects=False)


def test_without_a_session_the_page_is_a_login_form_and_shows_no_data(client, cli, tmp_path):
    dashboard_run(cli, tmp_path)
    answer = client.get("/ops")
    assert answer.status_code == 401
    assert 'action="/ops/login"' in answer.text
    assert "alert" not in answer.text and "Throughput" not in answer.text and "web" not in answer.text
    assert client.get("/ops", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/ops", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_wrong_token_gets_no_session_and_a_forged_or_expired_one_is_refused(client, cli, monkeypatch):
    wrong = log_in(client, "not-the-token")
    assert wrong.status_code == 401 and "not valid" in wrong.text and "set-cookie" not in wrong.headers

    for value in ["garbage", f"{int(time.time()) + 3600}.nonce.{'0' * 64}",
                  new_session(TOKEN, now=time.time() - SESSION_SECONDS - 5),  # expired
                  new_session("some-other-token")]:
        client.cookies.set(SESSION_COOKIE, value, path="/ops")
        assert client.get("/ops").status_code == 401, value
        client.cookies.clear()

    # and a session ends when its token is no longer configured
    assert log_in(client).status_code == 303
    assert client.get("/ops").status_code == 200
    monkeypatch.setenv("INGEST_API_TOKENS", "a-new-token")
    runtime_module._for_pid.cache_clear()
    assert client.get("/ops").status_code == 401


def test_login_attempts_are_rate_limited_per_address(client):
    # Given someone guessing tokens from one address: ten attempts a minute are answered
    for _ in range(10):
        assert log_in(client, "guess").status_code == 401

    # Then the eleventh is refused before the token is even compared, the right one too
    refused = log_in(client)
    assert refused.status_code == 429 and "set-cookie" not in refused.headers
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert "Too many attempts" in refused.text


def test_a_login_posted_from_another_site_is_refused(client):
    """Login CSRF: a page elsewhere must not log a visitor in under the page's own token."""
    for elsewhere in ({"origin": "https://evil.example"}, {"referer": "https://evil.example/x"}, {"origin": "null"}):
        refused = client.post("/ops/login", data={"token": TOKEN}, headers=elsewhere, follow_redirects=False)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    own = client.post("/ops/login", data={"token": TOKEN}, headers={"origin": "http://testserver"},
                      follow_redirects=False)
    assert own.status_code == 303 and "set-cookie" in own.headers


def test_the_session_cookie_is_http_only_strict_and_holds_no_token(client):
    answer = log_in(client)
    assert answer.status_code == 303 and answer.headers["location"] == "/ops"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ops" in cookie
    page = client.get("/ops")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    for rule in ("default-src 'none'", "img-src 'self' data:", "form-action 'self'", "frame-ancestors 'none'"):
        assert rule in csp
    assert "script-src" not in csp and "<script" not in page.text

    # Secure is left out on plain http (the browser would drop the cookie); behind TLS it is set
    assert "Secure" not in cookie
    behind_tls = client.post("/ops/login", data={"token": TOKEN}, headers={"x-forwarded-proto": "https"},
                             follow_redirects=False)
    assert "Secure" in behind_tls.headers["set-cookie"]


def test_logging_out_ends_the_session_not_only_the_browsers_cookie(client):
    log_in(client)
    session = client.cookies[SESSION_COOKIE]
    out = client.post("/ops/logout", data={"csrf": csrf_value(TOKEN, session)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set(SESSION_COOKIE, session, path="/ops")  # the cookie copied before, replayed
    assert client.get("/ops").status_code == 401
    client.cookies.clear()
    log_in(client)  # a new login is a new session
    assert client.get("/ops").status_code == 200


def test_retry_needs_the_pages_csrf_value_with_a_cookie(client, cli, tmp_path):
    ids = dashboard_run(cli, tmp_path)
    log_in(client)
    session = client.cookies[SESSION_COOKIE]

    # Without the CSRF value, or with another session's, nothing changes
    for data in ({"item": ids["W-1"]}, {"item": ids["W-1"], "csrf": csrf_value(TOKEN, "another-session")}):
        answer = client.post("/ops/retry", data=data, follow_redirects=False)
        assert answer.status_code == 403, answer.text
    with sessions()() as s:
        assert count(s, RawItem.state == FAILED) == 2

    # With it, the item is re-queued (processed at once, embedded)
    answer = client.post("/ops/retry", data={"item": ids["W-1"], "csrf": csrf_value(TOKEN, session)},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ops?retried=1")
    with sessions()() as s:
        assert s.get(RawItem, ids["W-1"]).state == "done" and count(s, RawItem.state == FAILED) == 1

    # A bearer request needs no CSRF value (no browser sends the header on its own); none at all is refused
    client.cookies.clear()
    assert client.post("/ops/retry", data={"all": "1"}, follow_redirects=False).status_code == 401
    answer = client.post("/ops/retry", data={"all": "1"}, headers={"authorization": f"Bearer {TOKEN}"},
                         follow_redirects=False)
    assert answer.status_code == 303
    with sessions()() as s:
        assert count(s, RawItem.state == FAILED) == 0


def test_hostile_error_text_is_escaped(client, cli, tmp_path):
    dashboard_run(cli, tmp_path)
    page = client.get("/ops", headers={"authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert HOSTILE not in page.text and "<script>" not in page.text and "<img" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_each_roll_up_samples_the_unfinished_items(cli, tmp_path):
    dashboard_run(cli, tmp_path)  # rolled up once: X-2 waiting
    later = utcnow() + timedelta(minutes=3)
    with sessions().begin() as session:
        session.execute(update(RawItem).where(RawItem.external_id == "L-1").values(state=PENDING))
        roll_up(session, later)
        roll_up(session, later)  # the same minute again: replaced, not added
    with sessions()() as session:
        samples = session.execute(select(QueueDepthMinute.minute, QueueDepthMinute.depth)
                                  .where(QueueDepthMinute.queue == UNFINISHED)
                                  .order_by(QueueDepthMinute.minute)).all()
        points = depth_history(session, utcnow() - timedelta(minutes=10), 60, until=later + timedelta(minutes=1))
        quarter = depth_history(session, utcnow() - timedelta(minutes=10), 900, until=later + timedelta(minutes=1))
    assert [depth for _, depth in samples] == [1, 2]
    assert [p["depth"] for p in points if p["depth"] is not None] == [1, 2]
    assert None in [p["depth"] for p in points]  # a minute no roll-up saw is unknown, not empty
    assert max(p["depth"] or 0 for p in quarter) == 2


# -- the browser ----------------------------------------------------------------------------------

@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (scripts/ensure-chromium.sh)")
def test_the_dashboard_in_chromium_shows_the_run_and_retries_a_failed_item(cli, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.dovecot_server import free_port

    # Given a known run, rolled up, in the database the app serves
    upgrade(f"sqlite:///{tmp_path / 'x.db'}")
    ids = dashboard_run(cli, tmp_path)
    with sessions()() as session:
        landed, done, failed = count(session), count(session, RawItem.state == "done"), count(
            session, RawItem.state == FAILED)
        waiting = count(session, RawItem.state == PENDING)
    assert (landed, done, failed, waiting) == (7, 4, 2, 1)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "INGEST_CONFIG")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", INGEST_API_TOKENS=TOKEN, PYTHONUNBUFFERED="1")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    api = serve_api(env, tmp_path, port)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        requests, complaints = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda message: complaints.append(message.text) if message.type == "error" else None)

        # When a person opens /ops and logs in with the token
        assert page.goto(f"{origin}/ops").status == 401
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{origin}/ops")
        assert page.get_by_role("heading", name="crm-ingest operations").is_visible()

        # Then the page asked nothing of anyone but the app, and the CSP let its styles through
        assert requests and all(url.startswith(f"{origin}/") for url in requests), requests
        assert not [c for c in complaints if "Content Security Policy" in c], complaints
        [cookie] = context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (SESSION_COOKIE, True, "Strict")
        assert TOKEN not in cookie["value"]

        # and the charts carry the run's numbers, bar by bar, as in the database
        def bars(chart: str, series: str) -> int:
            return sum(int(n) for n in page.locator(f"#{chart} rect[data-series={series}]")
                       .evaluate_all("rects => rects.map(r => r.dataset.count)"))

        for chart in ("throughput-hour", "throughput-day"):
            assert (bars(chart, "landed"), bars(chart, "processed"), bars(chart, "failed")) == (landed, done, failed)
            assert page.locator(f"#{chart}-caption [data-total=landed]").inner_text() == f"landed {landed}"
        assert page.locator("#throughput-hour rect[data-series=landed] title").first.text_content().endswith(
            f"landed {landed}")  # one minute held them all
        depths = page.locator("#depth-hour rect[data-series=depth]").evaluate_all(
            "rects => rects.map(r => Number(r.dataset.count))")
        assert depths[-1] == waiting
        assert page.locator("#card-review b").inner_text() == "1"
        assert page.locator("#card-failed b").inner_text() == str(failed)
        assert page.locator("#sources tr[data-source=web]").is_visible()
        assert HOSTILE in page.locator(f"#failed-items tr[data-item='{ids['X-0']}'] pre").inner_text()

        # When Retry is clicked on W-1
        page.get_by_role("button", name=f"Retry item {ids['W-1']}").click()
        page.wait_for_url(f"{origin}/ops?retried=1#failed")

        # Then it is processed (embedded: at once), gone from the failed table, the other still there
        assert page.get_by_role("status").inner_text() == "Re-queued 1 item."
        assert page.locator(f"#failed-items tr[data-item='{ids['W-1']}']").count() == 0
        assert page.locator(f"#failed-items tr[data-item='{ids['X-0']}']").count() == 1
        with sessions()() as session:
            assert session.get(RawItem, ids["W-1"]).state == "done"
            assert count(session, RawItem.state == FAILED) == failed - 1
        assert all(url.startswith(f"{origin}/") for url in requests), requests

        page.evaluate("window.scrollTo(0, 0)")
        artifacts = Path(__file__).resolve().parents[1] / "artifacts"  # kept after the run (gitignored)
        artifacts.mkdir(exist_ok=True)
        assert page.screenshot(path=artifacts / "ops-dashboard.png", full_page=True).startswith(b"\x89PNG")
        browser.close()
    finally:
        playwright.stop()
        stop_api(api)
