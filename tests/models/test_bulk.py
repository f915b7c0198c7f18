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


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_a_versioned_update_skips_rows_whose_version_moved_on(url_fixture, request, sessions_for):
    # Given three leads, one of which another writer changed since we read it
    sessions = sessions_for(request.getfixturevalue(url_fixture))
    with sessions.begin() as session:
        ids = allocate_ids(session, Lead, 3)
        insert_rows(session, Lead, [{"id": i, "first_name": "old", "status": "new"} for i in ids])

    # When all three are updated on condition that their status is still what we read
    with sessions.begin() as session:
        read = {ids[0]: "new", ids[1]: "qualified", ids[2]: "new"}
        updated = update_rows(session, Lead, [{"id": i, "first_name": "ours"} for i in ids],
                              versioned=("status", read))

    # Then only the two still at the version we read are written, and the count says so
    assert updated == 2
    with sessions() as session:
        assert session.scalars(select(Lead.first_name).order_by(Lead.id)).all() == ["ours", "old", "ours"]


@pytest.mark.integration
def test_key_lookups_use_the_index_even_before_the_table_has_statistics(pg_url, sessions_for):
    from sqlalchemy import text

    from crm_ingest.models.bulk import array_literal, index_lookups

    # Given 200,000 identity keys that PostgreSQL has never analyzed (a bulk import's state)
    sessions = sessions_for(pg_url)
    with sessions.begin() as session:
        session.execute(text(
            "INSERT INTO identity_keys (scope, kind, value, record_id, created_at) "
            "SELECT 'lead', 'email', 'p' || g || '@example.com', g, now() FROM generate_series(1, 200000) g"))
    wanted = array_literal(f"p{n}@example.com" for n in range(1, 200_000, 400))
    explain = "EXPLAIN SELECT * FROM identity_keys WHERE value = ANY(CAST(:v AS TEXT[]))"

    # When 500 values are looked up inside index_lookups
    with sessions.begin() as session:
        with index_lookups(session):
            plan = "\n".join(session.scalars(text(explain), {"v": wanted}))
        after = session.scalar(text("SELECT current_setting('enable_seqscan')"))

    # Then the plan probes the unique index instead of reading every key, and the setting is back
    assert "uq_identity_keys_value_kind_scope" in plan and "Seq Scan" not in plan, plan
    assert after == "on"


def test_copy_landing_keeps_every_value_and_drops_only_nul(pg_url, sessions_for):
    """The hand-written COPY text of a list import: tabs, newlines, backslashes, quotes, JSON
    escapes, NUL and huge numbers land as they were (NUL removed: PostgreSQL cannot hold it)."""
    from crm_ingest.models import RawItem
    from crm_ingest.models.landing import NewItem, copy_items

    sessions = sessions_for(pg_url)
    tricky = NASTY + ["nul\x00inside", "the text \\u0000 itself", "\\N", "cr\rlf\r\n", "ctl\x01\x1f"]
    items = [NewItem(f"row:{n}\t{text}", "row", {"value": text, "n": n, "big": 2 ** 70, "k\tey": [text]})
             for n, text in enumerate(tricky)]
    with sessions.begin() as session:
        ids = copy_items(session, "list", items, import_job_id=None)
    with sessions() as session:
        rows = {row.id: row for row in session.scalars(select(RawItem).where(RawItem.id.in_(ids)))}
    clean = [text.replace("\x00", "") for text in tricky]
    assert [rows[i].payload["value"] for i in ids] == clean
    assert [rows[i].payload["k\tey"] for i in ids] == [[t] for t in clean]
    assert [rows[i].external_id for i in ids] == [f"row:{n}\t{t}" for n, t in enumerate(clean)]
    assert {rows[i].payload["big"] for i in ids} == {2 ** 70}
    assert {(rows[i].state, rows[i].attempts, rows[i].import_job_id) for i in ids} == {("pending", 0, None)}


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_rows_copied_in_keep_every_value(url_fixture, request, sessions_for):
    """copy_rows (new records through COPY on PostgreSQL): text with tabs, newlines,
    backslashes and quotes, JSON, booleans, NULLs and timestamps come back as written."""
    from decimal import Decimal

    from crm_ingest.models import Opportunity
    from crm_ingest.models.bulk import copy_rows

    sessions = sessions_for(request.getfixturevalue(url_fixture))
    when = datetime(2026, 11, 29, 12, 30, 15, 123456, tzinfo=timezone.utc)
    texts = NASTY + ["\\N", "cr\rlf\r\n"]
    with sessions.begin() as session:
        ids = allocate_ids(session, Lead, len(texts))
        copy_rows(session, Lead, [
            {"id": i, "first_name": text, "last_name": None, "do_not_contact": n % 2 == 0,
             "details": {"text": text, "n": n, "nested": [text, None]} if n % 3 else None, "created_at": when}
            for n, (i, text) in enumerate(zip(ids, texts))])
        [opportunity_id] = allocate_ids(session, Opportunity, 1)
        copy_rows(session, Opportunity, [{"id": opportunity_id, "name": "tab\there", "estimated_value": Decimal("1234.50")}])
    with sessions() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
        opportunity = session.get(Opportunity, opportunity_id)
    clean = texts
    assert [lead.id for lead in leads] == ids
    assert [lead.first_name for lead in leads] == clean
    assert {lead.last_name for lead in leads} == {None}
    assert [lead.details for lead in leads] == [{"text": t, "n": n, "nested": [t, None]} if n % 3 else None
                                                for n, t in enumerate(clean)]
    assert [lead.do_not_contact for lead in leads] == [n % 2 == 0 for n in range(len(texts))]
    assert {lead.created_at for lead in leads} == {when}
    assert {lead.status for lead in leads} == {"new"}  # the column's default, applied
    assert (opportunity.name, opportunity.estimated_value) == ("tab\there", Decimal("1234.50"))


def test_a_copy_the_database_refuses_raises_sqlalchemys_error(pg_url, sessions_for):
    """A COPY runs on the driver's cursor; its failure still arrives as SQLAlchemy's error
    for it, so a serialization failure is an OperationalError the workers retry."""
    from sqlalchemy.exc import OperationalError

    from crm_ingest.models.bulk import copy_rows
    from tests.conftest import guard_leads

    sessions = sessions_for(pg_url)
    with sessions.begin() as session:
        guard_leads(session, "contended", "RAISE EXCEPTION 'could not serialize' USING ERRCODE = 'serialization_failure';")
    with pytest.raises(OperationalError, match="could not serialize"):
        with sessions.begin() as session:
            copy_rows(session, Lead, [{"id": i, "first_name": "x"} for i in allocate_ids(session, Lead, 3)])
    with sessions() as session:
        assert session.scalars(select(Lead)).all() == []


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_a_deleted_records_id_is_never_given_to_another(url_fixture, request, sessions_for):
    """A lead merged away or reverted with its import is deleted: its id must not name the next
    lead (SQLite gave the largest id plus one: a merge's review then showed the newcomer, and
    its undo failed with 'lead 2 exists already')."""
    sessions = sessions_for(request.getfixturevalue(url_fixture))
    with sessions.begin() as session:
        first, second = allocate_ids(session, Lead, 2)
        insert_rows(session, Lead, [{"id": first, "first_name": "William"}, {"id": second, "first_name": "Bill"}])
    with sessions.begin() as session:
        session.delete(session.get(Lead, second))  # merged into the first
    with sessions.begin() as session:
        [allocated] = allocate_ids(session, Lead, 1)
        added = Lead(first_name="Jane")
        session.add(added)
        session.flush()
    assert second not in (allocated, added.id)
