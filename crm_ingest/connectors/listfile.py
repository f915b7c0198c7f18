"""Campaign and purchased lists as Excel or any vendor wrote them: one landed item per data row."""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import tomllib
import unicodedata
import warnings
import xml.etree.ElementTree as ElementTree
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache, cached_property
from html.parser import HTMLParser
from itertools import chain, islice, zip_longest
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote
from xml.parsers import expat

from crm_ingest.connectors.base import NewItem
from crm_ingest.connectors.textfix import DOUBLED, read_back
from crm_ingest.ingest.errors import ConfigError, FatalError
from crm_ingest.ingest.normalize import DATE_WRITTEN

__all__ = ["HEADER_SYNONYMS", "ListFile", "MapFile", "map_header", "preview", "suppression_values"]

# Each field's names, the most specific first: when two columns name one field, the earlier
# name wins it (Outlook's 'Title' is Mr/Ms beside its 'Job Title'), and the other is kept in
# `extra` (a second email column instead joins the first: its address finds the person too).
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": ("First Name", "Firstname", "Given Name", "Forename", "Förnamn", "Tilltalsnamn",
                   "Fornavn", "Etunimi", "Vorname", "First", "FName", "F_Name", "Name (First)", "Given Name(s)"),
    "last_name": ("Last Name", "Lastname", "Surname", "Family Name", "Efternamn", "Etternavn", "Efternavn",
                  "Sukunimi", "Nachname", "Familienname", "Last", "LName", "L_Name", "Name (Last)"),
    "nickname": ("Nickname", "Nick Name", "Smeknamn", "Kallas"),  # the name when the row gives no other
    "full_name": ("Name", "Full Name", "Contact", "Contact Name", "Contact Person", "Namn",
                  "Fullständigt namn", "Kontakt", "Kontaktperson", "Er referens", "Navn", "Nimi",
                  "Yhteyshenkilö", "Ansprechpartner", "Kundnamn", "Namn på kontaktperson",
                  "Förnamn och efternamn", "För- och efternamn", "First and Last Name", "Förnamn Efternamn",
                  "Förnamn + efternamn", "Förnamn, efternamn", "First Name Last Name", "First Name, Last Name",
                  "Namn (för- och efternamn)", "Name (first and last)"),
    # a full name written surname first ('Berg Anna', as a register writes it): read as 'Berg, Anna'
    "last_first_name": ("Efternamn, Förnamn", "Efternamn Förnamn", "Efternamn och förnamn", "Efternamn + förnamn",
                        "Last Name, First Name", "Last Name First Name", "Surname, First Name", "Surname Forename",
                        "Surname, Forename", "Last, First", "Namn (efternamn förnamn)"),
    "email": ("Email", "E-mail", "Email Address", "E-mail Address", "Mail", "Email 1", "E-post",
              "E-postadress", "Epost", "Mejl", "Mejladress", "Mailadress", "Mail Address",
              "E-postadresse", "E-mailadresse", "Sähköposti", "Sähköpostiosoite", "E-Mail-Adresse"),
    "phone": ("Phone", "Phone Number", "Telephone", "Tel", "Business Phone", "Work Phone",
              "Office Phone", "Telefon", "Telefonnummer", "Tfn", "Arbetstelefon", "Direktnummer",
              "Växel", "Home Phone", "Hemtelefon", "Telefonnr", "Puhelin", "Puhelinnumero", "Kontaktnummer",
              "Kontakttelefon", "Contact Number",
              "Telefonnummer geschäftlich"),
    "mobile_phone": ("Mobile", "Mobile Phone", "Mobile Number", "Cell", "Cell Phone", "Mobil",
                     "Mobiltelefon", "Mobilnummer", "Mobiltel", "Matkapuhelin", "Handy",
                     "Handynummer", "Mobiltfn", "Mobil tfn", "Mobilnr"),
    "company": ("Company", "Company Name", "Organization", "Organisation", "Organization Name", "Organisation Name",
                "Account", "Account Name", "Employer", "Företag", "Företagsnamn", "Bolag",
                "Organisationsnamn", "Arbetsgivare", "Org.namn", "Firma", "Firmanamn", "Vendor",
                "Supplier", "Leverantör", "Selskap", "Virksomhet", "Virksomhed", "Yritys",
                "Unternehmen", "Firmenname", "Företagets namn", "Arbetsplats", "Workplace",
                "Associated Company", "Företag/konto", "Kontonamn"),  # HubSpot's; Salesforce's in Swedish
    "job_title": ("Job Title", "Title", "Position", "Role", "Befattning", "Titel", "Roll",
                  "Yrkesroll", "Tjänst", "Organization Title", "Yrkestitel", "Stilling", "Titteli",
                  "Tehtävänimike", "Berufsbezeichnung", "Tjänstetitel", "Yrke",
                  "Organization 1 - Title", "Occupation"),  # Google's: its title, not its often empty 'Occupation'
    "topic": ("Topic", "Subject", "Interest", "Area of Interest", "Ämne", "Intresse",
              "Intresseområde"),
    "website": ("Website", "Web Site", "Web", "URL", "Homepage", "Web Page", "Webbplats", "Webbsida",
                "Hemsida", "Webb"),
    "street": ("Street", "Address", "Street Address", "Address 1", "Address Line 1", "Street 1",
               "Adress", "Gatuadress", "Besöksadress", "Utdelningsadress", "Postadress", "Adresse",
               "Gateadresse", "Osoite", "Katuosoite", "Straße", "Strasse", "Gata", "Adressrad 1", "Adressrad"),
    "city": ("City", "Town", "Ort", "Stad", "Postort", "Poststed", "By", "Kaupunki", "Postitoimipaikka",
             "Stadt", "Ort/Stad",
             # a postal code and town in one column: the planner reads the code off the town
             "Postnummer och ort", "Postnr och ort", "Postnr ort", "Postnr/Ort", "Postnummer/Ort",
             "Postnr & ort", "PLZ/Ort", "PLZ Ort"),
    "postal_code": ("Postal Code", "Postcode", "Zip", "Zip Code", "Zip/Postal Code", "Postnummer",
                    "Postnr", "Postinumero", "PLZ", "Postleitzahl"),
    # a state, province, county or region: 'Region (arbete)' is Outlook's in Swedish, and a
    # Swedish 'Län' or 'Region' (Skåne, Västra Götaland) is what a US list's 'State' is
    "state_or_province": ("State/Province", "State", "Province", "State or Province", "State/Region",
                          "Region", "County", "Län", "Landskap", "Delstat", "Provins", "Fylke",
                          "Maakunta", "Bundesland"),
    "country": ("Country", "Country/Region", "Land", "Maa", "Country Name", "Country/Region Name",
                "Land/region", "Land/Region Name", "Landsnamn", "Nation"),
    "twitter": ("Twitter", "Twitter Handle", "X", "X Handle", "X (Twitter)", "Twitter/X"),
    "linkedin": ("LinkedIn", "LinkedIn URL", "LinkedIn Profile", "LinkedIn-profil", "Person Linkedin Url",
                 "LinkedIn Profile URL"),
    "facebook": ("Facebook", "Facebook Profile", "Facebook ID"),
    "lead_source": ("Lead Source", "Källa", "Leadkälla"),
    "consent": ("Consent", "Samtycke", "Consent Given", "Marketing Consent", "GDPR Consent",
                "Opt In", "Opted In", "Samtycke marknadsföring"),
    # a person's word against our mail (their addresses go on the do-not-contact list)
    "opt_out": ("Opt Out", "Email Opt Out", "Opted Out", "Do Not Email", "Do Not Allow Bulk Emails",
                "Unsubscribed", "Avregistrerad", "Avanmäld", "Unsubscribed from all email", "Do Not Bulk Email",
                "Do Not Allow"),
    # when the person opted out of our mail (Mailchimp's unsubscribed export): a date says they did
    "opt_out_at": ("UNSUB_TIME", "Unsubscribed At", "Unsubscribe Date", "Unsubscribed Date", "Opt Out Date",
                   "Opted Out At", "Opt-out Date", "Avregistrerad datum", "Avregistreringsdatum",
                   "Unsubscribed On"),
    # when the address bounced (Mailchimp's cleaned export): not an address to mail
    # (a hard bounce: a soft one, a full mailbox, says nothing of the address)
    "bounced_at": ("CLEAN_TIME", "Cleaned At", "Cleaned Date", "Hard Bounce Date", "Hard Bounced At", "Hard Bounced",
                   "Hard Bounce"),
    # against our calls (their numbers go on the list)
    "do_not_call": ("Do Not Call", "Do Not Phone", "Ring ej"),
    # a number in a register against telemarketing (Sweden's NIX, Britain's TPS): the number itself
    # is not to be called, whoever answers it, a fixed line too
    "nix": ("Nix", "Nix-spärrad", "Nixad", "NIX-registrerad", "Nix-telefon", "Spärrad i NIX", "TPS", "TPS registered",
            "CTPS", "Telephone Preference Service", "DNC Registry", "National Do Not Call Registry"),
    # against any contact (addresses and numbers)
    "do_not_contact": ("Do Not Contact", "Får ej kontaktas", "Spärrad", "Reklamspärr", "Do Not Send Marketing Materials"),
    "notes": ("Notes", "Note", "Comment", "Comments", "Description", "Anteckningar", "Anteckning",
              "Kommentar", "Kommentarer", "Övrigt", "Beskrivning"),
}

SNIFF_DELIMITERS = ",;\t|"
SNIFF_SAMPLE_CHARS = 64 * 1024
ENCODING_SAMPLE_BYTES = 1 << 20
HEADER_SEARCH_ROWS = 20
SHEET_COUNT_ROWS = 1000  # rows counted of each sheet that may hold the list (see _sheet_with_a_header)
_NOT_THE_LIST = re.compile(r"instru|anvisning|example|exempel|read ?me|l[äa]s ?mig|hj[äa]lp|\bhelp\b", re.IGNORECASE)
CSV_FIELD_LIMIT = 10 * (1 << 20)
# A line of a list: never read whole past this, nor parsed into more cells than this (a line of
# commas becomes ten times its size in memory as cells: 50 MB of them took 515 MB)
MAX_LINE_CHARS = 2 * CSV_FIELD_LIMIT
MAX_LINE_CELLS = 20_000
MAX_CELL_CHARS = 1 << 20

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_WESTERN = {"cp1252", "latin_1", "iso8859_15", "iso8859_1", "windows-1252"}
_ASCII = bytes(range(0x80))
_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and password-protected .xlsx


def _folded(name: str) -> str:
    """Case and accents folded away: 'E-Postadress Å' -> 'e-postadress a'."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _header_key(name: str) -> str:
    """Case, accents, whitespace and punctuation folded away: 'E-postadress' -> 'epostadress'."""
    return "".join(ch for ch in _folded(name) if ch.isalnum())


_RANK_BY_KEY: dict[str, tuple[str, int]] = {}
for _field, _synonyms in HEADER_SYNONYMS.items():
    for _rank, _synonym in enumerate((_field, *_synonyms)):
        _RANK_BY_KEY.setdefault(_header_key(_synonym), (_field, _rank))

# How exports name a field they qualify: 'E-mail 1 - Value' (Google), 'Business City'
# (Outlook), 'Mobile Phone Number' (HubSpot), 'Mobilnr', 'Company / Account' (Salesforce).
_WORDS = re.compile(r"[^\W_]+")
_QUALIFIERS = frozenset({
    "business", "work", "office", "home", "private", "personal", "primary", "main", "mailing",
    "billing", "shipping", "other", "contact", "company", "organization", "organisation",
    "address", "customer", "lead", "person", "arbete", "arbets", "arb", "jobb", "privat", "hem",
    "hemma", "direkt", "kontakt", "kontaktperson", "kund", "foretag", "foretags", "bostad", "iso"})
# A column qualified so loses to one that is not, or is qualified as work: a business list's
# 'Business City' is the person's city, the 'Home City' beside it (Outlook has both) is not
_PRIVATE = frozenset({"home", "private", "personal", "other", "privat", "hem", "hemma", "bostad"})
_PRIVATE_RANK = 50
_NOISE = frozenset({"value", "values"})
# A field's name with a word after it ('Mobilnr', 'Website URL', 'E-mail Address'): the fields
# such a word can follow (a number is a phone's, a link a website's)
_PHONES = ("phone", "mobile_phone")
_SUFFIXES = {"number": _PHONES, "nummer": _PHONES, "nr": _PHONES, "no": _PHONES,
             "url": ("website", "twitter", "facebook"), "link": ("website", "twitter", "facebook"),
             "lank": ("website", "twitter", "facebook"), "address": ("email", "street", "website"),
             "adress": ("email", "street", "website")}
# A column about a field rather than holding it: 'E-mail 1 - Label', 'Email Opt Out', 'E-mail
# Display Name', 'Phone Type', 'Email Status'
_ABOUT = frozenset({
    "label", "type", "status", "opt", "optout", "optin", "out", "verified", "verification",
    "bounce", "bounced", "bounces", "date", "time", "count", "domain", "format", "subscribed",
    "unsubscribed", "display", "id", "owner", "rating", "score", "ip", "quality", "valid",
    "validation", "confirmed", "hash", "md5", "sha256", "permission", "preference",
    "preferences", "frequency", "changed", "created", "modified", "updated", "source",
    "phonetic", "yomi", "typ", "datum", "tid", "giltig"})
_FUZZY_RANK = 100  # a field named loosely loses to a column that names it exactly


def _header_match(name: str) -> tuple[str, int] | None:
    """(field, rank) a column header stands for, the lower rank the more specific; None when
    we do not know it."""
    if "/" in name and {map_header(part) for part in name.split("/")} == set(_PHONES):
        return "phone", 0  # 'Mobil/Telefon' as 'Telefon/Mobil': either, the number to call
    found = _RANK_BY_KEY.get(_header_key(name))
    if found is not None:
        return found
    words = _WORDS.findall(_folded(name))
    if not words or _ABOUT.intersection(words):
        return None
    words = [w for w in words if not w.isdigit() and w not in _NOISE]
    found = _RANK_BY_KEY.get("".join(words))  # 'Organization 1 - Name' (Google) is 'Organization Name'
    if found is not None:
        return found[0], _FUZZY_RANK + found[1]
    private = False
    while len(words) > 1 and (words[0] in _QUALIFIERS or words[-1] in _QUALIFIERS):  # 'Tel. arb' too
        qualifier = words.pop(0 if words[0] in _QUALIFIERS else -1)
        private = private or qualifier in _PRIVATE
    key = "".join(words)
    found = _RANK_BY_KEY.get(key)
    for suffix, fields in _SUFFIXES.items() if found is None else ():
        if key.endswith(suffix) and len(key) > len(suffix):
            found = _RANK_BY_KEY.get(key[:-len(suffix)])
            if found is not None and found[0] not in fields:
                found = None  # 'Kontaktnummer' is no contact's name, 'Kundnummer' no customer's
            if found is not None:
                break
    if found is None and "/" in name:  # 'E-post / Mail', 'Surname/Family name': one field's names
        named = {(_header_match(part) or ("", 0))[0] for part in name.split("/")}
        if len(named) == 1 and "" not in named:
            found = (named.pop(), 0)
    if found is None and len(words) > 1:  # alternatives of one field: 'Company / Account'
        fields = {(_RANK_BY_KEY.get(word) or _RANK_BY_KEY.get(_without_number_word(word)) or ("", 0))[0]
                  for word in words if word not in _JOINING_WORDS}
        if len(fields) == 1 and "" not in fields:
            found = (fields.pop(), 0)
        elif fields == set(_PHONES):  # 'Telefon/Mobil' is either, the number to call; 'Telefon (mobil)' a mobile
            found = ("phone" if _ALTERNATIVES.search(name) else "mobile_phone", 0)
    return None if found is None else (found[0], _FUZZY_RANK + _PRIVATE_RANK * private + found[1])


_ALTERNATIVES = re.compile(r"[/|&+]|\b(?:or|eller|och|and)\b", re.IGNORECASE)
_JOINING_WORDS = frozenset({"or", "eller", "och", "and"})


def _without_number_word(word: str) -> str:
    """'telefonnummer' -> 'telefon', 'mobilnr' -> 'mobil': a phone's word with its 'number' after it."""
    for suffix in ("nummer", "number", "nr"):
        if word.endswith(suffix) and len(word) > len(suffix):
            return word[:-len(suffix)]
    return word


def map_header(name: str) -> str | None:
    """The canonical field a column header stands for, or None when we do not know it."""
    found = _header_match(name)
    return None if found is None else found[0]


# -- the map file: what a person says about one vendor's columns -------------------------------

