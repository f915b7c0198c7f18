"""The contract every connector keeps, one suite run against each (issue 8): external ids are
stable, cursors never go back, a re-run from the checkpoint lands nothing it landed before, and
trouble comes out as one of our errors, naming the source.

Each connector gets a small harness: a connector with data available, newer data where the
source can get it, and ways to make it fail. The sources behind them are the ones the other
tests use: files in a temporary folder, a real dovecot for IMAP, X replayed by vcrpy (a
synthetic cassette, see tests/fixtures/twitter) and the Graph API answered through `responses`
by test_facebook's FakeFeed. Landing goes to the embedded SQLite database.

Two kinds of connector keep the contract in two ways. Those that resume (IMAP, X, Facebook,
list files) give their items cursors and a fetch from the checkpoint yields only what is newer.
JSON Lines and mail files read the whole file each time, with no cursor (the CLI lands them with
`checkpoint=False`): for them the contract is stable ids, and landing again adds nothing.

Known breaches are marked `xfail(strict=True)` with the reason: fixing one makes its test pass,
and the strict mark then fails until it is removed.
"""
from __future__ import annotations

import base64
import json
import math
import shutil
import tempfile
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, ContextManager

import pytest
import requests
import responses
import yaml
from sqlalchemy import select

from crm_ingest.connectors.base import Connector, Landed, NewItem, run_connector
from crm_ingest.connectors.facebook import FacebookSource
from crm_ingest.connectors.imap import ImapMailbox
from crm_ingest.connectors.jsonl import JsonLines
from crm_ingest.connectors.listfile import ListFile
from crm_ingest.connectors.mailfiles import MailFiles
from crm_ingest.connectors.twitter import TwitterSource
from crm_ingest.ingest.endpoints import FacebookConfig, ImapConfig, TwitterConfig
from crm_ingest.ingest.errors import IngestError
from crm_ingest.models import RawItem
from crm_ingest.models.landing import load_checkpoint
from tests.connectors.test_facebook import FEED, GRAPH, PAGE, FakeFeed
from tests.connectors.test_facebook import FIXTURES as FACEBOOK_FIXTURES
from tests.connectors.test_facebook import TOKEN as PAGE_TOKEN
from tests.connectors.test_twitter import BRAND, SYNTHETIC
from tests.connectors.test_twitter import FIXTURES as TWITTER_FIXTURES
from tests.connectors.test_twitter import TOKEN as BEARER_TOKEN
from tests.dovecot_server import PASSWORD, Dovecot, free_port


# -- harnesses -----------------------------------------------------------------------------------

class Harness:
    """One connector under the contract, with data available in `folder`."""

    resumes = True  # fetch(since) goes on after the cursor; else it reads everything each time
    newer: str | None = None  # why newer data cannot be added here; None when add_newer() can
    failures: tuple[str, ...] = ()

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        self.folder = folder

    @property
    def source(self) -> str:
        return self.connector().source

    def connector(self) -> Connector:
        """A new connector, as a new poll or a new process would build it."""
        raise NotImplementedError

    def replay(self) -> ContextManager:
        """The recorded or faked server the connector talks to, for one stretch of fetches."""
        return nullcontext()

    def add_newer(self) -> list[str]:
        """Newer data at the source; the external ids it will be landed under."""
        raise NotImplementedError

    def order(self, cursor: dict[str, Any]) -> Any:
        """The connector's own order of its cursors, as a comparable key."""
        raise NotImplementedError

    def named(self) -> str:
        """What an error must name: the source, or for a file given on the command line, the file."""
        return self.source

    def provoke(self, failure: str) -> None:
        """Build and fetch so that `failure` happens; must raise."""
        raise NotImplementedError


def mail(n: int, message_id: bool = True) -> bytes:
    headers = [f"From: Eva Lind <eva{n}@kund.example>", "To: support@acme.example", f"Subject: Cannot log in {n}",
               "Date: Mon, 30 Nov 2026 09:00:00 +0100", "MIME-Version: 1.0",
               "Content-Type: text/plain; charset=utf-8"]
    if message_id:
        headers.append(f"Message-ID: <m{n}@kund.example>")
    return ("\r\n".join(headers) + f"\r\n\r\nSince yesterday I cannot log in ({n}).\r\n").encode()


