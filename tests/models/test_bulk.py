"""Set-based writes keep every value intact, on PostgreSQL (array literals) and SQLite."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from crm_ingest.models import Lead
from crm_ingest.models.bulk import allocate_ids, insert_rows, update_rows

NASTY = ['plain', 'quote " inside', 'back\\slash', 'comma, {braces}', 'NULL', '', ' spaced ',
         'Åsa Jönsson 名前 😀', "new\nline", "tab\tchar", '\\"both\\"', "'single'"]


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_values_round_trip_through_insert_and_update(url_fixture, request, sessions_for):
    sessions = sessions_for(request.getfixturevalue(url_fixture))
    when = datetime(2026, 11, 29, 12, 30, 15, 123456, tzinfo=timezone.utc)
    with sessions.begin() as session:
        ids = allocate_ids(session, Lead, len(NASTY))
        insert_rows(session, Lead, [
            {"id": i, "first_name": text, "last_name": None, "do_not_contact": n % 2 == 0,
             "details": {"text": text, "n": n, "nested": [text, None]}, "created_at": when}
            for n, (i, text) in enumerate(zip(ids, NASTY))])
    with sessions.begin() as session:
        update_rows(session, Lead, [{"id": i, "last_name": text} for i, text in zip(ids, reversed(NASTY))])
    with sessions() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
    assert [lead.first_name for lead in leads] == NASTY
    assert [lead.last_name for lead in leads] == list(reversed(NASTY))
    assert [lead.details["text"] for lead in leads] == NASTY
    assert [lead.details["nested"] for lead in leads] == [[t, None] for t in NASTY]
    assert [lead.do_not_contact for lead in leads] == [n % 2 == 0 for n in range(len(NASTY))]
    assert {lead.created_at for lead in leads} == {when}