def _loose(text: str) -> str:
    """Case and runs of whitespace folded: how map-file headers and values are matched."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class MapFile:
    """Explicit column mapping, value translations and defaults for a list; wins over synonyms."""

    columns: dict[str, str | None] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    _columns: dict[str, str | None] = field(init=False, repr=False, compare=False)
    _values: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        columns = {_loose(header): target or None for header, target in self.columns.items()}
        values = {name: {_loose(raw): stored for raw, stored in table.items()}
                  for name, table in self.values.items()}
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_values", values)

    def lists(self, header: str) -> bool:
        return _loose(header) in self._columns

    def field_for(self, header: str) -> str | None:
        """The field the map gives this header; None when it says to ignore it (or is silent)."""
        return self._columns.get(_loose(header))

    def value_table(self, field_name: str) -> dict[str, str] | None:
        """The field's values as stored, by their loosely folded spelling (see _loose); None for
        a field the map translates no value of (most: no folding of every cell)."""
        return self._values.get(field_name) or None

    @classmethod
    def load(cls, path: Path) -> MapFile:
        """Read a TOML map file; ConfigError names the dotted key that is wrong."""
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), str(exc)) from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, origin: str = "map") -> MapFile:
        """A map from its TOML text (a file's, or one sent with an upload); ConfigError names
        the dotted key that is wrong (or `origin`, when the text is not TOML)."""
        try:
            data = tomllib.loads(text.removeprefix("\ufeff"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(origin, str(exc)) from exc
        except RecursionError:  # arrays nested a thousand deep: no map is
            raise ConfigError(origin, "values nested too deep to be a map") from None
        if unknown := sorted(data.keys() - {"columns", "values", "defaults"}):
            raise ConfigError(unknown[0], "unknown section; expected columns, values, defaults")
        columns = {header: _known_field(f"columns.{header}", _string(f"columns.{header}", target))
                   for header, target in _table(data, "columns").items()}
        values = {_known_field(f"values.{name}", name):
                  {raw: _string(f"values.{name}.{raw}", stored)
                   for raw, stored in _table(data["values"], name, "values.").items()}
                  for name in _table(data, "values")}
        defaults = {_known_field(f"defaults.{name}", name): _string(f"defaults.{name}", value)
                    for name, value in _table(data, "defaults").items()}
        return cls(columns, values, defaults)


def _table(data: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(prefix + key, "must be a table")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {type(value).__name__}")
    return value


def _known_field(key: str, name: str) -> str | None:
    """A canonical field name; "" (a column to ignore) is None."""
    if name == "" and key.startswith("columns."):
        return None
    if name in HEADER_SYNONYMS:
        return name
    raise ConfigError(key, f"unknown field {name!r}; known: {', '.join(HEADER_SYNONYMS)}")


# -- what the file is: format, encoding, delimiter ---------------------------------------------

def _workbook_format(path: Path, head: bytes) -> str | None:
    """'xlsx' for a zip holding an Excel workbook, 'xls' for an Office compound file (an Excel
    97-2003 workbook, or something _xls_book refuses with a reason), None for text; other
    archives are refused with a reason."""
    if head.startswith(_OLE2_MAGIC):
        return "xls"
    if not head.startswith(_ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" in names:
                return "xlsx"
            mimetype = ""
            if "mimetype" in names:
                with archive.open("mimetype") as member:
                    mimetype = member.read(100).decode("ascii", "replace").strip()
            if mimetype == "application/vnd.oasis.opendocument.spreadsheet" and "content.xml" in names:
                return "ods"
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, zlib.error, EOFError):
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            return "xlsx"  # openpyxl says what is wrong with it
        names, mimetype = set(), ""
    what = next((what for member, what in _OTHER_ZIPS if member in names), None) or \
        ("an OpenDocument text or presentation" if mimetype.startswith("application/vnd.oasis")
         else "an Apple Numbers document" if any(name.startswith("Index/") and name.endswith(".iwa") for name in names)
         else "a zip archive")
    raise FatalError(f"{path.name}: {what}, not a list; save it as .xlsx or CSV")


# Zip containers that are documents of another kind, by a member only they have
_OTHER_ZIPS = (("xl/workbook.bin", "an Excel binary workbook (.xlsb)"), ("word/document.xml", "a Word document"),
               ("ppt/presentation.xml", "a PowerPoint presentation"))


def _sheet_names(path: Path) -> list[str]:
    """The workbook's sheet names from its index, without loading the cells or shared strings."""
    try:
        with zipfile.ZipFile(path) as archive:
            root = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise FatalError(f"{path.name}: not a readable Excel workbook: {exc}") from exc
    return [sheet.get("name", "") for sheet in root.iter() if sheet.tag.endswith("}sheet")]


def _text_encoding(head: bytes, is_sample_whole_file: bool) -> tuple[str, bool]:
    """(codec, guessed): BOM, else UTF-8 if the sample is valid, else a detected 8-bit codec."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, False
    sample = head if is_sample_whole_file else head[:head.rfind(b"\n") + 1] or head
    if codec := _bomless_utf16(sample):
        return codec, True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=is_sample_whole_file)
        return "utf-8", False
    except UnicodeDecodeError:
        pass
    text = sample.decode("utf-8", errors="replace")
    if sum(1 for char in text if char > "\x7f" and char != "\ufffd") > text.count("\ufffd"):
        return "utf-8", True  # mostly UTF-8, a few legacy lines (files pasted together): see _MIXED
    return _legacy_encoding(sample), True


# Bytes that are not UTF-8 in a UTF-8 list are read as Windows-1252, the legacy encoding of
# the lists we meet: a file pasted together from a UTF-8 export and an Excel one keeps both
# 'Åsa's, where one codec for the whole file garbles one half
_MIXED = "crm-ingest-utf8-else-cp1252"


def _as_cp1252(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start:error.end].decode("cp1252", errors="replace"), error.end


codecs.register_error(_MIXED, _as_cp1252)


_SIGNATURES = ((b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"\x89PNG", "a PNG image"),
               (b"GIF8", "a GIF image"), (b"\xff\xd8\xff", "a JPEG image"), (b"7z\xbc\xaf", "a 7-Zip archive"),
               (b"Rar!", "a RAR archive"), (b"BZh", "a bzip2 archive"), (b"\xfd7zXZ", "an xz archive"))
# control characters, and U+FFFD for bytes the codec could not decode
_CONTROL = {chr(c) for c in range(32)} - set("\t\n\r\f\v") | {"\x7f", "\ufffd"}
_CONTROL_BYTES = bytes(sorted({c for c in range(32)} - set(b"\t\n\r\f\v") | {0x7f}))


def _refuse_binary(path: Path, head: bytes, sample: str, codec: str) -> None:
    """A PDF, an image or an archive read as text becomes hundreds of rejected 'rows' of
    garbage: refused up front instead, saying what it looks like. Text with a stray control
    character here and there (a NUL in a cell) is a list all the same. Control bytes are
    counted in the bytes too: a multi-byte codec (cp949, say) can decode noise 'cleanly'."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise FatalError(f"{path.name}: {what}, not a list; save the list as CSV, TSV or .xlsx")
    controls = sum(1 for char in sample if char in _CONTROL)
    if not codecs.lookup(codec).name.startswith(("utf-16", "utf-32")):  # whose text is half NUL bytes
        raw = head[:SNIFF_SAMPLE_CHARS]
        controls = max(controls, len(raw) - len(raw.translate(None, _CONTROL_BYTES)))
        sample = sample if len(sample) >= len(raw) else raw
    if sample and controls > max(8, 0.03 * len(sample)):  # noise has ~11%
        raise FatalError(f"{path.name}: binary data, not a text list ({controls} control or undecodable "
                         f"characters in its first {len(sample)}); save the list as CSV, TSV or .xlsx, or name its encoding "
                         "with --encoding if it is text")


def _bomless_utf16(sample: bytes) -> str | None:
    """UTF-16 without a BOM: most bytes on one side of each pair are NUL, few on the other."""
    half = len(sample) // 2
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    if half >= 2 and odd > 0.6 * half and even < 0.1 * half:
        return "utf-16-le"
    if half >= 2 and even > 0.6 * half and odd < 0.1 * half:
        return "utf-16-be"
    return None


def _legacy_encoding(sample: bytes) -> str:
    """cp1252 for Latin text with a few accented letters, where detection guesses wildly
    (cp1250 for Swedish 'å'); detection for mostly-8-bit text (Cyrillic, Greek...)."""
    high = len(sample.translate(None, _ASCII))
    if high <= 0.3 * len(sample.strip()):
        # or Mac OS Roman (Excel for Mac's 'CSV'), whose åäö are cp1252's Œ Š š, or a DOS
        # export's cp850: whichever reads the most like names (the first of equals)
        return max(_LEGACY, key=lambda codec: _letters(sample, codec))
    from charset_normalizer import from_bytes

    candidates = [match.encoding for match in from_bytes(sample)]
    if not candidates or any(candidate in _WESTERN for candidate in candidates):
        return "cp1252"
    return codecs.lookup(candidates[0]).name


# The 8-bit encodings Western lists come in, the likeliest first; told apart by how their
# readings of the bytes beyond ASCII look: the common letters of Nordic, German and French
# names count most, other accented letters less, anything else (Œ, Š, ‰, ÷, an undefined byte)
# against the reading that gives it
_LEGACY = ("cp1252", "mac_roman", "cp850")
_NAME_LETTER_WEIGHT = {**dict.fromkeys("åäöüæøéèàçêÅÄÖÜÆØÉ", 2), **dict.fromkeys("ëáâíìîóòôúùûñßÿ", 1)}


_BEYOND_ASCII = re.compile(r"[^\x00-\x7f]")
_VOWELS = frozenset("aeiouyAEIOUY")


def _letters(sample: bytes, codec: str) -> int:
    """How much the sample's characters beyond ASCII look like letters of names, read in codec.

    A letter also has to sit in a word as letters do: a capital after a small letter, or a small
    one before a capital, is a misreading ('SmÜrgîs', 'àBERG': Mac OS Roman's 'Smörgås' and
    'ÖBERG' read as cp850), and so is an æ after a vowel (a diaeresis read as cp850: 'Noël' and
    'Zoë' become 'Noæl' and 'Zoæ'; Danish and Norwegian write no vowel before an æ)."""
    text = sample.decode(codec, errors="replace")
    score = 0
    for found in _BEYOND_ASCII.finditer(text):
        char, at = found.group(), found.start()
        before = text[at - 1] if at else " "
        after = text[at + 1] if at + 1 < len(text) else " "
        if (char.isupper() and before.islower()) or (char.islower() and after.isupper() and after.isalpha()):
            score -= 3
        elif char in "æÆ" and before in _VOWELS:
            score -= 2
        else:
            score += _NAME_LETTER_WEIGHT.get(char, -2)
    return score


def _resolve_codec(encoding: str, head: bytes) -> str:
    try:
        info = codecs.lookup(encoding)
        b"a".decode(info.name, "replace")  # 'idna' refuses the error handling a list is read with
    except (LookupError, UnicodeError) as exc:
        raise ConfigError("encoding", f"unknown encoding {encoding!r}") from exc
    if not getattr(info, "_is_text_encoding", True):  # 'zlib', 'rot13', 'base64': no text's encoding
        raise ConfigError("encoding", f"{encoding!r} is not a text encoding (utf-8, cp1252, utf-16, ...)")
    codec = info.name
    return "utf-8-sig" if codec == "utf-8" and head.startswith(codecs.BOM_UTF8) else codec


def _bounded_lines(f, delimiter: str, name: str) -> Iterator[str]:
    """The file's lines, each read no further than MAX_LINE_CHARS, for csv to parse; a longer
    line, or one of more than MAX_LINE_CELLS cells, stops the reading with an error naming it."""
    readline = f.readline
    number = 0
    while line := readline(MAX_LINE_CHARS):
        number += 1
        if len(line) > 65536:  # (the common line is not looked at again)
            if len(line) >= MAX_LINE_CHARS and line[-1] not in "\r\n":
                raise FatalError(f"{name}: line {number} is over {MAX_LINE_CHARS >> 20} M characters long: not a list")
            if line.count(delimiter) >= MAX_LINE_CELLS:
                raise FatalError(f"{name}: line {number} has over {MAX_LINE_CELLS:,} cells: not a list")
        yield line


def _sniff_delimiter(sample: str) -> str:
    """The candidate that splits the sample's rows into the same number of cells most often.

    Parsing with each candidate (rather than csv.Sniffer's quote heuristics, which a quoted
    '"a"",""b"' misleads) keeps a comma inside values from outvoting a semicolon list. Rows
    start at the first line holding a candidate, so a title line above the header is no vote.
    ',' when no candidate gives two or more cells.
    """
    complete = sample if len(sample) < SNIFF_SAMPLE_CHARS else sample.rpartition("\n")[0]
    lines = [line for line in complete.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if any(d in line for d in SNIFF_DELIMITERS)), 0)
    text = "\n".join(lines[first:])
    best, best_score = ",", (0, 0)
    for delimiter in SNIFF_DELIMITERS:
        widths = Counter(len(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter))
        width, rows = max(widths.items(), key=lambda pair: (pair[1], pair[0]), default=(0, 0))
        if width >= 2 and (rows, width) > best_score:
            best, best_score = delimiter, (rows, width)
    return best


_UNDOUBLE_SAMPLE_ROWS = HEADER_SEARCH_ROWS + 50


def _undoubled(rows: Iterator[list[str]]) -> Iterator[list[str]]:
    """The rows, read back into the text they were when the first rows' text was written twice
    over so (two cells or more that read so, every one of them read back whole); else as they are."""
    head = list(islice(rows, _UNDOUBLE_SAMPLE_ROWS))
    doubled = [cell for row in head for cell in row if DOUBLED.search(cell)]
    if len(doubled) < 2 or any(read_back(cell) is cell for cell in doubled):
        yield from head
        yield from rows
        return
    for row in chain(head, rows):
        yield [cell if cell.isascii() else read_back(cell) for cell in row]


def _wrapped_delimiter(sample: str, delimiter: str) -> str | None:
    """The delimiter inside the cells when each line is one quoted cell holding a whole row
    ('"Anna Berg,anna@berg.se,070-123 45 67"'): a CSV opened in Excel under another list
    separator (every line lands in column A) and saved again. It is such a file when nine of
    ten rows are one cell and, split, a row of the first ones names a header; None otherwise
    (a list of one column stays one)."""
    complete = sample if len(sample) < SNIFF_SAMPLE_CHARS else sample.rpartition("\n")[0]
    try:
        rows = [row for row in csv.reader(io.StringIO(complete), delimiter=delimiter) if not _is_blank(row)]
    except csv.Error:
        return None
    cells = [row[0] for row in rows if len(row) == 1]
    if len(rows) < 2 or len(cells) < 0.9 * len(rows) or not any(d in cells[0] for d in SNIFF_DELIMITERS):
        return None
    inner = _sniff_delimiter("\n".join(cell.replace("\n", " ") for cell in cells))
    header = any(_names_a_header(next(csv.reader([cell], delimiter=inner), []))
                 for cell in cells[:HEADER_SEARCH_ROWS])
    return inner if header else None


def _unwrapped(rows: Iterator[list[str]], delimiter: str) -> Iterator[list[str]]:
    """Rows of one cell split at the delimiter inside it (see _wrapped_delimiter); other rows as they are."""
    for row in rows:
        yield next(csv.reader([row[0]], delimiter=delimiter), []) if len(row) == 1 else row


def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text Excel shows: 42 not 42.0, dates ISO, empty for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


# -- from rows to payloads ---------------------------------------------------------------------

def _clean(value: str) -> str:
    return value.replace("\x00", "").strip()


def _clean_formula(value: str) -> str:
    """_clean, and Excel's text formula unwrapped, as exports write a value whose leading 0
    Excel must keep: ="0701234567" (a file that writes them writes them from its first rows)."""
    value = value.replace("\x00", "").strip()
    if value[:2] == '="' and value[-1:] == '"' and len(value) > 2:
        value = value[2:-1].replace('""', '"').strip()
    return value


def _is_blank(row: list[str]) -> bool:
    return not any(_clean(cell) for cell in row)


def _names_a_header(row: list[str]) -> bool:
    """A row with two cells we can map: a header, not a title line or a person."""
    return sum(map_header(cell) is not None for cell in row) >= 2


