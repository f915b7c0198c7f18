"""What one raw item should become, decided from its payload and its source. Pure: no I/O.

A plan names the person behind the item (with identity keys for dedup), the case and the
activity to create, or an outcome decided up front (rejected, ignored).
"""
from __future__ import annotations

import re
from collections.abc import Mapping  # not typing's: isinstance with it is several times slower
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import phonenumbers

from crm_ingest.models.records import CASE_ORIGIN, CASE_PRIORITY

from .errors import InvalidItem
from .mailtext import Forwarded, forwarded_message, is_forward_subject, own_words
from .matching import address_keys, fold, holds_legal_form, is_company_name, is_free_mail, work_domain
from .normalize import (
    DATE_WRITTEN,
    SYSTEM_ADDRESS,
    clean_body,
    clean_text,
    country_region,
    email_region,
    mistyped_provider,
    name_case,
    name_column,
    normalize_email,
    LINKEDIN_PROFILE,
    normalize_handle,
    normalize_phone,
    north_american_number,
    phone_extension,
    place_case,
    role_after_name,
    split_name,
    unknown_tld,
)
from .priority import case_priority
from .routing import attached_files
from .settings import SourceConfig, lead_source_key

ADDRESS_FIELDS = (("street", 300), ("postal_code", 20), ("city", 100), ("state_or_province", 100),
                  ("country", 100))
PERSON_FIELDS = ("first_name", "last_name", "email", "phone", "mobile_phone", "company_name", "job_title", "topic",
                 *(name for name, _ in ADDRESS_FIELDS))


@dataclass
class PersonPlan:
    scope: str  # the record type: lead or contact
    fields: dict[str, Any]
    keys: list[tuple[str, str]]  # (kind, value), strongest first
    also_scopes: tuple[str, ...] = ()  # record types to find the person among first (contact)
    match: bool = True  # False: always a new record (an import with --upsert-by none)
    match_kinds: tuple[str, ...] | None = None  # contact points that may find an existing person
    remarks: list[str] | None = None  # what was not taken from the row as given, said in its outcome


@dataclass
class ItemPlan:
    item_id: int
    record_type: str
    person: PersonPlan | None = None
    case: dict[str, Any] | None = None
    activity: dict[str, Any] | None = None
    thread_refs: list[str] = field(default_factory=list)
    outcome: str | None = None  # set when decided up front: rejected or ignored
    reason: str | None = None
    campaign: str | None = None  # overrides the source's campaign (e.g. `ingest import --campaign`)
    marketing: bool = False  # a list row: suppression applies, and a known contact is linked
    queue: str | None = None  # the queue the case or lead goes to (a rule's or the source's)
    require_entitlement: bool = False  # a case only under a valid entitlement (else review)
    append_open: bool = False  # append to the sender's newest active case, if there is one
    route_reason: str | None = None  # why it became what it became (a rule, the classifier)
    opted_out: list[tuple[str, str]] | None = None  # do-not-contact entries the row itself asks for
    opted_out_name: tuple[str | None, str | None, str | None] | None = None  # (first, last, full) of that row
    opted_out_registered: bool = False  # its numbers are in a register against telemarketing (NIX): barred as numbers
    opted_out_why: str | None = None  # the reason its entries go on the do-not-contact list with


def plan_item(item_id: int, kind: str, payload: Mapping[str, Any], source: SourceConfig) -> ItemPlan:
    """Decide what the item becomes. Bad input gives a rejected plan naming the field."""
    try:
        if not isinstance(payload, Mapping):
            raise InvalidItem("payload", f"expected an object, got {type(payload).__name__}")
        if payload.get("error") and not (kind == "email" and payload.get("from_email")):
            # (a mail the parser read a sender of is read as far as it could be: _read_email says what was not)
            raise InvalidItem("payload", f"unreadable as received: {clean_text(payload['error'])}")
        reader = _READERS.get(kind)
        if reader is None:
            raise InvalidItem("kind", f"unknown item kind {kind!r}")
        plan = reader(item_id, payload, source)
        plan.campaign = clean_text(payload.get("campaign"), 200) or source.campaign
        return plan
    except InvalidItem as exc:
        return ItemPlan(item_id, source.record_type, outcome="rejected", reason=str(exc))


