"""Every message of CPython's own email test corpus (test/test_email/data, when the Python
installation has it) is landed and gets an outcome (a record, ignored or rejected with a
reason), never a crash or a failed item."""
from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_ingest.models import RawItem

CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
MESSAGES = sorted(p for p in CORPUS.glob("msg_*.txt")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not MESSAGES, reason=f"no CPython email test corpus at {CORPUS}")
def test_every_message_of_the_cpython_corpus_gets_an_outcome(cli, tmp_path, sessions_for):
    folder = tmp_path / "mail"
    folder.mkdir()
    for path in MESSAGES:
        (folder / (path.stem + ".eml")).write_bytes(path.read_bytes())

    result = cli("import-mail", str(folder), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["received"] == len(MESSAGES)

    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        states = dict(session.execute(select(RawItem.state, func.count()).group_by(RawItem.state)).all())
        outcomes = dict(session.execute(select(RawItem.outcome, func.count()).group_by(RawItem.outcome)).all())
        unexplained = session.scalar(select(func.count()).select_from(RawItem).where(
            RawItem.outcome.in_(("rejected", "ignored", "review")), RawItem.outcome_reason.is_(None)))
    # messages with the same Message-ID land once: every landed one is done
    assert set(states) == {"done"}, states
    assert set(outcomes) <= {"created", "merged", "appended", "rejected", "ignored", "review"}
    assert unexplained == 0