def _under_a_group_heading(row: list[str], below: list[str]) -> bool:
    """Is `row` a group heading over the header `below`? A heading leaves blank cells over the
    columns it groups; the header names more of the fields, and holds no address, number or
    date, as a data row would ('Anna Berg;070-123 45 67;Leverantör;Telefon' is a person)."""
    named = sum(map_header(cell) is not None for cell in below)
    if named < 2 or named <= sum(map_header(cell) is not None for cell in row):
        return False
    if not any(not _clean(row[index]) if index < len(row) else True for index in range(len(below)) if _clean(below[index])):
        return False
    return not any(_LOOKS_LIKE_EMAIL.fullmatch(_clean(cell)) or sum(ch.isdigit() for ch in cell) >= 4 for cell in below)


def _readable(rows: Iterator[list[str]], name: str) -> Iterator[list[str]]:
    """The rows, any reader's failure part-way (a workbook's XML that breaks off, names an
    entity or a shared string it lacks) said as the file being unreadable there."""
    number = 0
    try:
        for number, row in enumerate(rows, start=1):
            yield row
    except FatalError:
        raise
    except (ElementTree.ParseError, IndexError, KeyError, ValueError, EOFError, zipfile.BadZipFile,
            zlib.error, RecursionError) as exc:
        raise FatalError(f"{name}: not readable after row {number:,} of the file: "
                         f"{type(exc).__name__}: {str(exc)[:300]}") from None


def _split_header(rows: Iterator[list[str]]) -> tuple[int, list[str], Iterator[list[str]]]:
    """(0-based index of the header row, the header, the data rows after it).

    The header is the first of the first rows with two cells we can map (title lines and blank
    rows above it are skipped); failing that, the first row of two cells or more with one we
    can map ('Kundnr;E-post;Kategori' under a title), above any address; failing that, the
    first non-empty row, unless it holds an email address: then the file has no header (its
    columns are 'column 1', 'column 2', ...), and that row is its first data row.
    """
    # the first HEADER_SEARCH_ROWS rows that are not blank, by their index: blank lines above
    # a header (an export's padding, thousands of them) are passed over, not counted or held
    seen: list[tuple[int, list[str]]] = []
    for index, row in enumerate(rows):
        if _is_blank(row):
            continue
        seen.append((index, row))
        if _names_a_header(row):
            below = next(rows, None)
            if below is not None and _under_a_group_heading(row, below):
                # 'Kontaktperson' and 'Kontaktuppgifter' over 'Förnamn;Efternamn' and 'E-post;Telefon':
                # the row below is the header, a heading filling its blank cells
                return index + 1, [name or heading for name, heading in zip_longest(below, row, fillvalue="")], rows
            return index, row, rows if below is None else chain([below], rows)
        if len(seen) == HEADER_SEARCH_ROWS:
            break

    def after(position: int) -> Iterator[list[str]]:
        """The rows after the seen row at `position` (blank ones given back as empty rows, so
        data rows keep their numbers), then the rest."""
        last = seen[position][0] if position >= 0 else -1
        for index, row in seen[position + 1:]:
            yield from ([] for _ in range(index - last - 1))
            yield row
            last = index
        yield from rows

    for position, (index, row) in enumerate(seen):
        if any(_LOOKS_LIKE_EMAIL.fullmatch(_clean(cell)) for cell in row):
            break  # the data has begun
        if sum(bool(_clean(cell)) for cell in row) >= 2 and any(map_header(cell) for cell in row):
            return index, row, after(position)
    if seen:
        index, row = seen[0]
        if any(_LOOKS_LIKE_EMAIL.fullmatch(_clean(cell)) for cell in row):  # data, not a header
            return index - 1, [f"column {n}" for n in range(1, len(row) + 1)], chain([row], after(0))
        return index, row, after(0)
    return 0, [], iter(())


@dataclass(frozen=True)
class _Layout:
    """How a data row becomes a payload: each column's field, `extra` name, or nothing."""

    columns: list[tuple[str, str | None]]
    extra_names: list[str | None]  # None: the column is mapped to a field, or ignored
    mapping: MapFile
    header: list[str] = field(default_factory=list)
    # (column, field): a further column of a field, kept in `extra`, whose value is the row's
    # when the column that won the field is empty ('Telefon' beside 'Telefon', 'Business Phone 2',
    # Outlook's 'Home City' beside its empty 'Business City')
    spares: tuple[tuple[int, str], ...] = ()
    text_formulas: bool = False  # the file writes cells as ="..." (see _clean_formula)
    withheld: tuple[int, ...] = ()  # columns of personal identity numbers: not stored at all
    names_are_companies: bool = False  # the name column is a register's customer, a further one the person
    # (type column, number column) of numbers each given with its kind ('Phone 1 - Type' beside
    # 'Phone 1 - Value', as Google writes them): a mobile is the mobile, another the phone
    typed_phones: tuple[tuple[int, int], ...] = ()
    # columns of organisation numbers ('Org.nr'): a sole trader's is the owner's personal identity
    # number, and such a cell is not stored
    org_numbers: tuple[int, ...] = ()

    @classmethod
    def of(cls, header: list[str], mapping: MapFile, sample: list[list[str]] = ()) -> _Layout:
        """Map-file columns first, then synonyms, the most specific name winning a field; a
        field's other columns land in `extra`, except further email columns, which add their
        addresses to the row's (unless the map file names the email column). With no column
        named as the email, a column whose sampled cells are mostly addresses is the email."""
        text_formulas = any(cell.lstrip()[:2] == '="' for row in (header, *sample) for cell in row)
        names = [(_clean_formula if text_formulas else _clean)(name) for name in header]
        fields: list[str | None] = [mapping.field_for(name) for name in names]
        taken: set[str] = set()
        for index in range(len(names)):
            if fields[index] in taken and fields[index] != "email":
                fields[index] = None
            elif fields[index] is not None:
                taken.add(fields[index])
        by_map = set(taken)  # a field the map file names is its column's alone
        # Mailchimp's 'REGION' beside its geolocation (LATITUDE, GMTOFF): where the subscriber's IP
        # address was placed, not their address's county
        located = {"latitude", "gmtoff"} <= {_header_key(name) for name in names}
        candidates = sorted((match[1], index, match[0]) for index, name in enumerate(names)
                            if fields[index] is None and not mapping.lists(name)
                            and not (located and _header_key(name) == "region")
                            and (match := _header_match(name)) is not None)
        spares = []
        for _, index, synonym in candidates:
            if synonym not in taken or (synonym == "email" and synonym not in by_map):
                fields[index] = synonym
                taken.add(synonym)
            elif synonym in _SPARE_FIELDS and synonym not in by_map \
                    and not (synonym == "company" and _header_key(names[index]) in _OTHER_COMPANIES):
                spares.append((index, synonym))  # (a map naming it is the person's word)
        headerless = names == [f"column {number}" for number in range(1, len(names) + 1)]
        withheld = tuple(index for index, name in enumerate(names) if not mapping.lists(name)
                         and _identity_numbers(name, sample, index))
        for index in withheld:
            if fields[index] is not None:
                taken.discard(fields[index])
            fields[index] = None
        if "email" not in taken:
            index = _email_column(sample, [i for i, name in enumerate(names)
                                           if fields[i] is None and not mapping.lists(name)],
                                  least=1 if headerless else 3)  # a headerless file's first row holds one
            if index is not None:
                fields[index] = "email"
        if headerless:
            _read_by_content(sample, fields, skip=withheld)
        for index, field_name in enumerate(fields):
            if field_name == "full_name" and not mapping.field_for(names[index]) \
                    and not _FORWARD_HEADER.search(_folded(names[index])) and _surname_first_column(sample, index):
                fields[index] = "last_first_name"  # a register's 'Namn' of 'Andersson Anna', 'Berg Per
        unique: list[str] = []  # 'column N' when empty, ' (N)' when repeated
        for number, name in enumerate(names, start=1):
            name = name or f"column {number}"
            unique.append(f"{name} ({number})" if name in unique else name)
        extra_names = [None if field_name or (mapping.lists(name) and not mapping.field_for(name)) or index in withheld
                       else extra for index, (name, field_name, extra) in enumerate(zip(names, fields, unique))]
        typed = _typed_phones(names, fields, mapping)
        typed_numbers = {index for _, index in typed}  # read by their kinds, never a spare phone
        return cls(list(zip(names, fields)), extra_names, mapping, list(header),
                   tuple((index, name) for index, name in spares
                         if extra_names[index] is not None and index not in typed_numbers), text_formulas,
                   withheld, _names_are_companies(names, fields, spares, sample), typed,
                   tuple(index for index, name in enumerate(names) if extra_names[index] is not None
                         and _ORG_NUMBER_HEADER.search(re.sub(r"[^\w]+", " ", _folded(name)))))

    @cached_property
    def _stored_as(self) -> list[tuple[str, dict[str, str] | None] | None]:
        """Per column: the key its value is stored under (a further email column's its own,
        joined after), and the field's value table; None for a column of no field."""
        stored: list[tuple[str, dict[str, str] | None] | None] = []
        emails = 0
        for _, field_name in self.columns:
            if field_name == "email":
                emails += 1
                stored.append((f"email {emails}" if emails > 1 else "email", None))
            else:
                stored.append(None if field_name is None else (field_name, self.mapping.value_table(field_name)))
        return stored

    @cached_property
    def _header_of(self) -> dict[str, str]:
        """Each field's column, by its header (the first, for a field of several columns)."""
        headers: dict[str, str] = {}
        for number, (name, field_name) in enumerate(self.columns, start=1):
            if field_name is not None:
                headers.setdefault(field_name, name or f"column {number}")
        return headers

    @cached_property
    def _name_spares(self) -> tuple[str, ...]:
        """The `extra` names of further full-name columns ('Er referens' beside 'Namn')."""
        return tuple(self.extra_names[index] for index, field_name in self.spares if field_name == "full_name")

    @cached_property
    def _joins_emails(self) -> bool:
        """Has the layout several email columns, whose addresses a row joins?"""
        return sum(field_name == "email" for _, field_name in self.columns) > 1

    def payload(self, row: list[str]) -> dict[str, Any]:
        """Non-empty cells by field, values translated, defaults filled; the rest in `extra`. A
        row repeating the header is marked to be ignored."""
        fields: dict[str, str] = {}
        extra: dict[str, str] = {}
        stored_as, width = self._stored_as, len(self.columns)
        clean = _clean_formula if self.text_formulas else _clean
        for index, cell in enumerate(row):
            value = clean(cell)
            if not value:
                continue
            if index >= width:
                extra[f"column {index + 1}"] = value
            elif (stored := stored_as[index]) is not None:
                key, table = stored
                fields[key] = table.get(_loose(value), value) if table else value
            elif (name := self.extra_names[index]) is not None:
                extra[name] = value
        if self._joins_emails:
            _join_emails(fields)
        if self.typed_phones:
            self._phones_by_type(row, fields, extra, clean)
        withheld = None
        for index in self.org_numbers:
            if (value := extra.get(self.extra_names[index])) and personal_identity_number(value):
                del extra[self.extra_names[index]]  # a sole trader's: the owner's own number
                withheld = f"{self.columns[index][0]!r} left out: a personal identity number is not stored"
        if "last_first_name" in fields:  # 'Berg Anna' as 'Berg, Anna', which the name's reader reads surname first
            written = fields.pop("last_first_name")
            fields.setdefault("full_name", _surname_first(written))
        for index, field_name in self.spares:  # the best-named filled column of the field
            if field_name not in fields and (value := extra.pop(self.extra_names[index], None)):
                fields[field_name] = value
        if self._name_spares and "first_name" not in fields and "last_name" not in fields:
            _person_beside_company(fields, extra, self._name_spares, self._header_of.get("full_name", "full_name"),
                                   whole_column=self.names_are_companies)
        moved = _misplaced(fields, self._header_of)
        for field_name, value in self.mapping.defaults.items():
            fields.setdefault(field_name, value)
        payload = {"fields": fields, "extra": extra}
        if moved:
            payload["moved"] = moved
        if withheld:
            payload["withheld"] = withheld
        if self.header and row[0] == self.header[0] and _is_header(row, self.header):
            payload["ignore"] = REPEATED_HEADER
        elif row and (row[0] or len(row) > 1) and _a_totals_row(row):
            payload["ignore"] = TOTALS_ROW
        if type(row) is _Rejoined:
            payload["rejoined"] = row.joined
        elif type(row) is _Footer:
            payload["ignore"] = BELOW_THE_TABLE
        return payload

    def _phones_by_type(self, row: list[str], fields: dict[str, str], extra: dict[str, str], clean) -> None:
        """The row's numbers given with their kinds, by kind: those typed mobile the mobile, the
        others the phone, each a cell of several when there are more ('070… ; 036…': the plan
        keys every one and keeps the further ones); a fax's or a pager's stays in `extra`."""
        mobiles: list[str] = []
        others: list[str] = []
        for type_index, value_index in self.typed_phones:
            value = clean(row[value_index]) if value_index < len(row) else ""
            if not value:
                continue
            kind = _folded(clean(row[type_index]) if type_index < len(row) else "")
            # 'Work ::: Mobile' beside '08-612 34 00 ::: 073-987 65 43': each number its kind
            values, kinds = value.split(":::"), kind.split(":::")
            pairs = list(zip(kinds, values)) if len(kinds) == len(values) else [(kind, value)]
            phones = [(kind, number) for kind, number in pairs if not _NOT_A_PHONE.search(kind)]
            stored = self._stored_as[value_index]
            if stored is not None:
                if fields.get(stored[0]) == value:
                    del fields[stored[0]]
                if len(phones) < len(pairs):  # a fax among them: the cell kept as written, no one's phone
                    extra.setdefault(self.columns[value_index][0], value)
            elif (name := self.extra_names[value_index]) is not None and len(phones) == len(pairs):
                extra.pop(name, None)
            for kind, number in phones:
                if number.strip():
                    (mobiles if _MOBILE.search(kind) else others).append(number.strip())
        for field_name, values in (("mobile_phone", mobiles), ("phone", others)):
            if values:
                fields[field_name] = " ; ".join(([fields[field_name]] if fields.get(field_name) else []) + values)


# 'Phone 1 - Type', 'Phone 1 - Value' (Google's older export), 'Phone 1 - Label' (its newer one)
_TYPED_PHONE = re.compile(r"(?:phone|telephone|telefon) (\d+) - (type|label|typ|etikett|value|varde)")
_MOBILE = re.compile(r"mobil|cell|handy|matkapuhelin")
_NOT_A_PHONE = re.compile(r"fax|pager|personsokare|telex")


def _typed_phones(names: list[str], fields: list[str | None], mapping: MapFile) -> tuple[tuple[int, int], ...]:
    """(type column, number column) pairs of numbers given with their kinds; none when a map
    file names the number columns (the person's word)."""
    kinds: dict[str, int] = {}
    numbers: dict[str, int] = {}
    for index, name in enumerate(names):
        found = _TYPED_PHONE.fullmatch(_folded(name).strip())
        if found is not None and not mapping.field_for(name):
            (numbers if found.group(2) in ("value", "varde") else kinds).setdefault(found.group(1), index)
    return tuple((kinds[number], index) for number, index in numbers.items() if number in kinds)


def _surname_first(written: str) -> str:
    """A name written surname first, with the comma that says so: 'Berg Anna Karin' -> 'Berg, Anna
    Karin', 'von Essen Anna' -> 'von Essen, Anna'; a company's name, one word or one with its
    comma already, as written."""
    from crm_ingest.ingest.matching import is_company_name  # (the ingest side's rules)

    words = written.split()
    if "," in written or len(words) < 2 or is_company_name(written):
        return written
    surname = 1
    while surname < len(words) - 1 and words[surname - 1].casefold() in _PARTICLE_WORDS:
        surname += 1
    return f"{' '.join(words[:surname])}, {' '.join(words[surname:])}"


_PARTICLE_WORDS = frozenset({"von", "af", "de", "van", "der", "den", "la", "le", "di", "da", "del", "du", "zu", "ten", "ter"})


# How Nordic surnames end and given names hardly ever do (not 'er', 'ell', 'son' alone: 'Peter', 'Jennifer',
# 'Mitchell', 'Jason', 'Allison'); read in a headerless list's two name columns and in a full-name column
_SURNAME_END = re.compile(r"(?:sson|[^aeiouy]son|sen|berg|str[öo]m|lund|qvist|kvist|quist|gren|holm|dahl|"
                                 r"stedt|b[äa]ck|strand|g[åa]rd)$", re.IGNORECASE)  # not 'borg': Gunborg, Ingeborg
# A header that says its names are written first name first ('Förnamn Efternamn', 'First and Last Name')
_FORWARD_HEADER = re.compile(r"(?:fornamn|first|given|for-).*(?:efternamn|last|surname|family)")


