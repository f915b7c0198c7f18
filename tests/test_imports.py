"""Campaign list imports on the embedded path: every row accounted for, suppression, linking,
resume after an interruption, and a revert that leaves the database as it was."""
from __future__ import annotations

import csv
import os
import json
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select, text

from crm_ingest.connectors.listfile import REPEATED_HEADER, ListFile
from crm_ingest.ingest.settings import Settings
from crm_ingest.models import CampaignMember, Contact, Lead
from crm_ingest.workers.imports import ImportRequest, land_list

SAMPLE = Path(__file__).resolve().parents[1] / "crm_ingest" / "samples" / "purchased_list.csv"
HEADER = ["Förnamn", "Efternamn", "E-post", "Telefon", "Företag"]


def write_list(path: Path, rows: list[list[str]], header=HEADER, delimiter=";") -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_json(cli, *args: str) -> dict:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_sample_list_is_accounted_for_row_by_row(cli, tmp_path, sessions_for):
    # When the sample trade-show list is imported into a campaign with a consent basis
    job = run_json(cli, "import", str(SAMPLE), "--campaign", "Nordic Expo", "--consent", "legitimate interest")

    # Then every row has one outcome: 19 people, 3 repeats of earlier rows, 3 rejected
    counts = job["counts"]
    assert (counts["created"], counts["duplicate_in_file"], counts["rejected"], counts["rows"]) == (19, 3, 3, 25)
    assert job["state"] == "done" and job["finished_at"] is not None
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        from crm_ingest.models import ImportJob

        stored = session.get(ImportJob, job["job"])  # recorded, not only shown
        assert (stored.state, stored.finished_at is not None) == ("done", True)
        leads = session.scalars(select(Lead)).all()
        assert len(leads) == 19
        assert {lead.campaign_id for lead in leads} == {job["campaign_id"]}
        assert all(lead.details["consent"] == "legitimate interest" and lead.details["import_job"] == job["job"]
                   and lead.details["file"] == "purchased_list.csv" and lead.details["row"] for lead in leads)
        # on the campaign by their own campaign_id (the source campaign), with no member rows
        assert session.scalars(select(CampaignMember)).all() == []
    listed = run_json(cli, "list", "lead", "--campaign", "Nordic Expo", "--limit", "100")
    assert len(listed["records"]) == 19

    # And running the same file again adds nothing
    again = run_json(cli, "import", str(SAMPLE), "--campaign", "Nordic Expo")
    assert again["already_imported"] and again["job"] == job["job"] and again["counts"] == counts


