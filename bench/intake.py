"""Benchmark: sustained web-form submissions per second through `ingest serve --workers 2`
(uvicorn) on PostgreSQL + Redis, with a Celery worker turning them into leads as they come, from
a load generator on loopback; client-side latency, and afterwards an exact check that every
accepted submission is in the database exactly once. Next to it, in the same run, the same
generator against `GET /health/live` (touches nothing): the ceiling of uvicorn plus the generator
on this machine, which the intake figures are given as a ratio of.

    .venv/bin/python bench/intake.py [--seconds 60] [--connections 32] [--baseline-seconds 15]
                                     [--worker-concurrency 1] [--no-worker] [--json]

Needs the machine's PostgreSQL (TEST_PG_ADMIN_URL) and Redis (TEST_REDIS_URL, database 10,
flushed at start) and psutil (`pip install -e '.[bench]'`). Never run as a test; nothing in it
asserts a time. Exit status 1 when a submission was lost, duplicated or left unprocessed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

# The process and database helpers of the import benchmark, its sibling (bench/ is on sys.path
# when a script in it runs).
from import_list import _claim_redis_db, _kill_group, _tree, _vm_hwm

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Database 10: the tests use 7, bench/pipeline.py 8, bench/import_list.py 9.
REDIS_DB = 10
FORM = "bench"
MB = 1024 * 1024
SAMPLE_SECONDS = 0.5
WARMUP_FIRST, LOAD_FIRST = 0, 10_000_000  # person numbers of each phase, so no email repeats

CONFIG = f"""
[api]
rate_per_ip_per_minute = 1000000000
daily_cap_per_ip = 1000000000

[forms.{FORM}]
fields = {{ email = "email", name = "full_name", company = "company", message = "message" }}
required = ["email", "name"]
campaign = "Bench"
rate_per_minute = 1000000000
daily_cap = 1000000000
"""

# -- the people who fill in the form ---------------------------------------------------------------

FIRST = ["Anna", "Erik", "Maria", "Lars", "Karin", "Johan", "Sara", "Anders", "Emma", "Nils",
         "Oliver", "Amelia", "George", "Sophie", "Thomas", "Priya", "Carlos", "Hannah", "Wei"]
COMPANIES = [("Nordvik Bygg AB", "nordvik.example"), ("Solberga Data AB", "solberga.example"),
             ("Blue Harbour Logistics Ltd", "blueharbour.example"),
             ("Redwood Analytics Inc.", "redwood.example"), ("Fjällteknik HB", "fjallteknik.example")]
CONSONANTS, VOWELS = "bdfghklmnprstvz", "aeiou"


def surname(n: int) -> str:
    """A made-up surname, different for every n: people the matching engine must not pair."""
    syllables = []
    while True:
        n, rest = divmod(n, len(CONSONANTS) * len(VOWELS))
        syllables.append(CONSONANTS[rest // len(VOWELS)] + VOWELS[rest % len(VOWELS)])
        if n == 0 and len(syllables) >= 3:
            break
    return "".join(syllables).capitalize()


def submission(n: int) -> dict[str, str]:
    first, (company, domain) = FIRST[n % len(FIRST)], COMPANIES[n % len(COMPANIES)]
    last = surname(n)
    return {"email": f"{first}.{last}@{domain}".lower(), "name": f"{first} {last}",
            "company": company, "message": f"Please call me about prices (#{n})."}


# -- the load generator (a child process: `--_generate SPEC`) --------------------------------------

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes): just enough HTTP/1.1 for uvicorn's answers."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    close = headers.get("connection") == "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body, close = await reader.read(), True
    return status, body, close


def _request(spec: dict, n: int) -> bytes:
    host = f"Host: 127.0.0.1:{spec['port']}\r\n"
    if spec["kind"] == "live":
        return f"GET /health/live HTTP/1.1\r\n{host}\r\n".encode()
    body = json.dumps(submission(n)).encode()
    return (f"POST /forms/{FORM} HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _generate(spec: dict) -> dict:
    """`connections` keep-alive connections, each sending its next request when the last one is
    answered, for `seconds`. One record per request: [sent at s, latency s, status, n, item id];
    status 0 is no answer (connection lost or timeout: the server may or may not have it)."""
    records: list[list] = []
    samples: dict[int, str] = {}
    numbers = iter(range(spec["first"], 1 << 62))
    start = time.perf_counter()
    deadline = start + spec["seconds"]

    async def connection() -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
            n = next(numbers)
            request = _request(spec, n)
            sent = time.perf_counter()
            try:
                writer.write(request)
                status, body, close = await asyncio.wait_for(_read_response(reader),
                                                             spec["request_timeout"])
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError):
                status, body, close = 0, b"", True
            item = json.loads(body).get("item") if status == 202 else None
            records.append([round(sent - start, 6), round(time.perf_counter() - sent, 6), status,
                            n, item])
            if status not in (0, 200, 202) and status not in samples:
                samples[status] = body[:500].decode("utf-8", "replace")
            if close:
                writer.close()
                writer = None

    await asyncio.gather(*(connection() for _ in range(spec["connections"])))
    return {"elapsed": time.perf_counter() - start, "records": records,
            "error_bodies": {str(k): v for k, v in samples.items()}}


def child_generate(spec_json: str) -> None:
    spec = json.loads(spec_json)
    result = asyncio.run(_generate(spec))
    result["peak_rss_mb"] = round((_vm_hwm(os.getpid()) or 0) / MB, 1)  # its own, not the fork's
    Path(spec["out"]).write_text(json.dumps(result))


# -- processes, memory and CPU ---------------------------------------------------------------------





def _cpu_seconds(procs) -> float:
    import psutil

    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def cpu_snapshot(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each of our process trees, of every PostgreSQL and Redis process
    (all databases: others' too), and of the whole machine (busy, not idle or iowait)."""
    import psutil

    snap = {label: _cpu_seconds(_tree(pid)) for label, pid in roots.items()}
    by_name: dict[str, list] = {"postgres": [], "redis": []}
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name.startswith("postgres"):
            by_name["postgres"].append(proc)
        elif name.startswith("redis-server"):
            by_name["redis"].append(proc)
    snap.update({label: _cpu_seconds(procs) for label, procs in by_name.items()})
    times = psutil.cpu_times()
    snap["machine"] = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    return snap


