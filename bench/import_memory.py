"""Benchmark: does an import's memory stay flat as the file grows? One process lands and
processes a generated list (the embedded path, here on PostgreSQL: `land_list` with no broker)
and prints its RSS every --every rows, next to the RSS after the first chunk (the baseline of
the same run). Growth that levels off is the bounded caches filling (normalization and matching
keep LRU caches of 65,536 entries each); growth that keeps its pace would be a leak.

    .venv/bin/python bench/import_memory.py [--rows 600000] [--every 50000]

Needs the machine's PostgreSQL (TEST_PG_ADMIN_URL). Never run as a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from import_list import create_database, drop_database, write_list  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="crm_bench_memory_"))
    csv_path, contacts = folder / "list.csv", folder / "contacts.csv"
    write_list(csv_path, contacts, args.rows, args.rows // 5, args.seed)
    name, url = create_database()
    try:
        from crm_ingest.models.migrate import upgrade

        upgrade(url)
        config = folder / "ingest.toml"
        config.write_text("", encoding="utf-8")
        os.environ.update(DATABASE_URL=url, INGEST_CONFIG=str(config))
        os.environ.pop("REDIS_URL", None)
        from crm_ingest.connectors.listfile import ListFile
        from crm_ingest.runtime import runtime
        from crm_ingest.workers.imports import CHUNK_ROWS, ImportRequest, land_list

        rt = runtime()
        started = time.monotonic()
        first: list[float] = []

        def on_chunk(progress) -> None:
            if not first:
                first.append(rss_mb())
                print(f"{'rows':>9} | {'s':>6} | {'RSS MB':>7} | vs first chunk ({CHUNK_ROWS} rows)")
            if progress.rows_read % args.every == 0:
                now = rss_mb()
                print(f"{progress.rows_read:>9,} | {time.monotonic() - started:6.0f} | {now:7.1f} | "
                      f"{now - first[0]:+.1f}", flush=True)

        land_list(rt.sessions, ListFile(csv_path, "list"), ImportRequest("list", "Bench"), rt.settings,
                  on_chunk=on_chunk)
        rt.engine.dispose()
    finally:
        drop_database(name)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
