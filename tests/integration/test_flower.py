"""Flower against our broker (issue 9): started with the app (`celery -A crm_ingest.workers.app
flower`) on the cluster's Redis, it sees the worker online and, since the workers send task
events, the `process_batch` tasks that landed items went through, each SUCCESS."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli
from tests.integration.workload import write_jsonl

pytestmark = pytest.mark.integration

ITEMS = 30
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_flower(env: dict[str, str], folder: Path, port: int) -> subprocess.Popen:
    """Flower on 127.0.0.1 only, without authentication; Flower 2 refuses its API without auth
    unless FLOWER_UNAUTHENTICATED_API is set."""
    celery = Path(sys.executable).with_name("celery")
    log = (folder / "flower.log").open("ab")
    return subprocess.Popen(
        [str(celery), "-A", "crm_ingest.workers.app", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={**env, "FLOWER_UNAUTHENTICATED_API": "true"}, cwd=folder, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def poll(check, what: str, log: Path):
    """Call `check` until it returns something truthy; fail with Flower's log after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    last = None
    while True:
        try:
            last = check()
        except httpx.HTTPError as exc:  # not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"Flower never showed {what}: {last!r}\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def test_flower_sees_worker_and_tasks(cluster, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "flower.log"
    flower = start_flower(cluster.env, tmp_path, port)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            # Given Flower listening on the same broker, before any task ran
            poll(lambda: http.get("/healthcheck").status_code == 200, "its healthcheck", log)

            # When a worker runs and items are landed through it
            cluster.worker("w1")
            rows = [{"external_id": f"f{i}", "fields": {"email": f"f{i}@example.com", "first_name": f"F{i}"}}
                    for i in range(ITEMS)]
            run_cli(cluster.env, "land", "--source", "list",
                    str(write_jsonl(tmp_path / "items.jsonl", rows)), "--wait")

            # Then Flower lists the worker, online
            def worker_online():
                response = http.get("/api/workers", params={"refresh": 1})
                response.raise_for_status()
                names = [name for name in response.json() if name.startswith("w1@")]
                if not names:
                    return None
                status = http.get("/api/workers", params={"status": 1}).json()
                return names if all(status.get(name) for name in names) else None

            assert len(poll(worker_online, "the worker online", log)) == 1

            # And the batch tasks, seen from their events, succeeded
            def batches_succeeded():
                response = http.get("/api/tasks", params={"taskname": "crm_ingest.process_batch"})
                response.raise_for_status()
                tasks = response.json()
                states = [task["state"] for task in tasks.values()]
                return tasks if states and all(state == "SUCCESS" for state in states) else None

            tasks = poll(batches_succeeded, "process_batch tasks in SUCCESS", log)
            assert {task["name"] for task in tasks.values()} == {"crm_ingest.process_batch"}
            assert all(task["worker"].startswith("w1@") for task in tasks.values())
    finally:
        stop(flower)