def _fields_of(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = payload.get("fields", payload)
    if not isinstance(fields, Mapping):
        raise InvalidItem("fields", "expected an object of field values")
    for value in fields.values():  # a JSON source's {"first_name": {"x": 1}} named no one "{'X':"
        if type(value) is not str and isinstance(value, (Mapping, list, tuple)):
            _refuse_structured(fields)
    return fields


def _refuse_structured(fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        if isinstance(value, (Mapping, list, tuple)) and name in _TEXT_FIELDS:
            raise InvalidItem(name, f"expected text or a number, not {'an object' if isinstance(value, Mapping) else 'a list'}")


# The fields a row or form is read by: each holds text (or a number: a phone, a postal code)
_TEXT_FIELDS = frozenset({
    "first_name", "last_name", "full_name", "name", "nickname", "email", "phone", "mobile_phone", "company",
    "company_name", "job_title", "topic", "subject", "message", "description", "lead_source", "consent",
    "website", "notes", "opt_out", "opt_out_at", "do_not_call", "nix", "do_not_contact", "bounced_at", "twitter",
    "facebook", "linkedin", "street",
    "postal_code", "city", "state_or_province", "country"})


def _person(fields: Mapping[str, Any], source: SourceConfig, *, scope: str,
            email_field: str = "email", handle: tuple[str, str] | None = None, listed: bool = False) -> PersonPlan:
    """Person fields and identity keys; a valid email or phone or handle is required."""
    given_email = fields.get("email")
    if type(given_email) is str and not given_email.isprintable() and _INNER_CONTROL.search(given_email):
        # 'a@b.se\x00x' is no address: with the character dropped it would be a@b.sex, someone else's
        raise InvalidItem(email_field, f"holds a control character ({_INNER_CONTROL.search(given_email).group()!r})")
    if type(given_email) is str and len(given_email) > 400 and not _SEVERAL_ADDRESSES.search(given_email.strip()):
        # cut at 400 it lost its '@' and was said to have none
        raise InvalidItem(email_field, f"{len(given_email.strip()):,} characters: longer than any address (254 at most)")
    raw_email = _given(_without_directory_names(clean_text(given_email, 400)))
    company_as_name = _company_as_name(fields)
    first, last = _names(fields, raw_email, company_as_name)
    keys: list[tuple[str, str]] = []
    email = None
    if raw_email:
        # a list's address must exist to be marketed to ('dan@gmail.con' is a typing error to
        # fix and import again); one that wrote to us is kept whatever its domain (a reply may
        # still reach a sender's server, and the case matters more than the address)
        addresses = _emails(raw_email, email_field, deliverable=listed)
        email = addresses[0][0]
        for _, email_key in addresses:
            # and the mailbox behind it (Gmail ignores dots and +tags): a.svensson@ is asvensson+news@
            keys.extend(key for key in address_keys(email_key) if key not in keys)
    remarks: list[str] = []
    others: list[str] = []
    phone, mobile, numbers = _phones(fields, source, identified=bool(keys), remarks=remarks, others=others)
    for number in numbers:
        keys.append(("phone", number))
    if handle:
        keys.append(("handle", normalize_handle(*handle)))
    for network in ("twitter", "facebook", "linkedin", "website"):  # a form or list row naming the person's profiles
        named = fields.get(network)
        if named is not None and (named := clean_text(named, 200)):
            if network == "website":  # LinkedIn's connections export names the profile 'URL'
                if not LINKEDIN_PROFILE.match(named):
                    continue
                network = "linkedin"
            elif network == "linkedin" and not LINKEDIN_PROFILE.match(named):
                continue  # a company's page, or no link: no one's profile
            key = ("handle", normalize_handle(network, named))
            if key not in keys:
                keys.append(key)
    if not keys:
        raise InvalidItem(f"{email_field}/phone", "no email and no phone")
    person = {
        "first_name": first, "last_name": last, "email": email, "phone": phone, "mobile_phone": mobile,
        "company_name": (_text(fields, "company", 300)
                         or (_text(fields, "company_name", 300) if "company_name" in fields else None)
                         or clean_text(company_as_name, 300)),
        "job_title": _text(fields, "job_title", 200) or (
            # 'Maria Engström, Ekonomichef' in a register's 'Kontaktperson', its 'Befattning' empty
            role_after_name(fields.get("full_name")) if not (fields.get("first_name") or fields.get("last_name"))
            and type(fields.get("full_name")) is str and "," in fields["full_name"] else None),
        "topic": _text(fields, "topic", 300) or (_text(fields, "subject", 300) if "subject" in fields else None),
        **{name: None if fields.get(name) is None else _text(fields, name, limit) for name, limit in ADDRESS_FIELDS},
    }
    if raw_email and len(addresses) > 1:  # a cell of several: the others are keys, and kept in the details
        person["other_emails"] = [address for address, _ in addresses[1:]]
    if others:  # the same for numbers: '070-123 45 67 / 08-123 456'
        person["other_phones"] = others
    if (person["postal_code"] is None) != (person["city"] is None):
        _split_postal_town(person)
    if (city := person["city"]) and city.isupper() and len(city) > 3:  # a register's 'JÖNKÖPING', as a letter writes it
        person["city"] = place_case(city)
    if (code := person["postal_code"]) and code.isdigit() and type(country := fields.get("country")) is str:
        width = _POSTAL_WIDTH.get(country_region(country))  # the row's own country: its neighbours' codes differ
        if width and width - 2 <= len(code) < width:  # a spreadsheet's number cell lost its leading zeros: Oslo's 0154
            person["postal_code"] = code.zfill(width)
    return PersonPlan(scope, person, keys, remarks=remarks or None)


# Countries whose postal codes are all digits, of this many, and may begin with 0
_POSTAL_WIDTH = {"NO": 4, "FI": 5, "US": 5, "DE": 5, "FR": 5, "IT": 5, "ES": 5, "MX": 5}


# A postal code and town in one cell ('114 51 Stockholm', 'SE-411 19 GÖTEBORG', '0150 Oslo',
# 'D-10115 Berlin'), as a Swedish register's 'Postadress' or 'Postnr och ort' writes them
_POSTAL_TOWN = re.compile(r"(?:[A-Z]{1,2}-)?(\d{3} ?\d{2}|\d{4,5})\s+([^\W\d_][^\d]*)")


def _split_postal_town(person: dict[str, Any]) -> None:
    """The postal code and the town, when one of them is missing and the other holds both."""
    written = person["postal_code"] or person["city"]
    if not (written[0].isdigit() or written[1:3].find("-") >= 0):  # (every town alone ends here)
        return
    found = _POSTAL_TOWN.fullmatch(written)
    if found is not None:  # the town cased as a name is: a register's 'GÖTEBORG' is Göteborg
        person["postal_code"], person["city"] = found.group(1), name_case(found.group(2).strip())


def _names(fields: Mapping[str, Any], raw_email: str | None,
           company_as_name: str | None = None) -> tuple[str | None, str | None]:
    """(first, last) as a careful operator reads them: the name columns, else the full name (of
    two people's, the one the address is theirs), else a nickname, else the name written with
    the address ('Anna Berg <anna@berg.se>'); a whole name typed into the first name's column
    split; a switchboard's word no one's name; capitals or small letters written as names are."""
    first = _a_name(name_column(clean_text(fields.get("first_name"), 200), given=True))
    last = _a_name(name_column(clean_text(fields.get("last_name"), 200), given=False))
    if not (first or last):
        if not company_as_name:  # a register's 'Namn' of 'Berg Bygg AB': the company's, not a person's
            first, last = split_name(_one_person(fields.get("full_name") or fields.get("name"), raw_email))
        if not (first or last) and (nickname := fields.get("nickname")):
            first = clean_text(nickname, 200)  # Google's 'Nickname' of a phone-book entry
        if not (first or last) and raw_email and "<" in raw_email:
            display = raw_email[:raw_email.index("<")].strip(" \"'")
            if display and "@" not in display:
                first, last = split_name(display)
    elif last is None and first is not None and " " in first and not fields.get("full_name"):
        first, last = split_name(first)  # 'Ingrid Svensson' typed into the first name's column, the last one empty
    if last is None and first is not None and first.casefold() in _NOT_A_NAME:
        first = None  # 'Växel', 'Info', 'Kundtjänst': the company's door, not a person's name
    return name_case(_a_name(first)), name_case(_a_name(last))  # 'PETRA LUND': a greeting writes 'Petra'


_SEVERAL_ADDRESSES = re.compile(r"[;,\s]")


def _company_as_name(fields: Mapping[str, Any]) -> str | None:
    """The one name of a row with no name columns, when it is a company's ('Berg Bygg AB', 'Ek
    & Son Handelsbolag', 'Acme Ltd'), as a customer register (Fortnox, Visma) writes it."""
    if fields.get("first_name") or fields.get("last_name"):
        return None
    full = fields.get("full_name") or fields.get("name")
    return full if type(full) is str and is_company_name(full) else None


_TWO_PEOPLE = re.compile(r"\s+(?:/|&|\+|och|and|und|og)\s+", re.IGNORECASE)


def _one_person(name: Any, email: Any) -> Any:
    """Of two people's full names in one cell ('Örjan Håkansson / Lisa Persson'), the one the
    row's address is theirs by (its local part holds their first or last name), else the
    first. A couple sharing a surname ('Maria och Peter Ek') is one name, as written."""
    if type(name) is not str or not _TWO_PEOPLE.search(name):
        return name
    parts = _TWO_PEOPLE.split(name.strip(), maxsplit=1)
    if len(parts) != 2 or any(len(part.split()) < 2 for part in parts):
        return name
    local = fold(str(email or "").partition("@")[0]).replace(" ", "")
    for part in parts:
        if local and any(len(folded) >= 2 and folded in local
                         for folded in (fold(word).replace(" ", "") for word in part.split())):
            return part
    return parts[0]


# What a list writes where a person's name belongs when the row is a company's switchboard or
# shared mailbox, in Swedish and English
_NOT_A_NAME = frozenset("""
    växel vaxel växeln info information reception receptionen kundtjänst kundservice support
    order ordrar faktura fakturor ekonomi försäljning sälj switchboard office sales billing
    accounts invoices admin kontor kansli expedition
""".split())


def _with_case(plan: ItemPlan, source: SourceConfig, title: str | None, body: str | None,
               origin: str) -> ItemPlan:
    priority, why = case_priority(" ".join(t for t in (title, body) if t))
    plan.case = {
        "title": title or _first_line(body, 80) or "(no subject)",
        "description": body,
        "origin": CASE_ORIGIN[source.case_origin or origin],
        "priority": CASE_PRIORITY[priority],
        "priority_reason": why,
    }
    return plan


def _first_line(text: str | None, limit: int) -> str | None:
    """A message's first line with words in it, as a title: 'Hej!' alone says nothing, so a
    greeting line is passed over when more follows."""
    lines = [line for line in (clean_text(line, limit) for line in (text or "").split("\n")) if line]
    if len(lines) > 1 and _GREETING.fullmatch(lines[0]):
        lines = lines[1:]
    return lines[0] if lines else None


# A greeting line: a greeting alone, or one with a name that ends in its punctuation ('Hej Anna,',
# 'Dear Sir or Madam,'); 'Hej jag kan inte logga in' is no greeting but the message
_GREETING = re.compile(r"(?:hej|hejsan|hallå|tjena|god (?:morgon|dag|kväll)|hi|hello|hey)\s*[,.!:]*"
                       r"|(?:hej|hejsan|hi|hello|hey|dear|bästa|kära) [^,.!:\n]{1,40}[,.!:]+", re.IGNORECASE)


def _person_scope(source: SourceConfig) -> str:
    return "lead" if source.record_type == "lead" else "contact"


# What lists write in a cell that has no value: such a cell is blank, not an invalid address
_PLACEHOLDERS = frozenset({"-", "--", "---", "\u2013", "\u2014", ".", "?", "x", "0", "n/a", "na", "n.a.", "none",
                           "null", "nil", "unknown", "tbd", "saknas", "okänd", "ingen", "inget", "ej",
                           "-/-", "n.a", "not applicable", "not available", "uppgift saknas", "vet ej",
                           # Excel's errors, in English and Swedish: a lookup that found nothing
                           "#n/a", "#saknas!", "#value!", "#värdefel!", "#ref!", "#referens!", "#name?",
                           "#namn?", "#div/0!", "#division/0!", "#null!", "#skärning!", "#num!", "#ogiltigt!",
                           "#tal!", "#spill!", "#calc!", "#getting_data", "#error!", "#fel!", "#loading..."})
# ... of which a name may be someone's: Na (나), Nil and Null are surnames or given names
_NAME_PLACEHOLDERS = _PLACEHOLDERS - {"na", "nil", "null"}
# as lists write them ('N/A', 'n/a', 'Unknown', '#SAKNAS!'): a set lookup, no lower-casing of every value
_PLACEHOLDER_FORMS = frozenset(form for p in _PLACEHOLDERS for form in (p, p.upper(), p.capitalize(), p.title()))
_NAME_PLACEHOLDER_FORMS = frozenset(form for p in _NAME_PLACEHOLDERS
                                    for form in (p, p.upper(), p.capitalize(), p.title()))
_SEVERAL = re.compile(r"[\s,;|/]+")
_SEVERAL_NAMED = re.compile(r"[,;|]+")  # 'Anna <a@x.se>; Bo <b@y.se>': names hold spaces
_SEVERAL_NUMBERS = re.compile(r"\s*(?:[,;|/]|:::|\b(?:or|eller)\b)\s*", re.IGNORECASE)


# An Exchange address book's name for a person (Outlook's contacts export writes it in 'E-mail
# Address' for a colleague, with 'E-mail Type' EX): not an address, and not a typing error
_DIRECTORY_NAME = re.compile(r"\s*/o=[^;,|]*", re.IGNORECASE)


_INNER_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # not a line break or tab, which part addresses


def _without_directory_names(value: str | None) -> str | None:
    if value is None or ("/o=" not in value and "/O=" not in value):
        return value
    return _DIRECTORY_NAME.sub("", value).strip(" ;,|") or None


def _given(value: str | None) -> str | None:
    """None for a placeholder ('-', 'N/A', Excel's '#N/A'): the cell is blank."""
    return None if value in _PLACEHOLDER_FORMS else value


def _text(fields: Mapping[str, Any], name: str, limit: int) -> str | None:
    """A field's text, None when blank or a placeholder."""
    return _given(clean_text(fields.get(name), limit))


def _a_name(value: str | None) -> str | None:
    return None if value in _NAME_PLACEHOLDER_FORMS else value


def _emails(raw: str, field: str, deliverable: bool = False) -> list[tuple[str, str]]:
    """(address as stored, match key) of the cell's address; of each valid one, first first,
    when the cell lists several ('anna@x.se; anna.berg@gmail.com'). InvalidItem when none is.
    `deliverable`: an address on a top-level domain that does not exist is not valid either."""
    if raw.count("@") < 2:
        return [_address(raw, field, deliverable)]
    found: list[tuple[str, str]] = []
    first_error: str | None = None
    for part in (_SEVERAL_NAMED if "<" in raw else _SEVERAL).split(raw):
        if "@" not in part:
            continue
        try:
            address = _address(part, field, deliverable)
        except InvalidItem as exc:
            first_error = first_error or exc.reason  # not the error: see _phone
            continue
        if address[1] not in (key for _, key in found):
            found.append(address)
    if not found:
        raise InvalidItem(field, first_error or f"invalid email {raw[:80]!r}")
    return found


def _address(text: str, field: str, deliverable: bool) -> tuple[str, str]:
    address = normalize_email(text, field)
    if deliverable and ((why := unknown_tld(address[0])) is not None or (why := mistyped_provider(address[0]))):
        raise InvalidItem(field, f"invalid email {address[0][:80]!r}: {why}")
    return address


def _phones(fields: Mapping[str, Any], source: SourceConfig, identified: bool, remarks: list[str],
            others: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(phone, mobile phone, the valid numbers to key). Each field's first valid number, in
    E.164, read in the row's country when it names one we know (else in the source's region).
    The phone is the number to call: the phone field's, else the mobile's. A field whose number
    is not valid keeps it as entered when another contact point identifies the person (one whose
    digits a spreadsheet lost, '4.67012E+10', is not kept), and `remarks` says so; when nothing
    does, the item is invalid, the reason naming the field the number was in."""
    first_bad: tuple[str, str, str] | None = None
    country = fields.get("country")
    named = country_region(country) if type(country) is str else None
    region = named or source.region
    found: dict[str, tuple[str, bool]] = {}  # field -> (number, valid)
    numbers: list[str] = []  # the valid ones, without an extension: the keys
    for name in ("phone", "mobile_phone"):
        raw = fields.get(name)
        if raw is None:
            continue
        raw = _given(clean_text(raw, 64))
        if not raw:
            continue
        raw = as_excel_wrote_it(raw)
        if (raw[4:5] == "-" or raw[2:3] in ("-", ".", "/")) and DATE_WRITTEN.fullmatch(raw):
            # '2024-03-04', a date cell in the phone's column: its digits are no one's number
            first_bad = first_bad or (raw, name, f"a date, not a phone number: {raw[:40]!r}")
            remarks.append(f"{name} {raw!r} not kept: a date, not a phone number")
            continue
        number, why = _valid_number(raw, region, name)  # why: the whole cell is not one number
        read_in = region
        if number is None and named is None and (number := north_american_number(raw, region)) is not None:
            why, read_in = None, "US"  # '(415) 555-0132' in a row naming no country: not ours, American by its shape
        if number is None and named is None and (by_address := _address_region(fields)) not in (None, region) \
                and not _possible_here(raw, region):
            # '020 7946 0958' beside anna@firma.co.uk, in a row naming no country: British by the
            # address. Only a number that could not even be one of ours: a mistyped one of ours
            # ('070-123 456', a digit short) must not become a valid foreign number and a key
            number, _ = _valid_number(raw, by_address, name)
            if number is not None:
                why, read_in = None, by_address
        if number is None:
            first_bad = first_bad or (raw, *why)
            lost = _DIGITS_LOST.search(why[1]) is not None
            remarks.append(f"{why[0]} {raw!r} " + ("not kept" if lost else "kept as written")
                           + ": " + why[1].partition(": ")[2])
            if lost:
                continue
            found[name] = (raw, False)
            continue
        if number not in numbers:
            numbers.append(number)
        if why is not None:  # a cell of several numbers: each valid one a key, kept aside
            for part in numbers_in(raw):
                try:
                    further = normalize_phone(part, read_in, name)
                except InvalidItem:
                    continue
                if further not in numbers:
                    numbers.append(further)
                    others.append(further)
        if why is None and (extension := phone_extension(raw, read_in)):
            found[name] = (f"{number};ext={extension}", True)  # RFC 3966's way to write it
        else:
            found[name] = (number, True)
    if not numbers:
        if first_bad is None:
            return None, None, []
        if not identified:
            raise InvalidItem(first_bad[1], first_bad[2])
    phone = found.get("phone")
    if phone is None or not phone[1] and numbers:  # no phone, or a bad one beside a good mobile: the mobile
        phone = found.get("mobile_phone", phone)
    # (none valid: the first kept as entered; the email identifies the person)
    mobile = found.get("mobile_phone")
    return phone[0] if phone else None, mobile[0] if mobile else None, numbers


_DIGITS_LOST = re.compile(r"scientific notation")
# What Excel makes of a number cell written out: '701,234,570' (thousands separators), '701 234 569,00'
# and '701234567.0' (decimals): the digits before them are the number
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+")
_DECIMALS = re.compile(r"([\d\s\u00a0\u202f]*\d)[.,]0{1,2}")


def as_excel_wrote_it(raw: str) -> str:
    if raw[-1] != "0" and "," not in raw:  # nearly every number: no scan
        return raw
    if _GROUPED.fullmatch(raw):
        return raw.replace(",", "")
    found = _DECIMALS.fullmatch(raw)
    return found.group(1) if found is not None else raw


def _address_region(fields: Mapping[str, Any]) -> str | None:
    """The region the row's (first) email's country domain names, if any (see normalize.email_region)."""
    email = fields.get("email")
    if type(email) is not str:
        return None
    first = next((part for part in re.split(r"[;,\s<>]+", email) if "@" in part), None)
    return email_region(first)


def _possible_here(raw: str, region: str) -> bool:
    """Could the cell be one of the region's numbers, mistyped? It could unless it is longer
    than any of the region's phones ('020 7946 0958' has ten digits after its 0, a Swedish
    number at most nine): a digit short or one too many, it is ours, kept as written."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return True
    digits = re.sub(r"\D", "", raw)
    if metadata.national_prefix and not raw.lstrip().startswith(("+", metadata.national_prefix)) \
            and not digits.startswith("00"):
        return False  # ours are written with their trunk prefix: '412 34 567' beside ola@firma.no is Norway's
    national = digits[1:] if digits.startswith("0") and not digits.startswith("00") else digits
    longest = max((*metadata.mobile.possible_length, *metadata.fixed_line.possible_length), default=0)
    return len(national) <= longest


def _valid_number(raw: str, region: str, field: str) -> tuple[str | None, tuple[str, str] | None]:
    """The cell's number in E.164, or the first valid one of a cell listing several
    ('070-123 45 67 / 08-12 34 56', Google's ' ::: '), or None; and why the whole cell is not
    one number, as (field, reason), or None when it is."""
    try:
        return normalize_phone(raw, region, field), None
    except InvalidItem as exc:
        # its words, not the error: the error's context holds the frames it was raised in, and
        # they hold this one (a cycle per bad number, freed only by the collector, which a
        # chunk runs without)
        why = (exc.field, exc.reason)
    for part in numbers_in(raw):
        try:
            return normalize_phone(part, region, field), why  # one of several: the cell's own words kept
        except InvalidItem:
            continue
    return None, why


def numbers_in(raw: str) -> list[str]:
    """The numbers of a cell listing several, each of at least six digits; none when it does
    not (a '/' inside one number, as in '030/1234567', splits off no number of its own)."""
    if not _SEVERAL_NUMBERS.search(raw):
        return []
    parts = [part for part in _SEVERAL_NUMBERS.split(raw) if sum(ch.isdigit() for ch in part) >= 6]
    return parts if len(parts) >= 2 else []


# A list's fields that no lead column holds: kept in its details, never dropped
_KEPT_FIELDS = (("consent", 200), ("website", 300), ("linkedin", 300), ("notes", 2000), ("nickname", 200))


# A person's profile in a website column (LinkedIn's connections export names it 'URL'): kept
# under the network's name, not as the company's website
_SOCIAL_PROFILE = re.compile(
    r"(?:https?://)?(?:[a-z]{2,3}\.|www\.|m\.)?(linkedin\.com|twitter\.com|x\.com|facebook\.com|instagram\.com)/",
    re.IGNORECASE)
_SOCIAL_NETWORKS = {"linkedin.com": "linkedin", "twitter.com": "twitter", "x.com": "twitter",
                    "facebook.com": "facebook", "instagram.com": "instagram"}


def _read_list_row(item_id: int, payload: Mapping[str, Any], source: SourceConfig) -> ItemPlan:
    if reason := clean_text(payload.get("ignore"), 200):  # the list reader's verdict: a repeated header
        return ItemPlan(item_id, source.record_type, outcome="ignored", reason=reason)
    fields = _fields_of(payload)
    said = _opted_out(fields)
    if said is not None:
        # the list itself says this person must not be contacted: no lead, no link, whatever
        # else the row holds; and the addresses or numbers they opted out of go on the
        # do-not-contact list, so the next list that has them does not make them a lead again
        column, value, channels = said
        entries, left_off = _contact_points(fields, source, channels)
        return ItemPlan(item_id, source.record_type, outcome="ignored",
                        reason=f"suppressed: the list marks {_OPTED_OUT_SAID[column].format(value=value)}"
                        + (f"; {', '.join(left_off)} left off the do-not-contact list: a company's fixed line "
                           "(its switchboard) reaches others too" if left_off else ""),
                        opted_out=entries, opted_out_registered="registered phone" in channels,
                        opted_out_why=_OPTED_OUT_WHY[column],
                        opted_out_name=(clean_text(fields.get("first_name"), 200), clean_text(fields.get("last_name"), 200),
                                        clean_text(fields.get("full_name") or fields.get("name"), 300)))
    plan = _read_row(item_id, payload, source, listed=True)
    if plan.person is not None and _an_example(plan.person.fields):
        name = " ".join(n for n in (plan.person.fields["first_name"], plan.person.fields["last_name"]) if n)
        return ItemPlan(item_id, source.record_type, outcome="ignored",
                        reason=f"a template's example row ({name or plan.person.fields['email']!r}), not a person")
    return plan


# A template's example row left above the list ('Exempel Exempelsson', exempel@exempel.se; 'John
# Example', firstname.lastname@example.com): two of its name and address say so, as no person's do
_EXAMPLE_WORDS = frozenset({"exempel", "exempelsson", "example", "förnamn", "fornamn", "efternamn", "firstname",
                            "lastname", "first name", "last name", "namn", "name"})


def _an_example(fields: Mapping[str, Any]) -> bool:
    first, last = fields["first_name"], fields["last_name"]
    said = (first is not None and first.casefold() in _EXAMPLE_WORDS) + \
        (last is not None and last.casefold() in _EXAMPLE_WORDS)
    if not said:  # (every real row ends here)
        return False
    local, _, domain = (fields.get("email") or "").casefold().partition("@")
    said += any(part in _EXAMPLE_WORDS for part in local.replace("_", ".").split(".")) + \
        (domain.split(".")[0] in ("exempel", "example"))
    return said >= 2


_OPTED_OUT_SAID = {"opt_out": "the person opted out ({value!r})", "opt_out_at": "the person opted out on {value}",
                   "bounced_at": "the address as bounced on {value} (an address that bounces is not mailed again)",
                   "do_not_call": "the person as not to be called ({value!r})",
                   "nix": "the person as in a register against telemarketing ({value!r})",
                   "do_not_contact": "the person as not to be contacted ({value!r})"}
_OPTED_OUT_WHY = {"opt_out": "the list marks the person opted out", "opt_out_at": "the list marks the person opted out",
                  "bounced_at": "the list marks the address as bounced", "do_not_call": "the list marks the person "
                  "as not to be called", "nix": "the list marks the number in a register against telemarketing",
                  "do_not_contact": "the list marks the person as not to be contacted"}
# An opt-out column, what its 'yes' puts on the do-not-contact list
_OPT_OUTS = (("opt_out", ("email",)), ("opt_out_at", ("email",)), ("bounced_at", ("email",)), ("do_not_call", ("phone",)),
             ("nix", ("registered phone",)), ("do_not_contact", ("email", "phone")))


def _opted_out(fields: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]] | None:
    """(the column's field, its value, the channels opted out of) when a column says the person
    opted out: a 'yes' ('1', 'Ja', 'x', 'Unsubscribed') or a plausible date ('2024-03-01
    10:12', '01.03.2024'; not MySQL's 0000-00-00 nor 1970-01-01); None otherwise."""
    found = None
    for name, channels in _OPT_OUTS:
        if fields.get(name) is None:  # (most lists have none of these columns)
            continue
        value = clean_text(fields.get(name), 100)
        if value and (value.casefold() in _YES or _a_date(value)):
            if found is None:
                found = (name, value, channels)
            else:  # two columns say so: every channel they name
                found = (found[0], found[1], tuple(dict.fromkeys((*found[2], *channels))))
    return found