def _surname_first_column(sample: list[list[str]], index: int) -> bool:
    """Does a full-name column write people surname first ('Andersson Anna')? Most of its
    two-word cells begin as Nordic surnames end (-sson, -berg, -ström) and end as they do not,
    and hardly any the other way round."""
    reversed_, forward, pairs = 0, 0, 0
    for cell in _filled(sample, index):
        words = cell.split()
        if len(words) != 2 or not all(word.replace("-", "").isalpha() for word in words):
            continue
        pairs += 1
        first_like = _SURNAME_END.search(words[0]) is not None
        last_like = _SURNAME_END.search(words[1]) is not None
        reversed_ += first_like and not last_like
        forward += last_like and not first_like
    return reversed_ >= 3 and reversed_ >= 0.6 * pairs and forward * 4 <= reversed_


def _person_beside_company(fields: dict[str, str], extra: dict[str, str], spares: tuple[str, ...],
                           header: str, whole_column: bool = False) -> None:
    """A customer register's 'Namn' is the company ('Berg Bygg AB') and its 'Er referens' the
    person there: when the name is a company's (the cell's, or the whole column's: `whole_column`)
    and a further name column holds one, the person is named by that, and the company (where the
    row has none) by the name. A row of such a column naming no person names no one."""
    from crm_ingest.ingest.matching import is_company_name

    name = fields.get("full_name")
    if not name or not (is_company_name(name) or whole_column and _a_business(name)):
        return
    spare = next((spare for spare in spares if extra.get(spare) and not is_company_name(extra[spare])), None)
    if spare is None and not whole_column:
        return
    if spare is None:  # 'Lunds Måleri' with no contact person: the company's row, no one's name
        del fields["full_name"]
    else:
        fields["full_name"] = extra.pop(spare)
    if not fields.get("company"):
        fields["company"] = name
    else:  # the row's company column names it: the register's name is kept beside it
        extra.setdefault(header, name)


# Words of a business's name without its legal form ('Ek Konsult', 'Lunds Måleri', 'Sjöberg & Son')
_BUSINESS_WORDS = re.compile(
    r"(?:&|\boch)\s*(?:son|soner|co|company)\b|\b(?:konsult\w*|consult\w*|maleri|bygg\w*|vvs|service|teknik|"
    r"design|media|foto|frisor|redovisning|bokforing|stadservice|transport|akeri|snickeri|fastighet\w*|forvaltning|"
    r"invest|holding|group|gruppen|partners|byra|advokatbyra|studio|verkstad|cafe|restaurang|butik|import|export|"
    r"system|solutions?|tjanster|entreprenad|tandvard|klinik|bolaget|firma|kommun|forening|stiftelse|skola|"
    r"forskola|hotell|bilverkstad|trafikskola|elinstallation|installation|montage|mekaniska|industri|services|"
    r"consulting|agency)\b")


def _a_business(name: str) -> bool:
    """Does a register's customer name read as a business's ('Ek Konsult', 'Lunds Måleri',
    'Sjöberg & Son'), not a person's ('Cia Lo')?"""
    return _BUSINESS_WORDS.search(_folded(name)) is not None


# A further name column that names the person where the first names the customer
_PERSON_COLUMNS = frozenset({"kontaktperson", "contactperson", "contact", "contactname", "kontakt", "erreferens",
                             "referens", "reference", "ansprechpartner", "yhteyshenkilo", "namnpakontaktperson"})


def _names_are_companies(names: list[str], fields: list[str | None], spares: list[tuple[int, str]],
                         sample: list[list[str]]) -> bool:
    """Is the name column a register's customers ('Berg Bygg AB', 'Ek Konsult', 'Lunds Måleri'),
    a further name column the person there? So when a third of its cells are plainly companies
    and the further column is named as a contact person's, or half of them are."""
    from crm_ingest.ingest.matching import is_company_name

    column = next((index for index, field_name in enumerate(fields) if field_name == "full_name"), None)
    further = [index for index, field_name in spares if field_name == "full_name"]
    if column is None or not further:
        return False
    filled = _filled(sample, column)
    companies = sum(1 for cell in filled if is_company_name(cell) or _a_business(cell))
    person_column = any(_header_key(names[index]) in _PERSON_COLUMNS for index in further)
    return companies >= 1 and companies >= (0.3 if person_column else 0.5) * len(filled)


# A cell of nothing but a phone number: digits and what numbers are written with
_PHONE_ONLY = re.compile(r"\+?[\d\s().\-/]{6,40}")
_ADDRESS_ONLY = re.compile(r"[^\s@<>,;]+@[^\s@<>,;]+\.[^\s@<>,;]+")


def _misplaced(fields: dict[str, str], headers: dict[str, str]) -> str | None:
    """Move an address or a number a person typed into the wrong column of the row to its own,
    and say what was moved (None: nothing). An email cell without an address trades places
    with a phone, mobile or name cell holding nothing but one; an email cell holding nothing
    but a number gives the phone when the row has none; so does a name cell (no name is all
    digits)."""
    email = fields.get("email", "")
    said = None
    if "@" not in email:
        said = _address_elsewhere(fields, headers, email)
    if "phone" in fields or "mobile_phone" in fields:
        return said
    for name in ("email", "first_name", "last_name", "full_name"):
        value = fields.get(name)
        if value and _PHONE_ONLY.fullmatch(value) and sum(ch.isdigit() for ch in value) >= 6:
            fields["phone"] = value
            del fields[name]
            number = f"{headers.get(name, name)!r} held a phone number: read as the phone"
            return f"{said}; {number}" if said else number
    return said


def _address_elsewhere(fields: dict[str, str], headers: dict[str, str], email: str) -> str | None:
    for name in ("phone", "mobile_phone", "full_name"):
        value = fields.get(name)
        if value and "@" in value and _ADDRESS_ONLY.fullmatch(value):
            fields["email"] = value
            if email:
                fields[name] = email
            else:
                del fields[name]
            where = headers.get(name, name)
            return (f"the address was in {where!r} and {email!r} in {headers.get('email', 'email')!r}: "
                    "read in each other's columns" if email else f"the address was in {where!r}: read as the email")
    return None


# Fields a further column fills when the column that won them is empty: a person's number and
# address are the same facts wherever a list keeps them
# A company column that names another company than the person's when the person's is empty
_OTHER_COMPANIES = frozenset({"vendor", "supplier", "leverantor", "reseller", "aterforsaljare", "partner"})
_SPARE_FIELDS = frozenset({"phone", "mobile_phone", "street", "city", "postal_code", "state_or_province",
                           "country", "full_name", "company"})


def _join_emails(fields: dict[str, str]) -> None:
    """A row's further email columns' addresses after its first ('a@x.se; b@y.se'), one field."""
    more = sorted((int(key[6:]), key) for key in fields if key.startswith("email "))
    addresses = ([fields.pop("email")] if "email" in fields else []) + [fields.pop(key) for _, key in more]
    if addresses:
        fields["email"] = "; ".join(addresses)


_LOOKS_LIKE_EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]{2,}")
EMAIL_SAMPLE_ROWS = 50


def _email_column(sample: list[list[str]], unmapped: list[int], least: int = 3) -> int | None:
    """Of the unmapped columns, the one whose sampled cells are mostly email addresses (at
    least `least` of them, and 80% of its filled cells), if any."""
    best: tuple[int, int] | None = None
    for index in unmapped:
        filled = _filled(sample, index)
        hits = sum(1 for cell in filled if _LOOKS_LIKE_EMAIL.search(cell))
        if hits >= least and hits >= 0.8 * len(filled) and (best is None or hits > best[0]):
            best = (hits, index)
    return None if best is None else best[1]


# A column of people's national identity numbers (a purchased register's 'Personnummer'): never
# stored from a list, by its header or by what its cells hold. A CRM's leads are marketed to; an
# identity number is what GDPR (and Sweden's data protection act, section 3:10) lets a company
# keep only where it is clearly needed, and a lead's 'extra' is not that.
_IDENTITY_HEADER = re.compile(
    r"\bperson\s*(?:nummer|nr|number|no|id\s*(?:nr|nummer|number))\b|\bpersonal\s*(?:identity|id\s*number)\b|"
    r"\bpers\s*nr\b|\bp\s*nr\b|samordnings\s*(?:nummer|nr)|f[oø]d(?:sels|elses?)\s*(?:nummer|nr)|identitetsnummer|"
    r"henkilotunnus|\bhetu\b|\bssn\b|"
    r"social\s*security|national\s*(?:id|identi|insurance)|\bcpr\b")
# An organisation's registration number: 'Org.nr', 'Organisationsnummer', 'Orgnr', 'Company number', 'Y-tunnus'
_ORG_NUMBER_HEADER = re.compile(r"\borg(?:anisation|anization)?s?\s*(?:nummer|nr|number|no|id)\b|\borgnr\b|"
                                r"\bcompany\s*(?:registration\s*)?(?:number|no|nr)\b|\bregistration\s*number\b|"
                                r"\by\s*tunnus\b|\bcvr\b|\bforetagsnummer\b")
_SE_ID = re.compile(r"((?:18|19|20)?)(\d{6})([-+ ]?)(\d{4})")
_FI_ID = re.compile(r"(\d{6})[-+A-FU-Y](\d{3})([0-9A-Y])")
_NO_ID = re.compile(r"\d{11}")
_DK_ID = re.compile(r"(\d{6})-\d{4}")


def _a_date(ddmmyy: str, day_offsets: tuple[int, ...] = (0,)) -> bool:
    day, month = int(ddmmyy[:2]), int(ddmmyy[2:4])
    return 1 <= month <= 12 and any(1 <= day - offset <= 31 for offset in day_offsets)


