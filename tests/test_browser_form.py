"""The public web form in a real browser: headless Chromium (Debian's, which
scripts/ensure-chromium.sh installs; playwright drives it) opens a company page that embeds the
form `ingest form-html` generates, posting to the real app under uvicorn on the embedded
database. A person lands on the thank-you page and becomes a lead with the form's campaign and
the page's UTM; a bot that fills the honeypot or sends too fast gets the same page and no lead."""
from __future__ import annotations

import html
import os
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import func, select

from crm_ingest.models import Activity, Campaign, IntakeCount, Lead, RawItem, make_engine, make_session_factory
from crm_ingest.models.migrate import upgrade
from tests.conftest import INGEST, run_cli
from tests.dovecot_server import free_port

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home, and the closed network
# here refuses it; playwright's own browser download is never used.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "form-secret-for-the-browser-test"
MIN_FILL_SECONDS = 3  # a person waits past it; a bot sending at once is well inside it
CONFIG = """
[forms.contact]
fields = {{ email = "email", name = "full_name", company = "company", message = "message" }}
required = ["email", "name"]
labels = {{ email = "E-post", name = "Namn", company = "Företag", message = "Meddelande" }}
campaign = "Vår 2026"
allowed_origins = ["{site}"]
thank_you_url = "{site}/tack"
language = "sv"
min_fill_seconds = {min_fill}
"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is not installed (scripts/ensure-chromium.sh installs it)")


class CompanySite:
    """The company's own website on another port: /kontakt embeds a form generated for each
    page view (its signed timestamp is about when the page was served), /tack thanks."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder, self.action = env, folder, ""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/kontakt":
                    try:
                        form = run_cli(site.env, "form-html", "contact", "--action", site.action,
                                       cwd=site.folder).stdout
                    except AssertionError as failed:  # shown to the test, which asserts a 200
                        self._send(500, f"<pre>{html.escape(str(failed))}</pre>")
                        return
                    self._send(200, f"<title>Kontakta oss</title><h1>Kontakta oss</h1>{form}")
                elif path == "/tack":
                    self._send(200, "<title>Tack</title><h1>Tack! Vi hör av oss.</h1>")
                else:
                    self._send(404, "<title>Finns inte</title>")

            def _send(self, status: int, body: str) -> None:
                page = f'<!doctype html><html lang="sv"><meta charset="utf-8">{body}</html>'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        return Handler

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for a serve_forever() that never began
            self.server.shutdown()
        self.server.server_close()


