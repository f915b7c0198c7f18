"""Benchmark: messages/s fetched and processed from a 10,000-message IMAP mailbox (a real
dovecot started here), next to a bare imaplib fetch of the same mailbox in the same run.

    .venv/bin/python bench/imap_fetch.py [--messages 10000] [--repeat 3]

1. A throwaway dovecot (tests/dovecot_server.py; scripts/ensure-dovecot.sh installs it) with a
   Maildir of `--messages` messages written straight into it (untimed): English and Swedish
   texts from the classifier's corpus as bodies, 2,000 senders, 20% replies to earlier
   messages (In-Reply-To), 10% with a case number in the subject, 5% auto-replies, 5% bulk
   mail, 10% HTML-only, 10% quoted-printable ISO-8859-1 bodies.
2. Baseline: imaplib alone: log in, UID SEARCH, UID FETCH BODY.PEEK[] in chunks of 100, as ours
   does, no parsing, no storing.
3. Ours, fetch and land: `ingest poll`'s path (ImapMailbox + run_connector: parse each message,
   land it with its checkpoint) into a fresh embedded SQLite database.
4. Ours, process: the landed items through the pipeline in-process (`run_batch`, batches of
   500) with the built-in mail routing: the classifier reads each message (lead, case or
   other), replies thread onto their cases, automatic mail is ignored.
Medians over `--repeat` runs, each on a fresh database (the same mailbox). Never a test.
"""
from __future__ import annotations

import argparse
import email.utils
import imaplib
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_ingest.classify.model import default_classifier, load_corpus  # noqa: E402
from crm_ingest.connectors.base import run_connector  # noqa: E402
from crm_ingest.connectors.imap import ImapMailbox  # noqa: E402
from crm_ingest.ingest.endpoints import ImapConfig  # noqa: E402
from crm_ingest.ingest.settings import from_toml  # noqa: E402
from crm_ingest.models import RawItem, make_engine, make_session_factory  # noqa: E402
from crm_ingest.models.migrate import upgrade  # noqa: E402
from crm_ingest.workers.batch import run_batch  # noqa: E402
from tests.dovecot_server import PASSWORD, Dovecot  # noqa: E402


def messages(count: int, seed: int = 2026) -> list[bytes]:
    rnd = random.Random(seed)
    texts = [e.text for e in load_corpus()]
    out, ids = [], []
    for n in range(count):
        sender = f"person{rnd.randrange(2000)}@kund{rnd.randrange(300)}.example"
        body = rnd.choice(texts)
        subject = body.split("\n")[0][:60] or "Hello"
        headers = {"From": f"Person {n} <{sender}>", "To": "support@acme.example",
                   "Date": email.utils.formatdate(1764000000 + n * 60), "Message-ID": f"<b{n}@kund.example>",
                   "MIME-Version": "1.0"}
        kind = rnd.random()
        if ids and kind < 0.20:
            headers["In-Reply-To"] = rnd.choice(ids[-500:])
            subject = "Re: " + subject
        elif kind < 0.30:
            subject = f"[CAS-{rnd.randrange(1, max(2, n)):05d}] {subject}"
        elif kind < 0.35:
            headers["Auto-Submitted"] = "auto-replied"
            subject = "Out of office: " + subject
        elif kind < 0.40:
            headers["List-Unsubscribe"] = "<mailto:unsubscribe@news.example>"
        headers["Subject"] = subject
        ids.append(headers["Message-ID"])
        shape = rnd.random()
        if shape < 0.10:
            headers["Content-Type"] = "text/html; charset=utf-8"
            payload = f"<html><body><p>{body}</p><p>Regards</p></body></html>".encode()
        elif shape < 0.20:
            headers["Content-Type"] = "text/plain; charset=iso-8859-1"
            headers["Content-Transfer-Encoding"] = "quoted-printable"
            import quopri

            payload = quopri.encodestring(body.encode("iso-8859-1", "replace"))
        else:
            headers["Content-Type"] = "text/plain; charset=utf-8"
            payload = body.encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        out.append(head + b"\r\n" + payload.replace(b"\n", b"\r\n") + b"\r\n")
    return out