def test_rejected_rows_report_names_the_column_and_neutralizes_formulas(cli, tmp_path):
    listing = write_list(tmp_path / "list.csv", [
        ["=HYPERLINK(\"http://evil.example\",\"x\")", "Ek", "not-an-email", "", "+Corp"],
        ["Anna", "Berg", "", "", "@Firma"],
        ["Ok", "Row", "ok@example.se", "", "Firma AB"],
    ])
    job = run_json(cli, "import", str(listing))
    assert job["counts"]["rejected"] == 2

    cli("import-report", str(job["job"]), "--rejected", str(tmp_path / "rejected.csv"))
    with (tmp_path / "rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["row"] for row in rows] == ["1", "2"]
    assert rows[0]["reason"].startswith("E-post: invalid email")
    assert rows[1]["reason"] == "E-post/Telefon: no email and no phone"
    assert rows[0]["Förnamn"].startswith("'=HYPERLINK")
    assert rows[0]["Företag"] == "'+Corp" and rows[1]["Företag"] == "'@Firma"


def test_a_row_takes_its_first_valid_number_and_a_bad_one_is_named_by_its_column(cli, tmp_path, sessions_for):
    # Given a list with a landline and a mobile column, as trade-show lists often have
    listing = write_list(tmp_path / "numbers.csv", [
        ["Eva", "Ek", "", "ej nummer", "070-765 43 21"],     # the landline is junk, the mobile good
        ["Bo", "Ny", "", "", "ring växeln"],                   # only a junk mobile, no email
        ["Al", "Ås", "Al Ås <al@as.example.se>", "", "fel"],   # a junk mobile, but an email
    ], header=["Förnamn", "Efternamn", "E-post", "Telefon", "Mobil"])

    # When it is imported
    job = run_json(cli, "import", str(listing))

    # Then the first row is a lead with the mobile, the second is rejected naming the mobile
    # column, and the third is a lead found by its email (the address read out of the name form)
    assert (job["counts"]["created"], job["counts"]["rejected"]) == (2, 1)
    cli("import-report", str(job["job"]), "--rejected", str(tmp_path / "rejected.csv"))
    with (tmp_path / "rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["row"], row["reason"][:20]) for row in rows] == [("2", "Mobil: invalid phone")]
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
    assert leads["Eva"].phone == "+46707654321"
    assert (leads["Al"].email, leads["Al"].phone) == ("al@as.example.se", "fel")


def test_placeholders_are_blank_and_a_cell_of_several_addresses_gives_each(cli, tmp_path, sessions_for):
    # Given a list as people fill them in: '-' and 'N/A' for no email, two addresses in a
    # cell, an address ending a sentence
    listing = write_list(tmp_path / "filled.csv", [
        ["Anna", "Sund", "-", "070-123 45 67", ""],
        ["Bo", "Ek", "N/A", "", ""],                                   # nothing at all, really
        ["Cia", "Berg", "cia@berg.se; Cia.Berg@gmail.com", "", ""],
        ["Dan", "Ahl", "dan@ahl.se.", "", ""],
        ["Cia", "Berg", "cia.berg@GMAIL.com", "", "Berg AB"],         # her second address, later
        ["Eva", "Ek", "eva@@ek.se, eva@", "", ""],                     # several, none valid
    ], header=["Förnamn", "Efternamn", "E-post", "Telefon", "Företag"])

    # When it is imported
    job = run_json(cli, "import", str(listing))

    # Then a placeholder is a blank cell: Anna is a lead by her phone, Bo has nothing to be
    # found by; Cia is one lead found again by her second address; Dan's full stop is not his
    counts = job["counts"]
    assert (counts["created"], counts["duplicate_in_file"], counts["rejected"]) == (3, 1, 2)
    cli("import-report", str(job["job"]), "--rejected", str(tmp_path / "rejected.csv"))
    with (tmp_path / "rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        reasons = {row["row"]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons["2"] == "E-post/Telefon: no email and no phone"
    assert reasons["6"].startswith("E-post: invalid email 'eva@@ek.se'")
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
    assert (leads["Anna"].email, leads["Anna"].phone) == (None, "+46701234567")
    assert (leads["Cia"].email, leads["Cia"].company_name) == ("cia@berg.se", "Berg AB")
    assert leads["Cia"].details["other_emails"] == ["Cia.Berg@gmail.com"]  # shown, not only a key
    assert leads["Dan"].email == "dan@ahl.se" and "other_emails" not in leads["Dan"].details


@pytest.mark.parametrize("first, then", [("cia.berg@gmail.com", "ciaberg@gmail.com"),
                                          ("ciaberg@gmail.com", "Cia.Berg+expo@gmail.com")])
def test_one_gmail_mailbox_spelled_two_ways_is_one_person_in_a_file_and_across_files(
        cli, tmp_path, sessions_for, first, then):
    # Given one mailbox written with and without dots (or a +tag), in one file and in two
    header = ["Förnamn", "Efternamn", "E-post", "Telefon", "Företag"]
    one_file = write_list(tmp_path / "one.csv", [["Cia", "Berg", first, "", ""], ["Cia", "Berg", then, "", "Berg AB"]],
                          header=header)
    later = write_list(tmp_path / "later.csv", [["Cia", "Berg", then, "", "Berg AB"], ["Bo", "Ek", "bo@ek.se", "", ""]],
                       header=header)

    # When both files are imported
    in_file = run_json(cli, "import", str(one_file))
    across = run_json(cli, "import", str(later))

    # Then the second spelling is the first one's lead: a repeat in the file, merged across files
    assert (in_file["counts"]["created"], in_file["counts"]["duplicate_in_file"]) == (1, 1)
    assert (across["counts"]["created"], across["counts"]["merged"]) == (1, 1)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
    assert [(lead.first_name, lead.email, lead.company_name) for lead in leads] == [
        ("Cia", first, "Berg AB"), ("Bo", "bo@ek.se", None)]


def test_a_rows_country_is_the_region_of_its_numbers_and_its_address_is_kept(cli, tmp_path, sessions_for):
    # Given an international list (the source's region is Sweden) with a country column
    listing = write_list(tmp_path / "intl.csv", [
        ["Hans", "Meier", "hans@meier.de", "030 1234567", "Berlin", "Deutschland"],
        ["Ole", "Hansen", "ole@hansen.no", "412 34 567", "Oslo", "NO"],
        ["Amy", "Ng", "amy@ng.co.uk", "020 7946 0018", "London", "United Kingdom"],
        ["Eva", "Ek", "eva@ek.se", "08-123 456 78", "Stockholm", "Sverige"],
        ["Kim", "Li", "kim@li.se", "070-123 45 67", "", "Atlantis"],  # no country we know: Sweden's
    ], header=["Förnamn", "Efternamn", "E-post", "Telefon", "Ort", "Land"])

    # When it is imported
    job = run_json(cli, "import", str(listing))

    # Then each number is read in its row's country (a Berlin number is not a Swedish one),
    # and the city and country stay on the lead
    assert job["counts"]["created"] == 5
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
    assert {name: lead.phone for name, lead in leads.items()} == {
        "Hans": "+49301234567", "Ole": "+4741234567", "Amy": "+442079460018", "Eva": "+46812345678",
        "Kim": "+46701234567"}
    assert (leads["Hans"].city, leads["Hans"].country, leads["Hans"].street) == ("Berlin", "Deutschland", None)
    assert (leads["Kim"].city, leads["Kim"].country) == (None, "Atlantis")
    assert leads["Hans"].details.get("fields") is None  # in columns of their own, not the details


def test_suppressed_people_never_become_leads_whatever_list_they_come_back_in(cli, tmp_path, sessions_for):
    # Given a lead from an earlier list, then a do-not-contact list with its email, a phone and a domain
    first = write_list(tmp_path / "first.csv", [["Eva", "Ek", "eva@ek.example.se", "", ""]])
    run_json(cli, "import", str(first))
    (tmp_path / "dnc.txt").write_text("Eva@Ek.example.se\n070-111 22 33\n@spam.example.com\nnonsense\n")
    loaded = run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    assert (loaded["entries"], loaded["records_marked"], len(loaded["invalid"])) == (3, 1, 1)

    # When later lists bring them back, written differently
    for name, email in (("second.csv", " EVA@ek.example.se "), ("third.csv", "eva@ek.example.se")):
        listing = write_list(tmp_path / name, [
            ["Eva", "Ek", email, "", ""],
            ["Bo", "Ny", "bo@ny.example.se", "+46 70 111 22 33", ""],
            ["Spam", "Mer", "x@spam.example.com", "", ""],
            ["Ok", "Ny", f"ok-{name}@example.se", "", ""],
        ])
        job = run_json(cli, "import", str(listing))
        # Then each of them is suppressed, and only the new person becomes a lead
        assert (job["counts"]["suppressed"], job["counts"]["created"]) == (3, 1)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        eva = session.scalar(select(Lead).where(Lead.email == "eva@ek.example.se"))
        assert eva.do_not_contact is True
        assert session.scalar(select(Lead).where(Lead.email == "bo@ny.example.se")) is None


@pytest.mark.parametrize("content", [
    "Företag;Domän\nEk AB;ek.se\nLo AB;https://www.lo.se/kontakt\n",   # a register of companies that said no
    "Email;Domain\n;@ek.se\n;lo.se\n",                                   # beside an email column, empty here
    "www.ek.se\nhttps://www.lo.se/kontakt\n",                            # one a line, as a site is written
])
def test_a_do_not_contact_list_s_domain_column_suppresses_every_address_at_it(cli, tmp_path, content):
    (tmp_path / "dnc.csv").write_text(content, encoding="utf-8")
    loaded = run_json(cli, "suppress", str(tmp_path / "dnc.csv"))
    assert (loaded["entries"], loaded["invalid"]) == (2, [])
    listing = write_list(tmp_path / "list.csv", [["Anna", "Berg", "anna@ek.se", "", ""], ["Bo", "Lo", "bo@lo.se", "", ""],
                                                 ["Cia", "Lo", "cia@lofoten.se", "", ""],
                                                 ["Dan", "Ek", "dan@lab.ek.se", "", ""]])  # a subdomain's address too
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["suppressed"], job["counts"]["created"]) == (3, 1)


@pytest.mark.parametrize("name, content", [
    # as such lists are kept: Excel's 'Unicode text', a semicolon list with the address in its
    # second column, a workbook, a cell of two addresses
    ("dnc.txt", "E-post\r\nanna@berg.se\r\nbo@ek.se\r\n".encode("utf-16")),
    ("dnc.csv", "Namn;E-post;Telefon\nAnna Berg;anna@berg.se;\nBo Ek;bo@ek.se;\n".encode("cp1252")),
    ("dnc.xlsx", None),
    ("dnc2.csv", b"Email\n\"anna@berg.se; bo@ek.se\"\n"),
])
def test_a_do_not_contact_list_is_read_as_any_list_is(cli, tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        book = Workbook()
        for row in (["Förnamn", "E-postadress"], ["Anna", "anna@berg.se"], ["Bo", "bo@ek.se"]):
            book.active.append(row)
        book.save(path)
    else:
        path.write_bytes(content)
    # When it is loaded, Then both addresses are suppressed, and nothing else
    loaded = run_json(cli, "suppress", str(path))
    assert (loaded["entries"], loaded["invalid"]) == (2, [])
    listing = write_list(tmp_path / "list.csv", [["Anna", "Berg", "anna@berg.se", "", ""],
                                                 ["Bo", "Ek", "bo@ek.se", "", ""], ["Cia", "Lo", "cia@lo.se", "", ""]])
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["suppressed"], job["counts"]["created"]) == (2, 1)


def test_a_file_that_is_no_list_loads_no_suppressions_and_says_why(cli, tmp_path):
    (tmp_path / "dnc.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    result = cli("suppress", str(tmp_path / "dnc.pdf"))
    assert result.exit_code == 1 and "a PDF document, not a list" in result.output
    assert "nothing was loaded" in result.output


def test_a_row_for_a_known_contact_links_it_instead_of_making_a_lead(cli, tmp_path, sessions_for):
    # Given a contact already in the CRM
    (tmp_path / "ingest.toml").write_text('[sources.crm]\nkind = "row"\nrecord_type = "contact"\n')
    (tmp_path / "contacts.jsonl").write_text(json.dumps(
        {"id": "c1", "fields": {"first_name": "Lars", "email": "lars@kund.example.se"}}) + "\n")
    cli("land", "--source", "crm", str(tmp_path / "contacts.jsonl"))

    # When a purchased list has that person, with a phone the CRM lacks
    listing = write_list(tmp_path / "list.csv", [["Lars", "Lind", "LARS@kund.example.se", "070-123 45 67", ""]])
    job = run_json(cli, "import", str(listing), "--campaign", "Q1")

    # Then the contact is linked to the campaign and filled in, and no lead is created
    assert job["counts"]["linked_contact"] == 1 and job["counts"]["created"] == 0
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        contact = session.scalar(select(Contact))
        assert (contact.last_name, contact.phone) == ("Lind", "+46701234567")
        assert session.scalar(select(Lead)) is None
        member = session.scalar(select(CampaignMember))
        assert (member.record_type, member.record_id) == ("contact", contact.id)


def test_a_suppressed_gmail_mailbox_stays_suppressed_however_it_is_spelled(cli, tmp_path, sessions_for):
    # Given a lead whose Gmail address is then put on the do-not-contact list in another spelling
    first = write_list(tmp_path / "first.csv", [["Anna", "Sv", "anna.svensson@gmail.com", "", ""]])
    run_json(cli, "import", str(first))
    (tmp_path / "dnc.txt").write_text("AnnaSvensson+promo@gmail.com\n")
    loaded = run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    assert loaded["records_marked"] == 1

    # When a later list brings the mailbox back spelled a third way
    listing = write_list(tmp_path / "second.csv", [["Anna", "Sv", "a.nnasvensson@googlemail.com", "", ""]])
    job = run_json(cli, "import", str(listing))

    # Then the row is suppressed
    assert (job["counts"]["suppressed"], job["counts"]["created"]) == (1, 0)


@pytest.mark.parametrize("upsert_by, leads_after", [("email", 1), ("phone", 1), ("none", 2)])
def test_upsert_by_chooses_what_finds_an_existing_lead(cli, tmp_path, sessions_for, upsert_by, leads_after):
    first = write_list(tmp_path / "first.csv", [["A", "B", "a@example.se", "070-123 45 67", ""]])
    run_json(cli, "import", str(first))
    if upsert_by == "phone":  # same phone, other email: found by phone
        row = ["A", "B", "other@example.se", "0701234567", ""]
    else:
        row = ["A", "B", "a@example.se", "", ""]
    second = write_list(tmp_path / "second.csv", [row])
    job = run_json(cli, "import", str(second), "--upsert-by", upsert_by)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        assert len(session.scalars(select(Lead)).all()) == leads_after
    assert job["counts"]["created" if upsert_by == "none" else "merged"] == 1


def test_a_lead_keeps_both_numbers_and_a_later_list_finds_it_by_either(cli, tmp_path, sessions_for):
    # Given a trade-show list with a switchboard number and a mobile for each person
    first = write_list(tmp_path / "first.csv", [["Eva", "Ek", "eva@ek.se", "08-123 456 78", "070-765 43 21"],
                                                ["Bo", "Berg", "bo@berg.se", "08-123 456 78", ""]],
                       header=["Förnamn", "Efternamn", "E-post", "Telefon", "Mobil"])
    run_json(cli, "import", str(first))
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    before = snapshot(sessions)

    # When a second list names Eva by her mobile alone, and Bo by a mobile he did not have
    second = write_list(tmp_path / "second.csv", [["Eva", "Ek", "", "", "+46 70 765 43 21"],
                                                  ["Bo", "Berg", "bo@berg.se", "", "070-111 22 33"]],
                        header=["Förnamn", "Efternamn", "E-post", "Telefon", "Mobil"])
    job = run_json(cli, "import", str(second))

    # Then both numbers were on Eva's lead, and the mobile finds her; Bo's blank mobile is filled
    assert (job["counts"]["merged"], job["counts"]["created"]) == (2, 0)
    with sessions() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
        keys = set(session.execute(text("SELECT kind, value, record_id FROM identity_keys WHERE kind = 'phone'")))
    assert len(leads) == 2
    assert (leads["Eva"].phone, leads["Eva"].mobile_phone) == ("+46812345678", "+46707654321")
    assert (leads["Bo"].phone, leads["Bo"].mobile_phone) == ("+46812345678", "+46701112233")
    assert ("phone", "+46707654321", leads["Eva"].id) in keys and ("phone", "+46701112233", leads["Bo"].id) in keys

    # And reverting the second list takes Bo's mobile and its key away again
    run_json(cli, "import-revert", str(job["job"]))
    assert snapshot(sessions) == before


def test_a_row_with_its_address_in_the_phone_column_becomes_a_lead_saying_so(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "moved.csv", [["Bo", "Ek", "", "bo@ek.se", "Ek AB"]])
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["created"], job["counts"]["rejected"]) == (1, 0)  # not 'no email and no phone'
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        lead = session.scalars(select(Lead)).one()
    assert (lead.email, lead.phone) == ("bo@ek.se", None)
    assert lead.details["moved"] == "the address was in 'Telefon': read as the email"


SNAPSHOT = {
    "leads": "SELECT id, first_name, last_name, email, phone, mobile_phone, company_name, campaign_id, do_not_contact, "
             "details, status, contact_id FROM leads",
    "contacts": "SELECT id, first_name, last_name, email, phone, mobile_phone FROM contacts",
    "identity_keys": "SELECT scope, kind, value, record_id FROM identity_keys",
    "campaign_members": "SELECT campaign_id, record_type, record_id FROM campaign_members",
    "merge_log": "SELECT raw_item_id, record_type, record_id FROM merge_log",
}


def snapshot(sessions) -> dict:
    with sessions() as session:
        return {name: sorted(map(tuple, session.execute(text(sql)).all()), key=repr)
                for name, sql in SNAPSHOT.items()}


def test_revert_leaves_the_database_as_it_was_before_the_import(cli, tmp_path, sessions_for):
    # Given leads from an earlier list, one of them without a phone or company
    first = write_list(tmp_path / "first.csv", [["Anna", "", "anna@example.se", "", ""],
                                                ["Bo", "Berg", "bo@example.se", "070-000 00 01", "Berg AB"]])
    run_json(cli, "import", str(first), "--campaign", "Spring")
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    before = snapshot(sessions)

    # When a second list fills Anna's blanks, adds her phone, adds new people, repeats one, rejects one
    second = write_list(tmp_path / "second.csv", [
        ["Anna", "Ask", "ANNA@example.se", "070-000 00 02", "Ask AB"],
        ["Cia", "Cell", "cia@example.se", "070-000 00 03", ""],
        ["Cia", "Cell", "cia@example.se", "", ""],
        ["Dan", "", "broken@", "", ""],
    ])
    job = run_json(cli, "import", str(second), "--campaign", "Autumn")
    assert (job["counts"]["merged"], job["counts"]["created"], job["counts"]["duplicate_in_file"],
            job["counts"]["rejected"]) == (1, 1, 1, 1)
    assert snapshot(sessions) != before

    # Then reverting it restores the records, keys and links exactly
    result = run_json(cli, "import-revert", str(job["job"]))
    assert result["records_deleted"] == 1 and result["fields_restored"] >= 3
    assert snapshot(sessions) == before


def test_revert_keeps_a_lead_qualified_since_and_says_so(cli, tmp_path, sessions_for):
    """Reverting an import one of whose leads was qualified since failed on the opportunity's
    foreign key (a traceback; the API answered 500), and the job could never be reverted."""
    listing = write_list(tmp_path / "list.csv", [["Anna", "Ask", "anna@example.se", "", "Ask AB"],
                                                 ["Bo", "Berg", "bo@example.se", "", "Berg AB"]])
    job = run_json(cli, "import", str(listing), "--campaign", "Spring")
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        anna = session.scalar(select(Lead.id).where(Lead.email == "anna@example.se"))
    run_json(cli, "lead", "qualify", str(anna))
    result = run_json(cli, "import-revert", str(job["job"]))
    assert result["records_deleted"] == 1 and result["kept_qualified"][0] == f"lead {anna}"
    again = cli("import-revert", str(job["job"]))  # said, not answered with zero counts
    assert again.exit_code != 0 and f"import job {job['job']} was reverted already" in again.output
    with sessions() as session:
        assert [lead.email for lead in session.scalars(select(Lead))] == ["anna@example.se"]


class Interrupted(ListFile):
    """A list whose reading fails after some rows, as when the importing process is killed."""

    def __init__(self, *args, fail_after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_after = fail_after

    def fetch(self, since=None):
        for number, item in enumerate(super().fetch(since), start=1):
            if number > self.fail_after:
                raise KeyboardInterrupt
            yield item


@pytest.mark.parametrize("database", ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.integration)])
def test_an_interrupted_import_resumes_and_ends_with_the_same_counts(tmp_path, database, sessions_for,
                                                                     monkeypatch, request):
    import crm_ingest.workers.imports as imports

    url = request.getfixturevalue(database)  # PostgreSQL lands with COPY, SQLite with inserts

    monkeypatch.setattr(imports, "CHUNK_ROWS", 100)
    rows = [[f"P{i % 900}", "Test", f"p{i % 900}@example.se", "", ""] for i in range(1000)]  # 100 repeated
    rows[500] = ["Bad", "Row", "bad@", "", ""]
    listing = write_list(tmp_path / "big.csv", rows)
    request = ImportRequest("list", campaign="Resume")

    # Given an import that stopped after 350 rows (three chunks landed and processed)
    sessions = sessions_for(url)
    settings = Settings(database_url=url)
    with pytest.raises(KeyboardInterrupt):
        land_list(sessions, Interrupted(listing, "list", fail_after=350), request, settings)

    # When it is run again, it resumes after the last landed chunk
    progress = land_list(sessions, ListFile(listing, "list"), request, settings)
    assert progress.resumed_from_row == 300

    # Then the counts equal those of an uninterrupted import into a fresh database
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    from crm_ingest.models.migrate import upgrade
    upgrade(reference_url)
    reference = sessions_for(reference_url)
    done = land_list(reference, ListFile(listing, "list"), request, Settings(database_url=reference_url))
    from crm_ingest.ingest.importjobs import job_counts
    with sessions() as a, reference() as b:
        assert job_counts(a, progress.job_id) == job_counts(b, done.job_id)
        counts = job_counts(a, progress.job_id)
    assert (counts["rows"], counts["created"], counts["duplicate_in_file"], counts["rejected"]) == (1000, 899, 100, 1)


class Unreadable(Interrupted):
    """A list whose reader fails part-way, as a workbook with broken XML half-way down does."""

    def fetch(self, since=None):
        for number, item in enumerate(ListFile.fetch(self, since), start=1):
            if number > self.fail_after:
                from crm_ingest.ingest.errors import FatalError
                raise FatalError("big.csv: row 351 cannot be read")
            yield item


def test_a_landing_that_stops_says_why_on_its_job_until_it_is_landed(cli, tmp_path, sessions_for, monkeypatch):
    import crm_ingest.workers.imports as imports
    from crm_ingest.ingest.errors import FatalError
    from crm_ingest.ingest.importjobs import job_summary
    from crm_ingest.models import ImportJob

    monkeypatch.setattr(imports, "CHUNK_ROWS", 100)
    listing = write_list(tmp_path / "big.csv", [[f"P{i}", "Test", f"p{i}@example.se", "", ""] for i in range(500)])
    from crm_ingest.models.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    sessions, settings, request = sessions_for(url), Settings(database_url=url), ImportRequest("list")
    # Given a landing whose reader fails after 350 rows
    with pytest.raises(FatalError):
        land_list(sessions, Unreadable(listing, "list", fail_after=350), request, settings)
    # Then every row read before it is landed (not the last chunk's 50 lost with the error), and its
    # job, still landing, says after which row it stopped and why (what a client polling
    # GET /imports/{id} sees)
    with sessions.begin() as session:
        summary = job_summary(session, session.scalars(select(ImportJob)).one())
    assert (summary["state"], summary["rows_landed"]) == ("landing", 350)
    assert summary["options"]["stopped"]["after_row"] == 350
    assert summary["options"]["stopped"]["error"].startswith("FatalError: big.csv: row 351 cannot be read")
    shown = " ".join(cli("import-report", str(summary["job"])).output.split())
    assert "landing stopped after row 350: FatalError: big.csv: row 351 cannot be read" in shown
    # And once the file is landed after all, the stop is gone from it
    land_list(sessions, ListFile(listing, "list"), request, settings)
    with sessions.begin() as session:
        summary = job_summary(session, session.scalars(select(ImportJob)).one())
    assert summary["state"] == "done" and summary["counts"]["created"] == 500 and "stopped" not in summary["options"]


@pytest.mark.integration
def test_a_second_process_landing_the_same_job_stops_with_a_clear_error(tmp_path, pg_url, sessions_for):
    from crm_ingest.models import ImportJob
    from crm_ingest.workers.imports import ConcurrentImport

    listing = write_list(tmp_path / "l.csv", [[f"P{i}", "T", f"p{i}@example.se", "", ""] for i in range(10)])
    sessions = sessions_for(pg_url)
    settings = Settings(database_url=pg_url)

    # Given a job whose cursor another process moves while this one lands its first chunk
    class Racing(ListFile):
        def fetch(self, cursor=None):
            with sessions.begin() as session:
                session.execute(text("UPDATE import_jobs SET rows_read = rows_read + 5"))
            yield from super().fetch(cursor)

    # When this process tries to land, it stops naming the job, and lands nothing
    with pytest.raises(ConcurrentImport, match="being landed by another process"):
        land_list(sessions, Racing(listing, "list"), ImportRequest("list"), settings)
    with sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM raw_items")) == 0
        assert session.scalar(select(ImportJob.state)) == "landing"


def test_people_sharing_a_switchboard_number_stay_apart_unless_their_names_agree(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "list.csv", [
        ["Anna", "Ek", "anna@firma.example.se", "08-123 456 78", "Firma AB"],
        ["Bo", "Ek", "bo@firma.example.se", "08-123 456 78", "Firma AB"],
        ["Cia", "Ek", "", "08-123 456 78", "Firma AB"],  # no email, another name: a third person
        ["Anna", "Ek", "", "08 12345678", "Firma AB"],  # no email, Anna's name: Anna again
    ])
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["created"], job["counts"]["duplicate_in_file"]) == (3, 1)