_DATE = re.compile(r"(\d{4})[-/.]?(\d{1,2})[-/.]?(\d{1,2})(?:[ T].*)?|(\d{1,2})[./-](\d{1,2})[./-](\d{4})(?: .*)?")
_MONTHS = {name: number for number, names in enumerate((
    "jan january januari", "feb february februari", "mar march mars", "apr april", "may maj", "jun june juni",
    "jul july juli", "aug august augusti", "sep sept september", "oct okt october oktober", "nov november",
    "dec december"), start=1) for name in names.split()}
_WORDED = re.compile(r"(?:(\d{1,2})\.?\s+([^\W\d_]+)\.?|([^\W\d_]+)\.?\s+(\d{1,2}),?)\s+(\d{4})(?:\s.*)?")


def _a_date(value: str) -> bool:
    """A date a list writes for when something happened ('2024-03-01 10:12', '01.03.2024',
    '03/28/2024', '20240301', '1 mars 2024', 'Mar 1, 2024', Excel's day number 45352): a real
    day from 1990 to next year."""
    text = value.strip()
    if text.isdigit() and len(text) == 5:  # a spreadsheet's day number (from 1899-12-30) written out
        day = date(1899, 12, 30) + timedelta(days=int(text))
        return 1990 <= day.year <= datetime.now(timezone.utc).year + 1
    if (found := _DATE.fullmatch(text)) is not None:
        year, month, day = (found.group(1), found.group(2), found.group(3)) if found.group(1) else \
            (found.group(6), found.group(5), found.group(4))
        month, day = (month, day) if int(month) <= 12 else (day, month)  # 03/28/2024 as America writes it
    elif (found := _WORDED.fullmatch(text)) is not None:
        month = _MONTHS.get((found.group(2) or found.group(3)).casefold())
        day, year = found.group(1) or found.group(4), found.group(5)
        if month is None:
            return False
    else:
        return False
    try:
        when = date(int(year), int(month), int(day))
    except ValueError:  # 31.02.2024
        return False
    return 1990 <= when.year <= datetime.now(timezone.utc).year + 1