class PeakRss:
    """Samples the RSS of every process under the roots; at the end, each one's peak (VmHWM,
    exact, for those still alive)."""

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}
        self.peaks: dict[int, list] = {}  # pid -> [label, kind, bytes]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(hwm=True)

    def _sample(self, hwm: bool = False) -> None:
        import psutil

        for label, root in list(self.roots.items()):
            for proc in _tree(root):
                try:
                    rss = proc.memory_info().rss
                    kind = self._kind(label, proc, root)
                except psutil.Error:
                    continue
                if hwm:
                    rss = max(rss, _vm_hwm(proc.pid) or 0)
                entry = self.peaks.setdefault(proc.pid, [label, kind, 0])
                entry[2] = max(entry[2], rss)

    @staticmethod
    def _kind(label: str, proc, root: int) -> str:
        if proc.pid == root:
            return "main"
        if label.startswith("celery"):
            return "pool process"
        cmdline = " ".join(proc.cmdline())
        return "resource tracker" if "resource_tracker" in cmdline else "worker"

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def mb(self) -> dict[str, float]:
        """{'uvicorn main': MB, 'uvicorn worker 1': MB, ...}, numbered where there are several."""
        kinds = Counter((label, kind) for label, kind, _ in self.peaks.values())
        seen: Counter = Counter()
        out = {}
        for pid in sorted(self.peaks):
            label, kind, peak = self.peaks[pid]
            seen[label, kind] += 1
            number = f" {seen[label, kind]}" if kinds[label, kind] > 1 else ""
            out[f"{label} {kind}{number}"] = round(peak / MB, 1)
        return out