def _luhn(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(map(int, reversed(digits))):
        total += digit if position % 2 == 0 else (digit * 2 - 9 if digit > 4 else digit * 2)
    return total % 10 == 0


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    check = 11 - sum(int(d) * w for d, w in zip(digits, weights)) % 11
    return 0 if check == 11 else None if check == 10 else check


def personal_identity_number(cell: str, checked: bool = True) -> bool:
    """Is the cell a Nordic personal identity number: a Swedish personnummer or samordningsnummer
    (YYMMDD-NNNC or YYYYMMDDNNNC, a date and a Luhn check digit), a Norwegian fødselsnummer (both
    check digits), a Finnish henkilötunnus (its check character) or a Danish CPR number
    (DDMMYY-NNNN)? Unchecked: a Swedish one written YYMMDD-NNNN need only hold a date (no phone
    is written so; test data's made-up numbers fail the check digit); one with its century must
    pass the check (a booking's 20240315-0012, a timestamp's 202403151230 do not)."""
    text = cell.strip()
    if (found := _SE_ID.fullmatch(text)) is not None:
        century, yymmdd, hyphen, tail = found.groups()
        if _a_date(yymmdd[4:] + yymmdd[2:4], (0, 60)) and tail != "0000" and (
                _luhn(yymmdd + tail) or not checked and hyphen and not century):
            return True
    if (found := _FI_ID.fullmatch(text)) is not None:
        ddmmyy, serial, check = found.groups()
        if _a_date(ddmmyy) and "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(ddmmyy + serial) % 31] == check:
            return True
    if _NO_ID.fullmatch(text) is not None and _a_date(text[:6], (0, 40)):
        first = _mod11(text[:9], (3, 7, 6, 1, 8, 9, 4, 5, 2))
        if first is not None and first == int(text[9]) and \
                _mod11(text[:10], (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)) == int(text[10]):
            return True
    return (found := _DK_ID.fullmatch(text)) is not None and _a_date(found.group(1))


_NUMBERS_OF_THINGS = re.compile(r"order|faktura|invoice|kund|customer|client|arende|ticket|case|konto|account|"
                                r"artikel|article|product|produkt|serie|serial|\bid\b|\bref")


def _identity_numbers(name: str, sample: list[list[str]], index: int) -> bool:
    """Does the column hold personal identity numbers, by its header or its cells (half of them:
    no phone is written as one, and a made-up number in test data fails its check digit)?"""
    if _IDENTITY_HEADER.search(re.sub(r"[^\w]+", " ", _folded(name))):  # 'Pers.nr', 'Person-nr' as 'pers nr'
        return True
    # 'Ordernummer' 202403150001 is a date and a serial: in a column named for numbers of things
    # ('Kundnr', 'ID', 'Customer number'), only numbers that pass the check digit, as a customer
    # register keyed by its customers' personnummer holds, and one in ten serials at most does
    if _ORG_NUMBER_HEADER.search(re.sub(r"[^\w]+", " ", _folded(name))):
        return False  # an organisation number column: a sole trader's cell is left out alone (_Layout.payload)
    thing = _NUMBERS_OF_THINGS.search(_folded(name)) is not None
    filled = _filled(sample, index)
    return bool(filled) and sum(personal_identity_number(cell, checked=thing) for cell in filled) >= 0.5 * len(filled)


_PHONE_CELL = re.compile(r"\+?[\d\s\-().\/]{6,30}")
_ID_NUMBER = re.compile(r"(?:\d{2})?\d{6}-\d{4}")  # an organisation or personal identity number, no phone
_WORDS_CELL = re.compile(r"[^\W\d_]+\.?(?:[ '\-&.,]+[^\W\d_]+\.?){0,5}")


def _read_by_content(sample: list[list[str]], fields: list[str | None], skip: tuple[int, ...] = ()) -> None:
    """A headerless list's other columns, read as a person reads them, by what their sampled
    cells mostly hold (four in five filled cells): numbers of seven digits or more are the
    phone; country names the country; of the columns of words, one of companies' names ('Berg
    Bygg AB') the company, and of those before the address (a person is written name first;
    a city and a country come after), two side by side of one word each the first and last
    name, else the first the full name. Anything else stays 'column N' in extra."""
    from crm_ingest.ingest.matching import is_company_name  # (the ingest side's rules)
    from crm_ingest.ingest.normalize import country_region

    def mostly(index: int, test) -> bool:
        filled = _filled(sample, index)
        return bool(filled) and sum(1 for cell in filled if test(cell)) >= 0.8 * len(filled)

    width = max(map(len, sample), default=0)
    free = [index for index in range(min(width, len(fields))) if fields[index] is None and index not in skip]
    phone = next((index for index in free if mostly(index, lambda cell: _PHONE_CELL.fullmatch(cell) is not None
                                                    and _ID_NUMBER.fullmatch(cell) is None
                                                    and sum(map(str.isdigit, cell)) >= 7)), None)
    if phone is not None and "phone" not in fields:
        fields[phone] = "phone"
    words = [index for index in free if fields[index] is None and mostly(index, _WORDS_CELL.fullmatch)]
    country = next((index for index in words if mostly(index, country_region)), None)
    if country is not None and "country" not in fields:
        fields[country] = "country"
        words.remove(country)
    company = next((index for index in words if mostly(index, is_company_name)), None)
    if company is not None and "company" not in fields:
        fields[company] = "company"
        words.remove(company)
    if "email" in fields:
        words = [index for index in words if index < fields.index("email")]
    if not words or {"first_name", "last_name", "full_name"} & set(fields):
        return
    one_word = [index for index in words if mostly(index, lambda cell: " " not in cell)]
    if len(one_word) >= 2 and one_word[1] == one_word[0] + 1:
        first, last = one_word[0], one_word[1]
        if _surnames(sample, first) > _surnames(sample, last) + 0.3:  # 'Berg;Anna': a register's order
            first, last = last, first
        fields[first], fields[last] = "first_name", "last_name"
    else:
        fields[words[0]] = "full_name"


def _surnames(sample: list[list[str]], index: int) -> float:
    """The share of the column's sampled cells that end as surnames do."""
    filled = _filled(sample, index)
    return sum(1 for cell in filled if _SURNAME_END.search(cell)) / len(filled) if filled else 0.0


def _filled(sample: list[list[str]], index: int) -> list[str]:
    """The column's sampled cells that hold something, cleaned."""
    return [cell for row in sample if index < len(row) and (cell := _clean(row[index]))]


def _unswallowed(rows: Iterator[list[str]], delimiter: str, width: int) -> Iterator[list[str]]:
    """The rows, with those a stray quote swallowed given back. A cell opened by a quote that
    is never closed ('"Bo Ek;bo@x.se') runs on, in the csv module, over the following lines,
    to the next quote or the end of the file: every person on them would become one cell. A
    cell whose further lines mostly read as whole rows is such a runaway, and its lines are
    read again as the rows they are (the stray quote dropped)."""
    least = max(2, width - 1)
    for row in rows:
        if "\n" not in "".join(row):  # nearly every row: one scan in C
            yield row
            continue
        spilled = next((i for i, cell in enumerate(row) if "\n" in cell and delimiter in cell), None)
        if spilled is None:
            yield row
            continue
        lines = row[spilled].replace("\r\n", "\n").split("\n")
        parsed = [next(csv.reader([line], delimiter=delimiter), []) for line in lines]
        if sum(len(cells) >= least for cells in parsed[1:]) * 2 < len(parsed) - 1 or len(parsed[1]) < least:
            yield row  # a cell of several lines, as notes and addresses are
            continue
        parsed[0] = row[:spilled] + parsed[0]
        parsed[-1] = parsed[-1] + row[spilled + 1:]
        yield from (cells for cells in parsed if cells)


class _Footer(list):
    """A line under the table at the end of the file: a report's footer, a total."""


FOOTER_MAX_LINES = 20


def _below_the_table(numbered: Iterator[tuple[int, list[str]]], width: int) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows, the lines under the table marked _Footer: after a blank row, at the
    end of the file, lines of one cell of text each in a table of three or more columns
    (Salesforce's report footer, 'Totalt: 7 leads' under a workbook's list). Such lines are
    held until the file ends or a row of the table follows (then they are rows after all)."""
    held: list[tuple[int, list[str]]] = []
    after_blank = False
    for number, row in numbered:
        if _is_blank(row):
            after_blank = True
            continue
        if after_blank and width >= 3 and len(held) < FOOTER_MAX_LINES and _a_line_of_text(row):
            held.append((number, row))
            continue
        if held:
            yield from held
            held = []
        after_blank = False
        yield number, row
    for number, row in held:
        yield number, _Footer(row)


def _a_line_of_text(row: list[str]) -> bool:
    """One filled cell, holding neither an address nor (mostly digits) a number."""
    filled = [cell for cell in row if _clean(cell)]
    if len(filled) != 1 or "@" in filled[0]:
        return False
    text = "".join(filled[0].split())
    return sum(ch.isdigit() for ch in text) * 2 < len(text)


class _Rejoined(list):
    """A row read again with cells an unquoted delimiter had split joined; `joined` says which."""

    joined: str = ""


def _rows_fit(sample: list[list[str]], width: int) -> bool:
    """Do most rows have no more cells than the header? (Else the file has unnamed columns.)"""
    rows = [row for row in sample if not _is_blank(row)]
    return sum(len(_trimmed(row, width)) > width for row in rows) * 2 < len(rows)


def _trimmed(row: list[str], width: int) -> list[str]:
    """The row without the empty cells past the header's width (a trailing delimiter)."""
    end = len(row)
    while end > width and not row[end - 1].strip():
        end -= 1
    return row if end == len(row) else row[:end]


def _rejoined(rows: Iterator[list[str]], delimiter: str, width: int) -> Iterator[list[str]]:
    """The rows, each with more cells than the header read as meant where a value holding the
    delimiter was written unquoted ('Svensson, Anna' or 'Acme, Inc.' in a comma file, which
    shifts every later cell of the row one column on): a cell starting with a space after the
    delimiter joins the cell before it, when the row has exactly as many such cells as cells
    too many. Any other row is left as it is (its surplus cells kept as extra columns)."""
    for row in rows:
        if len(row) <= width:
            yield row
            continue
        cells = _trimmed(row, width)
        surplus = len(cells) - width
        joins = [i for i in range(1, len(cells)) if cells[i][:1] == " " and cells[i].strip() and cells[i - 1].strip()]
        if surplus <= 0 or len(joins) != surplus:
            yield row
            continue
        fixed = _Rejoined(cells)
        for i in reversed(joins):
            fixed[i - 1:i + 1] = [fixed[i - 1] + delimiter + fixed[i]]
        fixed.joined = "; ".join(f"{cells[i - 1]!r} and {cells[i]!r} read as one value, "
                                 f"{cells[i - 1] + delimiter + cells[i]!r}: its {delimiter!r} was not quoted"
                                 for i in joins)
        yield fixed


REPEATED_HEADER = "the header row repeated (as exports of several pages write it), not a person"
BELOW_THE_TABLE = "a line under the list at the end of the file (a report's footer, a total), not a person"
TOTALS_ROW = "a totals row ('Totalt', 'Summa') under the list, not a person"
# A spreadsheet's totals row: its label, then numbers or nothing ('Totalt;5', 'Summa;;=SUBTOTAL(103;B2:B9)')
_TOTALS_LABEL = re.compile(r"(?:totalt?|totals|summa|sum|grand total|antal|count|subtotal|delsumma)"
                           r"(?:\s+[^\W\d_]+)?[\s:]*\d*",  # 'Totalt antal', 'Summa Stockholm' 
                           re.IGNORECASE)
_A_NUMBER = re.compile(r"[\d\s.,%:+-]*(?:kr|sek|st)?\.?|=.*", re.IGNORECASE)


def _a_totals_row(row: list[str]) -> bool:
    """Is the row a list's totals: a label of totals in its first or second cell, the rest numbers?"""
    label = row[0].strip() or (row[1].strip() if len(row) > 1 else "")
    if not label or label[0] not in "TtSsGgAaCcDd" or _TOTALS_LABEL.fullmatch(label) is None:
        return False
    return all(not cell.strip() or cell.strip() == label or _A_NUMBER.fullmatch(cell.strip())
               and not _PHONE_LIKE.fullmatch(cell.strip()) for cell in row)


_PHONE_LIKE = re.compile(r"(?:\+|0)[\d\s().-]{6,}")  # 'Total;;08-123 45 67': a company named Total, not a sum


def _is_header(row: list[str], header: list[str]) -> bool:
    cells = [_clean(cell).casefold() for cell in row]
    named = [_clean(cell).casefold() for cell in header]
    while cells and not cells[-1]:
        cells.pop()
    while named and not named[-1]:
        named.pop()
    return cells == named


# -- the connector -----------------------------------------------------------------------------

class ListFile:
    """A list file (CSV, TSV, any delimiter and encoding; XLSX, ODS, XML Spreadsheet 2003, an
    HTML table; or XLS), streamed row by row (an XLS, which has no streaming reader, read a
    sheet at a time within MAX_XLS_BYTES).

    Yields each non-blank data row once, with ids stable for the same file. The cursor is
    (file hash, row); a fetch from a checkpoint of the same file resumes after it, one of
    another file starts from the top. Construction reads only a sample.
    """

    kind = "row"

    def __init__(self, path: Path, source: str = "list", *, encoding: str | None = None,
                 mapping: MapFile | None = None, sheet: str | None = None) -> None:
        self.path = Path(path)
        self.source = source
        self.mapping = mapping or MapFile()
        self.sheet = sheet
        self.display_name: str | None = None  # the name a person knows it by (an upload's), if not the path's
        self._strings: _StringsOnDisk | list | None = None  # a workbook's shared strings, once read
        self.columns: list[tuple[str, str | None]] | None = None
        self.fallbacks: dict[int, str] = {}  # column -> the field it fills when the column that won it is empty
        self.ignored: set[int] = set()  # columns the map file says to leave out
        self.withheld: set[int] = set()  # columns of personal identity numbers, not stored
        self.other_sheets: list[str] = []  # a workbook's further sheets holding a list, not read unless named
        self.header_row: int | None = None
        self.wrapped: str | None = None  # the delimiter inside cells that each hold a whole row (see _wrapped_delimiter)
        try:
            with self.path.open("rb") as f:
                head = f.read(ENCODING_SAMPLE_BYTES)
                whole = not f.read(1)
        except OSError as exc:
            raise ConfigError("file", f"cannot read {self.path}: {exc.strerror or exc}") from None
        if workbook_format := _workbook_format(self.path, head):
            self.format, self.encoding, self.encoding_guessed = workbook_format, None, False
            self.delimiter = None
            self._choose_sheet(sheet)
            return
        if sheet is not None:
            raise ConfigError("sheet", f"{self.path.name} is a text file, not an Excel workbook")
        if encoding:
            self.encoding, self.encoding_guessed = _resolve_codec(encoding, head), False
        else:
            self.encoding, self.encoding_guessed = _text_encoding(head, whole)
        with self._text() as f:
            sample = f.read(SNIFF_SAMPLE_CHARS)
        if not encoding:  # a named --encoding says it is text
            _refuse_binary(self.path, head, sample, self.encoding)
        if _is_html_table(sample):  # a web application's 'Excel' export: an HTML table named .xls
            self.format, self.delimiter = "html", None
            return
        if sample.lstrip("\ufeff \t\r\n")[:11].upper() == "BEGIN:VCARD":  # a phone's or mail program's contacts
            self.format, self.delimiter = "vcard", None
            return
        if _is_spreadsheetml(sample):  # Excel's 'XML Spreadsheet 2003'
            self.format, self.delimiter, self.encoding, self.encoding_guessed = "xml2003", None, None, False
            self._choose_sheet(sheet)
            return
        self.delimiter = _sniff_delimiter(sample)
        self.format = "tsv" if self.delimiter == "\t" else "csv"
        self.wrapped = _wrapped_delimiter(sample, self.delimiter)

    @cached_property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        try:
            with self.path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 16), b""):
                    digest.update(block)
        except OSError as exc:  # removed or unreadable since it was opened for its sample
            raise ConfigError("file", f"cannot read {self.path}: {exc.strerror or exc}") from None
        return digest.hexdigest()

    def read_header(self) -> list[tuple[str, str | None]]:
        """The column mapping, (header, field or None) per column, without reading the rows."""
        with self._data_rows():
            return self.columns  # type: ignore[return-value]

    def fetch(self, since: dict[str, Any] | None = None) -> Iterator[NewItem]:
        """Stream the rows in file order; `columns` and `header_row` are set at the header."""
        sha256 = self.sha256
        resume_after = since.get("row", 0) if since and since.get("sha256") == sha256 else 0
        with self._data_rows() as rows:
            for number, payload in rows:
                if number <= resume_after:
                    continue
                yield NewItem(external_id=f"{sha256[:20]}:{number}", kind=self.kind,
                              payload=payload | {"row": number, "file": self.display_name or self.path.name},
                              cursor={"sha256": sha256, "row": number})

    @contextmanager
    def _data_rows(self) -> Iterator[Iterator[tuple[int, dict[str, Any]]]]:
        """(data row number, payload) of the non-blank rows under the header, blank ones counted."""
        with self._rows() as rows:
            index, header, data = _split_header(_undoubled(_readable(rows, self.path.name)))
            if self.delimiter is not None:
                data = _unswallowed(data, self.delimiter, len(header))
            sample = list(islice(data, EMAIL_SAMPLE_ROWS))  # read again below: the rows stream on
            if self.delimiter not in (None, "\t") and _rows_fit(sample, len(header)):
                sample, data = list(_rejoined(sample, self.delimiter, len(header))), \
                    _rejoined(data, self.delimiter, len(header))
            layout = _Layout.of(header, self.mapping, sample)
            data = chain(sample, data)
            self.header_row, self.columns, self.fallbacks = index + 1, layout.columns, dict(layout.spares)
            self.withheld = set(layout.withheld)
            self.ignored = {number for number, ((_, field_name), extra) in enumerate(zip(layout.columns, layout.extra_names))
                            if field_name is None and extra is None and number not in self.withheld}
            yield ((number, layout.payload(row))
                   for number, row in _below_the_table(enumerate(data, start=1), len(header)))

    @contextmanager
    def _rows(self) -> Iterator[Iterator[list[str]]]:
        if self.format == "xlsx":
            with self._sheet_rows() as rows:
                yield rows
            return
        if self.format == "xls":
            with _xls_book(self.path) as book:
                yield _xls_values(book, book.sheet_names().index(self.sheet) if self.sheet else 0, self.path.name,
                                  release=True)
            return
        if self.format == "html":
            with self._text() as f:
                yield _html_rows(f, self.path.name)
            return
        if self.format == "vcard":
            with self._text() as f:
                yield _vcard_rows(f, self.path.name)
            return
        if self.format in ("xml2003", "ods"):
            index = self._sheet_names().index(self.sheet) if self.sheet else 0
            yield (_spreadsheetml_rows if self.format == "xml2003" else _ods_rows)(self.path, index)
            return
        csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
        with self._text() as f:
            rows = self._checked(csv.reader(_bounded_lines(f, self.delimiter, self.path.name), delimiter=self.delimiter))
            yield rows if self.wrapped is None else _unwrapped(rows, self.wrapped)

    def _checked(self, reader: Iterator[list[str]]) -> Iterator[list[str]]:
        """Rows with huge cells cut to MAX_CELL_CHARS; csv's errors become ours, with the line."""
        try:
            for row in reader:  # lengths measured in C; a row is copied only when a cell is cut
                yield [cell[:MAX_CELL_CHARS] for cell in row] if max(map(len, row), default=0) > MAX_CELL_CHARS else row
        except csv.Error as exc:
            line = getattr(reader, "line_num", "?")
            raise FatalError(f"{self.path.name}: unreadable near line {line}: {exc}") from exc

    def _text(self):
        """The file as text; undecodable bytes become U+FFFD instead of stopping the import (in
        UTF-8, Windows-1252 letters)."""
        utf8 = codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")
        return self.path.open(encoding=self.encoding, errors=_MIXED if utf8 else "replace", newline="")

    def _sheet_with_a_header(self) -> str | None:
        """The sheet holding the list: of the visible sheets with a header row we can map in
        their first rows, the one with the most rows below it (counted up to SHEET_COUNT_ROWS),
        a sheet named as instructions or an example last, the first of equals; None (the
        first sheet) when no sheet has one. A template's 'Instruktioner' sheet often shows
        the header with an example row: it is not the list beside it."""
        with self._sheets() as sheets:
            if len(sheets) < 2:
                return None
            best: tuple[tuple[bool, int], str] | None = None
            lists: list[str] = []  # the sheets holding a list, to say which were not read
            for title, visible, values in sheets:
                if not visible:
                    continue  # a hidden sheet holds a template's value lists, not the list
                try:
                    _, header, below = _split_header(islice(values(), HEADER_SEARCH_ROWS + SHEET_COUNT_ROWS))
                    if not _names_a_header(header):  # the first line of a sheet we cannot read a list in
                        continue
                    count = sum(not _is_blank(row) for row in below)
                except FatalError:  # a sheet past a reader's bounds is no list, and no list may be read beside it
                    raise
                except Exception:  # noqa: BLE001 - a sheet openpyxl cannot read is not the list
                    continue
                rank = (bool(_NOT_THE_LIST.search(title)), -count)
                if count and not rank[0]:
                    lists.append(title)
                if best is None or rank < best[0]:
                    best = (rank, title)
        self.other_sheets = [title for title in lists if best is None or title != best[1]]
        return None if best is None else best[1]

    def _choose_sheet(self, sheet: str | None) -> None:
        """The workbook's sheet to read: the one named, else the first holding a list (not an
        'Instructions' page before it)."""
        if sheet is not None and sheet not in (names := self._sheet_names()):
            raise ConfigError("sheet", f"no sheet {sheet!r} in {self.path.name}: {names}")
        if sheet is None:
            self.sheet = self._sheet_with_a_header()

    def _sheet_names(self) -> list[str]:
        if self.format == "xls":
            with _xls_book(self.path) as book:
                return book.sheet_names()
        if self.format == "xml2003":
            return [name for name, _ in _spreadsheetml_sheets(self.path)]
        if self.format == "ods":
            return [name for name, _ in _ods_sheets(self.path)]
        return _sheet_names(self.path)

    @contextmanager
    def _sheets(self):
        """The workbook's sheets as (title, visible, a function giving its rows as text)."""
        if self.format == "xml2003":
            yield [(name, visible, lambda index=index: _spreadsheetml_rows(self.path, index))
                   for index, (name, visible) in enumerate(_spreadsheetml_sheets(self.path))]
            return
        if self.format == "ods":
            yield [(name, visible, lambda index=index: _ods_rows(self.path, index))
                   for index, (name, visible) in enumerate(_ods_sheets(self.path))]
            return
        if self.format == "xls":
            with _xls_book(self.path) as book:
                visibility = getattr(book, "_sheet_visibility", None) or [0] * book.nsheets  # read with the index
                yield [(name, visibility[index] == 0, lambda index=index: _xls_values(book, index, self.path.name))
                       for index, name in enumerate(book.sheet_names())]
            return
        with self._workbook() as workbook:
            yield [(sheet.title, getattr(sheet, "sheet_state", "visible") == "visible",
                    lambda sheet=sheet: _sheet_values(workbook, sheet)) for sheet in workbook.worksheets]

    @contextmanager
    def _workbook(self):
        with self.path.open("rb") as f:
            try:
                if self._strings is None:  # the first opening (a workbook without strings: each, cheaply)
                    _check_whole_parts(f, self.path.name)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "no default style" and kin
                    # its shared strings read once for every opening (choosing the sheet, the header, the rows)
                    workbook, self._strings = _read_workbook(f, self._strings)
            except FatalError:
                raise
            except Exception as exc:  # openpyxl raises whatever its zip and XML layers raise
                raise FatalError(f"{self.path.name}: not a readable Excel workbook: {exc}") from exc
            try:
                yield workbook
            finally:
                workbook.close()

    @contextmanager
    def _sheet_rows(self) -> Iterator[Iterator[list[str]]]:
        with self._workbook() as workbook:
            sheet = workbook[self.sheet] if self.sheet else workbook.worksheets[0]
            rows = _sheet_values(workbook, sheet)
            merges = _vertical_merges(self.path, getattr(sheet, "_worksheet_path", None))
            yield _filled_down(rows, merges) if merges else rows