def _contact_points(fields: Mapping[str, Any], source: SourceConfig, channels: tuple[str, ...]
                    ) -> tuple[list[tuple[str, str]], list[str]]:
    """An opted-out row's addresses and numbers, of the channels it opted out of, as do-not-
    contact entries (kind, value): each read on its own, so an address with a typing error
    does not lose the number beside it (nor the reverse); and the numbers left off. A mobile is
    one person's; a fixed line is a household's (NIX registers the number: no one there is to
    be called), unless the row names a company, whose fixed line is its switchboard: one
    colleague's opt-out must not silence everyone who answers it."""
    left_off: list[str] = []
    at_a_company = "registered phone" not in channels and bool(  # a register's number is the number's own
        _text(fields, "company", 300) or _text(fields, "company_name", 300)
        or any(work_domain(part) for part in re.split(r"[;,\s]+", clean_text(fields.get("email"), 2000) or "") if "@" in part))
    entries: set[tuple[str, str]] = set()
    raw = clean_text(fields.get("email"), 2000)
    if "email" in channels and raw:
        for part in re.split(r"[;,\s]+", raw):
            try:
                address = _address(part, "email", False)
            except InvalidItem:
                continue
            entries.update(("email", key) for kind, key in address_keys(address[1]) if kind in ("email", "email_canonical"))
    if "phone" in channels or "registered phone" in channels:
        country = fields.get("country")
        region = (country_region(country) if type(country) is str else None) or source.region
        for name in ("phone", "mobile_phone"):
            cell = _given(clean_text(fields.get(name), 64))
            if cell:
                number, _ = _valid_number(cell, region, name)
                if number is None:
                    continue
                if not at_a_company or _ones_own(number):
                    entries.add(("phone", number))
                elif number not in left_off:
                    left_off.append(number)
    return sorted(entries), left_off


