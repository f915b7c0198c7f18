"""Shared fixtures: a fresh PostgreSQL database and Redis per test, real worker processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from click.testing import CliRunner

from crm_ingest import runtime as runtime_module
from crm_ingest.cli import main
from crm_ingest.models import make_engine, make_session_factory
from crm_ingest.models.migrate import upgrade

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = 7
INGEST = [sys.executable, "-m", "crm_ingest.cli"]


@pytest.fixture
def pg_url():
    """A new, migrated PostgreSQL database, dropped afterwards."""
    name = f"crm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    upgrade(url)
    return url


@pytest.fixture
def redis_url():
    url = f"{REDIS_BASE}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def sessions_for():
    engines = []

    def make(url: str):
        engine = make_engine(url)
        engines.append(engine)
        return make_session_factory(engine)

    yield make
    for engine in engines:
        engine.dispose()


FAST_PIPELINE = """
[pipeline]
batch_size = {batch_size}
max_attempts = {max_attempts}
lease_seconds = 8
task_time_limit_seconds = 6
sweep_interval_seconds = 1
requeue_after_seconds = 10
retry_backoff_seconds = 0.2
retry_backoff_max_seconds = 1
"""


def write_config(folder: Path, max_attempts: int = 5, extra: str = "", batch_size: int = 250) -> Path:
    path = folder / "ingest.toml"
    path.write_text(FAST_PIPELINE.format(max_attempts=max_attempts, batch_size=batch_size) + extra, encoding="utf-8")
    return path


class Processes:
    """Real `ingest worker` / `ingest beat` processes, each in its own process group."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str], ready: str | None) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen(INGEST + args, env=self.env, cwd=self.folder, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        if ready:
            deadline = time.monotonic() + 60
            while ready not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        return proc

    def worker(self, name: str, concurrency: int = 1) -> subprocess.Popen:
        return self._start(name, ["worker", "--concurrency", str(concurrency), "-n", f"{name}@%h",
                                  "--without-gossip", "--without-mingle"], ready="ready.")

    def beat(self, name: str = "beat") -> subprocess.Popen:
        return self._start(name, ["beat"],
                           ready="beat: Starting")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process's group; one still there after 30 s is killed outright, so no
        worker outlives its test to take the next test's tasks from the shared Redis database."""
        proc = self.procs.pop(name)
        for signum in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # the group's children too (a worker's pool child), whether or not the leader waited
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if self.procs[name].poll() is None else signal.SIGKILL)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def cluster(tmp_path, pg_url, redis_url):
    """Environment for real processes on PostgreSQL + Redis; stops every process afterwards."""
    config = write_config(tmp_path)
    env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": redis_url,
           "INGEST_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    procs = Processes(env, tmp_path)
    yield procs
    procs.stop_all()


def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    result = subprocess.run(INGEST + list(args), env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"ingest {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `ingest` in a fresh folder against a fresh SQLite file, with a fresh runtime each call."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    runner = CliRunner()

    def invoke(*args: str):
        runtime_module._for_pid.cache_clear()
        return runner.invoke(main, list(args), catch_exceptions=False)

    yield invoke
    try:
        runtime_module.runtime().engine.dispose()
    except Exception:  # noqa: BLE001 - a test may have left a bad config behind on purpose
        pass
    runtime_module._for_pid.cache_clear()


def guard_leads(session, name: str, plpgsql: str) -> None:
    """A BEFORE INSERT trigger on leads running `plpgsql` (PostgreSQL), as a DBA's might: how
    tests make the database refuse one lead, or all of them, the way production can."""
    from sqlalchemy import text

    session.execute(text(f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {plpgsql} RETURN NEW; END "
                         "$$ LANGUAGE plpgsql"))
    session.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION {name}()"))


def refuse_lead(session, email: str) -> None:
    """The database refuses the lead with this email ('poison lead refused')."""
    guard_leads(session, "refuse_poison",
                f"IF NEW.email = '{email}' THEN RAISE EXCEPTION 'poison lead refused'; END IF;")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Every test starts with fresh in-process rate-limit counters (wrong tokens are counted per
    address, and every TestClient is the same address)."""
    intake = sys.modules.get("crm_ingest.api.intake")
    if intake is not None:
        intake._counter = None
    yield
