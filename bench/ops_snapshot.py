"""Benchmark: what `/metrics`, the dashboard and `ingest status` cost at a million items. A fresh
PostgreSQL database gets --items raw items (processed ones over the last --hours, 0.1% failed
with an error), one roll-up runs (as the scheduler's would each minute), and each query the
snapshot is made of is timed, median of --repeat, next to `SELECT count(*) FROM raw_items` (a
sequential scan of the table: the floor of anything that reads it all) in the same run.

    .venv/bin/python bench/ops_snapshot.py [--items 1000000] [--hours 28] [--repeat 3]

Needs the machine's PostgreSQL (TEST_PG_ADMIN_URL). Never run as a test.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from import_list import create_database, drop_database  # noqa: E402


def fill(url: str, items: int, hours: float) -> None:
    import psycopg

    step = hours * 3600 / items
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO raw_items (source, external_id, kind, payload, received_at, queued_at, state, attempts, "
            "outcome, record_type, record_id, finished_at, last_error) "
            "SELECT 'list', 'x:' || g, 'row', '{\"fields\": {\"email\": \"a@example.com\"}}', "
            "now() - make_interval(secs => g * %(step)s), now(), "
            "CASE WHEN g %% 1000 = 0 THEN 'failed' ELSE 'done' END, 1, "
            "CASE WHEN g %% 1000 = 0 THEN NULL ELSE 'created' END, 'lead', g, "
            "now() - make_interval(secs => g * %(step)s) + interval '2 seconds', "
            "CASE WHEN g %% 1000 = 0 THEN 'boom ' || (g %% 7) END FROM generate_series(1, %(n)s) g",
            {"n": items, "step": step})
        conn.execute("ANALYZE raw_items")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=28.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from sqlalchemy import text

    from crm_ingest.ingest.report import item_counts, record_counts, top_errors
    from crm_ingest.models import make_engine, make_session_factory, utcnow
    from crm_ingest.models.migrate import upgrade
    from crm_ingest.ops import snapshot
    from crm_ingest.ops.rollups import roll_up

    name, url = create_database()
    try:
        upgrade(url)
        started = time.perf_counter()
        fill(url, args.items, args.hours)
        print(f"{args.items:,} raw items over {args.hours} h written in {time.perf_counter() - started:.1f} s")
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            started = time.perf_counter()
            roll_up(session)
            print(f"first roll-up (a day of minutes, BRIN ranges summarized): {time.perf_counter() - started:.2f} s")
        now = utcnow()
        parts = [
            ("baseline: SELECT count(*) FROM raw_items", lambda s: s.execute(text("SELECT count(*) FROM raw_items"))),
            ("totals (by state/outcome, histogram)", snapshot.totals),
            ("recent_by_source (last hour/minute)", lambda s: snapshot.recent_by_source(s, now)),
            ("latency_quantiles (last hour)", lambda s: snapshot.latency_quantiles(s, now)),
            ("oldest_unfinished_age", lambda s: snapshot.oldest_unfinished_age(s, now)),
            ("top_errors", top_errors),
            ("record_counts", record_counts),
            ("item_counts (ingest status)", item_counts),
        ]
        print(f"\n{'query':45s} | median ms | x baseline")
        print("-" * 72)
        base = None
        for label, work in parts:
            times = []
            for _ in range(args.repeat):
                with sessions() as session:
                    started = time.perf_counter()
                    work(session)
                    times.append(time.perf_counter() - started)
            median = statistics.median(times) * 1000
            base = base or median
            print(f"{label:45s} | {median:9.1f} | {median / base:9.2f}")
        engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
