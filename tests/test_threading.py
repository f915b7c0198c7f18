"""A reply finds its case by headers, by the case number in its subject, or by the same subject
from the same sender within a window; a case resolved longer ago opens a new case naming it."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from crm_ingest.ingest.threads import normalized_subject, tickets_in
from crm_ingest.models import Case, RawItem, utcnow

CONFIG = '[sources.mail]\nrecord_type = "case"\n\n[threading]\nsubject_window_days = 14\nreopen_window_days = 30\n'


def mail(n: int, subject: str, sender: str = "eva@kund.example", **extra) -> dict:
    return {"message_id": f"<t{n}@kund.example>", "from_email": sender, "from_name": "Eva Lind",
            "subject": subject, "text": f"message {n}", **extra}


def land(cli, tmp_path, *payloads: dict) -> None:
    (tmp_path / "ingest.toml").write_text(CONFIG, encoding="utf-8")
    path = tmp_path / f"m{payloads[0]['message_id'].strip('<>').split('@')[0]}.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in payloads), encoding="utf-8")
    assert cli("land", "--source", "mail", str(path)).exit_code == 0


@pytest.fixture
def sessions(tmp_path, sessions_for):
    return sessions_for(f"sqlite:///{tmp_path / 'x.db'}")


def outcome(sessions, n: int) -> tuple:
    with sessions() as session:
        row = session.scalar(select(RawItem).where(RawItem.external_id == f"<t{n}@kund.example>"))
        return row.outcome, row.record_id, row.outcome_reason


@pytest.mark.parametrize("subject, key", [
    ("Re: SV: Order 12 is late", "order 12 is late"), ("AW: Fwd:  [CAS-01001] Order 12 is late ", "order 12 is late"),
    ("VB: Fakturan", "fakturan"), ("Re[2]: hello", "hello"), (None, ""),
    ("EXTERNAL: RE: Problem med inloggning", "problem med inloggning"), ("Odp: Problem", "problem"),
    ("R: Problema", "problema"), ("Rapport: Q3", "rapport q3"), ("Re：问题", "问题"),
])
def test_normalized_subjects(subject, key):
    assert normalized_subject(subject) == key


def test_case_numbers_in_a_subject():
    assert tickets_in("Re: [CAS-01001] and cas-01002") == ["CAS-01001", "CAS-01002"]
    assert tickets_in("NOCAS-01001x") == []


def test_a_reply_finds_its_case_by_header_then_by_case_number_then_by_subject(cli, tmp_path, sessions):
    land(cli, tmp_path, mail(1, "Order 12 is late"))
    first = outcome(sessions, 1)
    assert first[0] == "created"
    with sessions() as session:
        ticket = session.get(Case, first[1]).ticket_number
    # a reply whose headers were lost, but that carries the case number
    land(cli, tmp_path, mail(2, f"Re: [{ticket}] any news?", sender="other@kund.example"))
    # a new message with the same subject from the same sender, no headers, no number
    land(cli, tmp_path, mail(3, "SV: Order 12 is late"))
    # the same subject from someone else is a case of its own
    land(cli, tmp_path, mail(4, "Order 12 is late", sender="bo@annan.example"))
    # a proper reply by header
    land(cli, tmp_path, mail(5, "Re: something else", in_reply_to="<t1@kund.example>"))
    assert [outcome(sessions, n)[:2] for n in (2, 3, 5)] == [("appended", first[1])] * 3
    assert outcome(sessions, 4)[0] == "created" and outcome(sessions, 4)[1] != first[1]


def test_the_same_subject_long_ago_is_a_new_case(cli, tmp_path, sessions):
    land(cli, tmp_path, mail(1, "Login problem"))
    with sessions.begin() as session:
        session.execute(update(Case).values(created_at=utcnow() - timedelta(days=20)))
    land(cli, tmp_path, mail(2, "Login problem"))
    assert outcome(sessions, 2)[0] == "created"


def test_a_reply_to_a_recently_resolved_case_reopens_it_and_to_an_old_one_opens_a_new_case(cli, tmp_path, sessions):
    land(cli, tmp_path, mail(1, "Printer broken"), mail(2, "Invoice wrong"))
    printer, invoice = outcome(sessions, 1)[1], outcome(sessions, 2)[1]
    with sessions.begin() as session:
        session.execute(update(Case).where(Case.id == printer).values(status="resolved",
                                                                      resolved_at=utcnow() - timedelta(days=3)))
        session.execute(update(Case).where(Case.id == invoice).values(status="resolved",
                                                                      resolved_at=utcnow() - timedelta(days=90)))
    land(cli, tmp_path, mail(3, "Re: Printer broken", in_reply_to="<t1@kund.example>"),
         mail(4, "Re: Invoice wrong", in_reply_to="<t2@kund.example>"))

    assert outcome(sessions, 3)[:2] == ("appended", printer)
    created, new_case, reason = outcome(sessions, 4)
    assert created == "created" and new_case != invoice and "resolved longer ago" in reason
    with sessions() as session:
        assert (session.get(Case, printer).status, session.get(Case, printer).resolved_at) == ("active", None)
        assert session.get(Case, new_case).related_case_id == invoice
        assert session.get(Case, invoice).status == "resolved"