def test_contact_exports_of_google_and_outlook_import_with_their_emails_and_phones(cli, tmp_path, sessions_for):
    # Given a Google Contacts export (numbered 'E-mail 1 - Value' columns, several numbers in
    # one cell joined by ' ::: ') and an Outlook export (Title is the salutation, a second
    # address in 'E-mail 2 Address'), as they are written
    google = write_list(tmp_path / "contacts.csv", [
        ["Anna", "Svensson", "* Work", "anna.svensson@foretag.se", "Home", "anna.s@gmail.com",
         "Mobile", "+46 70 123 45 67 ::: +46 8 123 45 67", "Företag AB", "VD"],
        ["John", "Smith", "* Work", "", "", "", "Work", "+1 (212) 555-0147", "Acme Inc", "CTO"],
    ], header=["First Name", "Last Name", "E-mail 1 - Label", "E-mail 1 - Value", "E-mail 2 - Label",
               "E-mail 2 - Value", "Phone 1 - Label", "Phone 1 - Value", "Organization Name",
               "Organization Title"], delimiter=",")
    outlook = write_list(tmp_path / "outlook.csv", [
        ["Bo", "Ek", "Mr.", "Inköpschef", "Ek AB", "08-123 456 78", "bo@ek.se", "SMTP", "bo.ek@gmail.com"],
        ["Anna", "Svensson", "Ms.", "", "", "", "anna.s@gmail.com", "SMTP", ""],
    ], header=["First Name", "Last Name", "Title", "Job Title", "Company", "Business Phone",
               "E-mail Address", "E-mail Type", "E-mail 2 Address"], delimiter=",")

    # When both are imported, one after the other
    first = run_json(cli, "import", str(google), "--campaign", "Kontakter")
    second = run_json(cli, "import", str(outlook), "--campaign", "Kontakter")

    # Then nobody is rejected: every row has the email and phone its export gave it, and Anna,
    # known in the second file by the address from the first file's second column, is one lead
    assert (first["counts"]["created"], first["counts"]["rejected"]) == (2, 0)
    assert (second["counts"]["created"], second["counts"]["merged"], second["counts"]["rejected"]) == (1, 1, 0)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
    assert len(leads) == 3
    assert (leads["Anna"].email, leads["Anna"].phone, leads["Anna"].job_title) == (
        "anna.svensson@foretag.se", "+46701234567", "VD")
    assert (leads["John"].email, leads["John"].phone) == (None, "+12125550147")
    assert (leads["Bo"].email, leads["Bo"].phone, leads["Bo"].job_title) == ("bo@ek.se", "+46812345678", "Inköpschef")


def test_a_swedish_excel_list_with_its_own_column_names_imports(cli, tmp_path, sessions_for):
    # Given a list saved by Swedish Excel: semicolons, Windows-1252, and names of its own
    path = tmp_path / "kommuner.csv"
    path.write_bytes("Förnamn;Efternamn;Mailadress;Mobilnr;Telefonnr;Organisation;Postadress;Postnr;Ort\r\n"
                     "Åsa;Öberg;asa.oberg@umea.se;070-111 22 33;;Umeå kommun;Box 12;901 84;Umeå\r\n"
                     "Örjan;Ås;;;090-16 10 00;Umeå kommun;;;Umeå\r\n".encode("cp1252"))
    # When it is imported
    job = run_json(cli, "import", str(path))
    # Then both are leads with their contact points and address
    assert (job["counts"]["created"], job["counts"]["rejected"]) == (2, 0)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
    assert (leads["Åsa"].email, leads["Åsa"].phone) == ("asa.oberg@umea.se", "+46701112233")
    assert (leads["Åsa"].street, leads["Åsa"].postal_code, leads["Åsa"].city) == ("Box 12", "901 84", "Umeå")
    assert leads["Örjan"].phone == "+4690161000"


def test_a_repeated_header_is_ignored_and_annotated_numbers_are_read(cli, tmp_path, sessions_for):
    # Given a list pasted together from two exports (the header again in the middle), with
    # numbers as people annotate them
    listing = write_list(tmp_path / "pages.csv", [
        ["Eva", "Ek", "", "070-765 43 21 (mobil)", ""],
        HEADER,
        ["Bo", "Ny", "", "08-123 456 78 ankn. 12", "Ny AB"],
    ])
    # When it is imported
    job = run_json(cli, "import", str(listing))
    # Then the repeated header is accounted for as ignored, not rejected, and both are leads
    counts = job["counts"]
    assert (counts["created"], counts["ignored"], counts["rejected"], counts["rows"]) == (2, 1, 0, 3)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        phones = {lead.first_name: lead.phone for lead in session.scalars(select(Lead))}
        reasons = [row[0] for row in session.execute(text("SELECT outcome_reason FROM raw_items WHERE outcome = 'ignored'"))]
    assert phones == {"Eva": "+46707654321", "Bo": "+46812345678;ext=12"}  # the extension kept
    assert reasons == [REPEATED_HEADER]


def test_a_row_the_list_marks_opted_out_is_suppressed_and_a_rows_consent_is_kept(cli, tmp_path, sessions_for):
    # Given a CRM export with an opt-out column and a consent column
    listing = write_list(tmp_path / "export.csv", [
        ["Anna", "Ek", "anna@ek.se", "1", ""],
        ["Bo", "Ny", "bo@ny.se", "0", "Ja, mässan 2026"],
        ["Cia", "Ås", "cia@as.se", "Ja", "Nej"],
    ], header=["First Name", "Last Name", "Email", "Email Opt Out", "Samtycke"], delimiter=",")
    # When it is imported
    job = run_json(cli, "import", str(listing), "--campaign", "Export")
    # Then the opted-out rows become no lead, counted as suppressed with the reason; the
    # rest keep what their row said about consent
    counts = job["counts"]
    assert (counts["created"], counts["suppressed"], counts["rows"]) == (1, 2, 3)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = session.scalars(select(Lead)).all()
        reasons = sorted(row[0] for row in session.execute(
            text("SELECT outcome_reason FROM raw_items WHERE outcome = 'ignored'")))
    assert [(lead.first_name, lead.details["fields"]) for lead in leads] == [("Bo", {"consent": "Ja, mässan 2026"})]
    assert reasons == ["suppressed: the list marks the person opted out ('1')",
                       "suppressed: the list marks the person opted out ('Ja')"]


def test_the_preview_says_which_rows_the_reader_repaired_or_sets_aside(cli, tmp_path):
    # Given a hand-written list with an unquoted comma in a name, and its header repeated
    listing = tmp_path / "hand.csv"
    listing.write_text("Name,E-mail,City\nSvensson, Anna,anna@svensson.se,Göteborg\nName,E-mail,City\n"
                       "Bo Ek,bo@ek.se,Lund\n", encoding="utf-8")
    # When it is previewed
    result = cli("import", str(listing), "--preview")
    # Then each such row is named with what was done, below the rows as read
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "row 1: 'Svensson' and ' Anna' read as one value, 'Svensson, Anna'" in text
    assert "row 2: the header row repeated" in text


def test_the_preview_says_a_further_phone_column_fills_an_empty_phone(cli, tmp_path):
    # Given an Outlook-style list with two business phone columns
    listing = write_list(tmp_path / "two.csv", [["Eva", "eva@ek.se", "", "08-123 456 78"]],
                         header=["First Name", "E-mail Address", "Business Phone", "Business Phone 2"], delimiter=",")
    # When it is previewed as JSON and for a person
    data = run_json(cli, "import", str(listing), "--preview")
    shown = " ".join(cli("import", str(listing), "--preview").output.split())
    # Then the second column is said to fill the phone, and the row's phone is its number
    columns = {column["header"]: column for column in data["columns"]}
    assert (columns["Business Phone"]["field"], columns["Business Phone 2"].get("fills")) == ("phone", "phone")
    assert data["rows"][0]["fields"]["phone"] == "08-123 456 78"
    assert "Business Phone 2 │ phone (when the first" in shown


@pytest.mark.parametrize("database", ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.integration)])
def test_rows_of_long_notes_land_in_smaller_chunks(tmp_path, database, sessions_for, monkeypatch, request):
    import crm_ingest.workers.imports as imports
    from crm_ingest.ingest.importjobs import job_counts
    from crm_ingest.models import ImportChunk

    url = request.getfixturevalue(database)
    monkeypatch.setattr(imports, "CHUNK_CHARS", 50_000)
    # Given a list where every row has a note of 10,000 characters (a chunk of CHUNK_ROWS such rows
    # of 1 MB notes would be 5 GB, past what PostgreSQL holds in one value)
    rows = [[f"P{i}", "Test", f"p{i}@example.se", "", "Mötte oss i montern. " * 500] for i in range(60)]
    listing = write_list(tmp_path / "notes.csv", rows)
    sessions = sessions_for(url)
    # When it is imported
    progress = land_list(sessions, ListFile(listing, "list"), ImportRequest("list", campaign="Notes"),
                         Settings(database_url=url))
    # Then it landed in chunks of about CHUNK_CHARS of text, and every row has its outcome
    with sessions() as session:
        sizes = list(session.scalars(select(ImportChunk.row_count).order_by(ImportChunk.id)))
        counts = job_counts(session, progress.job_id)
    assert sizes == [5] * 12
    assert (counts["rows"], counts["created"]) == (60, 60)


def test_a_headerless_do_not_contact_list_gives_every_address_and_number_on_its_lines(cli, tmp_path):
    # Given lines as people paste them: an address and a note, a note and an address, Outlook's
    # recipients, a number with its word, a domain, and a line of nothing we can read
    (tmp_path / "dnc.txt").write_text("Anna Svensson <anna@berg.se>, avregistrerad 2026-01-02\n,bo@ek.se\n"
                                      "Per Ek <per@el-x.se>; \"Svensson, Lisa\" <lisa@el-x.se>; kalle@ab-x.se\n"
                                      "070 111 22 35 (mobil)\n@företag-x.se\nbo@\nring inte\n", encoding="utf-8")
    # When it is loaded
    loaded = run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    # Then each is an entry (an opt-out is honoured wherever on the line it is written), and the
    # lines not understood are said, with the file's line numbers
    assert loaded["entries"] == 7
    assert [(bad["line"], bad["value"]) for bad in loaded["invalid"]] == [(6, "bo@"), (7, "ring inte")]
    assert loaded["invalid"][0]["reason"].startswith("email:")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_suppressed_domain_marks_the_people_already_at_it_in_one_pass(cli, tmp_path, request, monkeypatch,
                                                                        sessions_for, database):
    if database == "postgresql":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_url"))
    listing = write_list(tmp_path / "list.csv", [["Anna", "Berg", "anna@ek.se", "", ""], ["Bo", "Lo", "bo@LO.se", "", ""],
                                                 ["Cia", "Lo", "cia@lofoten.se", "", ""], ["Dan", "Ek", "dan@sub.ek.se", "", ""]])
    assert run_json(cli, "import", str(listing))["counts"]["created"] == 4
    (tmp_path / "dnc.txt").write_text("ek.se\n@lo.se\nother.se\n")
    assert run_json(cli, "suppress", str(tmp_path / "dnc.txt"))["records_marked"] == 3
    with sessions_for(os.environ["DATABASE_URL"])() as session:  # a subdomain's people too, as on new rows
        assert set(session.scalars(select(Lead.email).where(Lead.do_not_contact))) == \
            {"anna@ek.se", "bo@lo.se", "dan@sub.ek.se"}


@pytest.mark.parametrize("content", ["070-111 22 33\n070-222 33 44\n", "ek.se\nlo.se\n", "@ek.se\r\n@lo.se\r\n"])
def test_a_headerless_list_of_numbers_or_domains_loses_not_its_first_line(cli, tmp_path, content):
    (tmp_path / "dnc.txt").write_text(content)
    assert run_json(cli, "suppress", str(tmp_path / "dnc.txt"))["entries"] == 2


def test_a_do_not_contact_list_is_loaded_a_batch_at_a_time_with_the_same_result(cli, tmp_path, monkeypatch):
    from crm_ingest.ingest import importjobs

    monkeypatch.setattr(importjobs, "SUPPRESSION_BATCH", 2)  # a national register's millions, in small
    monkeypatch.setattr(importjobs, "MAX_INVALID_SHOWN", 1)
    listing = write_list(tmp_path / "list.csv", [["Eva", "Ek", "eva@ek.se", "", ""], ["Bo", "Ny", "", "070-111 22 33", ""]])
    run_json(cli, "import", str(listing))
    (tmp_path / "dnc.txt").write_text("eva@ek.se\nnonsense\n070-111 22 33\nx@y.se\n@spam.se\nEVA@ek.se\nmore nonsense\n")
    loaded = run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    assert (loaded["added"], loaded["records_marked"], loaded["invalid_lines"], len(loaded["invalid"])) == (4, 2, 2, 1)
    assert loaded["invalid"][0]["line"] == 2


def test_a_lead_known_by_its_phone_alone_is_found_by_a_later_row_with_an_address(cli, tmp_path, sessions_for):
    # Given a trade-show list that had Anna's and Bo's mobiles but no addresses
    first = write_list(tmp_path / "first.csv", [["Anna", "Ek", "", "070-123 45 67", "Ek AB"],
                                                ["Bo", "Berg", "", "070-765 43 21", ""]])
    run_json(cli, "import", str(first))
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    before = snapshot(sessions)

    # When a purchased list names Anna with an address and her mobile, and someone else at Bo's
    second = write_list(tmp_path / "second.csv", [["Anna", "Ek", "anna@ek.se", "+46 70 123 45 67", ""],
                                                  ["Cia", "Berg", "cia@berg.se", "0707654321", ""]])
    job = run_json(cli, "import", str(second))

    # Then Anna's lead gets her address (one lead, not two), and Cia is a lead of her own
    assert (job["counts"]["merged"], job["counts"]["created"]) == (1, 1)
    with sessions() as session:
        leads = {lead.first_name: lead for lead in session.scalars(select(Lead))}
        owner = session.scalar(text("SELECT record_id FROM identity_keys WHERE kind = 'email' "
                                    "AND value = 'anna@ek.se'"))
    assert sorted(leads) == ["Anna", "Bo", "Cia"]
    assert (leads["Anna"].email, leads["Anna"].company_name, owner) == ("anna@ek.se", "Ek AB", leads["Anna"].id)
    assert leads["Bo"].email is None

    # And a later list naming Anna at another address makes no third Anna: her lead has one
    third = write_list(tmp_path / "third.csv", [["Anna", "Ek", "anna.ek@annat.se", "0701234567", ""]])
    later = run_json(cli, "import", str(third))
    assert later["counts"]["created"] == 1

    # And reverting the lists takes Anna's address away again
    run_json(cli, "import-revert", str(later["job"]))
    run_json(cli, "import-revert", str(job["job"]))
    assert snapshot(sessions) == before


