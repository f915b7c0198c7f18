"""Purchased and event lists in CSV: one landed item per data row, its columns mapped to our fields."""
from __future__ import annotations

import csv
import hashlib
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, TextIO

from crm_ingest.connectors.base import NewItem

__all__ = ["CsvList", "HEADER_SYNONYMS", "map_header"]

HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": ("First Name", "Firstname", "Given Name", "Forename", "Förnamn", "Tilltalsnamn"),
    "last_name": ("Last Name", "Lastname", "Surname", "Family Name", "Efternamn"),
    "full_name": ("Name", "Full Name", "Contact", "Contact Name", "Contact Person", "Namn",
                  "Fullständigt namn", "Kontakt", "Kontaktperson"),
    "email": ("Email", "E-mail", "Email Address", "E-mail Address", "Mail", "Email 1", "E-post",
              "E-postadress", "Epost", "Mejl", "Mejladress"),
    "phone": ("Phone", "Phone Number", "Telephone", "Tel", "Business Phone", "Work Phone",
              "Office Phone", "Telefon", "Telefonnummer", "Tfn", "Arbetstelefon", "Direktnummer",
              "Växel"),
    "mobile_phone": ("Mobile", "Mobile Phone", "Mobile Number", "Cell", "Cell Phone", "Mobil",
                     "Mobiltelefon", "Mobilnummer", "Mobiltel"),
    "company": ("Company", "Company Name", "Organization", "Organisation", "Organization Name",
                "Account", "Account Name", "Employer", "Företag", "Företagsnamn", "Bolag",
                "Organisationsnamn", "Arbetsgivare"),
    "job_title": ("Title", "Job Title", "Position", "Role", "Befattning", "Titel", "Roll",
                  "Yrkesroll", "Tjänst"),
    "topic": ("Topic", "Subject", "Interest", "Area of Interest", "Ämne", "Intresse",
              "Intresseområde"),
    "website": ("Website", "Web Site", "Web", "URL", "Homepage", "Webbplats", "Webbsida",
                "Hemsida"),
    "street": ("Street", "Address", "Street Address", "Address 1", "Address Line 1", "Adress",
               "Gatuadress", "Besöksadress", "Utdelningsadress"),
    "city": ("City", "Town", "Ort", "Stad", "Postort"),
    "postal_code": ("Postal Code", "Postcode", "Zip", "Zip Code", "Postnummer", "Postnr"),
    "country": ("Country", "Country/Region", "Land"),
    "notes": ("Notes", "Note", "Comment", "Comments", "Description", "Anteckningar", "Anteckning",
              "Kommentar", "Kommentarer", "Övrigt", "Beskrivning"),
}

SNIFF_DELIMITERS = ",;\t|"
SNIFF_SAMPLE_CHARS = 64 * 1024
HEADER_SEARCH_ROWS = 20


def _header_key(name: str) -> str:
    """Case, accents, whitespace and punctuation folded away: 'E-postadress' -> 'epostadress'."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


_FIELD_BY_KEY: dict[str, str] = {
    _header_key(synonym): field
    for field, synonyms in HEADER_SYNONYMS.items()
    for synonym in (field, *synonyms)
}


def map_header(name: str) -> str | None:
    """The canonical field a column header stands for, or None when we do not know it."""
    return _FIELD_BY_KEY.get(_header_key(name))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _sniff_delimiter(sample: str) -> str:
    """The delimiter csv.Sniffer sees in the sample; ',' if unsure.

    The sniffer gets complete, non-blank lines from the first one holding a candidate delimiter,
    so a title line above the header does not outvote a short list.
    """
    complete = sample if len(sample) < SNIFF_SAMPLE_CHARS else sample.rpartition("\n")[0]
    lines = [line for line in complete.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if any(d in line for d in SNIFF_DELIMITERS)), 0)
    try:
        return csv.Sniffer().sniff("\n".join(lines[first:]), delimiters=SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _clean(value: str) -> str:
    return value.replace("\x00", "").strip()


def _is_blank(row: list[str]) -> bool:
    return not any(_clean(cell) for cell in row)


def _split_header(rows: Iterator[list[str]]) -> tuple[list[str], Iterator[list[str]]]:
    """The header row and the data rows after it.

    The header is the first of the first rows with two cells we can map (title lines and blank
    rows above it are skipped); failing that, the first non-empty row.
    """
    seen: list[list[str]] = []
    for row in rows:
        seen.append(row)
        if sum(map_header(cell) is not None for cell in row) >= 2:
            return row, rows
        if len(seen) == HEADER_SEARCH_ROWS:
            break
    for index, row in enumerate(seen):
        if not _is_blank(row):
            return row, chain(seen[index + 1:], rows)
    return [], iter(())


def _columns(header: list[str]) -> list[tuple[str, str | None]]:
    """(header, field) per column; a field's second column maps to None and lands in `extra`."""
    taken: set[str] = set()
    columns = []
    for name in header:
        name = _clean(name)
        field = map_header(name)
        if field in taken:
            field = None
        elif field is not None:
            taken.add(field)
        columns.append((name, field))
    return columns