class Stack:
    """The fresh database, the Redis database, `ingest serve --workers 2` and the Celery worker;
    `close` stops every process and drops the database, whatever happened."""

    def __init__(self, folder: Path, worker_concurrency: int) -> None:
        self.folder = folder
        self.worker_concurrency = worker_concurrency
        self.procs: dict[str, subprocess.Popen] = {}
        self.db_name: str | None = None
        self.url = ""
        self.redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379") + f"/{REDIS_DB}"
        self.port = _free_port()
        self.env: dict[str, str] = {}

    def open(self) -> None:
        import psycopg
        import redis

        sys.path.insert(0, str(ROOT))
        from crm_ingest.models.migrate import upgrade

        self.db_name = f"crm_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.db_name}"
        upgrade(self.url)
        _claim_redis_db(redis.Redis.from_url(self.redis_url))
        config = self.folder / "ingest.toml"
        config.write_text(CONFIG + os.environ.get("BENCH_INGEST_TOML", ""), encoding="utf-8")
        self.env = {**os.environ, "DATABASE_URL": self.url, "REDIS_URL": self.redis_url,
                    "INGEST_CONFIG": str(config), "INGEST_FORM_SECRET": secrets.token_hex(16),
                    "INGEST_API_TOKENS": secrets.token_hex(16), "PYTHONUNBUFFERED": "1"}

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "crm_ingest.cli", *args], env=self.env,
                                cwd=self.folder, stdout=(self.folder / f"{name}.out").open("wb"),
                                stderr=(self.folder / f"{name}.err").open("wb"),
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_server(self) -> int:
        proc = self._spawn("serve", ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--workers", "2"])
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ingest serve did not start:\n" + self.log_tail("serve"))
            time.sleep(0.3)
        for _ in range(20):  # both uvicorn workers make their runtime before the load starts
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5).close()
        return proc.pid

    def start_worker(self) -> int:
        proc = self._spawn("worker", ["worker", "--concurrency", str(self.worker_concurrency),
                                      "-n", "bench-intake@%h", "--without-gossip",
                                      "--without-mingle"])
        deadline = time.monotonic() + 90
        while "ready." not in self.log_tail("worker", chars=None):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ingest worker did not start:\n" + self.log_tail("worker"))
            time.sleep(0.2)
        return proc.pid

    def log_tail(self, name: str, chars: int | None = 3000) -> str:
        """The process's stderr then stdout; the last `chars` of them (None: all)."""
        text = "".join((self.folder / f"{name}.{ext}").read_text(errors="replace")
                       for ext in ("err", "out") if (self.folder / f"{name}.{ext}").exists())
        return text if chars is None else text[-chars:]

    def close(self) -> None:
        for proc in self.procs.values():
            _kill_group(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc.pid, signal.SIGKILL)  # pool and uvicorn children too
            proc.wait(timeout=20)
        if self.db_name:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        try:
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()
        except Exception as exc:  # noqa: BLE001 - tidying up only
            _say(f"could not flush Redis database {REDIS_DB}: {exc}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




# -- one phase of load -----------------------------------------------------------------------------

def run_phase(stack: Stack, roots: dict[str, int], name: str, kind: str,
              seconds: float, args: argparse.Namespace, first: int = 0) -> dict:
    """Run the generator in its own process for `seconds`: its records, its own peak RSS
    (VmHWM) and CPU (wait4), and the CPU each other process group used meanwhile."""
    out = stack.folder / f"{name}.records.json"
    spec = {"kind": kind, "port": stack.port, "seconds": seconds, "connections": args.connections,
            "first": first, "request_timeout": args.request_timeout, "out": str(out)}
    before = cpu_snapshot(roots)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_generate",
                             json.dumps(spec)], stderr=(stack.folder / f"{name}.generator.err").open("wb"),
                            start_new_session=True)
    timer = threading.Timer(seconds + args.request_timeout + 60,
                            lambda: _kill_group(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    wall = time.perf_counter() - started
    after = cpu_snapshot(roots)
    if proc.returncode != 0:
        raise RuntimeError(f"the generator of {name} exited {proc.returncode}:\n"
                           + (stack.folder / f"{name}.generator.err").read_text(errors="replace")[-3000:])
    result = json.loads(out.read_text())
    cpu = {label: after[label] - before[label] for label in before}
    cpu["generator"] = usage.ru_utime + usage.ru_stime
    ours = sum(v for k, v in cpu.items() if k != "machine")
    cpu["everything else"] = max(0.0, cpu["machine"] - ours)
    return {"name": name, "kind": kind, "seconds": seconds, "elapsed": result["elapsed"],
            "records": result["records"], "error_bodies": result["error_bodies"],
            "generator_peak_rss_mb": result["peak_rss_mb"],
            "cores": {label: round(v / wall, 2) for label, v in cpu.items()}}


def summarize(phase: dict) -> dict:
    """Rates and client-side latency of the answers that succeeded (202 or 200)."""
    ok_status = 202 if phase["kind"] == "form" else 200
    records = phase["records"]
    ok = [r for r in records if r[2] == ok_status]
    latencies = sorted(r[1] for r in ok)
    per_second = Counter(int(r[0] + r[1]) for r in ok)
    full_seconds = [per_second.get(s, 0) for s in range(int(phase["elapsed"]))]
    statuses = Counter("no answer" if r[2] == 0 else str(r[2]) for r in records)
    return {"phase": phase["name"], "seconds": round(phase["elapsed"], 2), "requests": len(records),
            "ok": len(ok), "per_s": round(len(ok) / phase["elapsed"], 1),
            "per_s_median_of_seconds": statistics.median(full_seconds) if full_seconds else 0,
            "p50_ms": _ms(_quantile(latencies, 0.50)), "p90_ms": _ms(_quantile(latencies, 0.90)),
            "p99_ms": _ms(_quantile(latencies, 0.99)), "max_ms": _ms(latencies[-1] if latencies else None),
            "statuses": dict(sorted(statuses.items())), "error_bodies": phase["error_bodies"],
            "cores": phase["cores"], "generator_peak_rss_mb": phase["generator_peak_rss_mb"]}


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # nearest rank


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# -- the database afterwards -----------------------------------------------------------------------

def unfinished(url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute("SELECT count(*) FILTER (WHERE state IN ('pending', 'processing')), "
                            "count(*) FROM raw_items").fetchone()


def drain(url: str, timeout: float) -> dict:
    """Wait until no raw item is pending or processing; how long it took."""
    started = time.perf_counter()
    left, total = unfinished(url)
    at_start = left
    while left and time.perf_counter() - started < timeout:
        time.sleep(0.25)
        left, total = unfinished(url)
    return {"seconds": round(time.perf_counter() - started, 1), "unfinished_at_start": at_start,
            "unfinished": left, "raw_items": total}


def check_database(url: str, phases: list[dict]) -> dict:
    """Every submission sent, by what it was answered, next to what the database holds."""
    import psycopg

    sent: dict[str, tuple[int, int | None]] = {}  # email -> (status, item id returned)
    for phase in (p for p in phases if p["kind"] == "form"):
        for _, _, status, n, item in phase["records"]:
            sent[submission(n)["email"]] = (status, item)
    with psycopg.connect(url, connect_timeout=10) as conn:
        raw = conn.execute("SELECT lower(payload->'fields'->>'email'), id, state, outcome, "
                           "record_type, record_id FROM raw_items WHERE source = 'web'").fetchall()
        leads = conn.execute("SELECT lower(email), id FROM leads").fetchall()
        counted = dict(conn.execute("SELECT outcome, sum(count)::bigint FROM intake_counts "
                                    "WHERE form = %s GROUP BY outcome", (FORM,)).fetchall())
        outcomes = conn.execute("SELECT state, coalesce(outcome, '-'), count(*) FROM raw_items "
                                "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    raw_by_email: dict[str, list] = {}
    for email, *row in raw:
        raw_by_email.setdefault(email, []).append(row)
    leads_by_email: dict[str, list[int]] = {}
    for email, lead_id in leads:
        leads_by_email.setdefault(email, []).append(lead_id)

    accepted = [e for e, (status, _) in sent.items() if status == 202]
    unanswered = [e for e, (status, _) in sent.items() if status == 0]
    refused = [e for e, (status, _) in sent.items() if status not in (0, 202)]
    report = {
        "sent": len(sent), "accepted (202)": len(accepted),
        "accepted, not in raw_items (lost)": sum(1 for e in accepted if e not in raw_by_email),
        "accepted, no lead (lost)": sum(1 for e in accepted if e not in leads_by_email),
        "in raw_items more than once (duplicated)": sum(1 for rows in raw_by_email.values() if len(rows) > 1),
        "leads more than once (duplicated)": sum(1 for ids in leads_by_email.values() if len(ids) > 1),
        "item id answered is not the row's": sum(
            1 for e in accepted if e in raw_by_email and sent[e][1] not in [r[0] for r in raw_by_email[e]]),
        "accepted, item not created as its lead": sum(
            1 for e in accepted if e in raw_by_email and e in leads_by_email and not any(
                r[2] == "created" and r[3] == "lead" and r[4] in leads_by_email[e] for r in raw_by_email[e])),
        "refused (non-202), yet in raw_items": sum(1 for e in refused if e in raw_by_email),
        "no answer": len(unanswered),
        "no answer, in raw_items": sum(1 for e in unanswered if e in raw_by_email),
        "rows not sent by us (raw_items / leads)": (sum(1 for e in raw_by_email if e not in sent),
                                                    sum(1 for e in leads_by_email if e not in sent)),
        "intake_counts of the form": counted,
        "raw_items by state/outcome": {f"{state}/{outcome}": n for state, outcome, n in outcomes},
    }
    bad = [k for k in report if ("lost" in k or "duplicated" in k or "not the row" in k
                                 or "not created" in k or "yet in" in k) and report[k]]
    if counted.get("landed", 0) != len(raw_by_email):
        bad.append("intake_counts 'landed' differs from the rows landed")
    report["problems"] = bad
    return report


# -- the report ------------------------------------------------------------------------------------

def print_report(result: dict) -> None:
    s = result["settings"]
    print(f"\nintake: ingest serve --workers 2 (uvicorn), {s['connections']} keep-alive connections "
          f"from one asyncio generator process on loopback; Celery worker "
          + ("running during the load" if s["worker_during_load"] else "started after the load")
          + f" (--concurrency {s['worker_concurrency']}); {s['cpus']} CPUs")
    print(f"server: {result['postgres']}")
    header = (f"{'phase':<36} | {'s':>5} | {'ok/s':>7} | {'median 1-s':>10} | {'p50 ms':>7} | "
              f"{'p90 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | answers")
    print(header)
    print("-" * len(header))
    labels = {"baseline": "GET /health/live (baseline)", "load": f"POST /forms/{FORM} (JSON, 202)",
              "warmup": f"POST /forms/{FORM} warm-up (untimed)"}
    for p in result["phases"]:
        print(f"{labels[p['phase']]:<36} | {p['seconds']:5.0f} | {p['per_s']:7,.1f} | "
              f"{p['per_s_median_of_seconds']:10,.0f} | {_f(p['p50_ms'])} | {_f(p['p90_ms'])} | "
              f"{_f(p['p99_ms'])} | {_f(p['max_ms'])} | "
              + ", ".join(f"{k}: {v}" for k, v in p["statuses"].items()))
    r = result["ratios"]
    print(f"intake / baseline: {r['per_s']:.2f}x the requests/s, p50 {r['p50']:.1f}x, p99 {r['p99']:.1f}x")
    for p in result["phases"]:
        for status, body in p["error_bodies"].items():
            print(f"  {p['phase']}: a {status} answer said: {body[:300]!r}")
    print("\nCPU cores used during each phase (busy CPU-seconds / wall seconds; postgres and redis "
          "are every process of that name, other databases' too):")
    for p in result["phases"]:
        print(f"  {p['phase']:<9} " + ", ".join(f"{k} {v:.2f}" for k, v in p["cores"].items()))
    d = result["drain"]
    print(f"\nafter the load: {d['unfinished_at_start']} items not yet processed; all processed "
          f"{d['seconds']} s after the load ended" + (f" (worker started then, ready after "
                                                      f"{result['worker_start_s']} s)" if not s["worker_during_load"] else "")
          + (f"; STILL UNFINISHED: {d['unfinished']}" if d["unfinished"] else ""))
    e2e = result["end_to_end"]
    print(f"end to end: {e2e['processed']} items landed and processed in {e2e['seconds']} s "
          f"(load + drain) = {e2e['per_s']:,.1f} items/s")
    print("\npeak RSS per process (MB): " + ", ".join(f"{k} {v}" for k, v in result["peak_rss_mb"].items()))
    print("\nin the database afterwards:")
    for key, value in result["integrity"].items():
        if key != "problems":
            print(f"  {key}: {value}")
    problems = result["integrity"]["problems"] + (["unprocessed items"] if d["unfinished"] else [])
    print("\nINTEGRITY: " + ("OK: every accepted submission is in the database exactly once"
                             if not problems else "FAILED: " + "; ".join(problems)))
    print(f"logs: {result['logs']}")


def _f(value: float | None) -> str:
    return f"{'-':>7}" if value is None else f"{value:7.1f}"


def _postgres_settings(url: str) -> str:
    import psycopg

    names = ("server_version", "max_connections", "shared_buffers", "synchronous_commit", "fsync")
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return ", ".join(f"{n}={conn.execute(f'SHOW {n}').fetchone()[0]}" for n in names)


def run(args: argparse.Namespace, folder: Path) -> dict:
    stack = Stack(folder, args.worker_concurrency)
    rss = PeakRss()
    try:
        stack.open()
        roots = {"server": stack.start_server()}
        rss.roots["uvicorn"] = roots["server"]
        if not args.no_worker:
            roots["worker"] = rss.roots["celery worker"] = stack.start_worker()
        rss.start()
        _say("warm-up: 3 s of submissions (checked with the rest, not timed)")
        phases = [run_phase(stack, roots, "warmup", "form", 3, args, WARMUP_FIRST)]
        if not args.no_worker:
            drain(stack.url, args.drain_timeout)
        _say(f"baseline: GET /health/live for {args.baseline_seconds} s")
        phases.append(run_phase(stack, roots, "baseline", "live", args.baseline_seconds, args))
        _say(f"load: POST /forms/{FORM} for {args.seconds} s")
        phases.append(run_phase(stack, roots, "load", "form", args.seconds, args, LOAD_FIRST))
        load_ended = time.perf_counter()
        worker_start_s = None
        if args.no_worker:
            roots["worker"] = rss.roots["celery worker"] = stack.start_worker()
            worker_start_s = round(time.perf_counter() - load_ended, 1)
        _say("draining: waiting until every landed item is processed")
        drained = drain(stack.url, args.drain_timeout)
        drained["seconds"] = round(time.perf_counter() - load_ended, 1)
        rss.stop()
        _say("checking the database")
        integrity = check_database(stack.url, phases)
        postgres = _postgres_settings(stack.url)
    finally:
        try:
            stack.close()
        finally:
            if rss._thread.is_alive():
                rss.stop()
    summaries = [summarize(p) for p in phases]
    base, load = summaries[1], summaries[2]
    processed = len([r for r in phases[2]["records"] if r[2] == 202])
    total_s = phases[2]["elapsed"] + drained["seconds"]
    return {
        "settings": {"seconds": args.seconds, "baseline_seconds": args.baseline_seconds,
                     "connections": args.connections, "worker_concurrency": args.worker_concurrency,
                     "worker_during_load": not args.no_worker, "cpus": os.cpu_count()},
        "postgres": postgres,
        "phases": summaries,
        "ratios": {"per_s": round(load["per_s"] / base["per_s"], 4) if base["per_s"] else 0,
                   "p50": round((load["p50_ms"] or 0) / (base["p50_ms"] or 1), 2),
                   "p99": round((load["p99_ms"] or 0) / (base["p99_ms"] or 1), 2)},
        "drain": drained, "worker_start_s": worker_start_s,
        "end_to_end": {"processed": processed, "seconds": round(total_s, 1),
                       "per_s": round(processed / total_s, 1)},
        "peak_rss_mb": {**rss.mb(), "generator (load phase)": load["generator_peak_rss_mb"]},
        "integrity": integrity,
        "logs": str(folder),
    }


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--_generate":
        child_generate(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of the load (default 60)")
    parser.add_argument("--baseline-seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=32,
                        help="concurrent keep-alive connections of the generator (default 32)")
    parser.add_argument("--worker-concurrency", type=int, default=1,
                        help="pool processes of the one Celery worker (default 1)")
    parser.add_argument("--no-worker", action="store_true",
                        help="no worker during the load (intake alone); start it after, then drain")
    parser.add_argument("--request-timeout", type=float, default=30)
    parser.add_argument("--drain-timeout", type=float, default=1200)
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the folder of logs even when everything checked out")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` cleans up

    folder = Path(tempfile.mkdtemp(prefix="crm_bench_intake_"))
    _say(f"logs and records in {folder}")
    result = run(args, folder)
    problems = result["integrity"]["problems"] or result["drain"]["unfinished"]
    errors = any(k != "202" and k != "200" for p in result["phases"] for k in p["statuses"])
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_report(result)
    if not (args.keep_logs or problems or errors):
        shutil.rmtree(folder, ignore_errors=True)
        _say(f"removed {folder} (nothing went wrong; --keep-logs keeps it)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