def _sheet_values(workbook, sheet) -> Iterator[list[str]]:
    """A read-only sheet's rows as text, every row to the sheet's end whatever size its writer
    recorded, a missing row as an empty one: `iter_rows(values_only=True)` after
    `reset_dimensions()`, read with _rows_parser(), whose memory does not grow with the sheet."""
    padded = _zero_padded_styles(workbook)
    with sheet._get_source() as source:
        parser = _rows_parser()(source, sheet._shared_strings, data_only=True, epoch=workbook.epoch,
                                date_formats=workbook._date_formats, timedelta_formats=workbook._timedelta_formats)
        expected = 1
        for number, cells in parser.parse():
            if number < expected:  # a row number going back, as a broken writer may write: as openpyxl, passed over
                continue
            while expected < number:
                yield []
                expected += 1
            expected += 1
            row = [""] * max((cell["column"] for cell in cells), default=0)  # in any order a writer wrote them
            for cell in cells:
                value = cell["value"]
                if padded and cell["style_id"] in padded and type(value) in (int, float) and value == int(value) >= 0:
                    row[cell["column"] - 1] = _as_formatted(int(value), padded[cell["style_id"]])
                else:
                    row[cell["column"] - 1] = _cell_text(value)[:MAX_CELL_CHARS]
            yield row


_ZERO_PADDED = re.compile(r"0{2,}(?: 0+)?|0+ 0+")


def _zero_padded_styles(workbook) -> dict[int, str]:
    """The workbook's cell styles whose number format pads with zeros ('0000' for Oslo's 0150,
    '000 00' for a Swedish postal code): such a cell's number is the text Excel shows."""
    try:
        formats = workbook._number_formats
        return {style_id: code for style_id, style in enumerate(workbook._cell_styles)
                if style.numFmtId >= 164 and _ZERO_PADDED.fullmatch(code := formats[style.numFmtId - 164])}
    except Exception:  # noqa: BLE001 - a style table openpyxl read otherwise: the numbers as they are
        return {}


def _as_formatted(number: int, code: str) -> str:
    """'150' in '0000' -> '0150'; 11451 in '000 00' -> '114 51'."""
    digits = str(number).zfill(len(code.replace(" ", "")))
    if " " not in code:
        return digits
    head = len(code.partition(" ")[0]) + len(digits) - len(code.replace(" ", ""))
    return f"{digits[:head]} {digits[head:]}"


# -- an HTML table: what many web applications' 'Export to Excel' writes, named .xls ------------

_HTML_START = re.compile(r"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|table|style)\b", re.IGNORECASE | re.DOTALL)
_HTML_TABLE = re.compile(r"<table\b", re.IGNORECASE)


def _is_html_table(sample: str) -> bool:
    return bool(_HTML_START.match(sample.lstrip("\ufeff")) and _HTML_TABLE.search(sample))


class _TableRows(HTMLParser):
    """The rows of a page's tables as lists of cell text: a cell's runs of whitespace one space,
    a <br> a line break, a colspan its cells, what is outside a cell passed over; a mailto link
    whose text is a name keeps its address ('Anna Berg <anna@berg.se>', as the email column reads it)."""

    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self.name = name
        self.rows: list[list[str]] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.cell_chars = 0
        self.span = 1
        self.mailto: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._end_row()
            self.row = []
        elif tag in ("td", "th"):
            self._end_cell()
            if self.row is None:
                self.row = []
            self.cell, self.cell_chars = [], 0
            span = dict(attrs).get("colspan") or "1"
            self.span = int(span) if span.isdigit() and 1 <= int(span) <= MAX_LINE_CELLS else 1
        elif tag in ("br", "p", "div", "li") and self.cell:
            self._text("\n")
        elif tag == "a" and self.cell is not None and self.mailto is None:
            href = (dict(attrs).get("href") or "").strip()
            if href[:7].lower() == "mailto:":
                self.mailto = unquote(href[7:].split("?", 1)[0])[:400].strip()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._end_cell()
        elif tag in ("tr", "table"):
            self._end_row()

    def handle_data(self, data: str) -> None:
        if self.cell is not None and self.cell_chars < MAX_CELL_CHARS:
            self._text(" ".join(data.split()) if not data.isspace() else " ")

    def _text(self, text: str) -> None:
        text = text[:MAX_CELL_CHARS - self.cell_chars]
        self.cell.append(text)
        self.cell_chars += len(text)

    def _end_cell(self) -> None:
        if self.cell is None:
            return
        text = "\n".join(" ".join(line.split()) for line in "".join(self.cell).split("\n")).strip()
        if self.mailto and self.mailto.casefold() not in text.casefold():
            text = f"{text} <{self.mailto}>" if text else self.mailto
        self.row.extend([text] + [""] * (self.span - 1))
        self.cell, self.span, self.mailto = None, 1, None
        if len(self.row) > MAX_LINE_CELLS:
            raise FatalError(f"{self.name}: a table row of over {MAX_LINE_CELLS:,} cells; no list has that many columns")

    def _end_row(self) -> None:
        self._end_cell()
        if self.row is not None:
            self.rows.append(self.row)
            self.row = None


# -- vCard: the contacts a phone, a mail program or a business-card scanner exports -----------------

# The columns a card is read into, named as the header synonyms know them: a card then goes
# through the same mapping, cleaning and checks as a row of a list
VCARD_HEADER = ["First Name", "Last Name", "Full Name", "E-mail", "Mobile Phone", "Phone", "Company", "Job Title",
                "Street", "City", "State", "Postal Code", "Country", "Website", "Notes", "Categories"]


def _vcard_rows(f, name: str) -> Iterator[list[str]]:
    """VCARD_HEADER, then each card's cells (vCard 2.1, 3.0 and 4.0: quoted-printable and
    charsets, folded lines, escapes, grouped properties). Read card by card (vobject's
    line-by-line reader, which quoted-printable needs anyway); a line it cannot read is passed
    over, as a cell it cannot read would be. Photos and keys are never cells."""
    import vobject  # only where a vCard is read

    yield VCARD_HEADER
    try:
        for card in vobject.readComponents(_BoundedCards(f, name), ignoreUnreadable=True, allowQP=True):
            if card.name.upper() == "VCARD":
                yield _card_cells(card)
    except vobject.base.ParseError as exc:  # a card that never ends, a line of no property
        raise FatalError(f"{name}: not a vCard file vobject can read: {exc}") from None


MAX_CARD_CHARS = 2 << 20  # one card, its photo included (a phone's are some 100 KB); vobject holds some 64x it


class _BoundedCards:
    """The vCard file's lines for vobject (it reads by readline), none of one card past MAX_CARD_CHARS:
    a card that never ends held 740 MB at 10 MB."""

    def __init__(self, f, name: str) -> None:
        self._f, self._name, self._chars = f, name, 0

    def readline(self) -> str:
        line = self._f.readline(MAX_CARD_CHARS + 1)
        if line[:12].upper().startswith("BEGIN:VCARD"):
            self._chars = 0
        self._chars += len(line)
        if self._chars > MAX_CARD_CHARS:
            raise FatalError(f"{self._name}: a card of over {MAX_CARD_CHARS >> 20} MB; no contact card is so long "
                             "(a damaged file, or one card that never ends)")
        return line


def _card_cells(card) -> list[str]:
    by_name: dict[str, list] = {}
    for prop in card.getChildren():
        by_name.setdefault(prop.name.upper(), []).append(prop)
    first = last = ""
    if by_name.get("N"):
        person = by_name["N"][0].value
        given, family = getattr(person, "given", ""), getattr(person, "family", "")
        first, last = _card_text(given), _card_text(family)
    emails = [_card_text(prop.value) for prop in _preferred(by_name.get("EMAIL", []))]
    phones = [prop for prop in _preferred(by_name.get("TEL", [])) if not {"FAX", "PAGER"} & _card_types(prop)]
    mobile = next((prop for prop in phones if {"CELL", "MOBILE", "IPHONE"} & _card_types(prop)), None)
    phone = next((prop for prop in phones if prop is not mobile), None)
    address = next(iter(_preferred(by_name.get("ADR", []), "WORK")), None)
    place = address.value if address is not None else None
    org = by_name["ORG"][0].value if by_name.get("ORG") else ""
    return [first, last, _card_value(by_name, "FN"), "; ".join(email for email in emails if email),
            _card_text(mobile.value) if mobile is not None else "", _card_text(phone.value) if phone is not None else "",
            _card_text(org[0] if isinstance(org, list) and org else org),
            _card_value(by_name, "TITLE") or _card_value(by_name, "ROLE"),
            *(_card_text(getattr(place, part, "")) for part in ("street", "city", "region", "code", "country")),
            _card_value(by_name, "URL"), _card_value(by_name, "NOTE"), _card_value(by_name, "CATEGORIES")]


def _card_types(prop) -> set[str]:
    """A property's types, as 3.0 and 4.0 write them (TYPE=WORK,VOICE) and 2.1 (TEL;WORK;VOICE)."""
    types = [*prop.params.get("TYPE", []), *getattr(prop, "singletonparams", [])]
    return {part.upper() for value in types for part in str(value).split(",")}


def _preferred(props: list, kind: str = "PREF") -> list:
    """The properties, those of the kind (or marked preferred) first, else in the card's order."""
    def later(prop) -> bool:
        types = _card_types(prop)
        return not (kind in types or "PREF" in types or prop.params.get("PREF"))
    return sorted(props, key=later)


def _card_value(by_name: dict[str, list], name: str) -> str:
    return _card_text(by_name[name][0].value) if by_name.get(name) else ""


def _card_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_card_text(part) for part in value if part)
    return value[:MAX_CELL_CHARS] if isinstance(value, str) else ""


# HTML the parser holds until it ends (a tag, a <style> or <script>), and reads again at each
# block: an Excel export's style sheet is some kilobytes
MAX_HTML_PENDING = 1 << 20


def _html_rows(f, name: str) -> Iterator[list[str]]:
    """The rows of an HTML file's tables, streamed: the text read a block at a time, and never
    more than MAX_HTML_PENDING of it held unparsed (a tag that never ends)."""
    parser = _TableRows(name)
    for block in iter(lambda: f.read(1 << 16), ""):
        parser.feed(block)
        if len(parser.rawdata) > MAX_HTML_PENDING:
            raise FatalError(f"{name}: over {MAX_HTML_PENDING:,} characters of HTML that do not end a tag or a script")
        yield from parser.rows
        parser.rows.clear()
    parser.close()
    parser._end_row()
    yield from parser.rows


# -- Excel's 'XML Spreadsheet 2003': what some older systems export, named .xml or .xls ---------

_SS = "urn:schemas-microsoft-com:office:spreadsheet"
_SS_START = re.compile(r"\s*<\?xml\b", re.IGNORECASE)


def _is_spreadsheetml(sample: str) -> bool:
    return bool(_SS_START.match(sample.lstrip("\ufeff"))) and _SS in sample