def test_a_row_with_an_address_joins_an_earlier_row_of_the_file_known_by_its_phone_alone(cli, tmp_path):
    listing = write_list(tmp_path / "list.csv", [
        ["Anna", "Ek", "", "070-123 45 67", "Ek AB"],
        ["Anna", "Ek", "anna@ek.se", "0701234567", ""],  # the same Anna, now with her address
        ["Bo", "Ek", "bo@ek.se", "0701234567", ""],  # another name at her number: his own lead
    ])
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["created"], job["counts"]["duplicate_in_file"]) == (2, 1)


def test_a_contacts_list_links_the_open_leads_of_its_addresses_and_its_revert_unlinks_them(
        cli, tmp_path, sessions_for):
    # Given a lead from a purchased list
    listing = write_list(tmp_path / "list.csv", [["Lars", "Lind", "lars@kund.example.se", "", ""]])
    run_json(cli, "import", str(listing))
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    before = snapshot(sessions)

    # When the customer file is imported as contacts, Lars among them
    (tmp_path / "ingest.toml").write_text('[sources.crm]\nkind = "row"\nrecord_type = "contact"\n')
    contacts = write_list(tmp_path / "contacts.csv", [["Lars", "Lind", "Lars@Kund.example.se", "", ""]])
    job = run_json(cli, "import", str(contacts), "--source", "crm")

    # Then his lead names his contact as its own
    with sessions() as session:
        contact_id = session.scalar(select(Contact.id))
        assert session.scalar(select(Lead.contact_id)) == contact_id is not None

    # And reverting the contacts import leaves the lead as it was
    run_json(cli, "import-revert", str(job["job"]))
    assert snapshot(sessions) == before


def test_a_bounced_address_goes_on_the_do_not_contact_list_saying_it_bounced(cli, tmp_path, sessions_for):
    # Given a lead, then Mailchimp's cleaned export naming her address and a list marking a
    # number not to be called
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Ulf", "Sandberg", "ulf@sandberg.se", "", ""]])))
    (tmp_path / "cleaned.csv").write_text('"Email Address","First Name",CLEAN_TIME,CLEAN_CAMPAIGN_TITLE\n'
                                          'ulf@sandberg.se,Ulf,"2025-11-20 06:00:00","Nyhetsbrev"\n', encoding="utf-8")
    (tmp_path / "dnc.csv").write_text("Namn;Mobil;Ring ej\nBo Ek;0701112233;Ja\n", encoding="utf-8")
    cleaned = run_json(cli, "import", str(tmp_path / "cleaned.csv"))
    run_json(cli, "import", str(tmp_path / "dnc.csv"))
    # Then the address is suppressed and the lead marked, each entry saying why it is on the list
    assert cleaned["counts"]["suppressed"] == 1
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        entries = set(session.execute(text("SELECT value, reason FROM suppressions")).all())
        marked = session.scalar(text("SELECT do_not_contact FROM leads WHERE email = 'ulf@sandberg.se'"))
    assert entries == {("ulf@sandberg.se", "the list marks the address as bounced"),
                       ("+46701112233", "the list marks the person as not to be called")}
    assert marked


def test_a_person_a_list_marks_opted_out_stays_suppressed_in_the_next_list(cli, tmp_path, sessions_for):
    # Given a lead from last year's fair, and this year's export marking her unsubscribed from
    # our mail by the time she did (Mailchimp), and Bo against our calls by Salesforce's 'Do Not Call'
    run_json(cli, "import", str(write_list(tmp_path / "fair.csv", [["Petra", "Lund", "petra@lund.se", "", ""]])))
    export = write_list(tmp_path / "unsubscribed.csv", [
        ["petra.lund@example.se", "Petra", "Lund", "+46 70 123 45 00", "2026-03-01 10:12:00"],
        ["PETRA@lund.se", "Petra", "Lund", "", "2026-03-01 10:12:00"],
        ["dan@example.se", "Dan", "Ek", "", ""],
        ["eva@example.se", "Eva", "Ek", "", "0000-00-00 00:00:00"],  # MySQL's 'never'
        ["fia@example.se", "Fia", "Ek", "", "Subscribed"],
    ], header=["Email Address", "First Name", "Last Name", "Phone", "UNSUB_TIME"], delimiter=",")
    job = run_json(cli, "import", str(export))
    assert (job["counts"]["suppressed"], job["counts"]["created"]) == (2, 3)
    calls = write_list(tmp_path / "calls.csv", [["Bo", "Berg", "bo@berg.se", "070-765 43 21", "1"]],
                       header=["First Name", "Last Name", "Email", "Phone", "Do Not Call"], delimiter=",")
    assert run_json(cli, "import", str(calls))["counts"]["suppressed"] == 1

    # When a purchased list has them again
    later = write_list(tmp_path / "later.csv", [["Petra", "Lund", "PETRA.LUND@example.se", "", ""],
                                                ["P.", "Lund", "", "070-123 45 00", ""],
                                                ["Bo", "Berg", "", "0707654321", ""],
                                                ["Bo", "Berg", "bo@berg.se", "", ""]])
    job = run_json(cli, "import", str(later), "--campaign", "Vinter")

    # Then each stays out of the channel they opted out of: Petra's address and Bo's number
    # are suppressed; Petra's number (she left our mail, not our calls) and Bo's address are not
    assert (job["counts"]["suppressed"], job["counts"]["created"]) == (2, 2)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        suppressed = set(session.execute(text("SELECT kind, value FROM suppressions")))
        sources = set(session.scalars(text("SELECT source FROM suppressions")))
        fair = session.scalar(select(Lead).where(Lead.email == "petra@lund.se"))
    assert suppressed == {("email", "petra.lund@example.se"), ("email", "petra@lund.se"), ("phone", "+46707654321")}
    assert fair.do_not_contact and all(source.startswith("opted out in list import") for source in sources)


def test_an_opted_out_row_suppresses_its_number_though_its_address_has_a_typing_error(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "dnc.csv", [["Bo", "Berg", "bo@gmai.con", "070-100 00 18", "Ja"]],
                         header=["Förnamn", "Efternamn", "E-post", "Telefon", "Får ej kontaktas"])
    assert run_json(cli, "import", str(listing))["counts"]["suppressed"] == 1
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert set(session.execute(text("SELECT kind, value FROM suppressions"))) == \
            {("phone", "+46701000018"), ("email", "bo@gmai.con")}  # as the list wrote it: no harm kept


def test_one_colleagues_opt_out_does_not_silence_the_switchboard_they_share(cli, tmp_path, sessions_for):
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@firma.se", "08-123 456 78", ""],
                                                                ["Per", "Lind", "per@firma.se", "08-123 456 78", ""]])))
    optout = write_list(tmp_path / "b.csv", [["Karl", "Ek", "karl@firma.se", "08-123 456 78", "yes"]],
                        header=["First Name", "Last Name", "Email", "Phone", "Do Not Contact"], delimiter=",")
    assert run_json(cli, "import", str(optout))["counts"]["suppressed"] == 1
    later = run_json(cli, "import", str(write_list(tmp_path / "c.csv", [["Lisa", "Holm", "lisa@firma.se", "08-123 456 78", ""],
                                                                         ["Anna", "Berg", "anna@firma.se", "", ""]])))
    assert (later["counts"]["created"], later["counts"]["merged"], later["counts"]["suppressed"]) == (1, 1, 0)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert set(session.execute(text("SELECT kind, value FROM suppressions"))) == {("email", "karl@firma.se")}
        assert not any(session.scalars(select(Lead.do_not_contact)))


def test_a_row_that_finds_a_do_not_contact_lead_by_its_phone_is_suppressed(cli, tmp_path, sessions_for):
    # Given Jane's lead, with her phone, marked do-not-contact when her address was suppressed
    run_json(cli, "import", str(write_list(tmp_path / "first.csv", [["Jane", "Doe", "jane@doe.se", "070-555 01 32", ""]])))
    (tmp_path / "dnc.txt").write_text("jane@doe.se\n")
    assert run_json(cli, "suppress", str(tmp_path / "dnc.txt"))["records_marked"] == 1

    # When a list names her by her number alone
    job = run_json(cli, "import", str(write_list(tmp_path / "second.csv", [["Jane", "Doe", "", "0705550132", ""]])),
                   "--campaign", "Vinter")

    # Then the row is suppressed, saying whom it found, and she joins no campaign
    assert (job["counts"]["suppressed"], job["counts"]["merged"]) == (1, 0)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        reason = session.scalar(text("SELECT outcome_reason FROM raw_items WHERE outcome = 'ignored'"))
        assert session.scalar(select(CampaignMember)) is None
    assert reason == "suppressed: lead 1, whom this row names, is marked do-not-contact"


def test_the_same_file_imported_for_another_campaign_links_its_people_there(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "list.csv", [["Anna", "Ek", "anna@ek.se", "", ""], ["Bo", "Ny", "bo@ny.se", "", ""]])
    first = run_json(cli, "import", str(listing), "--campaign", "Vår")
    assert first["counts"]["created"] == 2

    # The same file for another campaign: a job of its own, linking the same two leads there
    second = run_json(cli, "import", str(listing), "--campaign", "Höst")
    assert second["job"] != first["job"] and not second.get("already_imported")
    assert (second["counts"]["merged"], second["counts"]["created"]) == (2, 0)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        members = session.execute(text(
            "SELECT c.name, m.record_type FROM campaign_members m JOIN campaigns c ON c.id = m.campaign_id")).all()
        assert session.scalar(text("SELECT count(*) FROM leads")) == 2
    assert sorted(members) == [("Höst", "lead"), ("Höst", "lead")]

    # And again for either campaign: nothing new
    assert run_json(cli, "import", str(listing), "--campaign", "Höst")["job"] == second["job"]
    assert run_json(cli, "import", str(listing), "--campaign", "Vår")["job"] == first["job"]


@pytest.mark.parametrize("blank", ["\n", ";;;\n", "\r\n"])
def test_a_header_below_many_blank_lines_is_found(cli, tmp_path, blank):
    listing = tmp_path / "padded.csv"
    listing.write_text(blank * 40 + "Förnamn;E-post\n" + blank * 3 + "Anna;anna@ek.se\nBo;bo@ek.se\n", encoding="utf-8")
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["created"], job["counts"]["rows"]) == (2, 2)
    with_title = tmp_path / "titled.csv"
    with_title.write_text("Mässan 2026\n" + "\n" * 30 + "Förnamn;E-post\nAnna;anna@ek.se\n", encoding="utf-8")
    assert run_json(cli, "import", str(with_title))["counts"]["merged"] == 1


def test_a_header_cell_like_a_formula_is_neutralized_in_the_rejected_rows_report(cli, tmp_path):
    listing = write_list(tmp_path / "list.csv", [["Anna", "not-an-email", "x"]],
                         header=["Förnamn", "E-post", "=HYPERLINK(\"http://evil.example\",\"Notes\")"])
    job = run_json(cli, "import", str(listing))
    cli("import-report", str(job["job"]), "--rejected", str(tmp_path / "rejected.csv"))
    with (tmp_path / "rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["row", "row in file", "reason", "Förnamn", "E-post",
                      "'=HYPERLINK(\"http://evil.example\",\"Notes\")"]


def test_a_number_written_nationally_is_read_in_the_country_of_the_address_beside_it(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "list.csv", [
        ["John", "Smith", "john@acme.co.uk", "020 7946 0958", ""],
        ["Ola", "Nordmann", "ola@nordmann.no", "070-765 43 21", ""],  # valid here: the list's region first
        ["Anna", "Ek", "anna@ek.se", "070-123 45 67", ""],  # ours: read in the list's region
        ["Io", "Dev", "io@startup.io", "020 7946 0958", ""],  # .io names no country: kept as written
    ])
    run_json(cli, "import", str(listing))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        phones = dict(session.execute(select(Lead.first_name, Lead.phone)).all())
    assert phones == {"John": "+442079460958", "Ola": "+46707654321", "Anna": "+46701234567", "Io": "020 7946 0958"}


def test_a_postal_code_that_lost_its_leading_zeros_in_a_number_cell_gets_them_back(cli, tmp_path, sessions_for):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Förnamn", "E-post", "Postnummer", "Ort", "Land"])
    sheet.append(["Ola", "ola@nordmann.no", 154, "Oslo", "Norge"])
    sheet.append(["Aino", "aino@firma.fi", 100, "Helsinki", "Finland"])
    sheet.append(["Anna", "anna@ek.se", 11451, "Stockholm", "Sverige"])
    sheet.append(["Bo", "bo@ek.se", 1234, "Somewhere", ""])  # no country named: left as it is
    sheet.append(["Pia", "pia@ek.fr", 75, "Paris", "France"])  # three zeros lost is no code cut short
    sheet.append(["Wim", "wim@ek.at", 1010, "Wien", "Österreich"])  # Austria's codes have four digits
    book.save(tmp_path / "list.xlsx")
    run_json(cli, "import", str(tmp_path / "list.xlsx"))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        codes = dict(session.execute(select(Lead.first_name, Lead.postal_code)).all())
    assert codes == {"Ola": "0154", "Aino": "00100", "Anna": "11451", "Bo": "1234", "Pia": "75", "Wim": "1010"}