def _ones_own(number: str) -> bool:
    """A mobile (or a number that may be one): one person's. A fixed line is a switchboard's or
    a household's, and one person's opt-out must not silence everyone who answers it."""
    kind = phonenumbers.number_type(phonenumbers.parse(number.split(";")[0]))
    return kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


# What a list writes in an opt-out column for 'yes, opted out'
_YES = frozenset({"1", "true", "yes", "y", "ja", "j", "x", "sant", "✓", "✔", "opted out", "opt out", "opt-out",
                  "unsubscribed", "avregistrerad", "avanmäld", "spärrad"})


def _read_row(item_id: int, payload: Mapping[str, Any], source: SourceConfig, listed: bool = False) -> ItemPlan:
    fields = _fields_of(payload)
    plan = ItemPlan(item_id, source.record_type,
                    person=_person(fields, source, scope=_person_scope(source), listed=listed))
    if type(withheld := payload.get("withheld")) is str:  # the reader left a cell out ('Org.nr' of a sole trader)
        plan.person.remarks = [withheld[:300], *(plan.person.remarks or ())]
    if source.record_type == "lead":
        plan.marketing = True
        plan.person.also_scopes = ("contact",)
        lead_source = lead_source_key(clean_text(fields.get("lead_source"), 50))
        if lead_source:
            plan.person.fields["lead_source"] = lead_source
        extra = payload.get("extra")
        kept = {name: value for name, limit in _KEPT_FIELDS if (value := clean_text(fields.get(name), limit))}
        if "notes" in kept:  # a note keeps its lines ('Met at the stand\nWants a quote by May')
            kept["notes"] = _note(fields["notes"])
        if "website" in kept and (network := _SOCIAL_PROFILE.match(kept["website"])):
            kept[_SOCIAL_NETWORKS[network.group(1).lower()]] = kept.pop("website")
        details = {"row": payload.get("row"), "file": clean_text(payload.get("file"), 300),
                   "fields": kept or None, "moved": clean_text(payload.get("moved"), 300),
                   "other_emails": plan.person.fields.pop("other_emails", None),
                   "other_phones": plan.person.fields.pop("other_phones", None),
                   "extra": {clean_text(k, 100): clean_text(v, 1000) for k, v in extra.items()}
                   if isinstance(extra, Mapping) and extra else None}
        plan.person.fields["details"] = {k: v for k, v in details.items() if v is not None} or None
    elif source.record_type == "contact" and fields.get("notes") is not None and (note := _note(fields["notes"])):
        # a contact has no details; a list's note on it becomes a note activity (pipeline._note_for_a_contact)
        plan.person.fields["details"] = {"row": payload.get("row"), "file": clean_text(payload.get("file"), 300),
                                         "fields": {"notes": note}}
    if source.record_type == "case":
        # a form's free text is its 'message': the case's description, and what its priority and
        # (without a subject) its title are read from
        _with_case(plan, source, clean_text(fields.get("subject") or fields.get("topic")),
                   clean_body(fields.get("description") or fields.get("message")), "web")
    return plan