def _xml_blocks(path: Path, handlers: dict[str, Any], stop: list[bool] | None = None,
                member: str | None = None) -> Iterator[None]:
    """Feed the file (or a zip's `member`) to expat a block at a time, yielding after each
    block (the handlers have collected what it held); FatalError when it is not well-formed XML."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    for event, handler in handlers.items():
        setattr(parser, event, handler)

    def no_doctype(*_: Any) -> None:  # Excel writes none; entities are how XML grows a few kB into gigabytes
        raise FatalError(f"{path.name}: XML with a document type declaration, which Excel's XML Spreadsheet has not")

    parser.StartDoctypeDeclHandler = no_doctype
    try:
        with (zipfile.ZipFile(path) if member else nullcontext()) as archive, \
                (archive.open(member) if member else path.open("rb")) as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                parser.Parse(block, False)
                yield
                if stop and stop[0]:
                    return
            parser.Parse(b"", True)
            yield
    except expat.ExpatError as exc:
        what = "OpenDocument spreadsheet" if member else "XML Spreadsheet 2003"
        raise FatalError(f"{path.name}: not a readable {what}: {exc}") from exc
    except (zipfile.BadZipFile, KeyError, zlib.error, EOFError) as exc:
        raise FatalError(f"{path.name}: not a readable OpenDocument spreadsheet: {exc}") from exc


def _spreadsheetml_sheets(path: Path) -> list[tuple[str, bool]]:
    """(name, visible) of each worksheet, in order."""
    sheets: list[list[Any]] = []
    in_visible: list[bool] = [False]

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == f"{_SS} Worksheet":
            sheets.append([attrs.get(f"{_SS} Name", f"Sheet{len(sheets) + 1}"), True])
        in_visible[0] = tag.endswith(" Visible") and bool(sheets)

    def text(data: str) -> None:
        if in_visible[0] and data.strip() in ("SheetHidden", "SheetVeryHidden"):
            sheets[-1][1] = False

    for _ in _xml_blocks(path, {"StartElementHandler": start, "CharacterDataHandler": text}):
        pass
    return [(name, visible) for name, visible in sheets]


def _spreadsheetml_rows(path: Path, sheet: int) -> Iterator[list[str]]:
    """A worksheet's rows as text, streamed: a cell's ss:Index and a row's skip the cells and
    rows between, ss:MergeAcross spans cells, typed data is written as _cell_text writes it."""
    rows: list[list[str]] = []
    state: dict[str, Any] = {"sheet": -1, "row": None, "number": 0, "type": None, "cell": None, "chars": 0,
                             "span": 0, "data": 0, "comment": 0}

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == f"{_SS} Worksheet":
            state["sheet"] += 1
        if state["sheet"] != sheet:
            return
        if tag == f"{_SS} Row":
            number = _ss_index(attrs, state["number"] + 1, MAX_SHEET_ROWS, "row", path.name)
            while state["number"] + 1 < number:
                rows.append([])
                state["number"] += 1
            state["number"] = number
            state["row"] = []
        elif tag == f"{_SS} Cell" and state["row"] is not None:
            index = _ss_index(attrs, len(state["row"]) + 1, MAX_LINE_CELLS, "cell", path.name)
            state["row"].extend([""] * (index - 1 - len(state["row"])))
            merged = attrs.get(f"{_SS} MergeAcross", "0")
            state["span"] = min(int(merged), MAX_LINE_CELLS) if merged.isdigit() else 0
            state["cell"], state["chars"], state["type"] = [], 0, None
        elif tag == f"{_SS} Comment":
            state["comment"] += 1  # a note on the cell: not its value
        elif tag == f"{_SS} Data" and state["cell"] is not None and not state["comment"]:
            state["type"] = attrs.get(f"{_SS} Type")
            state["data"] += 1

    def end(tag: str) -> None:
        if state["sheet"] != sheet:
            return
        if tag == f"{_SS} Comment":
            state["comment"] -= 1
        elif tag == f"{_SS} Data" and state["data"] and not state["comment"]:
            state["data"] -= 1
        elif tag == f"{_SS} Cell" and state["cell"] is not None:
            row = state["row"]
            text = "".join(state["cell"])
            row.append(_typed_text(_SS_TYPES.get(state["type"]), text.strip()) or text)
            row.extend([""] * state["span"])
            state["cell"] = None
            if len(row) > MAX_LINE_CELLS:
                raise FatalError(f"{path.name}: a row of over {MAX_LINE_CELLS:,} cells; no list has that many columns")
        elif tag == f"{_SS} Row" and state["row"] is not None:
            rows.append(state["row"])
            state["row"] = None

    def text(data: str) -> None:
        if state["data"] and not state["comment"] and state["cell"] is not None:
            _cell_append(state, data)

    yield from _sheet_stream(path, sheet, state, rows, {"StartElementHandler": start, "EndElementHandler": end,
                                                         "CharacterDataHandler": text})


def _sheet_stream(path: Path, sheet: int, state: dict[str, Any], rows: list[list[str]], handlers: dict[str, Any],
                  member: str | None = None) -> Iterator[list[str]]:
    """The rows the handlers collect, block by block, until the sheet after `sheet` begins."""
    stop = [False]
    for _ in _xml_blocks(path, handlers, stop, member):
        for row in rows:
            if type(row) is _Repeated:
                yield from (list(row.row) for _ in range(row.times))
            else:
                yield row
        rows.clear()
        if state["sheet"] > sheet:
            stop[0] = True  # the sheet is read


class _Repeated(NamedTuple):
    """A row an .ods repeats (number-rows-repeated): its copies made as they are read."""
    row: list[str]
    times: int


def _ss_index(attrs: dict[str, str], next_: int, bound: int, what: str, name: str) -> int:
    given = attrs.get(f"{_SS} Index")
    if given is None:
        return next_
    if not given.isdigit() or not next_ <= int(given) <= bound:
        raise FatalError(f"{name}: ss:Index {given!r} of a {what}: not after the one before it, or past {bound:,}")
    return int(given)


_SS_TYPES = {"Number": "number", "DateTime": "date", "Boolean": "boolean"}  # ss:Type -> _typed_text's kind


def _typed_text(kind: str | None, value: str) -> str | None:
    """A typed cell's value (XML Spreadsheet 2003, .ods) as _cell_text writes it: 701234567 not
    701234567.0, a date ISO, TRUE or FALSE; the value as written when it is not of its type,
    None for a cell of no type (its text is its value)."""
    try:
        if kind == "number":
            return _cell_text(float(value))
        if kind == "date":
            return _cell_text(datetime.fromisoformat(value))
    except ValueError:
        return value
    if kind == "boolean":
        return "TRUE" if value in ("1", "true") else "FALSE"
    return None


# -- OpenDocument spreadsheets (.ods): LibreOffice's and OpenOffice's ----------------------------

_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"


def _ods_sheets(path: Path) -> list[tuple[str, bool]]:
    """(name, visible) of each sheet of content.xml, in order; a sheet whose table style says
    table:display="false" is hidden."""
    sheets: list[tuple[str, str]] = []
    hidden: set[str] = set()
    style: list[str | None] = [None]

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == f"{_STYLE} style" and attrs.get(f"{_STYLE} family") == "table":
            style[0] = attrs.get(f"{_STYLE} name")
        elif tag == f"{_STYLE} table-properties" and attrs.get(f"{_TABLE} display") == "false" and style[0]:
            hidden.add(style[0])
        elif tag == f"{_TABLE} table":
            sheets.append((attrs.get(f"{_TABLE} name", f"Sheet{len(sheets) + 1}"), attrs.get(f"{_TABLE} style-name", "")))

    for _ in _xml_blocks(path, {"StartElementHandler": start}, member="content.xml"):
        pass
    return [(name, style_name not in hidden) for name, style_name in sheets]


def _ods_rows(path: Path, sheet: int) -> Iterator[list[str]]:
    """A sheet's rows as text, streamed: a repeated row or cell is written out as often as it
    repeats, but empty ones only when something follows them (a sheet's million trailing empty
    rows and its columns to the 16,384th are never made)."""
    rows: list[list[str]] = []
    state: dict[str, Any] = {"sheet": -1, "row": None, "row_repeat": 1, "empty_rows": 0, "rows_out": 0,
                             "empty_cells": 0, "cell": None, "cell_repeat": 1, "value": None, "chars": 0,
                             "paragraphs": 0, "in_p": 0, "note": 0}

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == f"{_TABLE} table":
            state["sheet"] += 1
        if state["sheet"] != sheet:
            return
        if tag == f"{_TABLE} table-row":
            state["row"], state["empty_cells"] = [], 0
            state["row_repeat"] = _repeat(attrs.get(f"{_TABLE} number-rows-repeated"))
        elif tag in (f"{_TABLE} table-cell", f"{_TABLE} covered-table-cell") and state["row"] is not None:
            state["cell_repeat"] = _repeat(attrs.get(f"{_TABLE} number-columns-repeated"))
            kind = _ODS_TYPES.get(attrs.get(f"{_OFFICE} value-type") or "")
            typed = attrs.get(f"{_OFFICE} {_ODS_VALUES[kind]}") if kind else None
            state["value"] = _typed_text(kind, typed) if typed is not None else None
            state["cell"], state["chars"], state["paragraphs"], state["in_p"], state["note"] = [], 0, 0, 0, 0
        elif state["cell"] is not None:
            if tag == f"{_OFFICE} annotation":
                state["note"] += 1  # a comment on the cell: not its value
            elif state["note"]:
                return
            elif tag == f"{_TEXT} p":
                state["in_p"] += 1
                if state["paragraphs"]:
                    _cell_append(state, "\n")
                state["paragraphs"] += 1
            elif tag == f"{_TEXT} s":
                _cell_append(state, " " * _repeat(attrs.get(f"{_TEXT} c"), 1000))
            elif tag == f"{_TEXT} tab":
                _cell_append(state, "\t")
            elif tag == f"{_TEXT} line-break":
                _cell_append(state, "\n")

    def end(tag: str) -> None:
        if state["sheet"] != sheet or state["row"] is None:
            return
        if tag == f"{_OFFICE} annotation" and state["note"]:
            state["note"] -= 1
        elif tag == f"{_TEXT} p" and state["in_p"] and not state["note"]:
            state["in_p"] -= 1
        elif tag in (f"{_TABLE} table-cell", f"{_TABLE} covered-table-cell") and state["cell"] is not None:
            text = state["value"] if state["value"] is not None else "".join(state["cell"])
            state["cell"] = None
            if not text:
                state["empty_cells"] += state["cell_repeat"]
                return
            row = state["row"]
            if len(row) + state["empty_cells"] + state["cell_repeat"] > MAX_LINE_CELLS:
                raise FatalError(f"{path.name}: a row of over {MAX_LINE_CELLS:,} cells; no list has that many columns")
            row.extend([""] * state["empty_cells"])
            row.extend([text] * state["cell_repeat"])
            state["empty_cells"] = 0
        elif tag == f"{_TABLE} table-row":
            row, repeat = state["row"], state["row_repeat"]
            state["row"] = None
            if not row:
                state["empty_rows"] += repeat
                return
            if state["rows_out"] + state["empty_rows"] + repeat > MAX_SHEET_ROWS:
                raise FatalError(f"{path.name}: a row past row {MAX_SHEET_ROWS:,}, the last a spreadsheet has")
            if repeat > 1 and repeat * len(row) > MAX_REPEATED_CELLS:  # 820 bytes made two billion cells
                raise FatalError(f"{path.name}: a row of {len(row):,} cells repeated {repeat:,} times; no list "
                                 "repeats one row so (a damaged or hostile file): save the list again as .xlsx or CSV")
            rows.extend([] for _ in range(state["empty_rows"]))
            rows.append(row if repeat == 1 else _Repeated(row, repeat))  # made one at a time, as read
            state["rows_out"] += state["empty_rows"] + repeat
            state["empty_rows"] = 0

    def text(data: str) -> None:
        if state["cell"] is not None and state["in_p"] and not state["note"] and state["sheet"] == sheet:
            _cell_append(state, data)

    yield from _sheet_stream(path, sheet, state, rows, {"StartElementHandler": start, "EndElementHandler": end,
                                                         "CharacterDataHandler": text}, member="content.xml")


# The cells one repeated row of an .ods may make (LibreOffice writes identical rows once, repeated):
# a value filled far down repeats its row, a list does not repeat one row of thousands of cells a million times
MAX_REPEATED_CELLS = 5_000_000  # ('Nej' filled down 500,000 rows of ten columns)


def _cell_append(state: dict[str, Any], data: str) -> None:
    """Text of the cell being read (state["cell"]), up to MAX_CELL_CHARS of it."""
    if state["chars"] < MAX_CELL_CHARS:
        data = data[:MAX_CELL_CHARS - state["chars"]]
        state["cell"].append(data)
        state["chars"] += len(data)


def _repeat(given: str | None, bound: int | None = None) -> int:
    """A repeat count as written (checked where its cells or rows would be made), or capped."""
    count = int(given) if given and given.isdigit() and int(given) > 0 else 1
    return count if bound is None else min(count, bound)


# office:value-type -> _typed_text's kind, and the attribute each kind's value is in
_ODS_TYPES = {"float": "number", "percentage": "number", "currency": "number", "date": "date", "boolean": "boolean"}
_ODS_VALUES = {"number": "value", "date": "date-value", "boolean": "boolean-value"}


# An Excel 97-2003 workbook is read whole, one sheet at a time (xlrd has no streaming reader):
# its size is capped instead, and each row let go of once read. A sheet holds at most 65,536
# rows; a list of them with 15 text columns is some 10 MB, and 16 MB of numbers (12 bytes a
# cell) is read in some 100 MB.
MAX_XLS_BYTES = 16 << 20


class _Quiet:
    """Where xlrd writes its warnings (to stdout unless told): nowhere."""

    def write(self, text: str) -> int:
        return len(text)


@contextmanager
def _xls_book(path: Path):
    """An Excel 97-2003 workbook opened for its sheets one by one; FatalError says why one is
    not read (too large, password-protected, another Office document, damaged)."""
    import xlrd  # only lists in the old format need it

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError("file", f"cannot read {path}: {exc.strerror or exc}") from None
    if size > MAX_XLS_BYTES:
        raise FatalError(f"{path.name}: an Excel 97-2003 (.xls) workbook of {size / (1 << 20):.0f} MB, "
                         f"over the {MAX_XLS_BYTES >> 20} MB one is read to; save it as .xlsx or CSV")
    try:
        book = xlrd.open_workbook(str(path), on_demand=True, ragged_rows=True, logfile=_Quiet())
    except Exception as exc:  # noqa: BLE001 - xlrd raises XLRDError, CompDocError, struct and index errors
        text = str(exc)
        if "encrypted" in text.lower() or "find workbook in OLE2" in text:
            raise FatalError(f"{path.name}: a password-protected workbook, or an Office document that "
                             "holds no workbook; save the list without a password as .xlsx or CSV") from exc
        raise FatalError(f"{path.name}: not a readable Excel 97-2003 (.xls) workbook: {text}") from exc
    try:
        yield book
    finally:
        book.release_resources()


def _xls_values(book, index: int, name: str, release: bool = False) -> Iterator[list[str]]:
    """A sheet's rows as text, as _cell_text writes a cell (dates ISO, 42 not 42.0);
    `release`: the workbook's bytes let go of once the sheet is read (no other sheet is wanted)."""
    import xlrd

    try:
        sheet = book.sheet_by_index(index)
    except Exception as exc:  # noqa: BLE001 - a damaged sheet record
        raise FatalError(f"{name}: sheet {index + 1} is not readable: {exc}") from exc
    if release:
        book.release_resources()
    try:
        for number in range(sheet.nrows):
            types, values = sheet.row_types(number), sheet.row_values(number)
            sheet._cell_types[number] = sheet._cell_values[number] = ()  # let go of as the list streams on
            row = []
            for kind, value in zip(types, values):
                if kind == xlrd.XL_CELL_DATE:
                    try:
                        value = xlrd.xldate.xldate_as_datetime(value, book.datemode)
                    except (xlrd.xldate.XLDateError, ValueError, OverflowError):
                        pass  # a number in a date's format that is no date: the number
                elif kind == xlrd.XL_CELL_BOOLEAN:
                    value = bool(value)
                elif kind == xlrd.XL_CELL_ERROR:
                    value = xlrd.error_text_from_code.get(value, "#ERROR")
                row.append(_cell_text(value)[:MAX_CELL_CHARS])
            yield row
    finally:
        book.unload_sheet(index)


# A workbook's XML holds what it parsed until the reader lets go of it (a cell, a row, a shared
# string, a part of the sheet before its rows): a few kilobytes of zip expand to gigabytes of one
# cell, to millions of empty cells in one row, or to one row numbered in the billions. Excel's
# own bounds, with room: a cell holds 32,767 characters, a row 16,384 cells, a sheet 1,048,576 rows.
MAX_XML_HELD_BYTES = 4 << 20  # read and not let go of
MAX_XML_HELD_ELEMENTS = 20_000  # parsed and not let go of, some 350 bytes each (a <col> a column)
MAX_SHEET_ROWS = 1_048_576
MAX_WHOLE_PART_BYTES = 8 << 20  # a part openpyxl parses whole (styles, workbook, relationships)


class _XmlBudget:
    """A workbook part read through this by the XML parser, which stops with a FatalError when
    more than MAX_XML_HELD_BYTES pass before the reader lets go of what it parsed and sets `held`
    back to 0."""

    def __init__(self, source, what: str) -> None:
        self._source, self.what, self.held = source, what, 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.held += len(data)
        if self.held > MAX_XML_HELD_BYTES:
            raise FatalError(f"{self.what}: over {MAX_XML_HELD_BYTES >> 20} MB of XML in one cell or row: "
                             "no list Excel wrote; save the list as CSV")
        return data


def _too_many_elements(what: str) -> FatalError:
    return FatalError(f"{what}: over {MAX_XML_HELD_ELEMENTS:,} XML elements in one cell or row: "
                      "no list Excel wrote; save the list as CSV")


@cache  # built at the first workbook: openpyxl is not imported with this module (a CSV never needs it)
def _rows_parser():
    from openpyxl.worksheet._reader import CELL_TAG, ROW_TAG, WorkSheetParser
    from openpyxl.xml.constants import SHEET_MAIN_NS
    from openpyxl.xml.functions import iterparse

    sheet_data = f"{{{SHEET_MAIN_NS}}}sheetData"

    class RowsParser(WorkSheetParser):
        """openpyxl's sheet parser, for rows alone, a cell emptied as soon as it is read.
        openpyxl's own parses a row whole before reading its cells, clears each row's element
        but leaves it in the sheet's tree, and keeps each row's height: some 115 bytes a row,
        80 MB more at a million rows, and a row of two million empty cells (a 9 kB file) took
        900 MB. Here the read cells are emptied and the rows leave the tree, no row has more
        than MAX_LINE_CELLS cells nor MAX_LINE_CHARS of text (as a line of a CSV), nothing
        unread grows past the MAX_XML_HELD bounds, and reading stops with the rows."""

        def parse(self):
            source = _XmlBudget(self.source, "the sheet")
            root = rows = row = None
            cells: list[dict] = []
            chars = held = 0  # the row's text; elements ended and still in the tree
            for event, element in iterparse(source, events=("start", "end")):
                if event == "start":
                    if root is None:
                        root = element
                    elif element.tag == ROW_TAG:
                        row, cells, chars = element, [], 0
                        self._start_row(element)
                        source.what = f"the sheet's row {self.row_counter}"
                    elif rows is None and element.tag == sheet_data:
                        rows = element
                    continue
                tag = element.tag
                if tag == CELL_TAG and row is not None:
                    cell = self.parse_cell(element)
                    cells.append(cell)
                    element.clear()  # what is left of it, an empty element, goes with the row
                    if len(cells) > MAX_LINE_CELLS:
                        raise FatalError(f"{source.what} has over {MAX_LINE_CELLS:,} cells: not a list")
                    if type(cell["value"]) is str:
                        chars += len(cell["value"])
                        if chars > MAX_LINE_CHARS:
                            raise FatalError(f"{source.what} holds over {MAX_LINE_CHARS >> 20} M characters: not a list")
                elif tag == ROW_TAG:
                    (rows if rows is not None else element).clear()
                    row = None
                    yield self.row_counter, cells
                elif tag == sheet_data:
                    return
                elif rows is None and len(root) and root[-1] is element:  # root: the first start
                    root.remove(element)  # a part of the sheet before its rows: columns, views
                else:
                    held += 1
                    if held > MAX_XML_HELD_ELEMENTS:
                        raise _too_many_elements(source.what)
                    continue
                source.held = held = 0

        def _start_row(self, row) -> None:
            number = row.get("r")
            if number is None:
                self.row_counter += 1
            else:
                try:
                    self.row_counter = int(float(number))
                except (ValueError, OverflowError):
                    raise FatalError(f"the sheet has a row numbered {number[:20]!r}: not a sheet Excel wrote") from None
            if not 0 < self.row_counter <= MAX_SHEET_ROWS:
                raise FatalError(f"the sheet has a row numbered {self.row_counter:,}, and a sheet's rows are "
                                 f"numbered 1 to {MAX_SHEET_ROWS:,}: not a sheet Excel wrote")
            self.col_counter = 0

    return RowsParser


