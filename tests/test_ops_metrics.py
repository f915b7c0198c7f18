"""Operations on the embedded database: /metrics agrees with the database and with
`ingest status --json`, needs the token, the per-minute rollups are idempotent and add up to
raw_items, and the alert webhook (a real HTTP server here) hears of a failing source once."""
from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from crm_ingest import runtime as runtime_module
from crm_ingest.api.app import app
from crm_ingest.models import FAILED, RECORD_MODELS, RawItem, ThroughputMinute, utcnow
from crm_ingest.models.migrate import upgrade

TOKEN = "ops-token-123"
ROWS = [
    {"external_id": "L-1", "fields": {"email": "anna.ek@kund.example", "first_name": "Anna", "last_name": "Ek"}},
    {"external_id": "L-2", "fields": {"email": "bo.ek@kund.example", "first_name": "Bo", "last_name": "Ek"}},
    {"external_id": "L-3", "fields": {"first_name": "Nobody"}},  # no contact point: rejected
]


def write_jsonl(folder, rows, name="items.jsonl"):
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def ops(cli, tmp_path, monkeypatch):
    """The `cli` fixture's fresh SQLite folder, migrated, plus the API token and a client of the app."""
    upgrade(f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("INGEST_API_TOKENS", TOKEN)
    runtime_module._for_pid.cache_clear()
    return TestClient(app)


def sessions():
    return runtime_module.runtime().sessions


def known_run(cli, tmp_path) -> None:
    """Three rows landed and processed (two leads, one rejected), and one item set aside as
    failed, as the batch runner leaves an item after its last attempt."""
    result = cli("land", "--source", "list", str(write_jsonl(tmp_path, ROWS)), "--json")
    assert result.exit_code == 0, result.output
    cli("land", "--source", "web", str(write_jsonl(tmp_path, [
        {"external_id": "W-1", "fields": {"email": "cia@kund.example", "first_name": "Cia"}}], "web.jsonl")))
    with sessions().begin() as session:
        session.execute(update(RawItem).where(RawItem.external_id == "W-1").values(
            state=FAILED, outcome=None, record_type=None, record_id=None, last_error="boom: poison"))


def scrape(client, token=TOKEN) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def labels(**given) -> frozenset:
    return frozenset(given.items())


def test_metrics_equal_the_database_and_status_json_after_a_known_run(ops, cli, tmp_path):
    # Given a known run
    known_run(cli, tmp_path)

    # When /metrics is scraped and `ingest status --json` asked
    metrics = scrape(ops)
    status = json.loads(cli("status", "--json").output)

    # Then each count equals the database's ...
    with sessions()() as session:
        landed = dict(session.execute(select(RawItem.source, func.count()).group_by(RawItem.source)).all())
        processed = {(s, r or "none", o): n for s, r, o, n in session.execute(
            select(RawItem.source, RawItem.record_type, RawItem.outcome, func.count())
            .where(RawItem.state == "done").group_by(RawItem.source, RawItem.record_type, RawItem.outcome))}
        failed = session.scalar(select(func.count()).select_from(RawItem).where(RawItem.state == FAILED))
        records = {name: session.scalar(select(func.count()).select_from(model))
                   for name, model in RECORD_MODELS.items()}
    assert landed == {"list": 3, "web": 1}
    assert processed == {("list", "lead", "created"): 2, ("list", "none", "rejected"): 1}
    for source, count in landed.items():
        assert metrics[("crm_ingest_items_landed_total", labels(source=source))] == count
    for (source, record_type, outcome), count in processed.items():
        assert metrics[("crm_ingest_items_processed_total",
                        labels(source=source, record_type=record_type, outcome=outcome))] == count
    assert metrics[("crm_ingest_items_failed", labels(source="web"))] == failed == 1
    assert metrics[("crm_ingest_items_failed", labels(source="list"))] == 0
    assert metrics[("crm_ingest_item_latency_seconds_count", labels(source="list"))] == 3
    assert metrics[("crm_ingest_item_latency_seconds_bucket", labels(source="list", le="+Inf"))] == 3
    for name, count in records.items():
        assert metrics[("crm_ingest_records", labels(record_type=name))] == count
    assert metrics[("crm_ingest_oldest_unfinished_item_age_seconds", labels())] == 0
    assert not any(name.startswith(("crm_ingest_queue", "crm_ingest_workers")) for name, _ in metrics)  # embedded

    # ... and `status --json` holds the very same numbers
    assert status["landed_by_source"] == {source: metrics[("crm_ingest_items_landed_total", labels(source=source))]
                                          for source in landed}
    assert {(r["source"], r["record_type"], r["outcome"]): r["items"] for r in status["processed"]} == {
        key: metrics[("crm_ingest_items_processed_total", labels(source=key[0], record_type=key[1], outcome=key[2]))]
        for key in processed}
    assert status["failed_by_source"] == {"list": 0, "web": 1}
    assert status["items"]["by_state"]["failed"] == 1 and status["queues"] is None
    histogram = status["latency_seconds"]["histogram"]["list"]
    for le, count in histogram["buckets"]:
        le = le if le == "+Inf" else repr(float(le))
        assert metrics[("crm_ingest_item_latency_seconds_bucket", labels(source="list", le=le))] == count
    assert metrics[("crm_ingest_item_latency_seconds_sum", labels(source="list"))] == pytest.approx(histogram["sum"])
    assert status["records"] == records
    assert status["latency_seconds"]["processed_last_hour"] == 3
    assert status["latency_seconds"]["p50_last_hour"] is not None


def test_metrics_need_a_valid_bearer_token(ops):
    assert ops.get("/metrics").status_code == 401
    assert ops.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert ops.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_status_watch_refreshes_the_given_number_of_times(cli, tmp_path):
    known_run(cli, tmp_path)
    result = cli("status", "--watch", "--interval", "0.2", "--count", "2")
    assert result.exit_code == 0, result.output
    assert "Sources" in result.output and "failed items: 1" in result.output and "boom: poison" in result.output
    assert cli("status", "--watch", "--json").exit_code != 0


def test_sources_show_items_landed_in_the_last_hour(cli, tmp_path):
    known_run(cli, tmp_path)
    listed = {s["source"]: s for s in json.loads(cli("sources", "--json").output)["sources"]}
    assert (listed["list"]["landed_last_hour"], listed["web"]["landed_last_hour"]) == (3, 1)
    assert listed["mail"]["landed_last_hour"] == 0 and listed["mail"]["credentials_expire_at"] is None


# -- rollups --------------------------------------------------------------------------------------

def rollup_rows(session) -> list[tuple]:
    return sorted(tuple(row) for row in session.execute(select(
        ThroughputMinute.minute, ThroughputMinute.source, ThroughputMinute.event, ThroughputMinute.record_type,
        ThroughputMinute.outcome, ThroughputMinute.items, ThroughputMinute.latency_seconds_sum)))


def test_rollups_are_idempotent_and_add_up_to_raw_items(cli, tmp_path):
    from crm_ingest.ops.rollups import history, roll_up

    # Given a known run, its minutes closed (we roll up as of two minutes later)
    known_run(cli, tmp_path)
    later = utcnow() + timedelta(minutes=2)

    # When the roll-up runs twice
    with sessions().begin() as session:
        roll_up(session, later)
    with sessions()() as session:
        first = rollup_rows(session)
    with sessions().begin() as session:
        roll_up(session, later)
    with sessions()() as session:
        second = rollup_rows(session)
        points = history(session, utcnow() - timedelta(minutes=5), step=300, until=later)

    # Then it wrote the same rows, and they add up to raw_items
    assert first == second and first
    by = {}
    for _, source, event, record_type, outcome, items, _ in first:
        by[(source, event, record_type, outcome)] = by.get((source, event, record_type, outcome), 0) + items
    assert by == {("list", "landed", "", ""): 3, ("web", "landed", "", ""): 1,
                  ("list", "finished", "lead", "created"): 2, ("list", "finished", "", "rejected"): 1,
                  ("web", "finished", "", "failed"): 1}
    assert sum(p["landed"] for p in points) == 4 and sum(p["processed"] for p in points) == 3
    assert sum(p["failed"] for p in points) == 1 and sum(p["by_outcome"]["created"] for p in points) == 2

    # And an item retried since (no longer failed in that minute) drops out at the next roll-up
    with sessions().begin() as session:
        session.execute(update(RawItem).where(RawItem.state == FAILED).values(state="pending", finished_at=None))
        roll_up(session, later)
    with sessions()() as session:
        assert not [row for row in rollup_rows(session) if row[4] == "failed"]


# -- alerts ---------------------------------------------------------------------------------------

class Webhook:
    """A real HTTP server on localhost that keeps the JSON bodies posted to it."""

    def __init__(self, port: int = 0) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configure_alerts(tmp_path, monkeypatch, webhook_port: int) -> None:
    """A mailbox source on a port where nothing listens (each poll fails), and the webhook."""
    (tmp_path / "ingest.toml").write_text(f"""
[alerts]
webhook_url = "http://127.0.0.1:{webhook_port}/hook"
source_failures = 2

[sources.support]
kind = "email"
record_type = "case"

[sources.support.imap]
host = "127.0.0.1"
port = {free_port()}
tls = "none"
user = "support"
password_env = "SUPPORT_IMAP_PASSWORD"
timeout_seconds = 2
""", encoding="utf-8")
    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", "secret")


def test_the_webhook_hears_once_that_a_source_turned_unhealthy(cli, tmp_path, monkeypatch):
    from crm_ingest.connectors.health import record_success
    from crm_ingest.ops.alerts import check_alerts

    webhook = Webhook()
    try:
        configure_alerts(tmp_path, monkeypatch, webhook.port)
        # Given a mailbox that cannot be reached: one failed poll is not yet an alert
        assert cli("poll", "support").exit_code != 0
        assert check_alerts(runtime_module.runtime()) == [] and webhook.received == []

        # When it fails a second time in a row, and the check runs twice
        assert cli("poll", "support").exit_code != 0
        rt = runtime_module.runtime()
        first, second = check_alerts(rt), check_alerts(rt)

        # Then the webhook got exactly one alert, naming the source and its error
        assert len(first) == 1 and second == []
        assert len(webhook.received) == 1
        alert = webhook.received[0]
        assert (alert["alert"], alert["status"], alert["source"]) == ("source_unhealthy", "firing", "support")
        assert alert["details"]["failures"] == 2 and "cannot reach" in alert["details"]["last_error"]
        assert "support" in alert["text"]

        # And once a poll succeeds again, one resolved notice follows
        with rt.sessions.begin() as session:
            record_success(session, "support", 0)
        check_alerts(rt)
        check_alerts(rt)
        assert [(a["status"], a["source"]) for a in webhook.received] == [("firing", "support"),
                                                                        ("resolved", "support")]
    finally:
        webhook.close()


def test_an_alert_the_webhook_missed_is_sent_at_the_next_check(cli, tmp_path, monkeypatch):
    from crm_ingest.ops.alerts import check_alerts

    port = free_port()
    configure_alerts(tmp_path, monkeypatch, port)  # nothing listens on the webhook's port yet
    for _ in range(2):
        cli("poll", "support")
    rt = runtime_module.runtime()
    assert check_alerts(rt) == []

    webhook = Webhook(port)
    try:
        assert [a["status"] for a in check_alerts(rt)] == ["firing"]
        assert len(webhook.received) == 1
    finally:
        webhook.close()


def test_a_bad_alerts_table_names_its_key(cli, tmp_path):
    (tmp_path / "ingest.toml").write_text('[alerts]\nwebhook_url = "ftp://x"\n', encoding="utf-8")
    result = cli("status")
    assert result.exit_code != 0 and "alerts.webhook_url" in result.output
    (tmp_path / "ingest.toml").write_text("[alerts]\nqueue_minutes = 0\n", encoding="utf-8")
    result = cli("status")
    assert result.exit_code != 0 and "alerts.queue_minutes" in result.output


def test_the_roll_up_summarizes_new_brin_ranges_so_time_windows_read_only_recent_blocks(pg_url, sessions_for):
    # Given items processed (raw_items grown past what any vacuum summarized; autovacuum may be off)
    from sqlalchemy import text

    from crm_ingest.ops.rollups import roll_up

    sessions = sessions_for(pg_url)
    with sessions.begin() as session:  # a few block ranges' worth (128 pages each)
        session.execute(text(
            "INSERT INTO raw_items (source, external_id, kind, payload, received_at, queued_at, state, attempts, "
            "outcome, finished_at) SELECT 'web', 'f' || g, 'form', '{\"fields\": {\"email\": \"x@example.com\"}}', "
            "now(), now(), 'done', 1, 'ignored', now() FROM generate_series(1, 12000) g"))

    # When the minute's roll-up runs
    with sessions.begin() as session:
        roll_up(session)

    # Then every BRIN index of raw_items has all its block ranges summarized: none left new
    with sessions.begin() as session:
        left = session.execute(text(
            "SELECT c.relname, brin_summarize_new_values(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE a.amname = 'brin' AND i.indrelid = 'raw_items'::regclass")).all()
    assert len(left) == 3 and all(count == 0 for _, count in left), left