def _extra_names(columns: list[tuple[str, str | None]]) -> list[str]:
    """Unique keys for `extra`: the header, 'column N' when it is empty, ' (N)' when repeated."""
    names: list[str] = []
    for number, (header, _) in enumerate(columns, start=1):
        name = header or f"column {number}"
        names.append(f"{name} ({number})" if name in names else name)
    return names


def _payload(columns: list[tuple[str, str | None]], extra_names: list[str],
             row: list[str]) -> dict[str, Any]:
    """Non-empty cells by field; the unmapped ones (and cells past the header) in `extra`."""
    fields: dict[str, str] = {}
    extra: dict[str, str] = {}
    for index, cell in enumerate(row):
        value = _clean(cell)
        if not value:
            continue
        field = columns[index][1] if index < len(columns) else None
        if field is not None:
            fields[field] = value
        else:
            extra[extra_names[index] if index < len(extra_names) else f"column {index + 1}"] = value
    return {"fields": fields, "extra": extra}


class CsvList:
    """A CSV list file: yields each non-blank data row once, with ids stable for the same file.

    The cursor is (file hash, row); a fetch from a checkpoint of the same file resumes after it,
    one of another file starts from the top.
    """

    kind = "row"

    def __init__(self, path: Path, source: str = "list", *, encoding: str | None = None) -> None:
        self.path = Path(path)
        self.source = source
        self.encoding = encoding or "utf-8-sig"
        self.columns: list[tuple[str, str | None]] | None = None

    def read_header(self) -> list[tuple[str, str | None]]:
        """The column mapping, (header, field or None) per column, without reading the rows."""
        with self._rows() as rows:
            header, _ = _split_header(rows)
        return _columns(header)

    def fetch(self, since: dict[str, Any] | None = None) -> Iterator[NewItem]:
        """Stream the rows in file order; `columns` is set once the header is found."""
        sha256 = _file_sha256(self.path)
        resume_after = since.get("row", 0) if since and since.get("sha256") == sha256 else 0
        with self._rows() as rows:
            header, data = _split_header(rows)
            self.columns = columns = _columns(header)
            extra_names = _extra_names(columns)
            for number, row in enumerate(data, start=1):
                if number <= resume_after or _is_blank(row):
                    continue
                payload = _payload(columns, extra_names, row) | {"row": number,
                                                                  "file": self.path.name}
                yield NewItem(external_id=f"{sha256[:20]}:{number}", kind=self.kind,
                              payload=payload, cursor={"sha256": sha256, "row": number})

    @contextmanager
    def _rows(self) -> Iterator[Iterator[list[str]]]:
        with self.path.open(encoding=self.encoding, newline="") as f:
            yield csv.reader(f, delimiter=self._delimiter(f))

    @staticmethod
    def _delimiter(f: TextIO) -> str:
        sample = f.read(SNIFF_SAMPLE_CHARS)
        f.seek(0)
        return _sniff_delimiter(sample)