def fill_maildir(server: Dovecot, raws: list[bytes]) -> None:
    box = server.root / "mail" / "support"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(raws):
        (box / "new" / f"{1764000000 + n}.M{n}P1.bench").write_bytes(raw)
    shutil.chown(box, "nobody", "nogroup")
    for path in box.rglob("*"):
        shutil.chown(path, "nobody", "nogroup")


def bare_fetch(server: Dovecot) -> tuple[int, float]:
    started = time.perf_counter()
    conn = imaplib.IMAP4("127.0.0.1", server.port)
    conn.login("support", PASSWORD)
    conn.select("INBOX", readonly=True)
    uids = conn.uid("SEARCH", None, "ALL")[1][0].split()
    count = 0
    for start in range(0, len(uids), 100):
        data = conn.uid("FETCH", b",".join(uids[start:start + 100]).decode(), "(UID RFC822.SIZE BODY.PEEK[])")[1]
        count += sum(1 for part in data if isinstance(part, tuple))
    conn.logout()
    return count, time.perf_counter() - started


def ours(server: Dovecot, folder: Path) -> dict:
    url = f"sqlite:///{folder}/{uuid.uuid4().hex}.db"
    upgrade(url)
    settings = replace(from_toml({}), database_url=url)
    sessions = make_session_factory(make_engine(url))
    config = ImapConfig(host="127.0.0.1", port=server.port, tls="none", user="support",
                        password_env="BENCH", after="none")
    started = time.perf_counter()
    landed = run_connector(sessions, ImapMailbox(config, "mail", PASSWORD))
    fetched_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, len(landed.ids), 500):
        run_batch(sessions, landed.ids[start:start + 500], settings)
    processed_s = time.perf_counter() - started
    from sqlalchemy import func, select

    with sessions() as session:
        outcomes = dict(session.execute(select(RawItem.outcome, func.count()).group_by(RawItem.outcome)).all())
    return {"received": landed.received, "landed": len(landed.ids), "fetch_s": fetched_s,
            "process_s": processed_s, "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("dovecot"):
        sys.exit("dovecot is not installed: sh scripts/ensure-dovecot.sh")
    root = Path(tempfile.mkdtemp(prefix="crm-ingest-bench-dovecot-"))
    root.chmod(0o755)
    folder = Path(tempfile.mkdtemp(prefix="crm-ingest-bench-db-"))
    server = Dovecot(root)
    try:
        started = time.perf_counter()
        fill_maildir(server, messages(args.messages))
        server.start()
        default_classifier()  # trained once a process, as a worker does at its first item
        print(f"mailbox: {args.messages:,} messages written in {time.perf_counter() - started:.1f} s (untimed)")
        bare, fetch, process = [], [], []
        result = {}
        for round_ in range(1, args.repeat + 1):
            count, seconds = bare_fetch(server)
            bare.append(count / seconds)
            result = ours(server, folder)
            fetch.append(result["received"] / result["fetch_s"])
            process.append(result["landed"] / result["process_s"])
            print(f"round {round_}: bare imaplib {count:,} in {seconds:.1f} s; ours fetched and landed "
                  f"{result['landed']:,} in {result['fetch_s']:.1f} s, processed in {result['process_s']:.1f} s; "
                  f"outcomes {result['outcomes']}")
        b, f, p = statistics.median(bare), statistics.median(fetch), statistics.median(process)
        print(f"\n{'method (median of ' + str(args.repeat) + ')':<52} | messages/s")
        print("-" * 66)
        print(f"{'baseline: imaplib UID FETCH only':<52} | {b:>10,.0f}")
        print(f"{'ours: fetch, parse and land (ingest poll)':<52} | {f:>10,.0f}  ({f / b:.2f}x the bare fetch)")
        print(f"{'ours: process (classify, thread, store)':<52} | {p:>10,.0f}")
        print(f"{'ours: end to end, one process':<52} | {1 / (1 / f + 1 / p):>10,.0f}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