class JsonLinesHarness(Harness):
    """A JSON Lines file: ids from the payload, a hash of it, or the line of a line that is no JSON."""

    resumes = False
    failures = ("missing file",)

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(folder, request)
        self.path = folder / "forms.jsonl"
        lines = [{"id": "F-1", "email": "a@kund.example"}, {"email": "no-id@kund.example"}, "{not json",
                 {"external_id": "F-3", "email": "c@kund.example"}]
        self.path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))

    def connector(self) -> JsonLines:
        return JsonLines(self.path, "web", "form")

    def add_newer(self) -> list[str]:
        with self.path.open("a") as f:
            f.write(json.dumps({"id": "F-4", "email": "d@kund.example"}) + "\n")
        return ["F-4"]

    def named(self) -> str:
        return self.path.name

    def provoke(self, failure: str) -> None:
        self.path = self.folder / "gone.jsonl"
        list(self.connector().fetch(None))


class ListFileHarness(Harness):
    """A CSV list: ids and cursors are (file hash, data row), so a re-read of the same file resumes.
    A grown file is another file (other ids, read from the top): no newer data for the same one."""

    newer = "a list file is imported whole; a grown file is another file (its ids carry the file's hash)"
    failures = ("missing file", "removed before fetch", "legacy .xls")

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(folder, request)
        self.path = folder / "list.csv"
        self.path.write_text("Name;E-post;Företag\nAna Berg;ana@kund.example;Kund AB\n;;\n"
                             "Bo Ek;bo@kund.example;Ek HB\nCia Lund;cia@kund.example;\n", encoding="utf-8")

    def connector(self) -> ListFile:
        return ListFile(self.path, "purchased_list")

    def order(self, cursor: dict[str, Any]) -> Any:
        return cursor["row"]

    def named(self) -> str:
        return self.path.name

    def provoke(self, failure: str) -> None:
        if failure == "missing file":
            self.path = self.folder / "gone.csv"
            self.connector()
        elif failure == "removed before fetch":
            connector = self.connector()
            self.path.unlink()
            list(connector.fetch(None))
        else:
            self.path = self.folder / "list.xls"
            self.path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
            list(self.connector().fetch(None))


class MailFilesHarness(Harness):
    """A folder of .eml files, one without a Message-ID (its id is the hash of its bytes)."""

    resumes = False
    failures = ("missing path", "removed before fetch")

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(folder, request)
        self.path = folder / "mail"
        self.path.mkdir()
        for n in (1, 2, 3):
            (self.path / f"m{n}.eml").write_bytes(mail(n, message_id=n != 2))

    def connector(self) -> MailFiles:
        return MailFiles(self.path, "mail")

    def add_newer(self) -> list[str]:
        (self.path / "m4.eml").write_bytes(mail(4))
        return ["<m4@kund.example>"]

    def named(self) -> str:
        return self.path.name

    def provoke(self, failure: str) -> None:
        if failure == "missing path":
            self.path = self.folder / "gone"
            list(self.connector().fetch(None))
        else:  # an mbox moved away between the command's check and the read
            self.path = self.folder / "mail.mbox"
            self.path.write_bytes(b"From eva@kund.example Mon Nov 30 09:00:00 2026\n" + mail(1) + b"\n")
            connector = self.connector()
            self.path.unlink()
            list(connector.fetch(None))


class ImapHarness(Harness):
    """A folder of its own on the module's dovecot, three messages in it (one without a Message-ID)."""

    failures = ("missing password", "closed port", "missing folder", "wrong password")  # a refused login last

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(folder, request)
        self.server: Dovecot = request.getfixturevalue("imap_server")
        self.config = ImapConfig(host="127.0.0.1", port=self.server.port, tls="none", user="support",
                                 password_env="CONTRACT_IMAP_PASSWORD", folder=f"contract-{uuid.uuid4().hex[:8]}",
                                 timeout_seconds=5)
        conn = self.server.client()
        conn.create(self.config.folder)
        conn.logout()
        self.deliver(mail(1), mail(2, message_id=False), mail(3))

    def deliver(self, *raws: bytes) -> None:
        conn = self.server.client(self.config.folder)
        for raw in raws:
            conn.append(self.config.folder, None, None, raw)
        conn.logout()

    def connector(self, config: ImapConfig | None = None, password: str | None = PASSWORD) -> ImapMailbox:
        return ImapMailbox(config or self.config, "support_mail", password)

    def add_newer(self) -> list[str]:
        self.deliver(mail(4))
        return ["<m4@kund.example>"]

    def order(self, cursor: dict[str, Any]) -> Any:
        return cursor["uidvalidity"], cursor["uid"]

    def provoke(self, failure: str) -> None:
        connector = {
            "missing password": lambda: self.connector(password=None),
            "wrong password": lambda: self.connector(password="not-" + PASSWORD),
            "closed port": lambda: self.connector(replace(self.config, port=free_port())),
            "missing folder": lambda: self.connector(replace(self.config, folder="no-such-folder")),
        }[failure]()
        list(connector.fetch(None))


