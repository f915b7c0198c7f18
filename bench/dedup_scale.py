"""Benchmark: items/s of web-form items matched against 10,000, 100,000 and 1,000,000 existing
contacts on PostgreSQL; the cost per item should stay nearly flat as the database grows.

    .venv/bin/python bench/dedup_scale.py [--sizes 10k,100k,1M] [--items 5000] [--repeat 3]
                                          [--sources web,portal] [--quick] [--no-vacuum]
                                          [--batch-size N] [--seed-batch 2000] [--json-out FILE]

For each size N, a fresh database (our migrations) is filled with N contacts by our own code
path, untimed: rows of a `crm` source (kind row, record_type contact, `review_duplicates =
true` so that the contacts' blocking keys are written to `match_keys`, as they are for people
who came in through a form; a row source writes none by default, and the fuzzy lookups would
then find nothing), landed with `land_items` and processed with `workers.batch.run_batch` (what
the Celery task calls) in batches of `--seed-batch`, generated as they go (nothing holds the N
contacts). With review_duplicates on, the product also queues and auto-merges look-alikes among
the contacts themselves, as it would have. Then VACUUM ANALYZE, as autovacuum would have done
on a database that size (off on this machine; `--no-vacuum` skips it). Names: the Swedish and
English first names and commonest surnames of import_list.py plus a tail of Swedish compound
surnames, so common pairs repeat hundreds of times at 1M ('Anna Andersson'); one company per 10
contacts (at least 1,000), each with its work domain; 25% of addresses at free-mail providers.

Timed: the same `--items` web-form items for every N, processed in-process by `run_batch` in
batches of `pipeline.batch_size` (500), one process, no broker: the per-item cost of planning,
identity keys, fuzzy candidates, scoring, merging and writing, without Celery in the figure.
Landing them is not timed. The mix: 30% carry an existing contact's email (in another case or
with spaces, same name and company), 20% are look-alikes of an existing contact (a nickname or
a typo in the first name and another address at the same work domain, or the same name at a
free-mail address), 50% are new people with names drawn from the same lists (so they meet
namesakes). New people are identical for every N; the existing contact an item refers to is
drawn uniformly from the N (the same random fraction of N for every N).

Sources: `web` is the built-in form source (forms become leads; a form never joins a contact by
its keys, so a contact's email creates a lead and the fuzzy stage must find the contact);
`portal` is a form source configured with record_type = "contact" (a contact's email merges
into that contact; a pair of contacts the rules call one person is merged automatically). Both
review duplicates (the default for forms). Each repeat runs on a fresh copy of the seeded
database (CREATE DATABASE ... TEMPLATE, FILE_COPY), so every repeat starts from the same state;
the table gives the median.

Where the time goes: phases by wrapping the product's functions in this process (a few timer
calls a batch), and SQL statements by SQLAlchemy's cursor events (time from sending a statement
to having its rows; commits not included). EXPLAIN (ANALYZE, BUFFERS) of the costliest
statements at the smallest and the largest size, and of those that grew most, run again in a
transaction that is rolled back (with default settings: lookups the product wraps in
`index_lookups` run with enable_seqscan off there). One batch's identity key lookup and
candidate lookup (`duplicates._PG_CANDIDATES`) are explained at every size on the seeded
database, with the rows they read.

Needs the machine's PostgreSQL (TEST_PG_ADMIN_URL). Redis is not used. Every database it
creates is dropped at the end. Never run as a test.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from sqlalchemy import event, text  # noqa: E402

from crm_ingest.ingest import duplicates, identity, pipeline  # noqa: E402
from crm_ingest.ingest.matching import NICKNAMES, blocking_keys, canonical_first_name, work_domain  # noqa: E402
from crm_ingest.ingest.normalize import normalize_email  # noqa: E402
from crm_ingest.ingest.settings import from_toml  # noqa: E402
from crm_ingest.models import make_engine, make_session_factory  # noqa: E402
from crm_ingest.models.bulk import array_literal  # noqa: E402
from crm_ingest.models.landing import NewItem, land_items  # noqa: E402
from crm_ingest.models.migrate import upgrade  # noqa: E402
from crm_ingest.workers import batch  # noqa: E402
from crm_ingest.workers.dispatch import chunks  # noqa: E402
from import_list import (  # noqa: E402
    CITIES, EN_COMPANY_A, EN_COMPANY_B, EN_FIRST, EN_LAST, FREE_MAIL, SV_COMPANY_A, SV_COMPANY_C, SV_FIRST,
    SV_LAST, TITLES, _ascii, _phone,
)

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CONFIG = {"sources": {
    "crm": {"kind": "row", "record_type": "contact", "review_duplicates": True},
    "portal": {"kind": "form", "record_type": "contact"},
}}

# -- the items ---------------------------------------------------------------------------------
# Names: the Swedish and English first names and commonest surnames of import_list.py, and a
# tail of Swedish compound surnames (Lindqvist, Sjöberg, ...): common pairs repeat hundreds of
# times at 1M ('Anna Andersson'). Companies: one per 10 contacts (at least 1,000), so that
# colleagues share a work domain but two namesakes rarely share a company; a company's name,
# country and domain follow from its number.

SV_LAST_TAIL = sorted({a + b for a in ("Berg", "Lind", "Sjö", "Ek", "Holm", "Sand", "Ny", "Söder",
                                       "Norr", "Öster", "Väster", "Ahl", "Dahl", "Hed", "Fors",
                                       "Lund", "Björk", "Ström", "Alm", "Gran")
                       for b in ("berg", "ström", "qvist", "gren", "lund", "man", "blad", "dahl",
                                 "ling", "holm", "sten", "fors") if a.lower() != b})
SV_BRAND_B = ["vik", "berga", "dal", "holm", "by", "ås", "näs", "strand", "lunda", "hamn", "torp",
              "sta", "mark", "bo", "ryd", "säter", "fors", "hult", "gård", "sund"]
SV_TRADE = ["Bygg", "Data", "Konsult", "Teknik", "Logistik", "Fastigheter", "Energi", "Media",
            "Vård", "Transport", "Revision", "Design", "Invest", "Mekaniska", "Plåt", "Måleri"]
EN_BRAND_B = ["", "bridge", "point", "field", "gate", "stone", "wood", "line", "way", "park",
              "hill", "ford", "mere"]
EN_SUFFIX = {"GB": [" Ltd", " Ltd.", " Limited", " plc", " Group"],
             "US": [" Inc.", " Inc", " LLC", " Corp.", ""]}
SUBJECTS = ["Offert på licenser", "Pricing for the enterprise plan", "Demo request", "Boka demo",
            "Fråga om avtal", "Support renewal", "Partnership", "Integration question"]
NICKS_OF: dict[str, list[str]] = {}
for _nick, _name in NICKNAMES.items():
    NICKS_OF.setdefault(_name, []).append(_nick)


def companies_for(existing: int) -> int:
    return max(existing // 10, 1000)


def company(number: int) -> tuple[str, str, str]:
    """Company `number`: (name, work domain, country)."""
    rng = random.Random(number * 2654435761 + 17)
    country = rng.choices(["SE", "GB", "US"], weights=[50, 25, 25])[0]
    if country == "SE":
        brand = rng.choice(SV_COMPANY_A) + rng.choice(SV_BRAND_B)
        core = f"{brand} {rng.choice(SV_TRADE)}"
        if rng.random() < 0.5:
            core += " i " + rng.choice(CITIES["SE"])
        name = core + rng.choice(SV_COMPANY_C)
        return name, _ascii(core) + ".se", country
    brand = rng.choice(EN_COMPANY_A) + rng.choice(EN_BRAND_B)
    core = f"{brand} {rng.choice(EN_COMPANY_B)}"
    if rng.random() < 0.5:
        core = f"{rng.choice(CITIES[country])} {core}"
    name = core + rng.choice(EN_SUFFIX[country])
    return name, _ascii(core) + (".co.uk" if country == "GB" else ".com"), country


def new_person(rng: random.Random, tag: str, companies: int) -> dict[str, str]:
    """Fields of a person; `tag` keeps the email unique."""
    name, domain, country = company(int(rng.random() * companies))
    swedish = (country == "SE") == (rng.random() < 0.9)
    first = rng.choice(SV_FIRST if swedish else EN_FIRST)
    if swedish:
        last = rng.choice(SV_LAST) if rng.random() < 0.7 else rng.choice(SV_LAST_TAIL)
    else:
        last = rng.choice(EN_LAST)
    if rng.random() < 0.25:  # a private address
        domain = rng.choice(FREE_MAIL)
    f, lname = _ascii(first), _ascii(last)
    local = rng.choice([f"{f}.{lname}", f"{f[0]}.{lname}", f"{f}{lname}", f"{f}_{lname}", f"{lname}.{f}"])
    email = f"{local}{tag}@{domain}"
    if rng.random() < 0.3:
        email = email[0].upper() + email[1:]
    return {"first_name": first, "last_name": last, "email": email,
            "mobile_phone": _phone(rng, country) if rng.random() < 0.92 else "",
            "company": name, "job_title": rng.choice(TITLES)}


def contact_payload(seed: int, k: int, existing: int) -> dict:
    """Existing contact k (0-based) as a crm row; regenerated from (seed, k), never stored."""
    rng = random.Random((seed << 32) ^ (k * 40503 + 3))
    return {"external_id": f"c{k}", "fields": new_person(rng, f"-{k}", companies_for(existing))}


def _typo(rng: random.Random, name: str) -> str:
    if len(name) < 4:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 2)
    if rng.random() < 0.5:  # two letters swapped
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    return name[:i] + name[i] + name[i:]  # a letter doubled


def timed_items(seed: int, existing: int, count: int) -> list[dict]:
    """The timed form items: [{'payload', 'kind' (exact|nickname|typo|free_mail|new), 'target'
    (the email of the contact it refers to, or None)}]."""
    items = []
    for j in range(count):
        rng = random.Random((seed << 24) ^ (j * 7919 + 1))  # the same draws for every N
        r, u = rng.random(), rng.random()
        k = min(int(u * existing), existing - 1)
        if r < 0.30:
            c = contact_payload(seed, k, existing)["fields"]
            email = rng.choice([c["email"], c["email"].lower(), c["email"].upper(), f" {c['email']} "])
            fields = {**c, "email": email, "mobile_phone": c["mobile_phone"] if rng.random() < 0.7 else "",
                      "job_title": c["job_title"] if rng.random() < 0.7 else rng.choice(TITLES)}
            kind, target = "exact", c["email"]
        elif r < 0.50:
            c = contact_payload(seed, k, existing)["fields"]
            first = c["first_name"]
            domain = c["email"].lower().rpartition("@")[2]
            nicks = NICKS_OF.get(canonical_first_name(first) or "", [])
            v = rng.random()
            if v < 0.4 and nicks:
                kind, first = "nickname", rng.choice(nicks).capitalize()
            elif v < 0.7 or not work_domain(c["email"].lower()):
                kind, first = "typo", _typo(rng, first)
            else:
                kind = "free_mail"
            if kind == "free_mail" or not work_domain(c["email"].lower()):
                domain = rng.choice([d for d in FREE_MAIL if d != domain])
            fields = {"first_name": first, "last_name": c["last_name"], "company": c["company"],
                      "email": f"{_ascii(first)}.{_ascii(c['last_name'])}.x{j}@{domain}",
                      "mobile_phone": _phone(rng, "SE") if rng.random() < 0.5 else "",
                      "job_title": rng.choice(TITLES)}
            target = c["email"]
        else:
            fields = new_person(rng, f"{j}", companies_for(existing))
            kind, target = "new", None
        fields["subject"] = rng.choice(SUBJECTS)
        fields["message"] = f"Hej! Vi vill veta mer ({j})."
        payload = {"id": f"form-{j}", "form": "contact-sales", "fields": fields,
                   "utm": {"utm_source": rng.choice(["google", "linkedin", "newsletter"])}}
        items.append({"payload": payload, "kind": kind, "target": target})
    return items


# -- databases ---------------------------------------------------------------------------------


class Databases:
    """Databases this run created: every one dropped at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, template: str | None = None) -> tuple[str, str]:
        name = f"crm_bench_{uuid.uuid4().hex[:8]}"
        sql = f'CREATE DATABASE "{name}"'
        if template:
            sql += f' TEMPLATE "{template}" STRATEGY FILE_COPY'
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)
        self.names.append(name)
        return name, PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"

    def drop(self, name: str) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.names:
            self.names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.names):
            try:
                self.drop(name)
            except Exception as exc:  # noqa: BLE001 - try the others
                print(f"could not drop {name}: {exc}", file=sys.stderr)