def test_a_row_naming_someone_else_at_a_persons_address_takes_nothing_of_theirs(cli, tmp_path, sessions_for):
    # Given Anna Berg's lead
    run_json(cli, "import", str(write_list(tmp_path / "first.csv", [["Anna", "Berg", "anna.berg@bergsoner.se", "", ""]])))
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    before = snapshot(sessions)

    # When a list names Karl Berg at her address, with his number and company; and a family's
    # shared address twice in one file
    job = run_json(cli, "import", str(write_list(tmp_path / "second.csv", [
        ["Karl", "Berg", "anna.berg@bergsoner.se", "08-123 456 99", "Berg & Söner AB"],
        ["A.", "Berg", "ANNA.BERG@bergsoner.se", "070-111 22 33", ""],  # Anna again: her number is taken
        ["Per", "Holm", "hemma@holm.se", "070-222 33 44", ""],
        ["Stina", "Holm", "hemma@holm.se", "070-333 44 55", "Holm AB"],
    ])))

    # Then Karl's row is linked to Anna's lead, saying so, and nothing of his is hers
    assert (job["counts"]["merged"], job["counts"]["created"], job["counts"]["duplicate_in_file"]) == (3, 1, 0)
    with sessions() as session:
        anna = session.scalar(select(Lead).where(Lead.first_name == "Anna"))
        phones = dict(session.execute(text("SELECT value, record_id FROM identity_keys WHERE kind = 'phone'")).all())
        reasons = dict(session.execute(text("SELECT external_id, outcome_reason FROM raw_items "
                                            "WHERE outcome = 'merged'")).all())
        per = session.scalar(select(Lead).where(Lead.first_name == "Per"))
    assert (anna.phone, anna.company_name) == ("+46701112233", None)
    assert "+4681234569" not in phones and "+46812345699" not in phones and phones["+46701112233"] == anna.id
    assert "+46703334455" not in phones and per.company_name is None
    said = sorted(reason for reason in reasons.values() if reason and "this row names" in reason)
    assert said == [f"the address is Anna Berg's (lead {anna.id}); this row names Karl Berg: linked to it, "
                    "the row's other details not taken",
                    f"the address is Per Holm's (lead {per.id}, made by an earlier row of this file); this row "
                    "names Stina Holm: linked to it, the row's other details not taken"]

    # And the revert takes back only what Anna's own row added
    run_json(cli, "import-revert", str(job["job"]))
    assert snapshot(sessions) == before


@pytest.mark.parametrize("content, said", [("Förnamn;E-post\n", "no rows under the header (Förnamn, E-post)"),
                                           ("\n\n\n", "no rows: the file holds nothing but blank lines")])
def test_a_file_of_no_rows_finishes_with_a_warning(cli, tmp_path, content, said):
    (tmp_path / "list.csv").write_text(content, encoding="utf-8")
    job = run_json(cli, "import", str(tmp_path / "list.csv"))
    assert job["state"] == "done" and job["counts"]["rows"] == 0 and job["warning"].startswith(said)
    assert "warning: " + said in " ".join(cli("import-report", str(job["job"])).output.split())


def test_the_rejected_rows_report_gives_each_rows_number_in_the_file_as_a_spreadsheet_shows_it(cli, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("Mässan 2026 – besökare\n\nFörnamn;E-post\nAnna;anna@ek.se\n\nBo;bo@\n", encoding="utf-8")
    job = run_json(cli, "import", str(listing))
    cli("import-report", str(job["job"]), "--rejected", str(tmp_path / "rejected.csv"))
    with (tmp_path / "rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["row"], row["row in file"], row["Förnamn"]) == ("3", "6", "Bo")  # line 6 of the file


def test_a_report_read_while_a_revert_runs_leaves_the_job_reverted(tmp_path, pg_url, sessions_for):
    from crm_ingest.ingest.importjobs import job_summary, revert_job
    from crm_ingest.models import ImportJob

    sessions = sessions_for(pg_url)
    listing = write_list(tmp_path / "list.csv", [["Anna", "Ek", "anna@ek.se", "", ""]])
    progress = land_list(sessions, ListFile(listing, "list"), ImportRequest("list"), Settings(database_url=pg_url))
    with sessions.begin() as session:  # processed, not yet reported: as with workers, before anyone asked
        session.execute(text("UPDATE import_jobs SET state = 'landed', finished_at = NULL"))

    # Given a report that has read the job as landed, and a revert that commits meanwhile
    with sessions.begin() as reporting:
        job = reporting.get(ImportJob, progress.job_id)
        assert job.state == "landed"
        with sessions.begin() as reverting:
            revert_job(reverting, progress.job_id)
        summary = job_summary(reporting, job)

    # Then the report says reverted, and so does the database: the file can be imported again
    assert summary["state"] == "reverted" and summary["counts"]["rows"] == 0
    with sessions() as session:
        assert session.get(ImportJob, progress.job_id).state == "reverted"
    again = land_list(sessions, ListFile(listing, "list"), ImportRequest("list"), Settings(database_url=pg_url))
    assert again.job_id != progress.job_id and not again.already_imported


def test_an_import_of_more_records_than_a_statement_holds_parameters_is_reverted(tmp_path, pg_url, sessions_for):
    from crm_ingest.ingest.importjobs import revert_job

    sessions = sessions_for(pg_url)
    listing = tmp_path / "big.csv"
    listing.write_text("E-post\n" + "".join(f"p{number}@example.se\n" for number in range(66_000)), encoding="utf-8")
    progress = land_list(sessions, ListFile(listing, "list"), ImportRequest("list"), Settings(database_url=pg_url))
    with sessions.begin() as session:
        result = revert_job(session, progress.job_id)
    assert result["records_deleted"] == 66_000
    with sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM leads")) == 0


def test_a_revert_waits_for_a_chunk_a_worker_is_storing(tmp_path, pg_url, sessions_for, monkeypatch):
    import crm_ingest.workers.imports as landing
    from crm_ingest.ingest.importjobs import revert_job
    from crm_ingest.models import ImportChunk

    sessions = sessions_for(pg_url)
    monkeypatch.setattr(landing, "dispatch_chunk", lambda *args, **kwargs: None)  # landed for a worker to take
    listing = write_list(tmp_path / "list.csv", [["Anna", "Ek", "anna@ek.se", "", ""]])
    progress = land_list(sessions, ListFile(listing, "list"), ImportRequest("list"),
                         Settings(database_url=pg_url, redis_url="redis://127.0.0.1:1/0"))
    with sessions.begin() as worker:  # a worker holds the chunk, as run_chunk does while storing it
        worker.scalars(select(ImportChunk.id).with_for_update()).all()
        with pytest.raises(LookupError, match="a worker is storing rows of import job"):
            with sessions.begin() as session:
                revert_job(session, progress.job_id)
    with sessions.begin() as session:  # once it lets go, the waiting chunk goes with the revert
        assert revert_job(session, progress.job_id)["raw_items_removed"] == 1


def test_a_database_error_is_described_without_the_rows_it_carried():
    from sqlalchemy.exc import OperationalError

    from crm_ingest.ingest.pipeline import describe_error

    error = OperationalError("INSERT INTO leads (email) VALUES (%(email)s)", {"email": "anna@hemlig.se"},
                             Exception("server closed the connection unexpectedly"))
    said = describe_error(error)
    assert said == "OperationalError: server closed the connection unexpectedly"


def test_a_merged_row_says_which_of_its_values_the_record_kept(cli, tmp_path, sessions_for):
    run_json(cli, "import", str(write_list(tmp_path / "first.csv", [["Anna", "Berg", "anna@ek.se", "", "Ek AB"]])))
    job = run_json(cli, "import", str(write_list(tmp_path / "second.csv", [
        ["Anna", "Berg", "ANNA@ek.se", "070-123 45 67", "Lindström Invest AB"],  # a new company, a first phone
        ["Anna", "BERG", "anna@ek.se", "", "ek ab"],  # nothing new but letters' case
    ])))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        lead = session.scalar(select(Lead))
        reasons = [row[0] for row in session.execute(text("SELECT outcome_reason FROM raw_items WHERE import_job_id = "
                                                          f"{job['job']} ORDER BY id"))]
    assert (lead.company_name, lead.phone) == ("Ek AB", "+46701234567")  # a blank filled, a value kept
    assert reasons[0] == "kept the lead's company_name 'Ek AB' (the row: 'Lindström Invest AB')"
    assert reasons[1] is None or "kept" not in reasons[1]


def test_the_same_file_read_another_way_is_another_job(cli, tmp_path, sessions_for):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Sverige"
    book.active.append(["Förnamn", "E-post", "Källa"])
    book.active.append(["Anna", "anna@ek.se", ""])
    norway = book.create_sheet("Norge")
    norway.append(["Förnamn", "E-post", "Källa"])
    norway.append(["Ola", "ola@nordmann.no", ""])
    norway.append(["Kari", "kari@nordmann.no", ""])
    book.save(tmp_path / "nordic.xlsx")
    first = run_json(cli, "import", str(tmp_path / "nordic.xlsx"))
    other_sheet = run_json(cli, "import", str(tmp_path / "nordic.xlsx"), "--sheet", "Sverige")
    assert other_sheet["job"] != first["job"] and {first["counts"]["rows"], other_sheet["counts"]["rows"]} == {1, 2}

    (tmp_path / "map.toml").write_text('[defaults]\nlead_source = "trade_show"\n', encoding="utf-8")
    mapped = run_json(cli, "import", str(tmp_path / "nordic.xlsx"), "--sheet", "Sverige", "--map", str(tmp_path / "map.toml"))
    assert mapped["job"] != other_sheet["job"] and not mapped.get("already_imported")
    again = run_json(cli, "import", str(tmp_path / "nordic.xlsx"), "--sheet", "Sverige", "--map", str(tmp_path / "map.toml"))
    assert again["job"] == mapped["job"] and again["already_imported"]


def test_a_mistyped_number_of_ours_is_not_read_as_a_foreign_one_by_its_address(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "list.csv", [
        ["Tia", "Typo", "typo@firma.fi", "070-123 456", ""],  # a digit short: ours, mistyped
        ["Tor", "Trunk", "trunc@firma.de", "08-123 45", ""],
        ["Two", "Cells", "a@b.se, b@c.fi", "070-12 34 56 789", ""],  # the kept address is Swedish
    ])
    run_json(cli, "import", str(listing))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        phones = dict(session.execute(select(Lead.first_name, Lead.phone)).all())
        keyed = list(session.scalars(text("SELECT value FROM identity_keys WHERE kind = 'phone'")))
    assert phones == {"Tia": "070-123 456", "Tor": "08-123 45", "Two": "070-12 34 56 789"} and keyed == []


def test_a_nameless_number_is_not_completed_by_the_first_colleague_at_it(cli, tmp_path, sessions_for):
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["", "", "", "08-123 456 78", "Firma AB"]])))
    job = run_json(cli, "import", str(write_list(tmp_path / "b.csv", [["Anna", "Berg", "anna@firma.se", "08-123 456 78", ""],
                                                                      ["Karl", "Ek", "karl@firma.se", "08-123 456 78", ""]])))
    assert job["counts"]["created"] == 2
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(select(Lead).where(Lead.id == 1)).first_name is None


def test_a_repeat_in_a_later_chunk_of_a_lead_made_on_the_campaign_adds_no_member_row(cli, tmp_path, sessions_for,
                                                                                       monkeypatch):
    import crm_ingest.workers.imports as landing

    monkeypatch.setattr(landing, "CHUNK_ROWS", 2)
    listing = write_list(tmp_path / "list.csv", [["Anna", "Ek", "anna@ek.se", "", ""], ["Bo", "Ek", "bo@ek.se", "", ""],
                                                 ["Anna", "Ek", "ANNA@ek.se", "", ""]])
    job = run_json(cli, "import", str(listing), "--campaign", "Mässan")
    assert (job["counts"]["created"], job["counts"]["duplicate_in_file"]) == (2, 1)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(select(CampaignMember)) is None  # both leads are on it by their own campaign


def test_a_do_not_call_on_a_switchboard_silences_neither_the_colleagues_beside_it_nor_later(cli, tmp_path, sessions_for):
    listing = write_list(tmp_path / "s4.csv", [["Anna", "Berg", "anna.berg@vaxel.se", "08-555 100 00", "Ja"],
                                               ["Karl", "Lund", "karl.lund@vaxel.se", "08-555 100 00", ""],
                                               ["Petra", "Sund", "petra.sund@vaxel.se", "070-555 10 00", "Ja"]],
                         header=["Förnamn", "Efternamn", "E-post", "Telefon", "Do Not Call"])
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["created"], job["counts"]["suppressed"]) == (1, 2)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:  # Petra's own mobile, not the switchboard
        assert set(session.execute(text("SELECT kind, value FROM suppressions"))) == {("phone", "+46705551000")}


@pytest.mark.parametrize("when", ["45352", "2024/03/01", "20240301", "1 mars 2024", "Mar 1, 2024"])
def test_an_opt_out_date_is_read_as_lists_write_dates(cli, tmp_path, when):
    listing = write_list(tmp_path / "u.csv", [["a@b.se", when]], header=["Email Address", "UNSUB_TIME"], delimiter=",")
    assert run_json(cli, "import", str(listing))["counts"]["suppressed"] == 1


def test_a_number_without_our_trunk_prefix_is_read_in_its_addresss_country(cli, tmp_path, sessions_for):
    run_json(cli, "import", str(write_list(tmp_path / "no.csv", [["Ola", "Nordmann", "ola@firma.no", "412 34 567", ""]])))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(select(Lead.phone)) == "+4741234567"


def test_a_campaign_named_with_stray_spaces_is_the_same_campaign(cli, tmp_path):
    listing = write_list(tmp_path / "list.csv", [["Anna", "Ek", "anna@ek.se", "", ""]])
    first = run_json(cli, "import", str(listing), "--campaign", "Mässan 2026")
    again = run_json(cli, "import", str(listing), "--campaign", " Mässan  2026 ")
    assert again["job"] == first["job"] and again["campaign_id"] == first["campaign_id"]


def test_a_campaign_named_in_other_letters_case_is_the_same_campaign(cli, tmp_path):
    first = run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Ek", "anna@ek.se", "", ""]])),
                     "--campaign", "Vår 2026")
    other = run_json(cli, "import", str(write_list(tmp_path / "b.csv", [["Bo", "Ek", "bo@ek.se", "", ""]])),
                     "--campaign", "VÅR 2026")
    assert other["campaign_id"] == first["campaign_id"]


