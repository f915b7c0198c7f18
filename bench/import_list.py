"""Benchmark: importing a purchased list (CSV) with `ingest import --wait` (2 worker processes,
PostgreSQL + Redis) next to a PostgreSQL COPY + INSERT ... ON CONFLICT and a dlt merge load of the
same file, measured in the same run on fresh databases: wall time, rows/s and peak RSS per process.

    .venv/bin/python bench/import_list.py [--rows 1000000] [--existing 200000] [--repeat 1]
                                          [--skip-dlt] [--skip-copy] [--keep-file DIR]

Needs the machine's PostgreSQL (TEST_PG_ADMIN_URL) and Redis (TEST_REDIS_URL, database 8) and
`pip install -e '.[bench]'` (dlt, psutil). Never run as a test.
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Database 9: bench/pipeline.py uses 8 and the tests 7, and each flushes its own at start.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379") + "/9"
HEADER = ["First Name", "Last Name", "E-mail Address", "Mobile Phone", "Company", "Job Title",
          "City", "Country"]
COLUMNS = ["first_name", "last_name", "email", "mobile_phone", "company", "job_title", "city",
           "country"]
SAMPLE_SECONDS = 0.2
MB = 1024 * 1024

# -- the list --------------------------------------------------------------------------------------

SV_FIRST = ["Anna", "Eva", "Maria", "Karin", "Sara", "Lena", "Emma", "Johanna", "Ingrid", "Åsa",
            "Linnéa", "Maja", "Elsa", "Ebba", "Sofia", "Erik", "Lars", "Karl", "Anders", "Johan",
            "Per", "Nils", "Mikael", "Björn", "Göran", "Håkan", "Jörgen", "Oskar", "Gustav",
            "Måns", "Olof", "Ulf", "Linus", "Viktor", "Agnes", "Märta", "Tove", "Ronja"]
SV_LAST = ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
           "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Lindberg", "Lindström",
           "Bergström", "Sjöberg", "Åberg", "Öberg", "Holmqvist", "Lundgren", "Wallin", "Hägg",
           "Björk", "Ekström", "Sandström", "Forsberg", "Nyström", "Söderberg", "Lindqvist"]
EN_FIRST = ["James", "Oliver", "Harry", "George", "Jack", "William", "Thomas", "Michael", "David",
            "John", "Robert", "Daniel", "Olivia", "Amelia", "Emily", "Charlotte", "Sophie",
            "Jessica", "Sarah", "Emma", "Jennifer", "Elizabeth", "Megan", "Chloe", "Hannah",
            "Patrick", "Siobhan", "Aisha", "Priya", "Mohammed", "Wei", "Carlos", "Zoë"]
EN_LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
           "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
           "Hall", "Wood", "Jackson", "Clarke", "Miller", "Davis", "Garcia", "Martinez",
           "O'Brien", "McDonald", "Patel", "Khan", "Nguyen", "Anderson", "Murphy", "Kelly"]
SV_COMPANY_A = ["Nordvik", "Solberga", "Fjäll", "Skog", "Havs", "Älv", "Berg", "Lind", "Ek",
                "Norr", "Väst", "Öst", "Sjö", "Sten", "Granit", "Mälar", "Vätter", "Kust"]
SV_COMPANY_B = ["Bygg", "Data", "Konsult", "Teknik", "Logistik", "Fastigheter", "Energi",
                "Media", "Vård", "Transport", "Revision", "Design", "Invest", "Mekaniska"]
SV_COMPANY_C = [" AB", " AB", " AB", " Aktiebolag", " & Co AB", " Sverige AB", " HB", " Group AB"]
EN_COMPANY_A = ["Northwind", "Blue Harbour", "Acme", "Redwood", "Silverline", "Oakfield",
                "Brightstone", "Highgate", "Kingsbridge", "Summit", "Ironclad", "Evergreen",
                "Pinnacle", "Crescent", "Harbor Point", "Lakeside", "Westbrook", "Granite"]
EN_COMPANY_B = ["Software", "Logistics", "Consulting", "Analytics", "Foods", "Media",
                "Engineering", "Capital", "Health", "Systems", "Energy", "Retail", "Labs"]
EN_COMPANY_C = [" Ltd", " Ltd.", " plc", " Limited", " Inc.", " Inc", " LLC", " Corp.", " Group",
                ""]
TITLES = ["CEO", "CTO", "CFO", "VD", "Ekonomichef", "Inköpschef", "IT-chef", "Säljchef",
          "Marknadschef", "Projektledare", "Head of Marketing", "Marketing Manager",
          "Sales Director", "Procurement Manager", "IT Manager", "Office Manager",
          "Operations Director", "Software Engineer", "HR Manager", "Account Manager",
          "VP Sales", "Founder", "Managing Director", "Controller", ""]
CITIES = {"SE": ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås", "Örebro", "Linköping",
                 "Umeå", "Luleå", "Jönköping", "Norrköping", "Lund", "Gävle", "Sundsvall"],
          "GB": ["London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Edinburgh", "Bristol",
                 "Cardiff", "Liverpool", "Belfast", "Oxford", "Cambridge"],
          "US": ["New York", "San Francisco", "Boston", "Chicago", "Seattle", "Austin", "Denver",
                 "Atlanta", "Los Angeles", "Minneapolis", "Portland", "Miami"]}
COUNTRY_NAMES = {"SE": ["Sweden", "Sweden", "Sverige", "SE"],
                 "GB": ["United Kingdom", "UK", "GB", "England"],
                 "US": ["United States", "USA", "US", "United States of America"]}
US_AREAS = ["212", "415", "617", "312", "206", "512", "303", "404", "213", "612", "503", "305",
            "646", "718", "650", "408"]
FREE_MAIL = ["gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "icloud.com", "live.se",
             "telia.com", "btinternet.com", "aol.com"]
CONTACT_OFFSET = 1 << 32  # person numbers of the existing contacts, apart from the list's


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ch.isalnum() and ch.isascii())


def _phone(rng: random.Random, country: str) -> str:
    """A mobile number in one of the ways people write them in that country."""
    if country == "SE":
        n = "07" + rng.choice("02369") + "".join(rng.choices("0123456789", k=7))
        a, b, c, d = n[:3], n[3:6], n[6:8], n[8:]
        return rng.choice([f"{a}-{b} {c} {d}", f"{a} {b} {c} {d}", f"+46 {a[1:]} {b} {c} {d}",
                           f"+46{n[1:]}", f"0046 {a[1:]}-{b}{c}{d}", n, f"{a}-{b}{c}{d}"])
    if country == "GB":
        n = "07" + rng.choice("45789") + "".join(rng.choices("0123456789", k=8))
        return rng.choice([f"{n[:5]} {n[5:]}", f"+44 {n[1:5]} {n[5:]}", f"+44 (0){n[1:5]} {n[5:]}",
                           f"0044 {n[1:5]} {n[5:8]} {n[8:]}", n, f"+44{n[1:]}"])
    area = rng.choice(US_AREAS)
    exchange = str(rng.randint(201, 989))
    line = "".join(rng.choices("0123456789", k=4))
    return rng.choice([f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}",
                       f"+1 {area} {exchange} {line}", f"{area}.{exchange}.{line}",
                       f"1-{area}-{exchange}-{line}", f"+1 ({area}) {exchange}-{line}"])


def person(seed: int, number: int, *, allow_invalid: bool = True) -> dict[str, str]:
    """Person `number` of the list, always the same for the same seed (regenerated, not stored)."""
    rng = random.Random((seed << 40) ^ number)
    country = rng.choices(["SE", "GB", "US"], weights=[50, 25, 25])[0]
    swedish = (country == "SE") == (rng.random() < 0.9)
    first = rng.choice(SV_FIRST if swedish else EN_FIRST)
    last = rng.choice(SV_LAST if swedish else EN_LAST)
    if country == "SE":
        company = rng.choice(SV_COMPANY_A) + rng.choice(SV_COMPANY_B).lower() + rng.choice(SV_COMPANY_C)
        tld = "se"
    else:
        company = f"{rng.choice(EN_COMPANY_A)} {rng.choice(EN_COMPANY_B)}{rng.choice(EN_COMPANY_C)}"
        tld = "co.uk" if country == "GB" else "com"
    domain = (rng.choice(FREE_MAIL) if rng.random() < 0.25
              else _ascii(company.rsplit(" ", 1)[0] if " " in company else company) + "." + tld)
    f, l = _ascii(first), _ascii(last)
    # The number keeps emails unique; existing contacts' have a '-' that list people's never do.
    n = number if number < CONTACT_OFFSET else f"-{number - CONTACT_OFFSET}"
    local = rng.choice([f"{f}.{l}{n}", f"{f[0]}.{l}{n}", f"{f}{l}{n}", f"{f}_{l}.{n}",
                        f"{l}.{f}{n}"])
    email = f"{local}@{domain}"
    if allow_invalid and rng.random() < 0.005:  # what purchased lists always have a few of
        # ('name(at)domain' is read as the address now: a domain that does not exist instead)
        email = rng.choice([f"{local}@{domain.rsplit('.', 1)[0]}.con", f"{local}@",
                            f"{local}@{domain.split('.')[0]}", f"{local} {domain}"])
        invalid = True
    else:
        invalid = False
    if rng.random() < 0.3:
        email = email[0].upper() + email[1:]
    return {"first_name": first, "last_name": last, "email": email,
            "mobile_phone": _phone(rng, country) if rng.random() < 0.92 else "",
            "company": company, "job_title": rng.choice(TITLES),
            "city": rng.choice(CITIES[country]), "country": rng.choice(COUNTRY_NAMES[country]),
            "_country": country, "_invalid": invalid}


def _email_variant(rng: random.Random, email: str) -> str:
    return rng.choice([email, email, email.lower(), email.upper(), f" {email}", f"{email}  ",
                       email.title(), f"\t{email.lower()} "])


def write_list(path: Path, contacts_path: Path, rows: int, existing: int, seed: int) -> dict:
    """Stream the CSV (and the existing contacts as JSON Lines); nothing is kept but counters."""
    stats = {"rows": rows, "new_people": 0, "repeated_rows": 0, "existing_matches": 0,
             "existing_contacts": existing, "rows_with_invalid_email": 0}
    with contacts_path.open("w", encoding="utf-8") as out:
        for k in range(existing):
            p = person(seed, CONTACT_OFFSET + k, allow_invalid=False)
            out.write(json.dumps({"external_id": f"c{k}", "fields": {
                "first_name": p["first_name"], "last_name": p["last_name"], "email": p["email"],
                "company": p["company"]}}, ensure_ascii=False) + "\n")
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for _ in range(rows):
            r = rng.random()
            if r < 0.05 and stats["new_people"]:
                p = person(seed, rng.randrange(stats["new_people"]))
                p["email"] = _email_variant(rng, p["email"])
                if rng.random() < 0.4:  # the same person, re-keyed by another list vendor
                    p["mobile_phone"] = _phone(rng, p["_country"]) if rng.random() < 0.7 else ""
                    p["job_title"] = rng.choice(TITLES)
                stats["repeated_rows"] += 1
            elif r < 0.15 and existing:
                p = person(seed, CONTACT_OFFSET + rng.randrange(existing), allow_invalid=False)
                p["email"] = _email_variant(rng, p["email"])
                stats["existing_matches"] += 1
            else:
                p = person(seed, stats["new_people"])
                stats["new_people"] += 1
            stats["rows_with_invalid_email"] += p["_invalid"]
            writer.writerow([p[c] for c in COLUMNS])
    stats["file_mb"] = round(path.stat().st_size / MB, 1)
    return stats


# -- measuring a process tree ----------------------------------------------------------------------

def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _tree(pid: int):
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def reset_peaks(pids: list[int]) -> None:
    """Reset VmHWM (peak RSS) of these processes and their descendants (Linux, our own processes)."""
    for pid in pids:
        for proc in _tree(pid):
            try:
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            except OSError:
                pass


class Sampler:
    """Every SAMPLE_SECONDS: RSS of every process under the roots; peaks per process and of the sum."""

    def __init__(self, roots: dict[str, int], database: str | None = None) -> None:
        self.roots = roots
        self.database = database  # PostgreSQL backends serving this database count as "PostgreSQL"
        self.peaks: dict[int, list] = {}  # pid -> [label, peak bytes]
        self.sum_peak = 0
        self.cpu: dict[int, list] = {}  # pid -> [label, CPU seconds when first seen, CPU seconds last seen]
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self, backends: bool = False) -> None:
        import psutil

        total = 0
        for label, root in self.roots.items():
            for proc in _tree(root):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                entry = self.peaks.setdefault(proc.pid, [label, proc.pid == root, 0])
                entry[2] = max(entry[2], rss)
                self._cpu(proc, label)
        self.sum_peak = max(self.sum_peak, total)
        if self.database and (backends or self._samples % 5 == 0):  # the backends, about once a second
            for proc in psutil.process_iter(["name", "cmdline"]):
                if proc.info["name"] == "postgres" and f" {self.database} " in " ".join(proc.info["cmdline"] or ()):
                    self._cpu(proc, "PostgreSQL")
        self._samples += 1

    def _cpu(self, proc, label: str) -> None:
        """CPU seconds of a process since the sampling began (or since it started, if later)."""
        import psutil

        try:
            times = proc.cpu_times()
        except psutil.Error:
            return
        used = times.user + times.system
        entry = self.cpu.setdefault(proc.pid, [label, used if self._samples == 0 else 0.0, used])
        entry[2] = used

    def cpu_seconds(self, exact: dict[str, float] | None = None) -> dict[str, float]:
        """CPU seconds by label (a root and its children together; PostgreSQL's backends);
        `exact` replaces a label's figure (a root's own from wait4, with its children's)."""
        out: dict[str, float] = {}
        for label, start, last in self.cpu.values():
            out[label] = out.get(label, 0.0) + last - start
        out.update(exact or {})
        return {label: round(seconds, 1) for label, seconds in out.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def include_hwm(self) -> None:
        """Exact peaks (VmHWM, reset before the run) for processes still alive."""
        for label, root in self.roots.items():
            for proc in _tree(root):
                hwm = _vm_hwm(proc.pid)
                if hwm is not None:
                    entry = self.peaks.setdefault(proc.pid, [label, proc.pid == root, 0])
                    entry[2] = max(entry[2], hwm)

    def set_root_peak(self, label: str, peak: int) -> None:
        for entry in self.peaks.values():
            if entry[0] == label and entry[1]:
                entry[2] = max(entry[2], peak)

    def per_process_mb(self) -> dict[str, float]:
        """{'worker0': MB, 'worker0/child': MB, ...}; children numbered when there are several."""
        out: dict[str, float] = {}
        for label in self.roots:
            entries = [e for e in self.peaks.values() if e[0] == label]
            children = [e for e in entries if not e[1]]
            for e in entries:
                if e[1]:
                    out[label] = round(e[2] / MB, 1)
            for n, e in enumerate(children, start=1):
                out[f"{label}/child" + (str(n) if len(children) > 1 else "")] = round(e[2] / MB, 1)
        return out


def run_measured(cmd: list[str], env: dict, timeout: float, log: Path, label: str,
                 others: dict[str, int] | None = None, database: str | None = None) -> dict:
    """Run cmd in its own session; wall time until it exits, peak RSS of it (exact, from wait4)
    and of every process under it and under `others` (sampled, and VmHWM where alive)."""
    start = time.perf_counter()
    with log.open("wb") as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True,
                                cwd=ROOT)
        timer = threading.Timer(timeout, lambda: _kill_group(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            with Sampler({label: proc.pid, **(others or {})}, database) as sampler:
                _, status, usage = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - start
                timer.cancel()
                proc.returncode = os.waitstatus_to_exitcode(status)
            sampler.sample(backends=True)  # the CPU of every process still alive, as it ends
            sampler.include_hwm()
            sampler.set_root_peak(label, usage.ru_maxrss * 1024)  # KiB on Linux: the exact peak
        finally:
            timer.cancel()
            if proc.returncode is None:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
    timed_out = seconds >= timeout
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd[1:4])}... exited {proc.returncode}"
                           f"{' (timed out after %.0f s)' % timeout if timed_out else ''}:\n"
                           f"{stdout[-2000:]}\n{tail}")
    return {"seconds": seconds, "stdout": stdout, "peaks": sampler.per_process_mb(),
            "sum_peak_mb": round(sampler.sum_peak / MB, 1),
            "cpu": sampler.cpu_seconds({label: usage.ru_utime + usage.ru_stime})}


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _json_from(stdout: str) -> dict:
    start = stdout.find("{")
    try:
        return json.loads(stdout[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {"unparsed_output": stdout[-2000:]}


# -- databases -------------------------------------------------------------------------------------

def create_database() -> tuple[str, str]:
    import psycopg

    name = f"crm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- ours ------------------------------------------------------------------------------------------

class Workers:
    """Two `ingest worker --concurrency 1` processes, each in its own process group."""

    def __init__(self, env: dict, folder: Path, tag: str) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        try:
            for i in range(2):
                self.procs[f"worker{i}"] = self._start(env, folder / f"{tag}-worker{i}.log", f"bench{i}")
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _start(env: dict, log: Path, name: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "crm_ingest.cli", "worker", "--concurrency",
                                 "1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"],
                                env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=ROOT)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or proc.poll() is not None:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
                raise RuntimeError("worker did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        return proc

    def pids(self) -> dict[str, int]:
        return {label: proc.pid for label, proc in self.procs.items()}

    def stop(self) -> None:
        for proc in self.procs.values():
            _kill_group(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc.pid, signal.SIGKILL)  # the pool child too
            proc.wait(timeout=30)


def _claim_redis_db(client) -> None:
    """Flush our Redis database, unless someone else (another run's workers) is connected to it."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    me = str(client.client_id())
    others = [c for c in client.client_list() if int(c.get("db", -1)) == db and c.get("id") != me]
    if others:
        raise RuntimeError(f"{len(others)} other connection(s) use Redis database {db} "
                           "(another benchmark is running?): not flushing it; try --redis-db")
    client.flushdb()


def run_ours(csv_path: Path, contacts: Path, folder: Path, rows: int, timeout: float) -> dict:
    import psycopg
    import redis

    sys.path.insert(0, str(ROOT))
    from crm_ingest.models.migrate import upgrade

    name, url = create_database()
    workers = None
    try:
        upgrade(url)
        _claim_redis_db(redis.Redis.from_url(REDIS_URL))
        config = folder / f"{name}.toml"
        config.write_text('[sources.crm]\nkind = "row"\nrecord_type = "contact"\n'
                          + os.environ.get("BENCH_INGEST_TOML", ""))
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS_URL,
               "INGEST_CONFIG": str(config)}
        workers = Workers(env, folder, name)
        cli = [sys.executable, "-m", "crm_ingest.cli"]
        seed = subprocess.run([*cli, "land", "--source", "crm", str(contacts), "--wait", "--json"],
                              env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if seed.returncode != 0:
            raise RuntimeError(f"seeding failed ({seed.returncode}):\n{seed.stdout[-2000:]}\n"
                               f"{seed.stderr[-3000:]}")
        seeded = _json_from(seed.stdout)

        reset_peaks(list(workers.pids().values()))
        result = run_measured([*cli, "import", str(csv_path), "--campaign", "Bench 2026", "--wait",
                               "--json"], env, timeout, folder / f"{name}-import.log",
                              "ingest import (CLI)", workers.pids(), database=name)
        with psycopg.connect(url, connect_timeout=10) as conn:
            sanity = {
                "leads": conn.execute("SELECT count(*) FROM leads").fetchone()[0],
                "contacts": conn.execute("SELECT count(*) FROM contacts").fetchone()[0],
                "raw_items by source, state/outcome": {
                    f"{source} {state}/{outcome}": n for source, state, outcome, n in conn.execute(
                        "SELECT source, state, coalesce(outcome, '-'), count(*) FROM raw_items "
                        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")},
            }
        return {"method": "ours", "seconds": result["seconds"], "rows": rows, "cpu": result["cpu"],
                "peaks": result["peaks"], "sum_peak_mb": result["sum_peak_mb"],
                "output": _json_from(result["stdout"]), "sanity": sanity,
                "seeded": {k: seeded.get(k) for k in ("received", "landed", "outcomes")}}
    finally:
        if workers:
            workers.stop()
        drop_database(name)


# -- baselines, each run in a child process of this script (so its RSS is its own) ------------------

def run_baseline(kind: str, csv_path: Path, contacts: Path, folder: Path, rows: int,
                 timeout: float) -> dict:
    name, url = create_database()
    try:
        args = [sys.executable, str(Path(__file__).resolve()), f"--_run-{kind}", str(csv_path),
                str(contacts), url, str(folder / f"dlt-{name}")]
        env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
        result = run_measured(args, env, timeout, folder / f"{name}-{kind}.log", kind, database=name)
        report = _json_from(result["stdout"])
        peaks = result["peaks"]
        if report.get("peak_rss_mb"):  # the child's own VmHWM, reset after its untimed seeding
            peaks[kind] = report["peak_rss_mb"]
        return {"method": kind, "seconds": report["seconds"], "rows": rows, "peaks": peaks, "cpu": result["cpu"],
                "sum_peak_mb": result["sum_peak_mb"], "output": report}
    finally:
        drop_database(name)


def _timed_section_start() -> float:
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return time.perf_counter()


def _self_peak_mb() -> float:
    return round((_vm_hwm(os.getpid()) or 0) / MB, 1)


EMAIL_KEY = r"lower(btrim(email, E' \t\r\n'))"  # what Python's .strip().lower() does, near enough


def child_copy(csv_path: str, contacts: str, url: str) -> None:
    """COPY into a staging table, then one INSERT ... SELECT DISTINCT ON ... ON CONFLICT DO NOTHING
    into a table with a unique index on the normalized email (the existing contacts already in it)."""
    import psycopg

    cols = ", ".join(f"{c} text" for c in COLUMNS)
    names = ", ".join(COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE staging ({cols})")
        conn.execute(f"CREATE TABLE people (id bigserial PRIMARY KEY, {cols})")
        conn.execute(f"CREATE UNIQUE INDEX people_email ON people ({EMAIL_KEY})")
        with conn.cursor() as cur, cur.copy("COPY people (first_name, last_name, email, company) "
                                            "FROM STDIN") as copy:
            with open(contacts, encoding="utf-8") as f:
                for line in f:
                    c = json.loads(line)["fields"]
                    copy.write_row([c["first_name"], c["last_name"], c["email"], c["company"]])
        conn.execute("ANALYZE people")

        start = _timed_section_start()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY staging FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, \
                    open(csv_path, "rb") as f:
                while block := f.read(1 << 20):
                    copy.write(block)
            cur.execute(f"INSERT INTO people ({names}) SELECT DISTINCT ON ({EMAIL_KEY}) {names} "
                        f"FROM staging ORDER BY {EMAIL_KEY} ON CONFLICT DO NOTHING")
            inserted = cur.rowcount
        seconds = time.perf_counter() - start
        people = conn.execute("SELECT count(*) FROM people").fetchone()[0]
    print(json.dumps({"seconds": seconds, "inserted": inserted, "people_in_table": people,
                      "peak_rss_mb": _self_peak_mb()}))


def child_dlt(csv_path: str, contacts: str, url: str, pipelines_dir: str) -> None:
    """dlt merge (primary key: the stripped, lower-cased email) into its own fresh database."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    def rows_of_csv():
        with open(csv_path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            page = []
            for row in reader:
                item = dict(zip(COLUMNS, row))
                item["email"] = item["email"].strip().lower()
                page.append(item)
                if len(page) == 1000:
                    yield page
                    page = []
            if page:
                yield page

    def rows_of_contacts():
        with open(contacts, encoding="utf-8") as f:
            for line in f:
                c = json.loads(line)["fields"]
                yield {**c, "email": c["email"].strip().lower()}

    from sqlalchemy.engine import make_url

    credentials = make_url(url)
    if credentials.password is None:  # dlt insists on one; a trust-authenticated server ignores it
        credentials = credentials.set(password="unused")
    pipeline = dlt.pipeline(pipeline_name="bench_import_list", pipelines_dir=pipelines_dir,
                            destination=dlt.destinations.postgres(
                                credentials=credentials.render_as_string(hide_password=False)),
                            dataset_name="crm", dev_mode=True, progress=None)
    resource = dict(name="people", write_disposition="merge", primary_key="email")
    pipeline.run(dlt.resource(rows_of_contacts(), **resource))  # the existing contacts, untimed

    start = _timed_section_start()
    info = pipeline.run(dlt.resource(rows_of_csv(), **resource))
    seconds = time.perf_counter() - start
    with pipeline.sql_client() as client:
        people = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name('people')}")[0][0]
    print(json.dumps({"seconds": seconds, "people_in_table": people,
                      "loads": len(info.loads_ids), "peak_rss_mb": _self_peak_mb()}))


def child_floor(csv_path: str, contacts: str, url: str) -> None:
    """What our data model costs with no matching at all: each row read (csv module), planned by
    the import's own planner (normalizing, validating), and written as the import writes a new
    person: its raw item with the outcome, a lead, and its identity keys (the same COPY and
    ON CONFLICT statements), 5,000 rows a transaction, in two processes as the import's two
    workers (BENCH_FLOOR_PROCESSES), each reading the whole file. No suppression, no lookup
    of known people, no duplicates in the file, no campaign, no merge log: a lower bound for any
    set-based rewrite that keeps what the import stores. Its existing contacts are not seeded."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy.orm import Session

    from crm_ingest.ingest import identity
    from crm_ingest.ingest.pipeline import ItemRef, plan_items
    from crm_ingest.ingest.settings import Settings
    from crm_ingest.models import DONE, Lead, RawItem, utcnow
    from crm_ingest.models.bulk import allocate_ids, copy_rows
    from crm_ingest.models.db import make_engine
    from crm_ingest.models.landing import write_items
    from crm_ingest.models.migrate import upgrade
    from crm_ingest.workers.batch import commit_without_waiting_for_disk

    upgrade(url)
    settings = Settings.load({})
    engine = make_engine(url)
    lead_columns = set(Lead.__table__.columns.keys())
    seconds_planning = 0.0

    def store(session: Session, entries: list[dict]) -> None:
        nonlocal seconds_planning
        ids = allocate_ids(session, RawItem, len(entries))
        items = [ItemRef(item_id, "list", "row", payload, None, 0) for item_id, payload in zip(ids, entries)]
        started = time.process_time()
        plans, _ = plan_items(items, settings)
        seconds_planning += time.process_time() - started
        people = [plan for plan in plans if plan.person is not None and plan.outcome is None]
        lead_ids = allocate_ids(session, Lead, len(people))
        copy_rows(session, Lead, [{**{k: v for k, v in plan.person.fields.items() if k in lead_columns},
                                   "id": lead_id, "origin_item_id": plan.item_id}
                                  for plan, lead_id in zip(people, lead_ids)])
        rows = sorted(("lead", kind, value, lead_id) for plan, lead_id in zip(people, lead_ids)
                      for kind, value in plan.person.keys)
        identity._pg_insert_sorted_keys(session, rows)
        record = {plan.item_id: lead_id for plan, lead_id in zip(people, lead_ids)}
        now = utcnow()
        write_items(session, [(item.id, "list", f"row-{item.id}", "row", item.payload, now, now, None, DONE, 1,
                               None, None, "created" if item.id in record else "rejected", None,
                               "lead" if item.id in record else None, record.get(item.id), now)
                              for item in items])

    def run_share(share: int, of: int) -> None:  # every process reads the file, and takes every of-th page
        nonlocal seconds_planning
        engine.dispose(close=False)  # a forked child opens its own connections
        with open(csv_path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            page: list[dict] = []
            pages = 0
            for number, row in enumerate(reader, 1):
                page.append({"row": number, "file": "list.csv", "extra": {}, "fields": dict(zip(COLUMNS, row))})
                if len(page) == 5000:
                    if pages % of == share:
                        with Session(engine) as session, session.begin():
                            commit_without_waiting_for_disk(session)
                            store(session, page)
                    page, pages = [], pages + 1
            if page and pages % of == share:
                with Session(engine) as session, session.begin():
                    store(session, page)
        print(json.dumps({"share": share, "planning_cpu_seconds": round(seconds_planning, 1)}), file=sys.stderr)

    processes = int(os.environ.get("BENCH_FLOOR_PROCESSES", "2"))
    start = _timed_section_start()
    children = []
    for share in range(processes):
        pid = os.fork()
        if pid == 0:
            try:
                run_share(share, processes)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    seconds = time.perf_counter() - start
    with engine.connect() as conn:
        leads = conn.exec_driver_sql("SELECT count(*) FROM leads").scalar()
    print(json.dumps({"seconds": seconds, "leads": leads, "processes": processes, "peak_rss_mb": _self_peak_mb()}))


# -- the report ------------------------------------------------------------------------------------

LABELS = {"ours": "ours: ingest import --wait (2 workers)", "copy": "COPY + INSERT ON CONFLICT",
          "dlt": "dlt merge (postgres)", "floor": "floor: plan + write new leads, no matching"}


def _print_run(result: dict) -> None:
    label = LABELS[result["method"]]
    rate = result["rows"] / result["seconds"]
    print(f"\n== {label}: {result['rows']} rows in {result['seconds']:.1f} s = {rate:,.0f} rows/s",
          flush=True)
    print("   peak RSS per process (MB): " + ", ".join(f"{k} {v}" for k, v in result["peaks"].items())
          + f"; sum of the tree at its peak {result['sum_peak_mb']} MB")
    cpu = result.get("cpu") or {}
    if cpu:
        total = sum(cpu.values())
        print("   CPU seconds: " + ", ".join(f"{k} {v}" for k, v in cpu.items())
              + f"; total {total:.1f} = {total / result['seconds']:.2f} cores over the wall time"
              + ("" if result["method"] == "ours" else " (the baseline's untimed seeding included)"))
    if result["method"] == "ours":
        print("   seeding (untimed): " + json.dumps(result["seeded"]))
        print("   ingest import --json:")
        for key, value in result["output"].items():
            text = json.dumps(value, default=str, ensure_ascii=False)
            print(f"     {key}: {text if len(text) < 1500 else text[:1500] + ' ... (cut)'}")
        print("   in the database: " + json.dumps(result["sanity"], ensure_ascii=False))
    else:
        print("   " + json.dumps({k: v for k, v in result["output"].items() if k != "seconds"}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--_run-copy", "--_run-dlt", "--_run-floor"):
        kind, csv_path, contacts, url, pipelines_dir = sys.argv[1][len("--_run-"):], *sys.argv[2:6]
        if kind == "floor":
            child_floor(csv_path, contacts, url)
        elif kind == "copy":
            child_copy(csv_path, contacts, url)
        else:
            child_dlt(csv_path, contacts, url, pipelines_dir)
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--existing", type=int, default=200_000,
                        help="contacts already in the database; 10%% of the rows match one")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--skip-copy", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--floor", action="store_true",
                        help="also measure the floor: our planner and writes with no matching (child_floor)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--redis-db", type=int, default=9,
                        help="Redis database for the broker, flushed at start (default 9)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds for any one step (default 600 + rows/250)")
    parser.add_argument("--keep-file", type=Path, default=None,
                        help="also copy the generated CSV into this folder")
    args = parser.parse_args()
    timeout = args.timeout or 600 + args.rows / 250
    global REDIS_URL
    REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + f"/{args.redis_db}"

    methods = (([] if args.skip_ours else ["ours"]) + ([] if args.skip_copy else ["copy"])
               + ([] if args.skip_dlt else ["dlt"]) + (["floor"] if args.floor else []))
    results: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="crm_bench_") as tmp:
        folder = Path(tmp)
        csv_path, contacts = folder / "purchased_list.csv", folder / "contacts.jsonl"
        started = time.perf_counter()
        stats = write_list(csv_path, contacts, args.rows, args.existing, args.seed)
        print(f"list: {json.dumps(stats)} (written in {time.perf_counter() - started:.1f} s)",
              flush=True)
        print(f"server: {_server_settings()}", flush=True)
        if args.keep_file:
            import shutil
            shutil.copy(csv_path, args.keep_file)
        for round_ in range(args.repeat):
            print(f"\n#### round {round_ + 1} of {args.repeat}", flush=True)
            for method in methods:
                if method == "ours":
                    result = run_ours(csv_path, contacts, folder, args.rows, timeout)
                else:
                    result = run_baseline(method, csv_path, contacts, folder, args.rows, timeout)
                results[method].append(result)
                _print_run(result)

    print(f"\n{args.rows} rows ({stats['repeated_rows']} repeating an earlier row, "
          f"{stats['existing_matches']} matching one of {args.existing} existing contacts), "
          f"median of {args.repeat}; RSS is the largest single process (PostgreSQL's own excluded)")
    print(f"{'method':<42} | {'wall s':>8} | {'rows/s':>9} | {'peak RSS MB':>11} | {'tree sum MB':>11}")
    print("-" * 92)
    rates = {}
    for method, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rates[method] = statistics.median(r["rows"] / r["seconds"] for r in runs)
        peak = statistics.median(max(r["peaks"].values()) for r in runs)
        tree = statistics.median(r["sum_peak_mb"] for r in runs)
        print(f"{LABELS[method]:<42} | {seconds:8.1f} | {rates[method]:9,.0f} | {peak:11.1f} | "
              f"{tree:11.1f}")
    first = methods[0]
    for method in methods[1:]:
        print(f"{first} / {method} (rows/s) = {rates[first] / rates[method]:.2f}x")
    if "floor" in results and "dlt" in results:
        print(f"floor / dlt (rows/s) = {rates['floor'] / rates['dlt']:.2f}x: the floor is one process; "
              "compare CPU seconds above too")
    if "ours" in results:
        ours_peaks = results["ours"][-1]["peaks"]
        print(f"PEAK RSS ours at --rows {args.rows}: max process "
              f"{max(ours_peaks.values())} MB; per process: "
              + ", ".join(f"{k} {v}" for k, v in ours_peaks.items()))


def _server_settings() -> str:
    """The PostgreSQL settings that move these figures most, printed with them."""
    import psycopg

    names = ("server_version", "shared_buffers", "autovacuum", "synchronous_commit", "max_wal_size")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return ", ".join(f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}" for name in names)


if __name__ == "__main__":
    main()