def serve_api(env: dict[str, str], folder: Path, port: int) -> subprocess.Popen:
    """`ingest serve` in its own process, once /health/live answers."""
    log = folder / "serve.log"
    proc = subprocess.Popen(INGEST + ["serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=folder,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
                if answer.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"ingest serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def stop_api(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-form")


@pytest.fixture(scope="module")
def database_url(folder) -> str:
    url = f"sqlite:///{folder / 'x.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def site(folder, database_url):
    """The company site, its forms posting to the app behind it (embedded: no broker, each
    submission processed before the answer)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "INGEST_CONFIG")}
    env.update(DATABASE_URL=database_url, INGEST_FORM_SECRET=SECRET, PYTHONUNBUFFERED="1")
    company = CompanySite(env, folder)
    try:
        (folder / "ingest.toml").write_text(CONFIG.format(site=company.origin, min_fill=MIN_FILL_SECONDS),
                                            encoding="utf-8")
        port = free_port()
        company.action = f"http://127.0.0.1:{port}/forms/contact"
        api = serve_api(env, folder, port)
        try:
            company.start()
            yield company
        finally:
            stop_api(api)
    finally:
        company.stop()


@pytest.fixture(scope="module")
def sessions(database_url):
    """For reading what the app stored."""
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="sv-SE")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_contact_page(page: Page, site: CompanySite, query: str = "") -> None:
    answer = page.goto(f"{site.origin}/kontakt{query}")
    assert answer is not None and answer.status == 200, page.inner_text("body")


def fill_in(page: Page, email: str, name: str, company: str, message: str) -> None:
    page.get_by_label("E-post").fill(email)
    page.get_by_label("Namn").fill(name)
    page.get_by_label("Företag").fill(company)
    page.get_by_label("Meddelande").fill(message)


def send(page: Page, site: CompanySite) -> None:
    page.get_by_role("button", name="Skicka").click()
    page.wait_for_url(f"{site.origin}/tack")


def stored(sessions) -> dict:
    """How many leads and landed items there are, and the intake counts by outcome."""
    with sessions() as session:
        return {"leads": session.scalar(select(func.count()).select_from(Lead)),
                "items": session.scalar(select(func.count()).select_from(RawItem)),
                "counts": {row.outcome: row.count for row in session.scalars(select(IntakeCount))}}


def test_a_person_sends_the_form_lands_on_the_thank_you_page_and_becomes_a_lead(site, sessions, page, tmp_path):
    # Given the contact page, opened from a newsletter's link
    open_contact_page(page, site, "?utm_source=newsletter&utm_medium=email&utm_campaign=spring")
    before = stored(sessions)

    # When a person fills it in, taking the time a person takes, and sends it
    fill_in(page, "asa.oberg@kund.example", "Åsa Öberg", "Bäckström & Söner AB",
            "Hej! Kan ni ringa mig om priser för vårens kurser? Tack på förhand.")
    page.wait_for_timeout((MIN_FILL_SECONDS + 1) * 1000)
    send(page, site)

    # Then the browser is on the company's thank-you page
    assert page.url == f"{site.origin}/tack"
    assert page.get_by_role("heading").inner_text() == "Tack! Vi hör av oss."
    artifacts = Path(__file__).resolve().parents[1] / "artifacts"  # kept after the run (gitignored)
    artifacts.mkdir(exist_ok=True)
    screenshot = page.screenshot(path=artifacts / "browser-form-thank-you.png", full_page=True)
    assert screenshot.startswith(b"\x89PNG")

    # and, processed before the answer, the lead is in the database: campaign, UTM, å ä ö intact
    with sessions() as session:
        [lead] = session.scalars(select(Lead).where(Lead.email == "asa.oberg@kund.example")).all()
        assert (lead.first_name, lead.last_name, lead.company_name) == ("Åsa", "Öberg", "Bäckström & Söner AB")
        assert lead.campaign_id is not None and session.get(Campaign, lead.campaign_id).name == "Vår 2026"
        assert lead.details["utm"] == {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring"}
        [activity] = session.scalars(select(Activity).where(Activity.regarding_type == "lead",
                                                            Activity.regarding_id == lead.id)).all()
        assert activity.body == "Hej! Kan ni ringa mig om priser för vårens kurser? Tack på förhand."
    after = stored(sessions)
    assert after["leads"] == before["leads"] + 1
    assert after["counts"].get("landed", 0) == before["counts"].get("landed", 0) + 1


@pytest.mark.parametrize("bot, why", [
    ("honeypot", "refused: honeypot"),  # fills every field it finds, then waits like a person
    ("hurry", "refused: sent too fast"),  # fills only what people see, and sends the fresh form at once
])
def test_a_bot_gets_the_same_thank_you_page_and_no_lead(site, sessions, page, bot, why):
    # Given the contact page, its form generated as the page is served
    open_contact_page(page, site)
    before = stored(sessions)

    # When a bot fills it in and sends it
    fill_in(page, f"{bot}@spam.example", "Bot Botsson", "Spam AB", "Köp billiga klockor")
    if bot == "honeypot":
        page.locator("input[name=website]").fill("http://spam.example", force=True)
        page.wait_for_timeout((MIN_FILL_SECONDS + 1) * 1000)
    send(page, site)

    # Then it sees what a person sees, and nothing is stored but a count of why
    assert page.url == f"{site.origin}/tack"
    after = stored(sessions)
    assert (after["leads"], after["items"]) == (before["leads"], before["items"])
    assert after["counts"].get(why, 0) == before["counts"].get(why, 0) + 1
    assert after["counts"].get("landed", 0) == before["counts"].get("landed", 0)