def test_a_rerun_that_sends_on_rows_left_waiting_says_so(cli, tmp_path, sessions_for, monkeypatch):
    import crm_ingest.workers.imports as landing

    listing = write_list(tmp_path / "list.csv", [["Anna", "Ek", "anna@ek.se", "", ""]])
    with monkeypatch.context() as lost:  # landed, then its processing lost (a worker gone, a message dropped)
        lost.setattr(landing, "dispatch_chunk", lambda *args, **kwargs: None)
        first = run_json(cli, "import", str(listing))
    assert first["counts"]["pending"] == 1
    said = " ".join(cli("import", str(listing)).output.split())
    assert "imported before as job 1; its rows an interrupted run left waiting were sent on again" in said
    again = run_json(cli, "import", str(listing))  # nothing waits any more
    assert again["already_imported"] and again["sent_on"] == 0 and again["counts"]["created"] == 1


def test_personal_identity_numbers_are_never_stored_and_the_job_says_so(cli, tmp_path, sessions_for):
    # Given a purchased register with a Personnummer column, and a headerless list whose third
    # column holds identity numbers (which a phone-shaped reading took for the phone)
    register = tmp_path / "register.csv"
    register.write_text("Förnamn;Efternamn;E-post;Personnummer;Ort\n"
                        "Anna;Berg;anna@berg.se;19811228-9874;Umeå\n"
                        "Bo;Ek;bo@ek.se;811228-9874;Luleå\n", encoding="utf-8")
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("Cia Lund;cia@lund.se;198112289874;Malmö\n"
                          "Dan Sjö;;8112289874;Umeå\n", encoding="utf-8")
    # When both are previewed and imported
    shown = cli("import", str(register), "--preview")
    job = run_json(cli, "import", str(register))
    other = run_json(cli, "import", str(headerless))
    # Then the column is left out, said in the preview and the job's note, and stored nowhere
    assert "left out: personal identity numbers are not stored" in " ".join(shown.output.split())
    assert job["note"] == "column 'Personnummer' left out: personal identity numbers are not stored from a list"
    assert job["options"]["withheld"] == ["Personnummer"] and other["options"]["withheld"] == ["column 3"]
    assert (job["counts"]["created"], other["counts"]["created"], other["counts"]["rejected"]) == (2, 1, 1)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        stored = " ".join(str(row) for table in ("leads", "raw_items") for row in
                          session.execute(text(f"SELECT * FROM {table}")))
        reason = session.scalar(select(text("outcome_reason")).select_from(text("raw_items"))
                                .where(text("outcome = 'rejected'")))
    assert "9874" not in stored
    assert reason == "email/phone: no email and no phone"


@pytest.mark.parametrize("header, cells, withheld", [
    ("Kundnr", ["850101-1236", "900215-4566", "811228-9874"], True),  # a register keyed by personnummer
    ("Customer number", ["198501011236", "199002154566", "198112289874"], True),
    ("ID", ["850101-1236", "900215-4566", "811228-9874"], True),
    ("Ordernummer", ["202403150001", "202403150002", "202403150003"], False),  # a date and a serial
    ("Kundnr", ["20240315-0012", "20240316-0013", "20240317-0014"], False),
])
def test_a_column_named_for_numbers_of_things_is_withheld_when_its_numbers_pass_the_check(cli, tmp_path, header,
                                                                                           cells, withheld):
    rows = [f"{name};{name.lower()}@ek.se;{cell}" for name, cell in zip(("Anna", "Bo", "Cia"), cells)]
    (tmp_path / "kunder.csv").write_text(f"Namn;E-post;{header}\n" + "\n".join(rows) + "\n", encoding="utf-8")
    job = run_json(cli, "import", str(tmp_path / "kunder.csv"))
    assert job["options"].get("withheld") == ([header] if withheld else None)


def test_a_sole_traders_organisation_number_is_its_owners_identity_number_and_is_not_stored(cli, tmp_path, sessions_for):
    # Given a purchased company list whose 'Org.nr' of a sole trader is the owner's personnummer
    listing = tmp_path / "foretag.csv"
    listing.write_text("Företagsnamn;Org.nr;Kontaktperson;E-post\n"
                       "Berg Bygg AB;556123-4567;Anna Berg;anna@bergbygg.se\n"
                       "Eks Måleri;811228-9874;Bo Ek;bo@eksmaleri.se\n"
                       "Lunds Fastigheter AB;556677-8899;Cia Lund;cia@lundsfastigheter.se\n", encoding="utf-8")
    job = run_json(cli, "import", str(listing))
    # Then the companies' numbers are kept, the owner's is stored nowhere, and the row says so
    assert job["counts"]["created"] == 3
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        stored = " ".join(str(row) for table in ("leads", "raw_items") for row in
                          session.execute(text(f"SELECT * FROM {table}")))
        reasons = list(session.scalars(text("SELECT outcome_reason FROM raw_items ORDER BY id")))
    assert "556123-4567" in stored and "9874" not in stored
    assert reasons == [None, "'Org.nr' left out: a personal identity number is not stored", None]


@pytest.mark.parametrize("cell, is_one", [
    ("811228-9874", True), ("19811228-9874", True), ("8112289874", True),  # Skatteverket's example
    ("811288-9874", False),  # a samordningsnummer's date (its day + 60), but a wrong check digit
    ("202403151230", False), ("20240315-0012", False),  # a timestamp, a booking: dates, no check digit
    ("131052-308T", True),  # Finland
    ("15076500565", True),  # Norway, both check digits
    ("0701234567", False), ("+46701234567", False), ("070-123 45 67", False), ("46701234567", False),
    ("556677-8899", False),  # an organisation number: its 'month' is 67
])
def test_a_personal_identity_number_is_told_from_a_phone(cell, is_one):
    from crm_ingest.connectors.listfile import personal_identity_number
    assert personal_identity_number(cell) is is_one


def test_a_number_excel_mangled_is_read_or_said_not_kept_in_the_rows_outcome(cli, tmp_path, sessions_for):
    # Given a list whose phone column Excel wrote out as numbers: with thousands separators,
    # with decimals, in scientific notation (its last digits lost), an error cell, a mistyped one
    path = write_list(tmp_path / "excel.csv", [
        ["Anna", "Berg", "anna@berg.se", "701,234,570"],
        ["Bo", "Ek", "bo@ek.se", "701 234 569,00"],
        ["Cia", "Lund", "cia@lund.se", "701234567.0"],
        ["Dan", "Sjö", "dan@sjo.se", "4.67012E+10"],
        ["Eva", "Ros", "eva@ros.se", "#ERROR!"],
        ["Fia", "Ask", "fia@ask.se", "070-12"],
    ], header=["Förnamn", "Efternamn", "E-post", "Telefon"])
    # When it is imported
    job = run_json(cli, "import", str(path))
    # Then the numbers are read, and what was not is said in the row's outcome, a lost one not kept
    assert job["counts"]["created"] == 6
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        phones = {lead.first_name: lead.phone for lead in session.scalars(select(Lead))}
        reasons = dict(session.execute(text("SELECT json_extract(payload, '$.fields.first_name'), outcome_reason "
                                            "FROM raw_items")).all())
    assert phones == {"Anna": "+46701234570", "Bo": "+46701234569", "Cia": "+46701234567", "Dan": None,
                      "Eva": None, "Fia": "070-12"}
    assert reasons["Dan"].startswith("phone '4.67012E+10' not kept: a spreadsheet wrote the number in scientific")
    assert reasons["Fia"] == "phone '070-12' kept as written: not a valid number for region SE"
    assert reasons["Anna"] is None and reasons["Eva"] is None


def test_a_nix_registered_number_is_never_called_whatever_its_kind_and_a_switchboard_left_off_is_said(
        cli, tmp_path, sessions_for):
    # Given a list marking a home's fixed line as in NIX, and one marking a colleague 'Do Not Call'
    # beside the company's switchboard
    nix = write_list(tmp_path / "nix.csv", [["Lisa Persson", "lisa.persson@bygg-x.se", "08-22 22 22", "Ja"],
                                            ["Ola Ek", "ola.ek@gmail.com", "070-765 43 21", "Ja"]],
                     header=["Namn", "E-post", "Telefon", "NIX-spärrad"])
    dnc = write_list(tmp_path / "dnc.csv", [["Per", "Lind", "per@firma.se", "08-123 456 78", "yes"],
                                            ["Stina", "Berg", "stina@telia.com", "0470-123 45", "yes"]],
                     header=["First Name", "Last Name", "Email", "Phone", "Do Not Call"])
    # When both are imported, and then a list naming the NIX number again
    assert run_json(cli, "import", str(nix))["counts"]["suppressed"] == 2
    assert run_json(cli, "import", str(dnc))["counts"]["suppressed"] == 2
    later = run_json(cli, "import", str(write_list(tmp_path / "later.csv", [["Lisa", "Persson", "", "08-22 22 22"]],
                                                   header=["Förnamn", "Efternamn", "E-post", "Telefon"])))
    # Then the registered number and the private fixed line are on the do-not-contact list, the
    # company's switchboard is not, and the row says it left it off
    assert later["counts"]["suppressed"] == 1
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert set(session.scalars(text("SELECT value FROM suppressions"))) == {"+468222222", "+46707654321", "+4647012345"}
        reason = session.scalar(text("SELECT outcome_reason FROM raw_items WHERE payload LIKE '%per@firma.se%'"))
    assert reason == ("suppressed: the list marks the person as not to be called ('yes'); +46812345678 left off the "
                      "do-not-contact list: a company's fixed line (its switchboard) reaches others too")


def test_upsert_by_phone_still_finds_a_person_by_address_when_the_phone_finds_no_one(cli, tmp_path, sessions_for):
    # Given Cecilia's lead, then a list matched by phone naming her by her new name, and a
    # row with a new number beside her address
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Cecilia", "Lindqvist", "cecilia@lk.se", "0731234567", ""]])))
    second = write_list(tmp_path / "b.csv", [["Cecilia", "Lindqvist-Berg", "cecilia@lk.se", "0731234567", ""],
                                             ["Bo", "Ek", "bo@ek.se", "0701112233", ""]])
    third = write_list(tmp_path / "c.csv", [["Cecilia", "Berg", "cecilia@lk.se", "0739998877", ""]])
    # When both are imported with --upsert-by phone
    assert run_json(cli, "import", str(second), "--upsert-by", "phone")["counts"]["merged"] == 1
    assert run_json(cli, "import", str(third), "--upsert-by", "phone")["counts"]["merged"] == 1
    # Then she is one lead, with both numbers keyed
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert [lead.email for lead in session.scalars(select(Lead).order_by(Lead.id))] == ["cecilia@lk.se", "bo@ek.se"]
        assert set(session.scalars(text("SELECT value FROM identity_keys WHERE record_id = 1 AND kind = 'phone'"))) == \
            {"+46731234567", "+46739998877"}


def test_a_merged_rows_note_and_consent_are_kept_and_a_revert_takes_them_back(cli, tmp_path, sessions_for):
    # Given Anna's lead from a purchased list, then a trade show's row for her with a note and a
    # website, imported with its consent basis
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])))
    show = write_list(tmp_path / "b.csv", [["Anna", "Berg", "anna@berg.se", "Wants a quote by May", "berg.se"],
                                           ["Anna", "Berg", "anna@berg.se", "Call after 3 pm", ""]],
                      header=["Förnamn", "Efternamn", "E-post", "Anteckningar", "Webbplats"])
    job = run_json(cli, "import", str(show), "--consent", "samtycke på mässan 2026-03-01")
    # Then the lead keeps its own provenance, and gains both notes, the website and the consent
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        details = session.scalar(select(Lead)).details
    assert (details["file"], details["row"]) == ("a.csv", 1)
    assert details["fields"] == {"notes": "Wants a quote by May\n\nCall after 3 pm", "website": "berg.se"}
    assert details["consent"] == "samtycke på mässan 2026-03-01"
    # And when the trade show's import is reverted, the details are as they were
    run_json(cli, "import-revert", str(job["job"]))
    with sessions() as session:
        assert session.scalar(select(Lead)).details == {"row": 1, "file": "a.csv", "import_job": 1}


def test_an_imports_rows_are_listed_with_their_outcomes_and_a_contact_source_says_contacts(cli, tmp_path, monkeypatch):
    # Given a source that makes contacts, and an import of two rows, one repeating the other
    config = tmp_path / "ingest.toml"
    config.write_text('[sources.customers]\nkind = "row"\nrecord_type = "contact"\n')
    monkeypatch.setenv("INGEST_CONFIG", str(config))
    listing = write_list(tmp_path / "cust.csv", [["Anna", "Berg", "anna@berg.se", "", ""], ["Anna", "Berg", "anna@berg.se", "", ""]])
    # When it is imported, and its rows listed
    shown = cli("import", str(listing), "--source", "customers")
    job = run_json(cli, "import-report", "1")
    rows = run_json(cli, "items", "--job", "1")
    # Then the counts say contacts, and each row's outcome and record are listed
    assert "created contact" in shown.output and "created lead" not in shown.output
    assert job["makes"] == "contact"
    assert [(item["outcome"], item["record_type"], item["record_id"]) for item in rows["items"]] == \
        [("created", "contact", 1), ("merged", "contact", 1)]
    assert rows["asked"] == {"job": 1}
    table = cli("items", "--job", "1").output
    assert "outcome" in table and "merged" in table


def test_a_connection_known_by_its_linkedin_profile_alone_is_a_lead_found_again_by_it(cli, tmp_path, sessions_for):
    # Given LinkedIn's connections export: people without an address, known by their profiles
    header = ["First Name", "Last Name", "URL", "Email Address", "Company", "Position", "Connected On"]
    rows = [["Anna", "Berg", "https://www.linkedin.com/in/annaberg-nordvik", "", "Nordvik Frakt AB", "Inköpschef",
             "03 Mar 2024"],
            ["Åsa", "Öhman", "https://se.linkedin.com/in/%C3%A5sa-%C3%B6hman", "", "Öhmans Café", "Ägare", "01 Jan 2023"],
            ["Bo", "Ek", "https://www.linkedin.com/company/ek-bygg", "", "Ek Bygg", "VD", "02 Feb 2022"]]
    first = run_json(cli, "import", str(write_list(tmp_path / "Connections.csv", rows, header=header)))
    # When a later export names them again (Anna's link written without https://www.)
    rows[0][2] = "linkedin.com/in/AnnaBerg-Nordvik/"
    again = run_json(cli, "import", str(write_list(tmp_path / "Connections (1).csv", rows, header=header)))
    # Then each is one lead, found again by the profile; a company's page knows no one
    assert (first["counts"]["created"], first["counts"]["rejected"]) == (2, 1)
    assert (again["counts"]["created"], again["counts"]["merged"], again["counts"]["rejected"]) == (0, 2, 1)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        keys = set(session.scalars(text("SELECT value FROM identity_keys")))
    assert keys == {"linkedin:annaberg-nordvik", "linkedin:åsa-öhman"}


