"""A list import on PostgreSQL + Redis whose worker is killed mid-import ends with the same
counts as the same file imported on the embedded path without interruption."""
from __future__ import annotations

import csv
import json
import os
import time

import pytest
from sqlalchemy import func, select

from crm_ingest.models import DONE, RawItem
from tests.conftest import run_cli
from tests.integration.workload import batch_in_flight

pytestmark = pytest.mark.integration


def write_big_list(path, rows: int = 12_000):
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["First Name", "Last Name", "E-mail Address", "Mobile Phone", "Company"])
        for i in range(rows):
            person = i if i % 20 else i // 2  # every 20th row repeats an earlier person
            email = f"p{person}@example{person % 40}.com" if i % 97 else "broken@"
            writer.writerow([f"P{person}", "List", email.upper() if i % 7 == 0 else email, "", "Firma AB"])
    return path


def test_worker_killed_mid_import_gives_the_same_counts_as_an_uninterrupted_run(cluster, tmp_path, pg_url,
                                                                               sessions_for):
    listing = write_big_list(tmp_path / "list.csv")

    # Reference: the embedded path, no interruption
    reference_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "INGEST_CONFIG")}
    reference_env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = json.loads(run_cli(reference_env, "import", str(listing), "--campaign", "C", "--json",
                                   cwd=tmp_path).stdout)

    # Given one worker and the sweeper, and the import queued
    cluster.worker("w1")
    cluster.beat()
    run_cli(cluster.env, "import", str(listing), "--campaign", "C", "--json")
    sessions = sessions_for(pg_url)

    # When the worker is killed while it is writing a batch, and started again
    deadline = time.monotonic() + 60
    while not batch_in_flight(sessions) and time.monotonic() < deadline:
        time.sleep(0.005)
    cluster.kill("w1")
    with sessions() as session:
        done_at_kill = session.scalar(select(func.count()).select_from(RawItem).where(RawItem.state == DONE))
    assert done_at_kill < 12_000, "the import finished before the kill; the test proves nothing"
    cluster.worker("w1")

    # Then, once every row has an outcome, the counts equal the uninterrupted run's
    result = json.loads(run_cli(cluster.env, "import", str(listing), "--campaign", "C", "--wait", "--json").stdout)
    assert result["already_imported"]
    assert result["counts"] == reference["counts"]
    assert reference["counts"]["rows"] == 12_000 and reference["counts"]["rejected"] > 100