class TwitterHarness(Harness):
    """The mentions of @acme_help, replayed from synthetic_mentions_two_pages.yaml (two pages, then
    nothing newer) extended by two answers made in its shape: the poll after that finds one newer
    post, the one after finds nothing. vcrpy plays each answer once and in order, so `add_newer`
    only names the post the cassette's next since_id answer holds."""

    failures = ("missing token", "401 token refused", "429 rate limit", "unreachable")
    NEWER = "2129140000000000000"

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(folder, request)
        self.config = TwitterConfig(mentions_of=BRAND)
        self.cassette = self._extended(folder / "mentions_then_newer.yaml")

    def _extended(self, path: Path) -> Path:
        recorded = TWITTER_FIXTURES / "synthetic_mentions_two_pages.yaml"
        cassette = yaml.safe_load(recorded.read_text(encoding="utf-8"))
        nothing_newer = cassette["interactions"][2]
        since = json.loads(cassette["interactions"][0]["response"]["body"]["string"])["meta"]["newest_id"]
        assert f"since_id={since}&" in nothing_newer["request"]["uri"]
        newer = yaml.safe_load(yaml.safe_dump(nothing_newer))
        newer["response"]["body"]["string"] = json.dumps({
            "data": [{"author_id": "1301449275861766144", "conversation_id": self.NEWER, "id": self.NEWER,
                      "created_at": "2026-12-05T08:40:00.000Z", "lang": "en",
                      "edit_history_tweet_ids": [self.NEWER], "text": "@acme_help still down for us"}],
            "includes": {"users": [{"id": "1301449275861766144", "name": "Sara Ek", "username": "sara_ek"}]},
            "meta": {"newest_id": self.NEWER, "oldest_id": self.NEWER, "result_count": 1}})
        after_newer = yaml.safe_load(yaml.safe_dump(nothing_newer))
        after_newer["request"]["uri"] = nothing_newer["request"]["uri"].replace(since, self.NEWER)
        cassette["interactions"] += [newer, after_newer]
        path.write_text(yaml.safe_dump(cassette, allow_unicode=True), encoding="utf-8")
        return path

    def connector(self, token: str | None = BEARER_TOKEN) -> TwitterSource:
        return TwitterSource(self.config, "acme_x", token)

    def replay(self) -> ContextManager:
        return SYNTHETIC.use_cassette(str(self.cassette))

    def add_newer(self) -> list[str]:
        return [self.NEWER]

    def order(self, cursor: dict[str, Any]) -> Any:
        return int(cursor.get("since_id") or 0), int(cursor.get("newest_id") or 0)

    def provoke(self, failure: str) -> None:
        if failure == "unreachable":  # vcrpy cannot refuse a connection: `responses` does
            with responses.RequestsMock() as rsps:
                rsps.add(responses.GET, f"https://api.twitter.com/2/users/{BRAND}/mentions",
                         body=requests.ConnectionError("Connection refused"))
                list(self.connector().fetch(None))
            return
        cassette = {"missing token": "synthetic_mentions_401.yaml",  # not played: no request without a token
                    "401 token refused": "synthetic_mentions_401.yaml",
                    "429 rate limit": "synthetic_mentions_429.yaml"}[failure]
        with SYNTHETIC.use_cassette(str(TWITTER_FIXTURES / cassette)):
            list(self.connector(None if failure == "missing token" else BEARER_TOKEN).fetch(None))