def test_a_lead_known_by_its_profile_is_found_by_it_when_a_later_row_brings_an_address(cli, tmp_path, sessions_for):
    header = ["First Name", "Last Name", "URL", "Email Address"]
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Bo", "Ek", "https://www.linkedin.com/in/bo-ek", ""]],
                                           header=header)))
    later = run_json(cli, "import", str(write_list(tmp_path / "b.csv", [["Bo", "Ek", "linkedin.com/in/bo-ek",
                                                                          "bo@ekab.se"]], header=header)))
    assert (later["counts"]["created"], later["counts"]["merged"]) == (0, 1)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.execute(text("SELECT count(*), max(email) FROM leads")).one() == (1, "bo@ekab.se")


def test_a_double_name_of_another_person_at_a_shared_address_is_not_merged(cli, tmp_path, sessions_for):
    # Anna and Ann-Sofie Berg share the household's address: 'Ann' must not make them one
    rows = [["Anna", "Berg", "bergs@telia.com", "", ""], ["Ann-Sofie", "Berg", "bergs@telia.com", "", ""]]
    job = run_json(cli, "import", str(write_list(tmp_path / "a.csv", rows)))
    assert job["counts"]["duplicate_in_file"] == 0


def test_a_google_fax_number_is_never_the_phone(cli, tmp_path, sessions_for):
    header = ["First Name", "Last Name", "E-mail 1 - Value", "Phone 1 - Label", "Phone 1 - Value", "Phone 2 - Label",
              "Phone 2 - Value"]
    rows = [["Anna", "Berg", "anna@berg.se", "Work Fax", "08-555 666 77", "", ""],
            ["Bo", "Ek", "bo@ek.se", "Mobile", "070-111 22 33", "Work Fax", "08-555 666 78"]]
    run_json(cli, "import", str(write_list(tmp_path / "google.csv", rows, header=header)))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.execute(text("SELECT email, phone, mobile_phone FROM leads ORDER BY id")).all() == [
            ("anna@berg.se", None, None), ("bo@ek.se", "+46701112233", "+46701112233")]
        assert not session.scalar(text("SELECT count(*) FROM identity_keys WHERE value LIKE '+46855566%'"))


def test_a_supplier_column_never_fills_an_empty_company(cli, tmp_path, sessions_for):
    (tmp_path / "a.csv").write_text("Name;Email;Company;Supplier;Associated Company\n"
                                    "Anna Berg;anna@berg.se;;Leverantör AB;\nBo Ek;bo@ek.se;;Leverantör AB;Ek AB\n",
                                    encoding="utf-8")
    run_json(cli, "import", str(tmp_path / "a.csv"))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.execute(text("SELECT email, company_name FROM leads ORDER BY id")).all() == [
            ("anna@berg.se", None), ("bo@ek.se", "Ek AB")]


@pytest.mark.parametrize("campaign", ["Mässan\u00a02026", "Webinar 👩\u200d💻"])
def test_a_campaign_with_a_non_breaking_space_or_a_joined_emoji_is_a_campaign(cli, tmp_path, campaign):
    job = run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])),
                   "--campaign", campaign)
    assert job["counts"]["created"] == 1 and job["campaign_id"] == 1


def test_an_imports_rows_are_listed_by_the_names_of_its_counts(cli, tmp_path):
    # Given an import of a suppressed row, a row and its repeat
    (tmp_path / "dnc.txt").write_text("bo@ek.se\n", encoding="utf-8")
    run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    listing = write_list(tmp_path / "a.csv", [["Bo", "Ek", "bo@ek.se", "", ""], ["Anna", "Berg", "anna@berg.se", "", ""],
                                              ["Anna", "Berg", "anna@berg.se", "", ""]])
    job = run_json(cli, "import", str(listing))
    # Then each count's rows are listed by its name
    listed = {name: [item["id"] for item in run_json(cli, "items", "--job", str(job["job"]), "--outcome", name)["items"]]
              for name in ("suppressed", "duplicate_in_file", "ignored", "created")}
    assert listed == {"suppressed": [1], "duplicate_in_file": [3], "ignored": [1], "created": [2]}


@pytest.mark.parametrize("header, cells, first, last", [
    ("Efternamn, Förnamn", ["Berg Anna", "von Platen Gustaf"], ["Anna", "Gustaf"], ["Berg", "von Platen"]),
    ("Förnamn Efternamn", ["Anna Berg", "Gustaf von Platen"], ["Anna", "Gustaf"], ["Berg", "von Platen"]),
    # a register's 'Namn', surname first: told by how its cells begin and end
    ("Namn", ["Andersson Anna", "Lindberg Per", "Svensson Karl", "Holmqvist Eva"],
     ["Anna", "Per", "Karl", "Eva"], ["Andersson", "Lindberg", "Svensson", "Holmqvist"]),
    ("Namn", ["ANDERSSON Anna", "Anna Berg, VD", "Fil. dr Per Ek", "Docent Eva Lind"],
     ["Anna", "Anna", "Per", "Eva"], ["Andersson", "Berg", "Ek", "Lind"]),
])
def test_names_as_registers_write_them_are_read_first_and_last(cli, tmp_path, sessions_for, header, cells, first, last):
    listing = write_list(tmp_path / "names.csv", [[cell, f"p{number}@ek.se"] for number, cell in enumerate(cells)],
                         header=[header, "E-post"])
    assert run_json(cli, "import", str(listing))["counts"]["created"] == len(cells)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
    assert ([lead.first_name for lead in leads], [lead.last_name for lead in leads]) == (first, last)


@pytest.mark.parametrize("header, field", [
    ("Telefon/Mobil", "phone"), ("Tfn/Mobil", "phone"), ("Phone/Mobile", "phone"), ("Telefon (mobil)", "mobile_phone"),
    ("Telefonnummer mobil", "mobile_phone"), ("Mobiltfn", "mobile_phone"), ("Förnamn + Efternamn", "full_name"),
    ("Efternamn Förnamn", "last_first_name"), ("Last Name, First Name", "last_first_name"),
])
def test_combined_headers_name_their_field(header, field):
    from crm_ingest.connectors.listfile import map_header
    assert map_header(header) == field


def test_a_registers_name_column_of_customers_beside_a_contact_person_makes_companies_not_people(
        cli, tmp_path, sessions_for):
    # Given a customer register: 'Namn' the customer (a company, by its legal form or not), its
    # 'Kontaktperson' the person there (or no one)
    listing = write_list(tmp_path / "kunder.csv", [["1001", "Berg Bygg AB", "Anna Berg", "anna@bergbygg.se"],
                                                  ["1002", "Ek Konsult", "Bo Ek", "bo@ekkonsult.se"],
                                                  ["1003", "Lunds Måleri", "", "info@lundsmaleri.se"],
                                                  ["1004", "Sjöberg & Son", "Dan Sjöberg", "dan@sjoberg.se"]],
                         header=["Kundnr", "Namn", "Kontaktperson", "E-post"])
    # When it is imported
    assert run_json(cli, "import", str(listing))["counts"]["created"] == 4
    # Then every lead is the contact person at the company, and the company without one no one
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = [(lead.first_name, lead.last_name, lead.company_name)
                 for lead in session.scalars(select(Lead).order_by(Lead.id))]
    assert leads == [("Anna", "Berg", "Berg Bygg AB"), ("Bo", "Ek", "Ek Konsult"), (None, None, "Lunds Måleri"),
                     ("Dan", "Sjöberg", "Sjöberg & Son")]


def test_a_totals_row_right_under_the_list_is_ignored_saying_so(cli, tmp_path):
    listing = write_list(tmp_path / "t.csv", [["Anna", "Berg", "anna@berg.se", "", ""], ["Bo", "Ek", "bo@ek.se", "", ""],
                                              ["Totalt", "2", "", "", ""], ["", "Summa", "", "=SUBTOTAL(103;B2:B3)", ""]])
    job = run_json(cli, "import", str(listing))
    assert (job["counts"]["created"], job["counts"]["ignored"], job["counts"]["rejected"]) == (2, 2, 0)


def test_a_workbook_of_one_list_a_sheet_says_which_sheets_were_not_read(cli, tmp_path):
    # Given a workbook with a sheet per office, each the same list
    book = Workbook()
    for index, (office, people) in enumerate((("Stockholm", 2), ("Göteborg", 3), ("Malmö", 1))):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = office
        sheet.append(["Förnamn", "Efternamn", "E-post"])
        for number in range(people):
            sheet.append([f"P{number}", office, f"p{number}@{index}.se"])
    path = tmp_path / "kontor.xlsx"
    book.save(path)
    # When it is previewed and imported
    shown = " ".join(cli("import", str(path), "--preview").output.split())
    job = run_json(cli, "import", str(path))
    # Then the sheet with the most rows is read, and the others are named, with how to read them
    assert job["counts"]["created"] == 3 and job["options"]["other_sheets"] == ["Stockholm", "Malmö"]
    assert job["note"] == ("only sheet 'Göteborg' was read; 'Stockholm', 'Malmö' hold a list too: "
                           "import each with --sheet NAME")
    assert "sheets 'Stockholm', 'Malmö' hold a list too" in shown and "encoding" not in shown
    assert run_json(cli, "import", str(path), "--sheet", "Malmö")["counts"]["created"] == 1


def test_a_workbooks_postal_codes_formatted_with_leading_zeros_keep_them(cli, tmp_path, sessions_for):
    # Given a workbook whose postal codes are numbers shown with their zeros ('0000', '000 00')
    book = Workbook()
    sheet = book.active
    sheet.append(["Förnamn", "E-post", "Postnummer", "Ort"])
    sheet.append(["Ola", "ola@x.no", 150, "Oslo"])
    sheet.append(["Anna", "anna@x.se", 11451, "Stockholm"])
    sheet.append(["Eva", "eva@x.fi", 100, "Helsinki"])
    sheet["C2"].number_format = "0000"
    sheet["C3"].number_format = "000 00"
    sheet["C4"].number_format = "00000"
    path = tmp_path / "post.xlsx"
    book.save(path)
    # When it is imported, Then each code is the text Excel shows
    assert run_json(cli, "import", str(path))["counts"]["created"] == 3
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        codes = [lead.postal_code for lead in session.scalars(select(Lead).order_by(Lead.id))]
    assert codes == ["0150", "114 51", "00100"]


def test_a_family_members_own_rows_are_not_taken_into_the_person_whose_address_they_share(cli, tmp_path, sessions_for):
    # Given Anna's lead at the family's address, then a list with Karl at that address, and Karl
    # again by his mobile alone
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Berg", "familjen.berg@telia.com", "070-2000001", ""]])))
    job = run_json(cli, "import", str(write_list(tmp_path / "b.csv", [
        ["Karl", "Berg", "familjen.berg@telia.com", "070-2000002", ""], ["Karl", "Berg", "", "070-2000002", ""]])))
    # Then the first row is linked to Anna, taking nothing, and the second is Karl's own lead,
    # not Anna's found by the number the first row gave
    assert (job["counts"]["merged"], job["counts"]["created"]) == (1, 1)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = [(lead.first_name, lead.phone) for lead in session.scalars(select(Lead).order_by(Lead.id))]
        anna_keys = set(session.scalars(text("SELECT value FROM identity_keys WHERE record_id = 1")))
    assert leads == [("Anna", "+46702000001"), ("Karl", "+46702000002")]
    assert anna_keys == {"familjen.berg@telia.com", "+46702000001"}


def test_every_number_of_a_cell_of_several_is_a_key_and_kept(cli, tmp_path, sessions_for):
    # Given a row whose phone cell holds a mobile and a switchboard
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Eva", "Ros", "eva@ros.se", "070-123 45 71 / 08-123 456 78", ""]])))
    # When a later list names her by the second number alone
    job = run_json(cli, "import", str(write_list(tmp_path / "b.csv", [["Eva", "Ros", "", "08-123 456 78", ""]])))
    # Then it finds her, and her lead keeps the second number beside its phone
    assert job["counts"]["merged"] == 1
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        lead = session.scalar(select(Lead))
    assert (lead.phone, lead.details["other_phones"]) == ("+46701234571", ["+46812345678"])


def test_a_lead_a_reverted_import_made_and_a_later_one_completed_is_the_later_ones(cli, tmp_path, sessions_for):
    # Given Karin's lead made by a trade show's list on campaign Mässa, then completed by the
    # spring list on campaign Vår 2026
    show = run_json(cli, "import", str(write_list(tmp_path / "b.csv", [["Karin", "Holm", "", "070-777 88 99", ""]])),
                    "--campaign", "Mässa")
    run_json(cli, "import", str(write_list(tmp_path / "c.csv", [["Karin", "Holm", "karin@holmbygg.se", "0707778899", ""]])),
             "--campaign", "Vår 2026")
    # When the trade show's import is reverted
    assert run_json(cli, "import-revert", str(show["job"]))["records_kept"] == 1
    # Then she is the spring list's: its campaign, its file and row
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        lead = session.scalar(select(Lead))
        campaign = session.scalar(text("SELECT name FROM campaigns WHERE id = :id"), {"id": lead.campaign_id})
    assert campaign == "Vår 2026"
    assert (lead.details["file"], lead.details["row"], lead.details["import_job"]) == ("c.csv", 1, 2)


def test_a_consent_given_for_a_file_imported_before_is_said_not_recorded(cli, tmp_path):
    listing = write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])
    run_json(cli, "import", str(listing))
    again = run_json(cli, "import", str(listing), "--consent", "samtycke 2026-03-01")
    assert again["already_imported"] and again["consent"] is None
    assert again["warning"].startswith("--consent 'samtycke 2026-03-01' was not recorded: the file's rows were "
                                       "imported before without a consent")


