"""Queue metrics on real PostgreSQL, Redis and a worker process: with no worker the batches wait
in `process` (as many as were published) and nobody answers a ping; once a worker has drained
them the depth is an explicit 0, the worker is counted, and the counts match the database. The
queue alert fires after the backlog lasted its minutes, and resolves once it is gone."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from crm_ingest import runtime as runtime_module
from crm_ingest.models import DONE, RawItem, utcnow
from tests.conftest import run_cli, write_config
from tests.integration.test_reliability import wait_until_finished
from tests.integration.workload import write_jsonl
from tests.test_ops_metrics import Webhook

pytestmark = pytest.mark.integration

TOKEN = "ops-token-123"
ITEMS, BATCH = 600, 250  # three batch messages: 250, 250, 100


@pytest.fixture
def api(cluster, monkeypatch):
    """The app in this process, on the cluster's database and broker."""
    for name in ("DATABASE_URL", "REDIS_URL", "INGEST_CONFIG"):
        monkeypatch.setenv(name, cluster.env[name])
    monkeypatch.setenv("INGEST_API_TOKENS", TOKEN)
    runtime_module._for_pid.cache_clear()
    from crm_ingest.api.app import app

    yield TestClient(app)
    runtime_module._for_pid.cache_clear()


def scrape(client) -> tuple[str, dict]:
    response = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    return response.text, samples


def depth(samples: dict, queue: str) -> float:
    return samples[("crm_ingest_queue_depth", frozenset({("queue", queue)}))]


def test_queue_depth_while_no_worker_runs_then_zero(cluster, api, tmp_path, sessions_for):
    from crm_ingest.ops.alerts import check_alerts

    webhook = Webhook()
    try:
        write_config(tmp_path, batch_size=BATCH, extra=f"""
[alerts]
webhook_url = "http://127.0.0.1:{webhook.port}/hook"
queue_threshold = 2
queue_minutes = 1
""")
        runtime_module._for_pid.cache_clear()
        sessions = sessions_for(cluster.env["DATABASE_URL"])
        rows = [{"external_id": f"q{i}", "fields": {"email": f"q{i}@example.com", "first_name": f"Q{i}"}}
                for i in range(ITEMS)]

        # Given items landed while no worker runs
        run_cli(cluster.env, "land", "--source", "list", str(write_jsonl(tmp_path / "items.jsonl", rows)))

        # Then /metrics and status both show the three batch messages waiting, and no worker
        text, samples = scrape(api)
        status = json.loads(run_cli(cluster.env, "status", "--json").stdout)
        assert depth(samples, "process") == status["queues"]["depth"]["process"] == 3
        assert depth(samples, "poll") == status["queues"]["depth"]["poll"] == 0
        assert samples[("crm_ingest_workers_online", frozenset())] == status["workers_online"] == 0
        assert samples[("crm_ingest_items_unfinished", frozenset({("state", "pending")}))] == ITEMS
        assert samples[("crm_ingest_oldest_unfinished_item_age_seconds", frozenset())] > 0
        assert status["oldest_unfinished_age_seconds"] > 0

        # And the backlog alert waits for its minute, then fires once
        rt = runtime_module.runtime()
        start = utcnow()
        assert check_alerts(rt, now=start) == []
        fired = check_alerts(rt, now=start + timedelta(minutes=1, seconds=1))
        assert [(a["alert"], a["status"], a["queue"]) for a in fired] == [("queue_backlog", "firing", "process")]
        assert check_alerts(rt, now=start + timedelta(minutes=2)) == []

        # When a worker starts and finishes them
        cluster.worker("w1")
        assert wait_until_finished(sessions, ITEMS, timeout=180) == {DONE: ITEMS}
        deadline = time.monotonic() + 30
        while True:  # the last message is acked just after its items commit
            text, samples = scrape(api)
            settled = (samples[("crm_ingest_queue_unacked", frozenset())] == 0
                       and samples[("crm_ingest_workers_online", frozenset())] >= 1)  # a ping can miss on a busy box
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)

        # Then the depth is an explicit zero, the worker is counted, counts match the database
        assert 'crm_ingest_queue_depth{queue="process"} 0.0' in text
        assert samples[("crm_ingest_queue_unacked", frozenset())] == 0
        assert samples[("crm_ingest_workers_online", frozenset())] >= 1
        with sessions() as session:
            processed = dict(session.execute(select(RawItem.outcome, func.count()).where(RawItem.state == DONE)
                                             .group_by(RawItem.outcome)).all())
        assert processed == {"created": ITEMS}
        assert samples[("crm_ingest_items_processed_total", frozenset(
            {("source", "list"), ("record_type", "lead"), ("outcome", "created")}))] == ITEMS
        assert samples[("crm_ingest_items_landed_total", frozenset({("source", "list")}))] == ITEMS
        assert samples[("crm_ingest_item_latency_seconds_count", frozenset({("source", "list")}))] == ITEMS
        status = json.loads(run_cli(cluster.env, "status", "--json").stdout)
        assert status["queues"] == {"depth": {"poll": 0, "process": 0, "import": 0}, "unacked": 0}
        assert status["workers_online"] >= 1

        # And the minute's task (roll-up, then alerts) resolves the backlog alert, once
        from crm_ingest.workers.tasks import roll_up as roll_up_task

        assert roll_up_task()["alerts"] == ["crm-ingest: queue process is back to 0 messages"]
        assert roll_up_task()["alerts"] == []
        assert [a["status"] for a in webhook.received] == ["firing", "resolved"]

        # And the rollups, once the minutes closed, add up to raw_items on PostgreSQL too
        from crm_ingest.ops.rollups import history, roll_up

        later = utcnow() + timedelta(minutes=2)
        with sessions.begin() as session:
            roll_up(session, later)
        with sessions() as session:
            points = history(session, start - timedelta(minutes=5), step=60, until=later)
        assert sum(p["landed"] for p in points) == sum(p["processed"] for p in points) == ITEMS
        assert sum(p["by_outcome"]["created"] for p in points) == ITEMS
    finally:
        webhook.close()