def _note(value: Any) -> str | None:
    """A note as written, line by line: each line single-spaced, blank lines between kept once."""
    lines = [" ".join(line.split()) for line in (clean_body(str(value), 4000) or "").split("\n")]
    return "\n".join(line for at, line in enumerate(lines) if line or (at and lines[at - 1]))[:2000].strip() or None


def _read_form(item_id: int, payload: Mapping[str, Any], source: SourceConfig) -> ItemPlan:
    plan = _read_row(item_id, payload, source)
    plan.marketing = False  # someone wrote to us: an inbound request, not a list
    plan.person.also_scopes = ()
    fields = _fields_of(payload)
    message = clean_body(fields.get("message") or fields.get("description"))
    plan.activity = {"kind": "form", "subject": clean_text(fields.get("subject") or payload.get("form")),
                     "body": message, "sender": plan.person.fields["email"] if plan.person else None}
    if plan.case is not None and message:
        plan.case["description"] = message
    if plan.person is not None and not plan.person.fields.get("topic") and message:
        plan.person.fields["topic"] = _first_line(message, 120)  # a lead's topic (Dynamics asks for one)
    utm = payload.get("utm")
    if plan.person is not None:
        plan.person.fields["details"] = {
            "form": clean_text(payload.get("form"), 100),
            "utm": {clean_text(k, 50): clean_text(v, 200) for k, v in utm.items()}
            if isinstance(utm, Mapping) else None,
        }
    return plan