class FacebookHarness(Harness):
    """A Page feed of five posts with two comments each, paged two posts at a time by FakeFeed the
    way the Graph API pages one (newest first, `after` cursors, a `since` bound)."""

    failures = ("missing token", "190 token refused", "4 rate limit", "unreachable")
    GRAPH_ERRORS = {"190 token refused": "graph_error_190_invalid_token",
                    "4 rate limit": "graph_error_4_app_rate_limit"}

    def __init__(self, folder: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(folder, request)
        self.config = FacebookConfig(page_id=PAGE, page_size=2, max_pages=100)
        self.feed = FakeFeed(0)
        self.feed.add(5, comments=2)

    def connector(self, token: str | None = PAGE_TOKEN) -> FacebookSource:
        return FacebookSource(self.config, "acme_page", token)

    @contextmanager
    def replay(self):
        with responses.RequestsMock() as rsps:
            rsps.add_callback(responses.GET, f"{GRAPH}/{FEED}", callback=self.feed,
                              content_type="application/json")
            yield

    def add_newer(self) -> list[str]:
        self.feed.add(2, comments=1)
        return [f"{PAGE}_6", "6_1", f"{PAGE}_7", "7_1"]

    def order(self, cursor: dict[str, Any]) -> Any:
        """(newest post landed, how far down the walk under way is): a finished walk is past all."""
        state = cursor[FEED]
        newest = state["newest"] or 0
        if not state["walks"]:
            return newest, math.inf
        walk = state["walks"][0]
        passed = walk["through"] or (base64.b64decode(walk["next"]["after"]).decode() if walk["next"] else None)
        return newest, -int(passed.rsplit("_", 1)[1]) if passed else -math.inf

    def provoke(self, failure: str) -> None:
        if failure == "missing token":
            list(self.connector(None).fetch(None))
            return
        with responses.RequestsMock() as rsps:
            if failure == "unreachable":
                rsps.add(responses.GET, f"{GRAPH}/{FEED}", body=requests.ConnectionError("Connection refused"))
            else:
                fixture = FACEBOOK_FIXTURES / f"{self.GRAPH_ERRORS[failure]}.json"
                answer = json.loads(fixture.read_text(encoding="utf-8"))["response"]
                rsps.add(responses.GET, f"{GRAPH}/{FEED}", json=answer["body"], status=answer["status"],
                         headers={k: v for k, v in answer["headers"].items() if k != "content-type"})
            list(self.connector().fetch(None))


NEEDS_DOVECOT = pytest.mark.skipif(shutil.which("dovecot") is None,
                                   reason="dovecot is not installed (scripts/ensure-dovecot.sh installs it)")
HARNESSES: dict[str, type[Harness]] = {"jsonl": JsonLinesHarness, "listfile": ListFileHarness,
                                       "mailfiles": MailFilesHarness, "imap": ImapHarness,
                                       "twitter": TwitterHarness, "facebook": FacebookHarness}


def harnesses(keep: Callable[[type[Harness]], bool] = lambda kind: True,
              skip: Callable[[type[Harness]], str | None] = lambda kind: None) -> list:
    params = []
    for name, kind in HARNESSES.items():
        if keep(kind):
            marks = [NEEDS_DOVECOT] if name == "imap" else []
            if reason := skip(kind):
                marks.append(pytest.mark.skip(reason=reason))
            params.append(pytest.param(name, id=name, marks=marks))
    return params


EVERY = harnesses()
RESUMING = harnesses(keep=lambda kind: kind.resumes)  # items carry cursors; fetch(since) goes on after them
WHOLE_READERS = harnesses(keep=lambda kind: not kind.resumes)  # no cursor: read whole, landing dedupes
GETTING_NEWER = harnesses(skip=lambda kind: kind.newer)


@pytest.fixture(scope="module")
def imap_server():
    # not under pytest's temporary folder: dovecot reads its users file and writes mail as 'nobody'
    root = Path(tempfile.mkdtemp(prefix="crm-ingest-contract-"))
    root.chmod(0o755)
    server = Dovecot(root)
    with server.conf.open("a") as conf:
        conf.write("auth_failure_delay = 0\n")  # a refused login answered at once
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def harness(request, tmp_path) -> Harness:
    return HARNESSES[request.param](tmp_path, request)


@pytest.fixture
def sessions(sqlite_url, sessions_for):
    return sessions_for(sqlite_url)


def land(sessions, harness: Harness) -> Landed:
    """One run as a poll (or `ingest land`) does it: a new connector, the runner, then the
    connector's `after_landing` where it has one."""
    connector = harness.connector()
    landed = run_connector(sessions, connector, checkpoint=harness.resumes, chunk_size=2)
    after_landing = getattr(connector, "after_landing", None)
    if after_landing is not None:
        after_landing(sessions, landed)
    return landed


def external_ids(sessions, ids: list[int]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(RawItem.external_id).where(RawItem.id.in_(ids)).order_by(RawItem.id)))


def checkpoint(sessions, source: str) -> dict | None:
    with sessions() as session:
        return load_checkpoint(session, source)


def ids_of(items: list[NewItem]) -> list[str]:
    return [item.external_id for item in items]


# -- the contract --------------------------------------------------------------------------------