# The parts openpyxl's read-only reader parses whole (with external links not kept): the package's
# manifest and relationships, the workbook, its properties, theme and styles. A pivot table's cache
# or a drawing, however large, is not read.
_WHOLE_PARTS = re.compile(r"\[Content_Types\]\.xml$|(?:.*/)?_rels/[^/]*\.rels$|xl/[^/]*workbook[^/]*\.xml$|"
                          r"xl/styles\.xml$|xl/theme/|docProps/", re.IGNORECASE)


def _check_whole_parts(source, name: str) -> None:
    """Refuses a workbook with a part openpyxl parses whole (styles, the workbook, relationships)
    larger than MAX_WHOLE_PART_BYTES unpacked: a few kilobytes of zip unpack to gigabytes, and a
    parsed part takes some 40 times its size in memory. The sizes come from the zip's central
    directory, which also bounds what the zip layer will unpack of each part."""
    try:
        members = zipfile.ZipFile(source).infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # openpyxl says what is wrong with it
    finally:
        source.seek(0)
    for member in members:
        if _WHOLE_PARTS.match(member.filename) and member.file_size > MAX_WHOLE_PART_BYTES:
            raise FatalError(f"{name}: its part {member.filename[:100]} unpacks to {member.file_size >> 20:,} MB, "
                             f"over the {MAX_WHOLE_PART_BYTES >> 20} MB a workbook's lists need: save the list as CSV")


def _read_workbook(source, strings: _StringsOnDisk | list | None = None):
    """openpyxl's read-only workbook, its shared strings kept on disk (_StringsOnDisk), and its
    sheets not measured when it is opened: a sheet's recorded size is never used here (some
    writers record a wrong one), and a sheet without one was parsed whole to look for it, the
    parsed rows kept (a second read of the list, and memory growing with it), at every opening."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet
    from openpyxl.xml.constants import SHARED_STRINGS

    class Sheet(ReadOnlyWorksheet):
        def _get_size(self) -> None:  # as after reset_dimensions(): read to the sheet's end
            self._min_column, self._min_row, self._max_column, self._max_row = 1, 1, None, None

    class Reader(ExcelReader):
        def read_strings(self) -> None:
            part = self.package.find(SHARED_STRINGS)
            if strings is not None:  # read at an earlier opening of the same file
                self.shared_strings = strings
            elif part is not None:
                with self.archive.open(part.PartName[1:]) as src:
                    self.shared_strings = _StringsOnDisk(src)

        def read_worksheets(self) -> None:  # openpyxl's, read-only, chart sheets left out (no list is one)
            for sheet, rel in self.parser.find_sheets():
                if rel.target in self.valid_files and "chartsheet" not in rel.Type:
                    worksheet = Sheet(self.wb, sheet.name, rel.target, self.shared_strings)
                    worksheet.sheet_state = sheet.state
                    self.wb._sheets.append(worksheet)

    reader = Reader(source, read_only=True, data_only=True, keep_links=False)  # links to other workbooks: never read
    try:
        reader.read()
    except BaseException:
        if isinstance(reader.shared_strings, _StringsOnDisk) and reader.shared_strings is not strings:
            reader.shared_strings.close()
        raise
    return reader.wb, reader.shared_strings


MAX_SHARED_STRINGS_BYTES = 2 << 30  # a workbook's text: a million rows of a wide list is a few hundred MB
MAX_SHARED_STRINGS = 8_000_000  # and its distinct texts: a million rows of eight text columns, all different


class _StringsOnDisk:
    """A workbook's shared strings (the text of its cells, each once; cells name it by index),
    written to a temporary file as they are read and read back by index.

    openpyxl keeps them all in a list: every distinct name and address of a list, 230 MB of
    memory at 300,000 rows and growing with the file. Here memory holds 8 bytes a string and a
    small cache of the strings a list repeats (companies, titles, cities)."""

    CACHED = 4096

    def __init__(self, source) -> None:
        import tempfile
        from array import array

        from openpyxl.cell.text import Text
        from openpyxl.xml.constants import SHEET_MAIN_NS
        from openpyxl.xml.functions import iterparse

        self._file = tempfile.TemporaryFile()
        self._cache: dict[int, str] = {}
        offsets, written, pending, flushed = array("Q", [0]), 0, [], 0
        tag, plain = f"{{{SHEET_MAIN_NS}}}si", f"{{{SHEET_MAIN_NS}}}t"
        source, held = _XmlBudget(source, "the workbook's shared strings"), 0
        try:
            root = None
            for event, node in iterparse(source, events=("start", "end")):
                if root is None:
                    root = node  # the table: emptied as it goes, or it keeps every string's element
                    continue
                if event != "end":
                    continue
                if node.tag != tag:
                    held += 1
                    if held > MAX_XML_HELD_ELEMENTS:
                        raise _too_many_elements(source.what)
                    continue
                source.held = held = 0
                if len(node) == 1 and node[0].tag == plain:  # <si><t>text</t></si>: most strings
                    text = node[0].text or ""
                else:  # runs of rich text, a phonetic reading: as openpyxl reads them
                    text = Text.from_tree(node).content
                if "x005F_" in text:
                    text = text.replace("x005F_", "")
                data = text.encode("utf-8", "surrogatepass")
                root.clear()
                if len(offsets) > MAX_SHARED_STRINGS:  # empty ones weigh nothing, and were counted by bytes alone
                    raise FatalError(f"the workbook holds over {MAX_SHARED_STRINGS:,} distinct texts: "
                                     "save the list as CSV, or split it")
                written += len(data)
                if written > MAX_SHARED_STRINGS_BYTES:
                    raise FatalError(f"the workbook holds over {MAX_SHARED_STRINGS_BYTES >> 20} MB of text: "
                                     "save the list as CSV, or split it")
                pending.append(data)
                offsets.append(written)
                if written - flushed >= 1 << 18 or len(pending) >= 1 << 16:
                    self._file.write(b"".join(pending))
                    pending.clear()
                    flushed = written
            self._file.write(b"".join(pending))
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self._offsets = offsets
        self._fd = self._file.fileno()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> str:
        text = self._cache.get(index)
        if text is not None:
            return text
        if not 0 <= index < len(self._offsets) - 1:
            raise IndexError(f"shared string {index} of {len(self._offsets) - 1}")
        start = self._offsets[index]
        text = os.pread(self._fd, self._offsets[index + 1] - start, start).decode("utf-8", "surrogatepass")
        if len(text) <= 100:  # a value lists repeat is short; a note is read again when it repeats
            if len(self._cache) >= self.CACHED:
                self._cache.clear()
            self._cache[index] = text
        return text

    def close(self) -> None:
        self._file.close()


_MERGE_CELLS = re.compile(rb"<(?:\w+:)?mergeCells[\s>/]")
_MERGE_CELL = re.compile(rb'<(?:\w+:)?mergeCell\s[^>]*?ref="([A-Z]{1,3})([0-9]+):([A-Z]{1,3})([0-9]+)"')
_MERGE_END = re.compile(rb"</(?:\w+:)?mergeCells>|<(?:\w+:)?mergeCells[^>]*/>")


# what a sheet's list of merged cells may take: some 250,000 merges (a company merged down beside
# its contacts is one), 80 MB once read; a few kilobytes of zip unpacked to millions took a GB
MAX_MERGE_LISTING_BYTES = 8 << 20


def _vertical_merges(path: Path, member: str | None) -> dict[int, list[tuple[int, int]]]:
    """A sheet's cells merged down over several rows (one company beside its three contacts):
    first row -> [(column index, last row)]. openpyxl's streaming reader does not give merged
    ranges, and the sheet's XML lists them after its rows, so the part is read through once,
    decompressed, not parsed: a second or two for a million rows."""
    from openpyxl.utils.cell import column_index_from_string

    if not member:
        return {}
    found: dict[int, list[tuple[int, int]]] = {}
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member) as part:
            tail, listing = b"", None
            for block in iter(lambda: part.read(1 << 18), b""):
                if listing is None:
                    start = _MERGE_CELLS.search(tail + block)
                    if start is None:
                        tail = (tail + block)[-64:]
                        continue
                    listing, block = b"", (tail + block)[start.start():]
                listing += block
                if _MERGE_END.search(listing):
                    break
                if len(listing) > MAX_MERGE_LISTING_BYTES:
                    raise FatalError(f"the sheet lists over {MAX_MERGE_LISTING_BYTES >> 20} MB of merged cells: "
                                     "unmerge them, or save the list as CSV")
    except (OSError, KeyError, zipfile.BadZipFile):  # the rows were read: a listing unread is no merge
        return {}
    for merge in _MERGE_CELL.finditer(listing or b""):  # not findall: four objects a merge, all at once
        first_column, first_row, _, last_row = merge.groups()
        top, bottom = int(first_row), int(last_row)
        if bottom > top:
            found.setdefault(top, []).append((column_index_from_string(first_column.decode()) - 1, bottom))
    return found


def _filled_down(rows: Iterator[list[str]], merges: dict[int, list[tuple[int, int]]]) -> Iterator[list[str]]:
    """Rows with a merged cell's value in each row it spans, in its first column (as a person
    reads the sheet); cells merged across columns only are left as they are."""
    filling: dict[int, tuple[str, int]] = {}  # column -> (value, last row)
    for number, row in enumerate(rows, start=1):
        for column, last in merges.get(number, ()):
            if column < len(row) and row[column]:
                filling[column] = (row[column], last)
        if filling:
            for column, (value, last) in list(filling.items()):
                if number > last:
                    del filling[column]
                    continue
                if column >= len(row):
                    row.extend([""] * (column + 1 - len(row)))
                if not row[column]:
                    row[column] = value
        yield row


_SEVERAL = re.compile(r"[;,\s]+")
_DOMAIN_HEADERS = frozenset({"domain", "domains", "doman", "domaner", "domannamn", "domainname", "emaildomain",
                             "epostdoman", "maildomain", "webdomain", "companydomain", "foretagsdoman"})
_DOMAIN_OF = re.compile(r"^(?:www\.|@)", re.IGNORECASE)
_AN_ENTRY = re.compile(r"@?[^\W_][\w.-]*\.[^\W\d_]{2,}\.?|[+(]?\d[\d\s().-]{5,}.*")  # a domain, a number
_ADDRESS_IN = re.compile(r"[^\s<>;,\"'‹›()]+@[^\s<>;,\"'‹›()]+")
_ENTRIES = re.compile(r"\s*[;,|]\s*")




def _an_entry(cell: str) -> bool:
    """Does a do-not-contact list's cell hold an entry: an address in any form, a domain or a
    web address, a number (not a date: '2024-03-01', '01.03.2024')?"""
    text = cell.strip()
    if "@" in text:
        return True
    if _AN_ENTRY.fullmatch(text) is None:
        return text[:4].lower() in ("http", "www.")
    return DATE_WRITTEN.fullmatch(text) is None


def _entries_of_a_line(line: str) -> list[str]:
    """A do-not-contact line's entries; a domain or a site only on a line of nothing but entries
    ('Per Lund;070-111 22 34;www.lundsmaleri.se' names Per's company's site, not a company that
    said no)."""
    parts = _entries_in(line)
    entries = [part for part in parts if _an_entry(part)]
    if len(entries) < len([part for part in parts if part.strip().strip("\ufeff")]):
        entries = [entry for entry in entries if "@" in entry or sum(ch.isdigit() for ch in entry) >= 6]
    return entries


def _entries_in(cell: str) -> list[str]:
    """A cell's entries, each between semicolons or commas: its addresses, however written ('Anna
    <a@ek.se>; Per Ek <per@ek.se>', '"Berg, Anna" <anna@x.se>'), its numbers and its domains."""
    entries = []
    for part in _ENTRIES.split(cell.strip()):
        addresses = _ADDRESS_IN.findall(part)
        if addresses:
            entries.extend(address[7:] if address[:7].lower() == "mailto:" else address for address in addresses)
        elif part:
            entries.append(part)
    return entries


def suppression_values(path: Path) -> Iterator[tuple[int, str]]:
    """A do-not-contact list's entries, (line, value): read as any list is (any format the
    import reads, any encoding), from its email, phone and domain columns when a header names
    them ('E-post;Namn', 'Email Address', 'Företag;Domän'), else from its first column (one
    entry a line, no header). A cell of several addresses ('a@x.se; b@y.se') is each of them."""
    list_file = ListFile(path, "suppress")
    header = list_file.read_header()
    named = {name for _, name in header} & {"email", "phone", "mobile_phone"}
    # a 'Domain' column: every address at it ('ekab.se', 'www.ekab.se', 'https://ekab.se/kontakt')
    domains = [column for column, name in header if name is None and _header_key(column) in _DOMAIN_HEADERS]
    # the first row is an entry, not a header: the reader found none, or a cell holds an address or
    # a number ('070 111 22 35 (mobil)' names no mobile column), or no column is named and a cell
    # is a domain ('ek.se'; 'Tel.nr' beside a named 'E-post' is a header)
    headerless = all(column == f"column {number}" for number, (column, _) in enumerate(header, start=1)) or \
        any("@" in column or sum(ch.isdigit() for ch in column) >= 6 for column, _ in header) or \
        not (named or domains) and any(_an_entry(column) for column, _ in header)
    entries_only = headerless or not (named or domains)  # no column named: every cell that holds an entry is one
    if entries_only and list_file.delimiter is not None:
        # a text file of entries, a line of one or several ('Anna <a@ek.se>; per@ek.se'), the first
        # line one too: read by line, as no delimiter a sniffer guesses splits '070 111 22 35' well
        with list_file._text() as f:
            for number, line in enumerate(_bounded_lines(f, "\n", list_file.path.name), start=1):
                entries = _entries_of_a_line(line)
                if entries:
                    yield from ((number, entry) for entry in entries)
                elif line := line.strip().lstrip("\ufeff"):  # said as a line not understood, not passed over
                    yield number, line
        return
    if entries_only and header and any(_an_entry(column) for column, _ in header):
        # the first row is an entry, not a header ('ek.se', 'Anna Svensson <anna@ek.se>', '070 111 22 35')
        for column, _ in header:
            yield from ((list_file.header_row or 1, entry) for entry in _entries_in(column) if _an_entry(entry))
    for item in list_file.fetch():
        payload = item.payload
        line = payload.get("row", 0) + (list_file.header_row or 0)  # the file's line, as an editor shows it
        extra = payload.get("extra") or {}
        for column in domains:
            for part in _SEVERAL.split(str(extra.get(column) or "")):
                if host := _DOMAIN_OF.sub("", part.split("://", 1)[-1]).split("/", 1)[0].strip(".").lower():
                    yield line, "@" + host
        if entries_only:
            for value in (*(payload.get("fields") or {}).values(), *extra.values()):
                yield from ((line, entry) for entry in _entries_in(str(value)) if _an_entry(entry))
            continue
        if not named:
            continue
        fields = payload.get("fields") or {}
        found = False
        for name in ("email", "phone", "mobile_phone"):
            value = fields.get(name)
            if not value:
                continue
            found = True
            if name == "email":  # 'a@x.se; b@y.se', '"Berg, Anna" <anna@x.se>': each address
                yield from ((line, part) for part in _entries_in(str(value)) if "@" in part)
            else:
                yield line, str(value)
        if not found and not any(extra.get(column) for column in domains):
            # a row with nothing in the named columns: its addresses and numbers in the others
            # ('Nummer' beside 'E-post'), else said as a line not understood, not passed over
            cells = [str(value) for value in (*fields.values(), *extra.values()) if value]
            entries = [entry for entry in _entries_of_a_line("; ".join(cells))  # the row as one line: a site
                       if "@" in entry or _PHONE_LIKE.match(entry.strip())]  # or an org number bars no one
            if entries:
                yield from ((line, entry) for entry in entries)
            elif cells:
                yield line, "; ".join(cells)


def preview(list_file: ListFile, rows: int = 10) -> dict[str, Any]:
    """What an import would make of the file's first rows, for a person to check the mapping."""
    with list_file._data_rows() as data:
        shown = [{"row": number, **payload} for number, payload in islice(data, rows)]
    return {"format": list_file.format, "encoding": list_file.encoding,
            "encoding_guessed": list_file.encoding_guessed, "delimiter": list_file.delimiter,
            "wrapped": list_file.wrapped,
            "sheet": list_file.sheet,
            "header_row": list_file.header_row,
            **({"other_sheets": list_file.other_sheets} if list_file.other_sheets else {}),
            "columns": [{"header": header, "field": field_name,
                         **({"fills": list_file.fallbacks[index]} if index in list_file.fallbacks else {}),
                         **({"ignored": True} if index in list_file.ignored else {}),
                         **({"withheld": True} if index in list_file.withheld else {})}
                        for index, (header, field_name) in enumerate(list_file.columns or [])],
            "rows": shown}