def _read_email(item_id: int, payload: Mapping[str, Any], source: SourceConfig) -> ItemPlan:
    if reason := _automatic_mail(payload):
        return ItemPlan(item_id, source.record_type, outcome="ignored", reason=reason)
    from_email = clean_text(payload.get("from_email"), 400)
    if not from_email:
        raise InvalidItem("from", "no sender address")
    subject = clean_text(payload.get("subject"), 300)
    body = clean_body(payload.get("text"))
    person = None
    reply_to = clean_text(payload.get("reply_to"), 400)
    if reply_to and _sent_on_behalf(from_email, reply_to, payload.get("to")):
        first, last = _mail_name(payload.get("reply_to_name"))
        try:
            person = _person({"email": reply_to, "first_name": first, "last_name": last, "topic": subject},
                             source, scope=_person_scope(source), email_field="reply_to")
        except InvalidItem:
            person = None  # an address no one can be reached at: the mail is From's
    forwarded = False
    if person is None and (forward := _customers_forwarded(payload, from_email, body)) is not None:
        first, last = _mail_name(forward.name)
        try:
            person = _person({"email": forward.email, "first_name": first, "last_name": last,
                              "topic": forward.subject or subject}, source, scope=_person_scope(source),
                             email_field="forwarded")
        except InvalidItem:
            person = None  # an address in the forwarded text no one can be reached at: the mail is From's
        else:
            forwarded = True
            subject = clean_text(forward.subject, 300) or subject
            forwarder = f"{clean_text(payload.get('from_name'), 200)} <{from_email}>" if payload.get("from_name") \
                else from_email
            body = "\n\n".join(part for part in (f"Forwarded by {forwarder}" + (":" if forward.note else ""),
                                                  clean_body(forward.note), clean_body(forward.text)) if part)
    if person is None:
        first, last = _mail_name(payload.get("from_name"))
        person = _person({"email": from_email, "first_name": first, "last_name": last,
                          "topic": subject}, source, scope=_person_scope(source), email_field="from")
    if not forwarded:
        body = own_words(subject, body)  # a reply's quoted history stays in the item's payload, off the record
    if problem := clean_text(payload.get("error"), 500):  # what the mail parser could not read, said where it shows
        body = "\n\n".join(part for part in (body, f"(Part of this mail could not be read: {problem})") if part)
    if files := attached_files(payload):  # shown where an agent reads the mail: the matter may be in one
        body = "\n\n".join(part for part in (body, "Attachments: " + ", ".join(map(_attachment, files[:20]))
                                              + (f" and {len(files) - 20} more" if len(files) > 20 else "")) if part)
    plan = ItemPlan(item_id, source.record_type, person=person)
    plan.activity = {"kind": "email", "subject": subject, "body": body, "sender": person.fields["email"],
                     "message_id": clean_text(payload.get("message_id"), 998),
                     "occurred_at": _parse_time(payload.get("date"))}
    references = payload.get("references") or []
    if isinstance(references, str):
        references = references.split()
    refs = [payload.get("in_reply_to"), *(references if isinstance(references, list) else [])]
    plan.thread_refs = [ref for ref in (clean_text(r, 998) for r in refs if isinstance(r, str)) if ref]
    if source.record_type == "case":
        _with_case(plan, source, subject, body, "email")
    return plan


def _mail_name(name: Any) -> tuple[str | None, str | None]:
    """A mail's display name as first and last name; none when it is a company's or a
    department's ('Kund AB Ekonomi', 'Acme Ltd Support'): no person is called so."""
    if isinstance(name, str):
        name = re.sub(r"\s*\([^()]*\)\s*$", "", name) or name  # 'Berg, Anna (Kund AB)': her workplace, said aside
        if holds_legal_form(name) or is_company_name(name):
            return None, None
    return split_name(name)



def _attachment(entry: Mapping[str, Any]) -> str:
    name = clean_text(entry.get("name"), 200) or clean_text(entry.get("content_type"), 100) or "a file"
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        return name
    return f"{name} ({size / 1_000_000:.1f} MB)" if size >= 1_000_000 else f"{name} ({max(1, round(size / 1000))} kB)"


def _customers_forwarded(payload: Mapping[str, Any], from_email: str, body: str | None) -> Forwarded | None:
    """The message a colleague forwarded to the mailbox (From of the domain it is sent to), when
    its writer is someone outside: the case is theirs. An attached message first, else one
    quoted in the text under a mail program's marker."""
    domain = from_email.rpartition("@")[2].casefold()
    to = [a for a in payload.get("to") or [] if isinstance(a, str)] if isinstance(payload.get("to"), list) else []
    if is_free_mail(domain) or not any(a.rpartition("@")[2].casefold() == domain and a.casefold() != from_email.casefold()
                                       for a in to):
        return None  # not a colleague writing to the mailbox (a customer cc'ing her own colleague is no forward)
    attached = payload.get("forwarded")
    if isinstance(attached, Mapping) and isinstance(attached.get("from_email"), str):
        forward = Forwarded(attached["from_email"], attached.get("from_name"), attached.get("subject"),
                            str(attached.get("text") or ""), body or "")
    elif is_forward_subject(payload.get("subject")):  # a reply quoting a customer is no forward
        forward = forwarded_message(body, outside_of=domain)
    else:
        return None
    if forward is None or forward.email.rpartition("@")[2].casefold() == domain or SYSTEM_ADDRESS.match(forward.email):
        return None
    return forward


def _sent_on_behalf(from_email: str, reply_to: str, to: Any) -> bool:
    """Whether the mail's writer is its Reply-To, not its From: a web form or a shop's contact
    page mails the support address from the site's own address ('wordpress@', 'noreply@', or
    any address of the domain it writes to) with the visitor as Reply-To. Taking From, every
    such case would be the site's, one contact for every visitor."""
    if reply_to.casefold() == from_email.casefold() or "@" not in reply_to:
        return False
    if SYSTEM_ADDRESS.match(from_email):
        return True
    domain = from_email.rpartition("@")[2].casefold()
    return isinstance(to, list) and any(isinstance(address, str) and address.rpartition("@")[2].casefold() == domain
                                        and reply_to.rpartition("@")[2].casefold() != domain for address in to)


def _read_post(item_id: int, payload: Mapping[str, Any], source: SourceConfig) -> ItemPlan:
    """A post: its author (the handle is a contact point), and threading by post ids: a reply
    names the post it answers and its conversation's first post, so it finds their case."""
    if reason := clean_text(payload.get("ignore"), 200):  # the connector's verdict: a retweet of our own post
        return ItemPlan(item_id, source.record_type, outcome="ignored", reason=reason)
    network = clean_text(payload.get("network"), 40) or source.name
    author_id = clean_text(payload.get("author_id"), 40)
    # an author missing from the API's answer is still someone: known by the network's user id
    handle = clean_text(payload.get("handle"), 100) or (f"id:{author_id}" if author_id else None)
    if not handle:
        raise InvalidItem("handle", "post without an author handle")
    text = clean_body(payload.get("text"), 10_000)
    if not text:
        raise InvalidItem("text", "empty post")
    first, last = split_name(payload.get("author_name"))
    fields = {"first_name": first, "last_name": last, "email": payload.get("email"),
              "phone": payload.get("phone")}
    person = _person(fields, source, scope=_person_scope(source), handle=(network, handle))
    person.fields["topic"] = clean_text(text, 120)
    plan = ItemPlan(item_id, source.record_type, person=person)
    message_id = _post_ref(network, payload.get("post_id"))
    plan.activity = {"kind": "post", "subject": clean_text(text, 120), "body": text,
                     "sender": "@" + handle.lstrip("@"), "message_id": message_id,
                     "occurred_at": _parse_time(payload.get("created_at"))}
    refs = (_post_ref(network, payload.get(key)) for key in ("in_reply_to_post_id", "conversation_id"))
    plan.thread_refs = list(dict.fromkeys(ref for ref in refs if ref and ref != message_id))
    if source.record_type == "case":
        _with_case(plan, source, clean_text(text, 80), text, network if network in CASE_ORIGIN else "web")
    return plan