def test_forward_names_whose_first_names_end_as_surnames_do_are_not_read_surname_first(cli, tmp_path, sessions_for):
    names = ["Peter Chen", "Jennifer Wang", "Oliver Zhang", "Christopher Liu", "Jason Kim", "Allison Park",
             "Mitchell Lee", "Anna Svensson"]
    listing = write_list(tmp_path / "n.csv", [[name, f"p{n}@x.se"] for n, name in enumerate(names)], header=["Name", "Email"])
    run_json(cli, "import", str(listing))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        firsts = [lead.first_name for lead in session.scalars(select(Lead).order_by(Lead.id))]
    assert firsts == [name.split()[0] for name in names]


def test_a_registers_private_customers_keep_their_names(cli, tmp_path, sessions_for):
    # Given a register of mostly private customers, one company among them
    listing = write_list(tmp_path / "k.csv", [["Mohamed El Amrani", "", "m@x.se"], ["Anna & Per Ek", "", "a@x.se"],
                                              ["Lena Handel", "", "l@x.se"], ["Berg Bygg AB", "Bo Berg", "b@x.se"]],
                         header=["Namn", "Kontaktperson", "E-post"])
    run_json(cli, "import", str(listing))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = [(lead.last_name, lead.company_name) for lead in session.scalars(select(Lead).order_by(Lead.id))]
    assert leads == [("Amrani", None), ("Ek", None), ("Handel", None), ("Berg", "Berg Bygg AB")]


@pytest.mark.parametrize("content, entries", [
    ("E-post;Tel.nr\nanna@x.se;070-111 22 33\n", {"email:anna@x.se", "phone:+46701112233"}),
    ("Namn;Telefon;Avreg.datum\nAnna Berg;070-111 22 35;2024-03-01\n", {"phone:+46701112235"}),
    ('Email;Name\n"""Berg, Anna"" <anna9@x.se>";Anna\n', {"email:anna9@x.se"}),
    ("Anna Berg;070-111 22 36;2024-03-01;anna7@x.se\n", {"phone:+46701112236", "email:anna7@x.se"}),
])
def test_a_do_not_contact_csv_gives_its_entries_and_nothing_else(cli, tmp_path, sessions_for, content, entries):
    (tmp_path / "dnc.csv").write_text(content, encoding="utf-8")
    loaded = run_json(cli, "suppress", str(tmp_path / "dnc.csv"))
    assert loaded["invalid"] == []
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert {f"{kind}:{value}" for kind, value in session.execute(text("SELECT kind, value FROM suppressions"))} == entries


def test_a_suppress_file_reads_what_its_rows_hold_and_says_what_it_could_not(cli, tmp_path, sessions_for):
    # Given a list whose number column has a name we do not know, a person's line naming their
    # company's site, a line of an invoice, and a line of a date
    (tmp_path / "dnc.csv").write_text("Namn;E-post;Nummer\nAnna;anna@x.se;\nBo;;070-111 22 34\nCia;;\n", encoding="utf-8")
    (tmp_path / "dnc.txt").write_text("Per Lund;070-111 22 35;www.lundsmaleri.se\nIvar Ek;faktura 4711-2024\n"
                                      "2024-03-15\nek.se\n", encoding="utf-8")
    first = run_json(cli, "suppress", str(tmp_path / "dnc.csv"))
    second = run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    assert [bad["line"] for bad in first["invalid"]] == [4]  # Cia's row: nothing to bar, said
    assert [bad["line"] for bad in second["invalid"]] == [2, 3]
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert set(session.scalars(text("SELECT value FROM suppressions"))) == {
            "anna@x.se", "+46701112234", "+46701112235", "ek.se"}


@pytest.mark.parametrize("a, b", [("PO", "Per-Olof"), ("KG", "Karl Gustav"), ("Uffe", "Ulf"), ("Gösta", "Gustav"),
                                  ("Kajsa", "Katarina"), ("Sanna", "Susanne"), ("Jöran", "Göran"),
                                  ("Jack", "John"), ("Matte", "Mattias")])
def test_initials_and_nicknames_name_one_person(a, b):
    from crm_ingest.ingest.matching import other_first_name
    assert not other_first_name({"first_name": a}, {"first_name": b})


@pytest.mark.parametrize("order", [(2, 3), (3, 2)])
def test_reverting_imports_in_any_order_takes_back_each_ones_details_alone(cli, tmp_path, sessions_for, order):
    # Given Anna's lead, then two lists each giving her a note and a column, the second a consent
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])))
    for name, note, extra, consent in (("b.csv", "Ring i juni", "Mässa", None), ("c.csv", "Vill ha offert", "Webb", "ja")):
        listing = write_list(tmp_path / name, [["Anna", "Berg", "anna@berg.se", note, extra]],
                             header=["Förnamn", "Efternamn", "E-post", "Anteckningar", name])
        run_json(cli, "import", str(listing), *(["--consent", consent] if consent else []))
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        assert session.scalar(select(Lead)).details["fields"]["notes"] == "Ring i juni\n\nVill ha offert"
    # When one is reverted, Then only its note and column go
    run_json(cli, "import-revert", str(order[0]))
    with sessions() as session:
        details = session.scalar(select(Lead)).details
    kept_note, kept_column = ("Vill ha offert", "c.csv") if order[0] == 2 else ("Ring i juni", "b.csv")
    assert (details["fields"]["notes"], list(details["extra"])) == (kept_note, [kept_column])
    # And when the other is too, the lead is as its own list made it
    run_json(cli, "import-revert", str(order[1]))
    with sessions() as session:
        assert session.scalar(select(Lead)).details == {"row": 1, "file": "a.csv", "import_job": 1}


def test_a_header_under_group_headings_is_the_header(cli, tmp_path, sessions_for):
    # Given a workbook whose header sits under merged group headings
    book = Workbook()
    sheet = book.active
    sheet.append(["Kontaktperson", None, "Kontaktuppgifter", None, "Företag"])
    sheet.append(["Förnamn", "Efternamn", "E-post", "Telefon", None])
    sheet.append(["Anna", "Berg", "anna@berg.se", "070-123 45 67", "Berg AB"])
    sheet.append(["Bo", "Ek", "bo@ek.se", "", "Ek HB"])
    sheet.merge_cells("A1:B1")
    sheet.merge_cells("C1:D1")
    path = tmp_path / "grupper.xlsx"
    book.save(path)
    job = run_json(cli, "import", str(path))
    assert (job["counts"]["created"], job["counts"]["rejected"], job["options"]["header_row"]) == (2, 0, 2)
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = [(lead.first_name, lead.last_name, lead.phone, lead.company_name)
                 for lead in session.scalars(select(Lead).order_by(Lead.id))]
    assert leads == [("Anna", "Berg", "+46701234567", "Berg AB"), ("Bo", "Ek", None, "Ek HB")]


def test_a_rows_note_about_a_known_contact_is_a_note_on_it_and_a_revert_takes_it_back(cli, tmp_path, sessions_for,
                                                                                      monkeypatch):
    # Given a customer contact, then a trade show's list naming her with a note
    config = tmp_path / "ingest.toml"
    config.write_text('[sources.customers]\nkind = "row"\nrecord_type = "contact"\n')
    monkeypatch.setenv("INGEST_CONFIG", str(config))
    run_json(cli, "import", str(write_list(tmp_path / "kunder.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])),
             "--source", "customers")
    show = write_list(tmp_path / "massa.csv", [["Anna", "Berg", "anna@berg.se", "Vill ha offert i maj"]],
                      header=["Förnamn", "Efternamn", "E-post", "Anteckningar"])
    job = run_json(cli, "import", str(show))
    # Then the contact is linked and the note is on her, as an activity
    assert job["counts"]["linked_contact"] == 1
    picture = run_json(cli, "show", "contact", "1")
    assert [(a["kind"], a["subject"]) for a in picture["recent_activities"]] == [("note", "Note from a list (massa.csv row 1)")]
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        notes = session.execute(text("SELECT regarding_type, regarding_id, body FROM activities")).all()
    assert notes == [("contact", 1, "Vill ha offert i maj")]
    # And reverting the trade show's import takes it back
    run_json(cli, "import-revert", str(job["job"]))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(text("SELECT count(*) FROM activities")) == 0


@pytest.mark.parametrize("line, entry", [
    ("tel: 08-123 456", "+468123456"), ("Tel. 08-555 123 45", "+46855512345"), ("Mobil: 0701112233", "+46701112233"),
    ("070\u2013222 33 44", "+46702223344"), ("Anna Berg 070 999 88 77", "+46709998877"),
])
def test_a_do_not_contact_line_of_a_labelled_or_named_number_bars_the_number(line, entry):
    from crm_ingest.ingest.importjobs import parse_suppression
    assert parse_suppression(line, "SE") == ("phone", entry)


def test_a_do_not_contact_cell_of_two_numbers_bars_both_and_an_extension_bars_no_switchboard(cli, tmp_path, sessions_for):
    # Given a do-not-call list as a spreadsheet leaves it: two numbers in a cell, a number Excel
    # wrote with thousands separators, and a direct line written as the switchboard's extension
    (tmp_path / "dnc.csv").write_text("Namn;Telefon\nAnna Berg;070-111 22 33 / 08-123 456\nPer Ek;701,234,570\n"
                                      "Eva Lund;08-555 666 77 ankn. 12\nBo Ek;08-555 666 78 (ankn. 14)\n"
                                      "Cia Ek;070-111 22 36 / 08-555 666 79 ankn. 15\n", encoding="utf-8")
    result = run_json(cli, "suppress", str(tmp_path / "dnc.csv"))
    # Then each number is barred, and each extension is said not understood, naming why
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        barred = set(session.execute(text("SELECT kind, value FROM suppressions")).all())
    assert barred == {("phone", "+46701112233"), ("phone", "+468123456"), ("phone", "+46701234570"),
                      ("phone", "+46701112236")}
    assert [(line["line"], "switchboard" in line["reason"]) for line in result["invalid"]] == [(4, True), (5, True),
                                                                                               (6, True)]


@pytest.mark.parametrize("option", [["--campaign", "   "], ["--encoding", "zlib"], ["--encoding", "rot13"]])
def test_a_blank_campaign_or_a_codec_that_is_no_text_encoding_is_refused_saying_so(cli, tmp_path, option):
    listing = write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])
    result = cli("import", str(listing), *option)
    assert result.exit_code != 0 and option[0].lstrip("-") in result.output and "Traceback" not in result.output
    assert "codecs.open" not in result.output


def test_a_do_not_contact_list_bars_no_public_suffix(cli, tmp_path, sessions_for):
    # '@co.uk' barred every address in Britain; '@' was stored as an empty domain
    (tmp_path / "dnc.txt").write_text("@co.uk\n@\n@se\n@ek.co.uk\n", encoding="utf-8")
    result = run_json(cli, "suppress", str(tmp_path / "dnc.txt"))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert set(session.scalars(text("SELECT value FROM suppressions"))) == {"ek.co.uk"}
    assert [line["line"] for line in result["invalid"]] == [1, 2, 3]
    assert "no one's domain" in result["invalid"][0]["reason"]


def test_a_do_not_contact_row_without_its_named_contact_points_bars_no_site_and_no_org_number(cli, tmp_path, sessions_for):
    (tmp_path / "dnc.csv").write_text("E-post;Namn;Företag;Webb;Org.nr\n;Per Lund;Lunds Måleri AB;www.lundsmaleri.se;"
                                      "556123-4567\n", encoding="utf-8")
    run_json(cli, "suppress", str(tmp_path / "dnc.csv"))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(text("SELECT count(*) FROM suppressions")) == 0


def test_a_revert_takes_back_details_it_gave_a_lead_that_had_none(cli, tmp_path, sessions_for):
    # Given a lead without details (as a form makes one), then two lists giving it notes (the
    # first of two paragraphs), and the first reverted
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Anna", "Berg", "anna@berg.se", "", ""]])))
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions.begin() as session:
        session.execute(text("UPDATE leads SET details = NULL"))
    for name, note in (("b.csv", "Vill ha offert.\n\nRing efter 15 maj."), ("c.csv", "Ring i maj")):
        run_json(cli, "import", str(write_list(tmp_path / name, [["Anna", "Berg", "anna@berg.se", note]],
                                               header=["Förnamn", "Efternamn", "E-post", "Anteckningar"])))
    run_json(cli, "import-revert", "2")
    with sessions() as session:
        details = session.scalar(select(Lead)).details
    assert details["fields"] == {"notes": "Ring i maj"} and "file" not in details and "import_job" not in details


def test_a_nix_number_another_person_holds_is_barred_without_marking_that_person(cli, tmp_path, sessions_for):
    run_json(cli, "import", str(write_list(tmp_path / "a.csv", [["Per", "Lund", "per@lund.se", "08-123 45 00", ""]])))
    nix = write_list(tmp_path / "nix.csv", [["Anna Lund", "", "08-123 45 00", "Ja"]],
                     header=["Namn", "E-post", "Telefon", "NIX-spärrad"])
    assert run_json(cli, "import", str(nix))["counts"]["suppressed"] == 1
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert set(session.scalars(text("SELECT value FROM suppressions"))) == {"+4681234500"}
        assert session.scalar(select(Lead.do_not_contact).where(Lead.first_name == "Per")) is False


def test_a_contact_lists_own_notes_are_note_activities_on_its_contacts(cli, tmp_path, sessions_for, monkeypatch):
    config = tmp_path / "ingest.toml"
    config.write_text('[sources.customers]\nkind = "row"\nrecord_type = "contact"\n')
    monkeypatch.setenv("INGEST_CONFIG", str(config))
    listing = write_list(tmp_path / "kunder.csv", [["Anna", "Berg", "anna@berg.se", "Kund sedan 2019", "Mobil/Telefon"]],
                         header=["Förnamn", "Efternamn", "E-post", "Anteckningar", "Mobil/Telefon"])
    assert run_json(cli, "import", str(listing), "--source", "customers")["counts"]["created"] == 1
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.execute(text("SELECT regarding_type, body FROM activities")).all() == [("contact", "Kund sedan 2019")]


def test_either_phone_header_is_the_phone_in_either_order():
    from crm_ingest.connectors.listfile import map_header
    assert map_header("Mobil/Telefon") == map_header("Telefon/Mobil") == "phone"
