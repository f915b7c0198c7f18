"""Benchmark: items/s end to end (landing to outcome) through 2 worker processes on
PostgreSQL + Redis, batched (ids in batches per task) next to one Celery task per item,
measured in the same run on fresh databases.

    .venv/bin/python bench/pipeline.py [--rows 100000] [--per-task-rows N] [--repeat 1]

Needs the machine's PostgreSQL (TEST_PG_ADMIN_URL) and Redis (TEST_REDIS_URL).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_ingest.models import DONE, FAILED, RawItem, make_engine, make_session_factory  # noqa: E402
from crm_ingest.models.landing import NewItem, land_items  # noqa: E402
from crm_ingest.models.migrate import upgrade  # noqa: E402
from tests.integration.workload import people_with_duplicates  # noqa: E402

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379") + "/8"


class Stack:
    """A fresh database and two `ingest worker --concurrency 1` processes."""

    def __init__(self, folder: Path, batch_size: int) -> None:
        self.db = f"crm_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.db}"
        upgrade(self.url)
        redis.Redis.from_url(REDIS_URL).flushdb()
        config = folder / f"{self.db}.toml"
        config.write_text(f"[pipeline]\nbatch_size = {batch_size}\n")
        self.env = {**os.environ, "DATABASE_URL": self.url, "REDIS_URL": REDIS_URL,
                    "INGEST_CONFIG": str(config)}
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        self.folder = folder
        self.workers = [self._worker(f"bench{i}") for i in range(2)]

    def _worker(self, name: str) -> subprocess.Popen:
        log = self.folder / f"{self.db}-{name}.log"
        proc = subprocess.Popen([sys.executable, "-m", "crm_ingest.cli", "worker", "--concurrency", "1",
                                 "-n", f"{name}@%h", "--without-gossip", "--without-mingle"],
                                env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(log.read_text(errors="replace"))
            time.sleep(0.2)
        return proc

    def finished(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(RawItem)
                                  .where(RawItem.state.in_([DONE, FAILED]))) or 0

    def close(self) -> None:
        for proc in self.workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            proc.wait(timeout=60)
        self.engine.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def run(stack: Stack, rows: list[dict], per_item: bool) -> dict:
    """Land in chunks of 5,000 (one transaction each), publish, and wait for every outcome."""
    os.environ.update({k: stack.env[k] for k in ("DATABASE_URL", "REDIS_URL", "INGEST_CONFIG")})
    from crm_ingest import runtime as runtime_module
    runtime_module._for_pid.cache_clear()
    from crm_ingest.workers.app import app
    app.conf.broker_url = REDIS_URL
    from crm_ingest.workers.tasks import process_batch
    from crm_ingest.workers.dispatch import enqueue
    settings = runtime_module.runtime().settings

    start = time.perf_counter()
    landed = 0
    with app.producer_or_acquire() as producer:
        for offset in range(0, len(rows), 5000):
            chunk = rows[offset:offset + 5000]
            with stack.sessions.begin() as session:
                ids = land_items(session, "list", [NewItem(r["external_id"], "row", r) for r in chunk])
            landed += len(ids)
            if per_item:
                for item_id in ids:
                    process_batch.apply_async(args=[[item_id]], producer=producer)
            else:
                enqueue(ids, settings)
    landing_done = time.perf_counter()
    while stack.finished() < landed:
        time.sleep(0.25)
    end = time.perf_counter()
    return {"items": landed, "seconds": end - start, "landing_seconds": landing_done - start,
            "items_per_second": landed / (end - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--per-task-rows", type=int, default=None,
                        help="items for the one-task-per-item path (default: --rows)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rows, people = people_with_duplicates(args.rows, 0.10, seed=3)
    per_task_rows = rows[: args.per_task_rows or args.rows]

    batched, single = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for label, sample, per_item, results in (("batched", rows, False, batched),
                                                     ("one task per item", per_task_rows, True, single)):
                stack = Stack(Path(tmp), args.batch_size)
                try:
                    result = run(stack, sample, per_item)
                finally:
                    stack.close()
                results.append(result)
                print(f"{label:>20}: {result['items']:>7} items in {result['seconds']:7.1f} s "
                      f"(landing {result['landing_seconds']:.1f} s) = {result['items_per_second']:8.0f} items/s",
                      flush=True)

    b = statistics.median(r["items_per_second"] for r in batched)
    s = statistics.median(r["items_per_second"] for r in single)
    print()
    print(f"{'path':>20} | {'items/s (median)':>16}")
    print(f"{'batched':>20} | {b:16.0f}")
    print(f"{'one task per item':>20} | {s:16.0f}")
    print(f"batched / per-item = {b / s:.1f}x  ({args.rows} rows, 10% duplicates, batch {args.batch_size}, "
          f"2 worker processes, PostgreSQL + Redis)")


if __name__ == "__main__":
    main()
