"""Generated workloads for the reliability tests: people with duplicates written differently."""
from __future__ import annotations

import json
import random
from pathlib import Path

from sqlalchemy import text


def people_with_duplicates(total: int, duplicate_share: float, seed: int = 7) -> tuple[list[dict], int]:
    """`total` list rows, `duplicate_share` of them repeating an earlier person's email with
    other case and whitespace. Returns (rows, number of distinct people)."""
    rng = random.Random(seed)
    distinct = total - int(total * duplicate_share)
    rows = [{"external_id": f"p{i}", "fields": {"first_name": f"Person{i}", "last_name": "Test",
                                                "email": f"person{i}@example{i % 50}.com"}}
            for i in range(distinct)]
    for j in range(total - distinct):
        original = rng.randrange(distinct)
        email = f"person{original}@example{original % 50}.com"
        variant = rng.choice([email.upper(), f"  {email} ", email.title(), f"\t{email.upper()}\n"])
        rows.append({"external_id": f"d{j}", "fields": {"first_name": f"Person{original}",
                                                        "email": variant, "company": "Dup AB"}})
    rng.shuffle(rows)
    return rows, distinct


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return path


def split(rows: list[dict], parts: int) -> list[list[dict]]:
    return [rows[i::parts] for i in range(parts)]


def batch_in_flight(sessions) -> bool:
    """Is a worker inside a batch's transaction, having written records, right now? (Only
    workers write identity keys; the lock lasts until the batch commits.)"""
    with sessions() as session:
        return session.scalar(text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'identity_keys' AND l.mode = 'RowExclusiveLock' "
            "AND l.pid <> pg_backend_pid())"))