@pytest.mark.parametrize("harness", EVERY, indirect=True)
def test_two_fresh_fetches_yield_the_same_ids_in_the_same_order(harness):
    # Given a source with data, when it is fetched from the start twice
    with harness.replay():
        first = list(harness.connector().fetch(None))
    with harness.replay():
        second = list(harness.connector().fetch(None))
    # Then the same items come under the same ids, in the same order: non-empty strings, each once
    assert first and ids_of(first) == ids_of(second)
    assert all(isinstance(i, str) and i.strip() for i in ids_of(first))
    assert len(set(ids_of(first))) == len(first)


@pytest.mark.parametrize("harness", RESUMING, indirect=True)
def test_cursors_never_go_back_and_the_checkpoint_is_the_last_items(harness, sessions):
    # Given one fetch from the start
    with harness.replay():
        items = list(harness.connector().fetch(None))
    cursors = [item.cursor for item in items if item.cursor is not None]
    # Then its last item says where to resume, and no cursor is behind the one before it
    assert items[-1].cursor is not None
    keys = [harness.order(cursor) for cursor in cursors]
    assert all(before <= after for before, after in zip(keys, keys[1:])), keys
    # And the runner, landing the same in chunks, keeps the last item's cursor as the checkpoint
    with harness.replay():
        landed = run_connector(sessions, harness.connector(), chunk_size=2)
    assert landed.received == len(items)
    assert checkpoint(sessions, harness.source) == items[-1].cursor


@pytest.mark.parametrize("harness", WHOLE_READERS, indirect=True)
def test_a_reader_without_cursors_reads_the_whole_file_each_time(harness):
    # Given a file reader (landed with checkpoint=False: idempotent landing is its re-run guard)
    with harness.replay():
        items = list(harness.connector().fetch(None))
        from_anywhere = list(harness.connector().fetch({"row": 2, "uid": 2, "sha256": "x"}))
    # Then no item carries a cursor, and `since` changes nothing
    assert [item.cursor for item in items] == [None] * len(items)
    assert ids_of(from_anywhere) == ids_of(items)


@pytest.mark.parametrize("harness", EVERY, indirect=True)
def test_a_second_run_lands_nothing_new(harness, sessions):
    with harness.replay():
        # Given everything landed once
        first = land(sessions, harness)
        assert first.received > 0 and len(first.ids) == first.received
        saved = checkpoint(sessions, harness.source)
        # When it runs again with nothing new at the source
        again = land(sessions, harness)
    # Then nothing is landed; a resuming source yields nothing (and leaves its checkpoint as it was),
    # a file reader yields everything again and landing ignores it
    assert again.ids == []
    assert again.received == (0 if harness.resumes else first.received)
    assert checkpoint(sessions, harness.source) == saved


@pytest.mark.parametrize("harness", GETTING_NEWER, indirect=True)
def test_after_newer_data_only_that_is_landed(harness, sessions):
    with harness.replay():
        # Given everything landed, and a run that found nothing new
        first = land(sessions, harness)
        saved = checkpoint(sessions, harness.source)
        assert land(sessions, harness).ids == []
        # When newer data arrives and it runs again
        newer = harness.add_newer()
        third = land(sessions, harness)
        # Then only that is landed; a resuming source yields only that, and its checkpoint moved on
        assert sorted(external_ids(sessions, third.ids)) == sorted(newer)
        if harness.resumes:
            assert third.received == len(newer)
            assert harness.order(checkpoint(sessions, harness.source)) > harness.order(saved)
            assert land(sessions, harness).received == 0
        else:
            assert third.received == first.received + len(newer)


BREACHES: dict[tuple[str, str], str] = {}  # (connector, failure) -> why it breaks the contract, while it does


def failure_cases() -> list:
    cases = []
    for param in EVERY:
        name = param.values[0]
        for failure in HARNESSES[name].failures:
            marks = list(param.marks)
            if (name, failure) in BREACHES:
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError,
                                               reason=f"contract breach: {BREACHES[name, failure]}"))
            cases.append(pytest.param(name, failure, id=f"{name}-{failure}", marks=marks))
    return cases


@pytest.mark.parametrize("harness, failure", failure_cases(), indirect=["harness"])
def test_trouble_comes_out_as_our_error_naming_the_source(harness, failure):
    # When the source fails (credentials missing or refused, a limit, no server, no file)
    with pytest.raises(Exception) as caught:
        harness.provoke(failure)
    # Then the error is one of ours, not the library's, and says which source it is about
    error = caught.value
    assert isinstance(error, IngestError), f"{type(error).__module__}.{type(error).__name__} escaped: {error}"
    assert harness.named().lower() in str(error).lower(), f"{harness.named()!r} not in {str(error)!r}"