def server_settings() -> str:
    names = ("server_version", "shared_buffers", "effective_cache_size", "work_mem", "autovacuum",
             "synchronous_commit", "max_wal_size", "random_page_cost", "jit")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return ", ".join(f"{n}={conn.execute(f'SHOW {n}').fetchone()[0]}" for n in names)


def code_state() -> str:
    """The commit measured, and the product files changed in the working tree since."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False,
                                  timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "crm_ingest").splitlines()]
    return git("log", "-1", "--format=%h %s")[:100] + (
        f"; working tree differs in {', '.join(changed)}" if changed else "")


# -- phases ------------------------------------------------------------------------------------


class Phases:
    """Seconds spent in the product's functions, by wrapping them where they are called from."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    def wrap(self, module, name: str, label: str) -> None:
        original = getattr(module, name, None)
        if original is None:  # not in this version of the product
            return
        seconds = self.seconds

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - start

        setattr(module, name, timed)

    def install(self) -> None:
        self.wrap(batch, "due_items", "read items")
        self.wrap(batch, "plan_items", "plan")
        self.wrap(batch, "store", "store")
        self.wrap(batch, "_finish", "write outcomes")
        self.wrap(pipeline, "suppressed", "suppression lookup")
        self.wrap(pipeline, "resolve_people", "identity (resolve_people)")
        self.wrap(identity, "lookup_keys", "  identity key lookup")
        self.wrap(identity, "_insert_records", "  insert records")
        self.wrap(identity, "_insert_keys", "  insert identity keys")
        self.wrap(identity, "_merge_into_existing", "  merge into existing")
        self.wrap(pipeline, "flag_possible_duplicates", "fuzzy (flag_possible_duplicates)")
        self.wrap(duplicates, "_held_keys", "  held match keys")
        self.wrap(duplicates, "insert_rows", "  insert match keys + reviews")
        self.wrap(duplicates, "_candidates", "  candidate lookup")
        self.wrap(duplicates, "_fields", "  candidate fields")
        self.wrap(duplicates, "score", "  scoring")
        self.wrap(duplicates, "_merge_automatically", "  automatic merges")
        self.wrap(pipeline, "link_accounts", "accounts (link_accounts)")


