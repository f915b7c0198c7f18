"""CSV list connector: header mapping, dialect sniffing, header finding, stable row ids."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_ingest.connectors.csvlist import CsvList, map_header

SAMPLE = Path(__file__).parents[2] / "crm_ingest" / "samples" / "purchased_list.csv"


def write(tmp_path: Path, text: str, *, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def rows(path: Path, **kwargs) -> list[dict]:
    return [item.payload for item in CsvList(path, **kwargs).fetch()]


@pytest.mark.parametrize("header, field", [
    ("E-mail Address", "email"), ("Email", "email"), ("E-post", "email"),
    ("e-postadress", "email"), ("  EMAIL  ", "email"),
    ("Mobile Phone", "mobile_phone"), ("Mobil", "mobile_phone"), ("Mobiltelefon", "mobile_phone"),
    ("Telefon", "phone"), ("Phone", "phone"), ("Business Phone", "phone"), ("Tel", "phone"),
    ("Tel.", "phone"),
    ("Företag", "company"), ("FORETAG", "company"), ("Company", "company"),
    ("Organization", "company"), ("Organisation", "company"), ("Account Name", "company"),
    ("Given Name", "first_name"), ("First Name", "first_name"), ("first_name", "first_name"),
    ("Förnamn", "first_name"),
    ("Surname", "last_name"), ("Last Name", "last_name"), ("Efternamn", "last_name"),
    ("Name", "full_name"), ("Namn", "full_name"), ("Full Name", "full_name"),
    ("Title", "job_title"), ("Job Title", "job_title"), ("Befattning", "job_title"),
    ("Titel", "job_title"), ("Roll", "job_title"),
    ("Ort", "city"), ("Stad", "city"), ("City", "city"),
    ("Postnummer", "postal_code"), ("Zip", "postal_code"), ("Postal Code", "postal_code"),
    ("Website", "website"), ("Hemsida", "website"), ("Address", "street"), ("Gatuadress", "street"),
    ("Country", "country"), ("Land", "country"), ("Notes", "notes"), ("Anteckningar", "notes"),
    ("Topic", "topic"), ("Ämne", "topic"),
])
def test_map_header_knows_english_and_swedish_synonyms(header, field):
    assert map_header(header) == field


@pytest.mark.parametrize("header", ["Shoe size", "", "Favourite colour", "---"])
def test_map_header_returns_none_for_unknown_headers(header):
    assert map_header(header) is None


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_sniffs_the_delimiter(tmp_path, delimiter):
    # Given a list whose cells contain the other candidate delimiters' neighbours (spaces, dots)
    text = delimiter.join(["Name", "Email", "Phone"]) + "\n"
    text += delimiter.join(["Anna Svensson", "anna@foretag.example.se", "070-123 45 67"]) + "\n"
    text += delimiter.join(["Erik Ek", "erik@foretag.example.se", "+46 70 234 56 78"]) + "\n"
    # When it is read
    payloads = rows(write(tmp_path, text))
    # Then every cell lands in its own field
    assert [p["fields"] for p in payloads] == [
        {"full_name": "Anna Svensson", "email": "anna@foretag.example.se", "phone": "070-123 45 67"},
        {"full_name": "Erik Ek", "email": "erik@foretag.example.se", "phone": "+46 70 234 56 78"},
    ]


def test_falls_back_to_comma_for_a_single_column(tmp_path):
    path = write(tmp_path, "Email\nanna@foretag.example.se\nerik@foretag.example.se\n")
    assert [p["fields"] for p in rows(path)] == [
        {"email": "anna@foretag.example.se"}, {"email": "erik@foretag.example.se"}]


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path):
    path = write(tmp_path, "Förnamn;E-post\nÅsa;asa@foretag.example.se\n", encoding="utf-8-sig")
    connector = CsvList(path)
    assert [item.payload["fields"] for item in connector.fetch()] == [
        {"first_name": "Åsa", "email": "asa@foretag.example.se"}]
    assert connector.columns == [("Förnamn", "first_name"), ("E-post", "email")]


def test_encoding_overrides_the_default(tmp_path):
    path = write(tmp_path, "Förnamn;Ort\nGöran;Örebro\n", encoding="cp1252")
    assert rows(path, encoding="cp1252")[0]["fields"] == {"first_name": "Göran", "city": "Örebro"}


def test_quoted_fields_keep_delimiters_and_newlines(tmp_path):
    text = ('Namn;Företag;Anteckningar\n'
            'Karin Holm;"Holm; Partners KB";"Ring efter lunch;\nhelst tisdag"\n'
            'Per Wik;Fjällgården;\n')
    payloads = rows(write(tmp_path, text))
    assert payloads[0]["fields"] == {"full_name": "Karin Holm", "company": "Holm; Partners KB",
                                     "notes": "Ring efter lunch;\nhelst tisdag"}
    assert payloads[1]["fields"] == {"full_name": "Per Wik", "company": "Fjällgården"}
    assert [p["row"] for p in payloads] == [1, 2]


def test_title_line_and_blank_rows_above_the_header_are_skipped(tmp_path):
    text = ("Mässlista Nordic Expo 2026\n\n;;\n"
            "Förnamn;Efternamn;E-post\n"
            "Anna;Svensson;anna@foretag.example.se\n")
    connector = CsvList(write(tmp_path, text))
    payloads = [item.payload for item in connector.fetch()]
    assert connector.columns == [("Förnamn", "first_name"), ("Efternamn", "last_name"),
                                 ("E-post", "email")]
    assert payloads == [{"fields": {"first_name": "Anna", "last_name": "Svensson",
                                    "email": "anna@foretag.example.se"},
                         "extra": {}, "row": 1, "file": "list.csv"}]


def test_without_a_known_header_the_first_non_empty_row_is_the_header(tmp_path):
    text = "\nKundnr,Summa\n17,1200\n"
    connector = CsvList(write(tmp_path, text))
    assert [item.payload["extra"] for item in connector.fetch()] == [{"Kundnr": "17", "Summa": "1200"}]
    assert connector.columns == [("Kundnr", None), ("Summa", None)]


def test_read_header_maps_columns_without_fetching(tmp_path):
    path = write(tmp_path, "Title line\nE-mail Address,Mobil,Shoe size\nx@example.com,070,42\n")
    assert CsvList(path).read_header() == [("E-mail Address", "email"),
                                           ("Mobil", "mobile_phone"), ("Shoe size", None)]


def test_external_ids_are_stable_across_runs_and_differ_between_files(tmp_path):
    # Given the same file read twice, and a file with one more row
    text = "Name,Email\nAnna,anna@example.com\nErik,erik@example.com\n"
    first = write(tmp_path, text, name="a.csv")
    other = write(tmp_path, text + "Maja,maja@example.com\n", name="b.csv")
    # When they are fetched
    run1 = [item.external_id for item in CsvList(first).fetch()]
    run2 = [item.external_id for item in CsvList(first).fetch()]
    run_other = [item.external_id for item in CsvList(other).fetch()]
    # Then the ids repeat exactly for the same file, are unique, and new content gets new ids
    assert run1 == run2
    assert len(set(run1)) == 2
    assert run1[0].endswith(":1") and run1[1].endswith(":2")
    assert not set(run1) & set(run_other)


def test_fetch_from_a_checkpoint_of_the_same_file_resumes_after_it(tmp_path):
    path = write(tmp_path, "Name,Email\nAnna,a@example.com\nErik,e@example.com\nMaja,m@example.com\n")
    items = list(CsvList(path).fetch())
    resumed = list(CsvList(path).fetch(items[1].cursor))
    assert [item.external_id for item in resumed] == [items[2].external_id]
    assert list(CsvList(path).fetch({"sha256": "another file", "row": 2})) == items


def test_unmapped_and_duplicate_columns_go_to_extra(tmp_path):
    text = ("Email,Shoe size,E-post,Notes,,Shoe size\n"
            "anna@example.com,38,anna.privat@example.com,,ja,39\n")
    connector = CsvList(write(tmp_path, text))
    [payload] = [item.payload for item in connector.fetch()]
    assert payload["fields"] == {"email": "anna@example.com"}
    assert payload["extra"] == {"Shoe size": "38", "E-post": "anna.privat@example.com",
                                "column 5": "ja", "Shoe size (6)": "39"}
    assert connector.columns[2] == ("E-post", None)


def test_cells_past_the_header_are_kept_in_extra(tmp_path):
    path = write(tmp_path, "Name,Email\nAnna,anna@example.com,VIP\n")
    assert rows(path)[0]["extra"] == {"column 3": "VIP"}


def test_blank_rows_are_skipped_but_keep_their_row_numbers(tmp_path):
    text = "Name;Email\nAnna;a@example.com\n\n ; \nErik;e@example.com\n"
    payloads = rows(write(tmp_path, text))
    assert [(p["fields"]["full_name"], p["row"]) for p in payloads] == [("Anna", 1), ("Erik", 4)]


def test_payload_is_json_and_free_of_nul_and_padding(tmp_path):
    path = write(tmp_path, "Name,Email\n An\x00na ,  anna@example.com\n")
    [item] = list(CsvList(path).fetch())
    assert item.kind == "row"
    assert item.payload["fields"] == {"full_name": "Anna", "email": "anna@example.com"}
    assert json.loads(json.dumps(item.payload)) == item.payload


def test_sample_list_has_25_rows_under_its_swedish_header():
    connector = CsvList(SAMPLE)
    payloads = [item.payload for item in connector.fetch()]
    assert len(payloads) == 25
    assert [field for _, field in connector.columns] == [
        "first_name", "last_name", "email", "phone", "company", "job_title", "city"]
    assert [p["row"] for p in payloads] == list(range(1, 26))
    assert "Holm; Partners Advokatbyrå KB" in {p["fields"].get("company") for p in payloads}
    assert sum("email" not in p["fields"] and "phone" not in p["fields"] for p in payloads) == 1
    assert all(p["extra"] == {} for p in payloads)