def _post_ref(network: str, post_id: Any) -> str | None:
    """A post's id as a message id ('twitter:post:1578516295611748353'), unique across networks."""
    if isinstance(post_id, bool) or not isinstance(post_id, (str, int)):
        return None
    post_id = clean_text(str(post_id), 100)
    return f"{network}:post:{post_id}" if post_id else None


def _automatic_mail(payload: Mapping[str, Any]) -> str | None:
    """Auto-replies, bounces and bulk mail are ignored, never cases."""
    headers = payload.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise InvalidItem("headers", "expected an object of header names and values")
    headers = {str(k).lower(): str(v).lower() for k, v in headers.items()}
    if "multipart/report" in headers.get("content-type", "") or "x-failed-recipients" in headers or \
            _MAIL_SYSTEM.match(str(payload.get("from_email") or "")):
        return "bounce"
    if headers.get("auto-submitted", "no") != "no" or "x-autoreply" in headers or "x-autorespond" in headers \
            or headers.get("precedence") == "auto_reply" or headers.get("return-path", "").strip() == "<>":
        return "auto-reply"  # a null sender (RFC 3834): only bounces, auto-replies and receipts have one
    if headers.get("precedence") in ("bulk", "junk", "list") or "list-unsubscribe" in headers:
        return "bulk mail"
    subject = str(payload.get("subject") or "")
    if _AUTO_REPLY_SUBJECT.match(subject):
        return "auto-reply"  # a mail program's that says so only in its subject
    if str(payload.get("calendar") or "").upper() == "REPLY":
        return "calendar reply"  # an attendee's answer to an invitation ('Accepterat: Uppstartsmöte')
    text = str(payload.get("text") or "")
    if _RECEIPT_SUBJECT.match(subject) and len(text) < 1000 and _RECEIPT_TEXT.search(text):
        return "read receipt"  # Outlook's, sent as plain text ('Läst: Offert' ... 'lästes den ...')
    return None


# What mail programs put before an automatic reply's subject, in Swedish, English and the
# languages around them ('Autosvar: Frånvarande', 'Automatic reply: Re: Offert')
_AUTO_REPLY_SUBJECT = re.compile(
    r"\s*(?:automatiskt svar|autosvar|automatisk svar|automatic reply|auto[- ]?reply"
    r"|out of (?:the )?office(?: auto[- ]?reply)?"
    r"|frånvaromeddelande|abwesenheitsnotiz|automatische antwort|réponse automatique|automaattinen vastaus"
    r"|poissaoloilmoitus)\s*[:\-]", re.IGNORECASE)


# What a plain-text read receipt says (a person's 'Read: the attached contract' says none of it)
_RECEIPT_TEXT = re.compile(r"\b(?:was read|were read|lästes|har lästs|wurde gelesen|a été lu|luettiin|blev læst|ble lest)\b",
                           re.IGNORECASE)
_MAIL_SYSTEM = re.compile(r"(mailer-daemon|postmaster)(@|$)", re.IGNORECASE)  # also a bare one, no domain

# What Outlook and other mail programs put before a read receipt's subject
_RECEIPT_SUBJECT = re.compile(r"\s*(?:läst|oläst|read|not read|gelesen|ungelesen|lu|non lu|luettu|læst|lest|lezen"
                              r"|gelezen)\s*:\s", re.IGNORECASE)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


# Lead Ads field names (Facebook's standard questions) -> ours
_LEADGEN_FIELDS = {"email": "email", "full_name": "full_name", "first_name": "first_name", "last_name": "last_name",
                   "phone_number": "phone", "company_name": "company", "job_title": "job_title",
                   "work_email": "email", "work_phone_number": "phone"}


def _leadgen_mapping(field_map: Any) -> Mapping[str, str]:
    """Facebook's standard questions, with the form's own questions on top: the source's
    `field_map` (question name -> our field), which the connector puts in the payload."""
    if not isinstance(field_map, Mapping):
        return _LEADGEN_FIELDS
    return {**_LEADGEN_FIELDS, **{str(k): v for k, v in field_map.items() if isinstance(v, str)}}


def _read_leadgen(item_id: int, payload: Mapping[str, Any], source: SourceConfig) -> ItemPlan:
    """A Facebook Lead Ads lead: the webhook lands its ids; the person's answers (field_data)
    come from the Graph API. Until they are fetched the item waits in review, saying so."""
    data = payload.get("field_data")
    if not isinstance(data, list):
        return ItemPlan(item_id, source.record_type, outcome="review",
                        reason=f"Lead Ads lead {clean_text(payload.get('leadgen_id'), 40)}: its answers are not "
                               "fetched from the Graph API yet (the Facebook connector fetches them)")
    mapping = _leadgen_mapping(payload.get("field_map"))
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for entry in data:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("values"), list):
            continue
        name = clean_text(entry.get("name"), 100) or ""
        value = ", ".join(clean_text(v, 500) or "" for v in entry["values"] if isinstance(v, (str, int, float)))
        # a question as the form's builder wrote it ('EMAIL', 'Full Name') is Facebook's own one
        # ('email', 'full_name') when it is not one the field map names
        standard = "_".join(name.casefold().replace("-", " ").split())
        if name in mapping:
            fields.setdefault(mapping[name], value)
        elif standard in _LEADGEN_FIELDS:
            fields.setdefault(_LEADGEN_FIELDS[standard], value)
        elif name:
            extra[name] = value
    plan = _read_form(item_id, {"form": payload.get("form_id"), "fields": fields}, source)
    if plan.person is not None:
        plan.person.fields["details"] = {"leadgen_id": clean_text(payload.get("leadgen_id"), 40),
                                         "form_id": clean_text(payload.get("form_id"), 40),
                                         "ad_id": clean_text(payload.get("ad_id"), 40), "answers": extra or None}
    return plan


_READERS = {"row": _read_list_row, "form": _read_form, "email": _read_email, "post": _read_post,
            "leadgen": _read_leadgen}
