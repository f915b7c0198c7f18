"""The foundation's promises on real PostgreSQL, Redis and worker processes:
one record per person under concurrency, nothing lost to killed workers or a flushed broker,
poison items set aside while the rest of their batch is stored."""
from __future__ import annotations

import subprocess
import time

import pytest
import redis
from sqlalchemy import func, select

from crm_ingest.models import DONE, FAILED, IdentityKey, Lead, RawItem
from tests.conftest import INGEST, refuse_lead, run_cli, write_config
from tests.integration.workload import batch_in_flight, people_with_duplicates, split, write_jsonl

pytestmark = pytest.mark.integration


def wait_until_finished(sessions, expected: int, timeout: float = 240) -> dict[str, int]:
    """Poll the database until `expected` items are done or failed; return counts by state."""
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            states = dict(session.execute(select(RawItem.state, func.count()).group_by(RawItem.state)).all())
        finished = states.get(DONE, 0) + states.get(FAILED, 0)
        if finished >= expected or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def assert_one_record_per_person(sessions, items: int, people: int) -> None:
    with sessions() as session:
        states = dict(session.execute(select(RawItem.state, func.count()).group_by(RawItem.state)).all())
        assert states == {DONE: items}, states
        outcomes = dict(session.execute(select(RawItem.outcome, func.count()).group_by(RawItem.outcome)).all())
        assert outcomes == {"created": people, "merged": items - people}, outcomes
        assert session.scalar(select(func.count()).select_from(Lead)) == people
        # no two leads share an email, whatever its case or spacing
        assert session.scalar(select(func.count(func.distinct(func.lower(func.trim(Lead.email)))))) == people
        keys = session.scalar(select(func.count()).select_from(IdentityKey).where(IdentityKey.kind == "email"))
        assert keys == people
        # every merged item points at a lead that exists
        orphans = session.scalar(select(func.count()).select_from(RawItem)
                                 .outerjoin(Lead, Lead.id == RawItem.record_id).where(Lead.id.is_(None)))
        assert orphans == 0


def test_four_producers_two_workers_one_record_per_person(cluster, tmp_path, pg_url, sessions_for):
    # Given two worker processes and four producers landing at once, 30% of rows repeating people
    rows, people = people_with_duplicates(20_000, 0.30)
    files = [write_jsonl(tmp_path / f"producer{i}.jsonl", part) for i, part in enumerate(split(rows, 4))]
    cluster.worker("w1")
    cluster.worker("w2")

    # When the producers land concurrently through the CLI
    producers = [subprocess.Popen(INGEST + ["land", "--source", "list", str(f), "--json"], env=cluster.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    for producer in producers:
        out, err = producer.communicate(timeout=300)
        assert producer.returncode == 0, err.decode()

    # Then every item has exactly one outcome and every person exactly one record
    sessions = sessions_for(pg_url)
    wait_until_finished(sessions, len(rows))
    assert_one_record_per_person(sessions, len(rows), people)


def test_workers_killed_three_times_lose_nothing_and_duplicate_nothing(cluster, tmp_path, pg_url, sessions_for):
    # Given 20,000 landed items and two workers (batches of 1,000), with the sweeper running
    write_config(tmp_path, batch_size=1000)
    rows, people = people_with_duplicates(20_000, 0.30, seed=11)
    source = write_jsonl(tmp_path / "items.jsonl", rows)
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.beat()
    run_cli(cluster.env, "land", "--source", "list", str(source))
    sessions = sessions_for(pg_url)

    # When the workers are SIGKILLed (with their pools) in the middle of batches, three times
    # (both of them, so that the batch seen claimed is surely interrupted)
    for kill in range(3):
        done_before = _done(sessions)
        deadline = time.monotonic() + 60
        while _done(sessions) < done_before + 1500 and time.monotonic() < deadline:
            time.sleep(0.05)
        while not batch_in_flight(sessions) and time.monotonic() < deadline:
            time.sleep(0.005)  # kill while a batch is locked and being written
        cluster.kill("w1")
        cluster.kill("w2")
        cluster.worker("w1")
        cluster.worker("w2")

    # Then, once the run finishes, no item is lost and none produced two records
    wait_until_finished(sessions, len(rows))
    assert_one_record_per_person(sessions, len(rows), people)
    with sessions() as session:  # and the kills did interrupt batches (their re-delivery counts)
        assert session.scalar(select(func.max(RawItem.attempts))) >= 2


def test_redis_flushed_mid_run_sweeper_recovers_everything(cluster, tmp_path, pg_url, redis_url, sessions_for):
    # Given 20,000 items queued and one worker busy with them
    rows, people = people_with_duplicates(20_000, 0.30, seed=13)
    source = write_jsonl(tmp_path / "items.jsonl", rows)
    cluster.worker("w1")
    cluster.beat()
    run_cli(cluster.env, "land", "--source", "list", str(source))
    sessions = sessions_for(pg_url)
    deadline = time.monotonic() + 60
    while _done(sessions) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)

    # When Redis loses everything it held (the deployment's database: broker, schedule and counters
    # all live there; the machine's other databases are someone else's)
    redis.Redis.from_url(redis_url).flushdb()
    assert _done(sessions) < len(rows), "the run finished before the flush; the test proves nothing"

    # Then the sweeper re-queues what was landed and every item still finishes
    wait_until_finished(sessions, len(rows))
    assert_one_record_per_person(sessions, len(rows), people)


def test_poison_item_is_set_aside_after_max_attempts_rest_of_batch_stored(tmp_path, pg_url, redis_url,
                                                                         sessions_for):
    from tests.conftest import Processes
    import os

    # Given a database that refuses one particular lead (as a DBA's trigger might), max 3 attempts
    config = write_config(tmp_path, max_attempts=3)
    env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "INGEST_CONFIG": str(config)}
    sessions = sessions_for(pg_url)
    with sessions.begin() as session:
        refuse_lead(session, "poison@example.com")
    rows = [{"external_id": f"ok{i}", "fields": {"email": f"ok{i}@example.com"}} for i in range(200)]
    rows.insert(100, {"external_id": "poison", "fields": {"email": "poison@example.com"}})
    source = write_jsonl(tmp_path / "items.jsonl", rows)
    procs = Processes(env, tmp_path)
    try:
        procs.worker("w1")
        procs.beat()
        # When the batch holding it is processed (and retried by the sweeper)
        run_cli(env, "land", "--source", "list", str(source))
        states = wait_until_finished(sessions, len(rows), timeout=120)
    finally:
        procs.stop_all()

    # Then the poison item is failed with its error after 3 attempts, and all the others are stored
    assert states == {DONE: 200, FAILED: 1}, states
    with sessions() as session:
        poison = session.scalar(select(RawItem).where(RawItem.external_id == "poison"))
        assert poison.attempts == 3
        assert "poison lead refused" in poison.last_error
        assert session.scalar(select(func.count()).select_from(Lead)) == 200
    status = run_cli(env, "status", "--json").stdout
    assert '"failed": 1' in status


def _done(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(RawItem).where(RawItem.state == DONE)) or 0