PHASE_ORDER = ["read items", "plan", "suppression lookup", "identity (resolve_people)",
               "  identity key lookup", "  insert records", "  insert identity keys",
               "  merge into existing", "fuzzy (flag_possible_duplicates)", "  held match keys",
               "  insert match keys + reviews", "  candidate lookup", "  candidate fields",
               "  scoring", "  automatic merges", "accounts (link_accounts)",
               "rest of store (activities, ...)", "write outcomes",
               "commit and the rest"]


def phase_table(phases: Counter, wall: float) -> dict[str, float]:
    out = {name: phases.get(name, 0.0) for name in PHASE_ORDER}
    out["rest of store (activities, ...)"] = phases["store"] - phases["suppression lookup"] - \
        phases["identity (resolve_people)"] - phases["fuzzy (flag_possible_duplicates)"] - \
        phases["accounts (link_accounts)"]
    out["commit and the rest"] = wall - phases["read items"] - phases["plan"] - phases["store"] - \
        phases["write outcomes"]
    return out


# -- seeding -----------------------------------------------------------------------------------


def seed_contacts(url: str, settings, existing: int, seed: int, chunk: int, phases: Phases) -> dict:
    """Land and process the contacts in batches; every tenth prints the rate of that tenth and
    where its time went (µs a contact)."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    started = last_time = time.perf_counter()
    outcomes: Counter = Counter()
    failed = last_done = 0
    step = max(existing // 10, 1)
    next_report = step
    phases.seconds.clear()
    shown = ["identity (resolve_people)", "fuzzy (flag_possible_duplicates)", "  candidate lookup",
             "  scoring", "  automatic merges", "write outcomes"]
    try:
        for start in range(0, existing, chunk):
            items = []
            for k in range(start, min(start + chunk, existing)):
                payload = contact_payload(seed, k, existing)
                items.append(NewItem(payload["external_id"], "row", payload))
            with sessions.begin() as session:
                ids = land_items(session, "crm", items)
            report = batch.run_batch(sessions, ids, settings)
            outcomes.update(report.outcomes)
            failed += report.failed + report.skipped
            done = start + len(items)
            if done >= next_report or done == existing:
                now = time.perf_counter()
                count = done - last_done
                where = ", ".join(f"{name.strip().split(' (')[0]} {phases.seconds[name] / count * 1e6:,.0f}"
                                  for name in shown)
                print(f"    seeded {done:>9,} of {existing:,} in {now - started:7.1f} s; this tenth "
                      f"{count / (now - last_time):,.0f}/s, µs a contact: {where}", flush=True)
                while next_report <= done:
                    next_report += step
                last_time, last_done = now, done
                phases.seconds.clear()
            del items, ids
    finally:
        engine.dispose()
    return {"seconds": time.perf_counter() - started, "outcomes": dict(outcomes), "failed": failed}


def table_counts(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("contacts", "leads", "identity_keys", "match_keys", "duplicate_reviews",
                            "raw_items")}
        counts["match_keys by kind"] = dict(conn.execute(
            "SELECT kind, count(*) FROM match_keys GROUP BY 1 ORDER BY 1").fetchall())
        counts["owners of the commonest name key"] = conn.execute(
            "SELECT value || ' ' || count(*) FROM match_keys WHERE kind = 'name' "
            "GROUP BY value ORDER BY count(*) DESC LIMIT 1").fetchone()
        counts["owners per name key (avg)"] = round(float(conn.execute(
            "SELECT avg(c) FROM (SELECT count(*) c FROM match_keys WHERE kind = 'name' "
            "GROUP BY value) s").fetchone()[0] or 0), 1)
        counts["owners per domain_name key (avg)"] = round(float(conn.execute(
            "SELECT avg(c) FROM (SELECT count(*) c FROM match_keys WHERE kind = 'domain_name' "
            "GROUP BY value) s").fetchone()[0] or 0), 1)
        counts["database MB"] = round(conn.execute(
            "SELECT pg_database_size(current_database())").fetchone()[0] / 2**20)
    return counts


# -- the timed part ----------------------------------------------------------------------------


class Statements:
    """Time per SQL statement text (the product binds its values, so the text is stable)."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self.sample: dict[str, tuple[str, object]] = {}
        self.on = False

    def attach(self, engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info.setdefault("bench_started", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            started = conn.info["bench_started"].pop()
            if self.on:
                key = statement_label(statement)
                self.seconds[key] += time.perf_counter() - started
                self.calls[key] += 1
                self.sample[key] = (statement, parameters)


def statement_label(statement: str) -> str:
    return re.sub(r"%\(\w+\)s", "?", " ".join(statement.split()))[:120]


def run_timed(url: str, settings, source: str, items: list[dict], phases: Phases,
              baseline: dict[str, float] | None = None) -> dict:
    """Land the items (untimed), process them with run_batch (timed). With `baseline` (µs/item
    per statement of the smallest size), EXPLAIN ANALYZE the statements that cost most here
    or grew most, in a transaction rolled back."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    statements = Statements()
    statements.attach(engine)
    try:
        ids: list[int] = []
        for part in chunks(items, 1000):  # as `ingest land` does: 1,000 a transaction
            with sessions.begin() as session:
                ids.extend(land_items(session, source, [
                    NewItem(i["payload"]["id"], "form", i["payload"]) for i in part]))
        if len(ids) != len(items):
            raise RuntimeError(f"landed {len(ids)} of {len(items)} items")
        size = settings.pipeline.batch_size
        outcomes: Counter = Counter()
        problems = 0
        gc.collect()
        phases.seconds.clear()
        statements.on = True
        start = time.perf_counter()
        for part in chunks(ids, size):
            report = batch.run_batch(sessions, part, settings)
            outcomes.update(report.outcomes)
            problems += report.failed + report.skipped + report.raced
        wall = time.perf_counter() - start
        statements.on = False
        phase = phase_table(phases.seconds, wall)
        if problems:
            raise RuntimeError(f"{problems} items failed, were skipped or raced: not a clean run")
        found = _found(sessions, ids, items)
        per_item = {k: v / len(items) * 1e6 for k, v in statements.seconds.items()}
        plans = explain_statements(engine, statements, per_item, baseline) if baseline is not None else {}
    finally:
        engine.dispose()
    return {"seconds": wall, "outcomes": dict(outcomes), "phases": phase, "statements": per_item,
            "calls": dict(statements.calls), "statement_plans": plans, **found}


def explain_statements(engine, statements: Statements, per_item: dict[str, float],
                       baseline: dict[str, float]) -> dict[str, str]:
    costly = sorted(per_item, key=per_item.get, reverse=True)[:3]
    grown = sorted((k for k in per_item if per_item[k] > 20 and per_item[k] > 2 * baseline.get(k, 0)),
                   key=lambda k: per_item[k] - baseline.get(k, 0), reverse=True)[:3]
    plans = {}
    with engine.connect() as conn:
        for key in dict.fromkeys(grown + costly):
            statement, parameters = statements.sample[key]
            transaction = conn.begin()
            try:
                rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
                plans[key] = re.sub(r"'\{[^']{80,}\}'", "'{...}'", "\n".join(r[0] for r in rows))
            except Exception as exc:  # noqa: BLE001 - a plan is a nice-to-have
                plans[key] = f"(could not explain: {type(exc).__name__}: {str(exc)[:200]})"
            finally:
                transaction.rollback()
    return plans


def _found(sessions, ids: list[int], items: list[dict]) -> dict:
    """Reviews the items queued, and how many items referring to an existing contact ended up
    joined to it: merged into it, or queued for review as a pair with it."""
    keys = {i["target"]: normalize_email(i["target"])[1] for i in items if i["target"]}
    with sessions() as session:
        owner = dict(session.execute(text(
            "SELECT value, record_id FROM identity_keys WHERE scope = 'contact' AND kind = 'email' "
            "AND value = ANY(CAST(:v AS TEXT[]))"), {"v": array_literal(sorted(set(keys.values())))}).all())
        records = {row.id: (row.record_type, row.record_id, row.outcome) for row in session.execute(text(
            "SELECT id, record_type, record_id, outcome FROM raw_items WHERE id = ANY(CAST(:ids AS BIGINT[]))"),
            {"ids": array_literal(ids)})}
        reviews = session.execute(text(
            "SELECT record_type, record_id, other_type, other_id, suggested FROM duplicate_reviews "
            "WHERE raw_item_id = ANY(CAST(:ids AS BIGINT[]))"), {"ids": array_literal(ids)}).all()
    pairs = {frozenset([(r[0], r[1]), (r[2], r[3])]) for r in reviews}
    kinds: dict[str, list[int]] = {}
    for item_id, item in zip(ids, items):
        group = "exact" if item["kind"] == "exact" else "look-alike" if item["target"] else None
        if group is None:
            continue
        target = owner.get(keys[item["target"]])
        record_type, record_id, _ = records[item_id]
        hit = target is not None and ((record_type, record_id) == ("contact", target) or
                                      frozenset([(record_type, record_id), ("contact", target)]) in pairs)
        kinds.setdefault(group, [0, 0])
        kinds[group][0] += hit
        kinds[group][1] += 1
    by_kind = Counter(i["kind"] for i in items)
    return {"reviews": len(reviews), "reviews_suggested": dict(Counter(r[4] for r in reviews)),
            "found": {k: tuple(v) for k, v in kinds.items()}, "mix": dict(by_kind)}


# -- plans -------------------------------------------------------------------------------------


def _plan_nodes(plan: dict, out: list) -> list:
    out.append(plan)
    for child in plan.get("Plans", []):
        _plan_nodes(child, out)
    return out


def explain(url: str, settings, items: list[dict], batch_size: int, analyze: bool) -> dict:
    """The identity key lookup and the fuzzy candidate lookup of one batch of the timed items,
    with the values the product would send and its setting (enable_seqscan off)."""
    part = items[:batch_size]
    plans, _ = batch.plan_items([batch.ItemRef(n, "web", "form", i["payload"]) for n, i in enumerate(part)],
                                settings)
    key_values = sorted({value for p in plans if p.person for _, value in p.person.keys})
    fuzzy_values = sorted({value for p in plans if p.person
                           for kind, value in blocking_keys(p.person.fields, "lead")
                           if kind in duplicates.FUZZY_KINDS})
    queries = {
        "identity key lookup (identity._PG_LOOKUP)": (identity._PG_LOOKUP, {"values": array_literal(key_values)}),
        "candidate lookup (duplicates._PG_CANDIDATES)": (
            duplicates._PG_CANDIDATES, {"values": array_literal(fuzzy_values),
                                        "limit": duplicates.CANDIDATES_PER_KEY}),
    }
    result = {}
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for label, (stmt, params) in queries.items():
                values = len(key_values if "identity" in label else fuzzy_values)
                entry = {"values": values}
                for setting in ("off", "on"):  # off: as index_lookups() runs it; on: the planner's own pick
                    with conn.begin():
                        conn.execute(text(f"SET LOCAL enable_seqscan = {setting}"))
                        if analyze:
                            for _ in range(3):  # the last of three: warm
                                raw = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + stmt.text),
                                                   params).scalar()
                            doc = raw[0] if isinstance(raw, list) else json.loads(raw)[0]
                            nodes = _plan_nodes(doc["Plan"], [])
                            scans = [n for n in nodes if "Scan" in n["Node Type"] and n.get("Relation Name")]
                            entry[setting] = {
                                "ms": round(doc["Execution Time"], 2),
                                "scans": ", ".join(sorted({f"{n['Node Type']} {n.get('Index Name', n['Relation Name'])}"
                                                           for n in scans})),
                                "rows read": sum(int(n["Actual Rows"] * n["Actual Loops"]) for n in scans),
                                "shared hit": doc["Plan"].get("Shared Hit Blocks", 0),
                                "shared read": doc["Plan"].get("Shared Read Blocks", 0),
                            }
                        else:
                            plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + stmt.text), params))
                            entry[setting] = re.sub(r"'\{[^']*\}'", f"'{{... {values} values}}'", plan)
                result[label] = entry
    finally:
        engine.dispose()
    return result


# -- main --------------------------------------------------------------------------------------


def _size(text_: str) -> int:
    text_ = text_.strip().lower().replace("_", "").replace(",", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text_[-1:], 1)
    return int(float(text_.rstrip("km")) * factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M",
                        help="existing contacts per database, comma-separated (10k, 1M, 250000)")
    parser.add_argument("--quick", action="store_true", help="sizes 10k,30k,100k to try it out")
    parser.add_argument("--items", type=int, default=5000, help="timed form items per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sources", default="web,portal",
                        help="web (forms -> leads, built in), portal (forms -> contacts)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--seed-batch", type=int, default=2000, help="contacts per seeding batch")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="timed batch size (default: pipeline.batch_size, 500)")
    parser.add_argument("--no-vacuum", action="store_true", help="no VACUUM ANALYZE after seeding")
    parser.add_argument("--json-out", type=Path, default=None,
                        help="also write every run's figures (phases, statements) to this file")
    args = parser.parse_args()
    sizes = [10_000, 30_000, 100_000] if args.quick else [_size(s) for s in args.sizes.split(",")]
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]

    settings = from_toml(CONFIG)
    if args.batch_size:
        settings = replace(settings, pipeline=replace(settings.pipeline, batch_size=args.batch_size))
    for name in sources:
        source = settings.source(name)
        if source.kind != "form" or not source.reviews_duplicates:
            raise SystemExit(f"source {name} is not a form source that reviews duplicates")
    phases = Phases()
    phases.install()

    print(f"server: {server_settings()}", flush=True)
    print(f"code: {code_state()}", flush=True)
    print(f"sizes {sizes}, {args.items} timed items in batches of {settings.pipeline.batch_size}, "
          f"sources {sources}, median of {args.repeat}; seeding batches of {args.seed_batch}", flush=True)
    results: dict[tuple[int, str], list[dict]] = {}
    seeding: dict[int, dict] = {}
    plans: dict[int, dict] = {}
    dbs = Databases()
    try:
        for existing in sizes:
            print(f"\n## {existing:,} existing contacts", flush=True)
            seed_name, seed_url = dbs.create()
            upgrade(seed_url)
            seeded = seed_contacts(seed_url, settings, existing, args.seed, args.seed_batch, phases)
            if seeded["failed"]:
                raise RuntimeError(f"seeding: {seeded['failed']} contacts failed or were skipped")
            vacuum = 0.0
            if not args.no_vacuum:
                started = time.perf_counter()
                with psycopg.connect(seed_url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
                vacuum = time.perf_counter() - started
            seeded["vacuum_seconds"] = vacuum
            seeded["counts"] = table_counts(seed_url)
            seeding[existing] = seeded
            print(f"  seeding (untimed): {seeded['seconds']:.1f} s "
                  f"({existing / seeded['seconds']:,.0f} contacts/s), VACUUM ANALYZE {vacuum:.1f} s; "
                  f"outcomes {seeded['outcomes']}", flush=True)
            print(f"  in the database: {json.dumps(seeded['counts'], ensure_ascii=False)}", flush=True)

            items = timed_items(args.seed, existing, args.items)
            for round_ in range(args.repeat):
                for source in sources:
                    started = time.perf_counter()
                    run_name, run_url = dbs.create(template=seed_name)
                    copy_seconds = time.perf_counter() - started
                    baseline = None  # EXPLAIN ANALYZE the costliest statements in the last round of
                    if round_ == args.repeat - 1 and existing == sizes[0]:  # the smallest size and of
                        baseline = {}  # the largest, with those grown most since the smallest
                    elif round_ == args.repeat - 1 and existing == sizes[-1]:
                        baseline = _median_run(results[(sizes[0], source)])["statements"]
                    try:
                        result = run_timed(run_url, settings, source, items, phases, baseline)
                    finally:
                        dbs.drop(run_name)
                    results.setdefault((existing, source), []).append(result)
                    print(f"  round {round_ + 1} {source:>6}: {args.items} items in {result['seconds']:6.2f} s "
                          f"= {args.items / result['seconds']:7,.0f} items/s; outcomes {result['outcomes']}, "
                          f"reviews {result['reviews']} {result['reviews_suggested']}, joined to the "
                          f"contact {result['found']} (copy of the database {copy_seconds:.1f} s, "
                          f"load average {os.getloadavg()[0]:.2f})", flush=True)
            plans[existing] = {"analyze": explain(seed_url, settings, items, settings.pipeline.batch_size, True)}
            if existing == sizes[-1]:
                plans[existing]["plain"] = explain(seed_url, settings, items, settings.pipeline.batch_size, False)
            dbs.drop(seed_name)
    finally:
        dbs.drop_all()

    if args.json_out:
        args.json_out.write_text(json.dumps({
            "sizes": sizes, "sources": sources, "items": args.items, "seeding": seeding,
            "runs": {f"{n} {s}": runs for (n, s), runs in results.items()}, "plans": plans},
            default=str, ensure_ascii=False, indent=1))
    report(sizes, sources, results, seeding, plans, args)


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def report(sizes, sources, results, seeding, plans, args) -> None:
    first = results[next(iter(results))][0]
    print(f"\n{args.items} web-form items a run ({json.dumps(first['mix'])}), in-process run_batch, "
          f"median of {args.repeat}, each run on a fresh copy of the seeded database")
    header = (f"{'existing':>10} | {'source':>6} | {'items':>5} | {'wall s':>6} | {'items/s':>7} | "
              f"{'µs/item':>7} | {'ratio':>5} | {'created/merged':>14} | {'reviews (merge/review)':>22} | "
              f"{'joined: exact':>13} | {'look-alike':>10}")
    print(header)
    print("-" * len(header))
    base: dict[str, float] = {}
    medians: dict[tuple[int, str], dict] = {}
    for source in sources:
        for existing in sizes:
            runs = results[(existing, source)]
            median = _median_run(runs)
            medians[(existing, source)] = median
            seconds = statistics.median(r["seconds"] for r in runs)
            us = seconds / args.items * 1e6
            base.setdefault(source, us)
            o = median["outcomes"]
            s = median["reviews_suggested"]
            exact = median["found"].get("exact", (0, 0))
            alike = median["found"].get("look-alike", (0, 0))
            same = "" if all(r["outcomes"] == o and r["reviews"] == median["reviews"] for r in runs) else " *"
            print(f"{existing:>10,} | {source:>6} | {args.items:>5} | {seconds:6.2f} | "
                  f"{args.items / seconds:7,.0f} | {us:7,.0f} | {us / base[source]:5.2f} | "
                  f"{o.get('created', 0):>6}/{o.get('merged', 0):<7} | "
                  f"{str(median['reviews']) + ' (' + str(s.get('merge', 0)) + '/' + str(s.get('review', 0)) + ')':>22} | "
                  f"{exact[0]:>5} of {exact[1]:<4} | {alike[0]:>4} of {alike[1]:<4}{same}")
    print("ratio: µs per item over the smallest size's, per source. joined: items referring to an "
          "existing contact that were merged into it or queued for review with it. "
          "* repeats differed in outcomes")

    print("\nµs per item by phase (the median run; indented: part of the line above)")
    columns = [(existing, source) for source in sources for existing in sizes]
    print(f"{'phase':<34} | " + " | ".join(f"{f'{e // 1000}k {s}':>11}" for e, s in columns))
    for name in PHASE_ORDER:
        print(f"{name:<34} | " + " | ".join(
            f"{medians[c]['phases'][name] / args.items * 1e6:11,.0f}" for c in columns))
    print(f"{'total (wall)':<34} | " + " | ".join(
        f"{medians[c]['seconds'] / args.items * 1e6:11,.0f}" for c in columns))

    print("\nµs per item by SQL statement (the median run; the 12 costliest at any size, then the rest)")
    keys = set().union(*(medians[c]["statements"] for c in columns))
    top = sorted(keys, key=lambda k: -max(medians[c]["statements"].get(k, 0) for c in columns))
    print(" | ".join(f"{f'{e // 1000}k {s}':>11}" for e, s in columns) + " | calls at the largest | statement")
    for key in top[:12]:
        calls = max(medians[(sizes[-1], s)]["calls"].get(key, 0) for s in sources)
        print(" | ".join(f"{medians[c]['statements'].get(key, 0):11,.0f}" for c in columns)
              + f" | {calls:>20} | {key}")
    print(" | ".join(f"{sum(medians[c]['statements'].get(k, 0) for k in top[12:]):11,.0f}" for c in columns)
          + f" | {'':>20} | ({len(top) - 12} other statements)")
    print(" | ".join(f"{sum(medians[c]['statements'].values()):11,.0f}" for c in columns)
          + f" | {'':>20} | all statements (round trips included; commits not)")
    for existing in dict.fromkeys((sizes[0], sizes[-1])):
        for source in sources:
            last = results[(existing, source)][-1]
            for key, plan in last.get("statement_plans", {}).items():
                print(f"\nEXPLAIN (ANALYZE, BUFFERS) at {existing:,}, {source}, default settings, rolled back: "
                      f"{key}\n  " + plan.replace("\n", "\n  "))

    print("\nseeding (untimed, in-process run_batch):")
    for existing in sizes:
        s = seeding[existing]
        print(f"  {existing:>10,} contacts: {s['seconds']:8.1f} s ({existing / s['seconds']:,.0f}/s), "
              f"VACUUM ANALYZE {s['vacuum_seconds']:.1f} s, {s['counts']['database MB']} MB; "
              f"match_keys {s['counts']['match_keys']:,} {s['counts']['match_keys by kind']}, "
              f"owners per name key {s['counts']['owners per name key (avg)']} "
              f"(most: {s['counts']['owners of the commonest name key']}), per domain_name key "
              f"{s['counts']['owners per domain_name key (avg)']}")

    print(f"\none batch's lookups ({args.batch_size or 500} items) on the seeded database, EXPLAIN "
          "(ANALYZE, BUFFERS), the last of three; seqscan off = as the product runs them (index_lookups)")
    for existing in sizes:
        for label, entry in plans[existing]["analyze"].items():
            for setting in ("off", "on"):
                e = entry[setting]
                print(f"  {existing:>10,} {label:<45} seqscan {setting:<3}: {entry['values']:>5} values, "
                      f"{e['ms']:7.2f} ms, {e['rows read']:>7,} rows read, shared hit {e['shared hit']:>6,} "
                      f"read {e['shared read']:>5,}; {e['scans']}")
    largest = sizes[-1]
    for label, entry in plans[largest]["plain"].items():
        for setting in ("off", "on"):
            print(f"\nEXPLAIN at {largest:,}: {label}, enable_seqscan {setting}:")
            print("  " + entry[setting].replace("\n", "\n  "))


if __name__ == "__main__":
    main()
