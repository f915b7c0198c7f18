"""Rules-based matching of two records: match keys, blocking keys and a scored decision. Pure: no I/O.

Stored values stay as entered; the functions here only derive keys from them. A record is a
mapping with any of first_name, last_name (or full_name), email/emails, phone/mobile_phone/phones,
company_name (an account's `name`), handle/handles, birth_date, website_domain, city.

`blocking_keys` says what a record is indexed under, so that candidates are found by exact
lookups; `score` compares one candidate pair under a `RuleSet` and decides merge, review or new.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from .errors import ConfigError, InvalidItem
from .normalize import clean_text, normalize_email, normalize_phone, split_name

# -- match keys ------------------------------------------------------------------------------------

# Letters that carry no combining mark to drop but still fold (casefold() already turns ß into ss).
_FOLD_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l",
                               "þ": "th", "ı": "i", "ŋ": "n"})
_DROPPED = re.compile(r"['’`´.]")  # gone without a gap: O'Brien -> obrien, Inc. -> inc
_GAPS = re.compile(r"[\W_]+")  # any other punctuation or space run is one space


@lru_cache(maxsize=65536)  # names and companies repeat across a list
def fold(text: str) -> str:
    """Lower case without diacritics or punctuation, single-spaced: 'Åsa-Britt Jönsson' ->
    'asa britt jonsson', 'Ørjan' -> 'orjan', 'Weiß' -> 'weiss'. '' when nothing is left."""
    if not text:
        return ""
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_FOLD_LETTERS))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _GAPS.sub(" ", _DROPPED.sub("", text)).strip()


# Nicknames and spelling variants -> one canonical first name. A nickname shared by two names
# (Chris, Alex, Sam, Charlie, Jo) is left out: guessing one would merge different people.
_NICKNAMES_OF = {
    # English
    "robert": "bob bobby bobbie rob robbie robby robban",
    "william": "bill billy will willy willie wilhelm vilhelm ville",
    "elizabeth": "liz lizzie lizzy beth betty betsy bess elisabeth elisabet lisbeth bettan lisa lise",
    "katherine": "kate katie katy kathy cathy kat kitty catherine katharine kathryn katarina "
                 "katharina catharina kattis kajsa",
    "james": "jim jimmy jamie",
    "michael": "mike mikey mick mickey",
    "thomas": "tom tommy tomas tompa",
    "richard": "rick ricky rich richie dick",
    "david": "dave davey",
    "daniel": "dan danny danne",
    "joseph": "joe joey",
    "stephen": "steve stevie steven",
    "matthew": "matt matty",
    "andrew": "andy drew",
    "anthony": "tony",
    "edward": "ed eddie ted teddy",
    "nicholas": "nick nicky",
    "peter": "pete",
    "benjamin": "ben benny",
    "frederick": "fred freddie freddy",
    "jennifer": "jen jenny jenni",
    "jessica": "jess jessie",
    "margaret": "maggie meg peggy",
    "susan": "sue susie suzy",
    "deborah": "debbie deb debra",
    "rebecca": "becky becca",
    "victoria": "vicky vicki tori",
    "gregory": "greg",
    "jeffrey": "jeff geoffrey",
    "lawrence": "larry laurence",
    "timothy": "tim timmy",
    "philip": "phil phillip",
    "ronald": "ron ronnie",
    "donald": "don donnie",
    "abigail": "abby abbie",
    "amanda": "mandy",
    "charles": "chuck",
    "patricia": "patty trish",
    "john": "johnny jack",
    "kenneth": "kenny",
    # Swedish
    "karl": "kalle calle carl",
    "ulf": "uffe",
    "susanne": "sanna sussie sussi",
    "goran": "joran",
    "per": "pelle putte perra",
    "lars": "lasse",
    "jan": "janne",
    "nils": "nisse",
    "olof": "olle olov",
    "kristina": "stina kicki christina",
    "charlotte": "lotta lollo",
    "maria": "maja mia",
    "bo": "bosse",
    "mikael": "micke mikke",
    "gustav": "gurra gustaf gosta",
    "joakim": "jocke",
    "fredrik": "fredde",
    "magnus": "mange",
    "hans": "hasse",
    "kent": "kenta",
    "stig": "stickan",
    "bertil": "berra",
    "alfred": "affe",
    "torsten": "totte",
    "markus": "mackan marcus",
    "stefan": "steffe staffan",
    "niklas": "nicke nicklas",
    "tobias": "tobbe",
    "birgitta": "gittan bittan",
    "lennart": "lelle",
    "bengt": "bengan benke",
    "roland": "rolle",
    "kjell": "kjelle",
    "margareta": "maggan",
    "mattias": "matte matthias",
}
NICKNAMES: Mapping[str, str] = MappingProxyType(
    {nick: name for name, nicks in _NICKNAMES_OF.items() for nick in nicks.split()})


@lru_cache(maxsize=65536)
def canonical_first_name(name: str | None) -> str | None:
    """Folded first name with each word's nickname or variant replaced: 'Bob' -> 'robert',
    'Kalle' -> 'karl', 'Åsa' -> 'asa'. None when blank."""
    folded = fold(name or "")
    if not folded:
        return None
    return " ".join(NICKNAMES.get(word, word) for word in folded.split())


# Legal forms, as folded words ('A/S' folds to 'a s', 'S.A.' to 'sa').
_LEGAL_FORMS = {tuple(form.split()) for form in (
    "ab", "aktiebolag", "publ", "hb", "handelsbolag", "kb", "kommanditbolag", "inc",
    "incorporated", "ltd", "limited", "llc", "gmbh", "ag", "oy", "oyj", "as", "asa", "a s", "aps",
    "bv", "nv", "sa", "sarl", "plc", "corp", "corporation", "co")}
_LEADING_FORMS = {"ab", "aktiebolaget"}  # Swedish 'AB Volvo'


# Legal forms that are also people's names or words when folded ('Pedro Sá', 'Anna As',
# 'Jönsson, Åsa'): a name ends with one of these as a company's only when it is written in
# capitals ('SA', 'AS', 'ASA')
_SHORT_FORMS = {"ab", "hb", "kb", "ag", "as", "asa", "sa", "bv", "nv", "co"}
_FORM_WORD = re.compile(r"[^\W_]+(?:[./][^\W_]+)*[./]?")
_AND_COMPANY = re.compile(r"&\s*co\.?\s*$", re.IGNORECASE)  # 'Smith & Co'


def is_company_name(name: str | None) -> bool:
    """A name that ends with a company's legal form ('Berg Bygg AB', 'Ek & Son Handelsbolag',
    'Acme Ltd.', 'Müller GmbH'), or starts with a Swedish one ('AB Volvo'): a company's, not a
    person's, as a customer register writes it in its one name column."""
    written = _FORM_WORD.findall(name or "")
    if len(written) < 2:
        return False
    if _AND_COMPANY.search(name):
        return True
    for word in (written[-1], written[0]):
        folded = fold(word).replace(" ", "")
        if folded in _SHORT_FORMS:
            if word.replace(".", "").replace("/", "").isupper() and (word is written[-1] or folded == "ab"):
                return True
        elif word is written[-1] and (folded,) in _LEGAL_FORMS:
            return True
    return False


def holds_legal_form(name: str | None) -> bool:
    """A legal form as a word after the first anywhere in the name ('Kund AB Ekonomi', 'Acme Ltd
    Support'): a company's or a department's display name, as mail shows one. The short forms
    only in capitals ('Anna As' is a person), as is_company_name reads them."""
    written = _FORM_WORD.findall(name or "")
    for word in written[1:]:
        folded = fold(word).replace(" ", "")
        if folded in _SHORT_FORMS:
            if word.replace(".", "").replace("/", "").isupper():
                return True
        elif (folded,) in _LEGAL_FORMS:
            return True
    return False


@lru_cache(maxsize=65536)
def normalize_company(name: str | None) -> str | None:
    """Folded company name without its legal form: 'Acme AB', 'ACME Aktiebolag' and
    'Acme, Inc.' are all 'acme'. None when blank; a name that is only a legal form stays."""
    words = fold(name or "").split()
    if not words:
        return None
    while len(words) > 1:
        if tuple(words[-2:]) in _LEGAL_FORMS and len(words) > 2:
            words = words[:-2]
        elif (words[-1],) in _LEGAL_FORMS:
            words = words[:-1]
        elif words[0] in _LEADING_FORMS:
            words = words[1:]
        else:
            break
    return " ".join(words)


_GMAIL_DOMAINS = {"googlemail.com": "gmail.com"}
_IGNORES_DOTS = {"gmail.com"}  # the provider delivers a.b@ and ab@ to one mailbox
_PLUS_TAGS = {"gmail.com", "outlook.com", "hotmail.com", "live.com", "icloud.com", "me.com",
              "mac.com", "fastmail.com", "fastmail.fm", "protonmail.com", "protonmail.ch",
              "proton.me", "pm.me"}


def canonical_email(email_key: str) -> str:
    """The mailbox an address reaches: googlemail.com -> gmail.com, Gmail's dots and plus-tags
    dropped, plus-tags dropped for the providers that deliver them to the same mailbox. Any
    other address is returned as it is."""
    key = email_key.strip().lower()
    local, at, domain = key.rpartition("@")
    if not at:
        return key
    domain = _GMAIL_DOMAINS.get(domain, domain)
    if domain in _PLUS_TAGS:
        local = local.split("+", 1)[0]
    if domain in _IGNORES_DOTS:
        local = local.replace(".", "")
    return f"{local}@{domain}" if local else key


def mailbox_keys(email_key: str) -> list[str]:
    """The canonical-mailbox key of an address: when it differs from the address, and for a
    Gmail address always (ciaberg@gmail.com is the mailbox of every dotted spelling, so two
    workers storing cia.berg@ and ciaberg@ at once meet on one key instead of making two
    people). Any other address has none."""
    key = email_key.strip().lower()
    canonical = canonical_email(key)
    if canonical != key or canonical.rpartition("@")[2] in _IGNORES_DOTS:
        return [canonical]
    return []


def address_keys(email_key: str) -> list[tuple[str, str]]:
    """The identity keys of an address (its lower-cased key): the address, and the mailbox
    behind it. A mailbox other than the address is keyed as an address ('email') too, for it
    is one: two spellings of it stored by two workers at once (anna+news@outlook.com and
    anna@outlook.com, cia.berg@gmail.com and ciaberg@gmail.com) then meet on one key and are
    one person. A Gmail address that is its own mailbox also carries it as 'email_canonical'."""
    keys = [("email", email_key)]
    keys += [("email" if mailbox != email_key else "email_canonical", mailbox) for mailbox in mailbox_keys(email_key)]
    return keys


FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com",
    "aim.com", "web.de", "protonmail.com", "protonmail.ch", "proton.me", "pm.me", "mail.ru",
    "yandex.ru", "yandex.com", "ya.ru", "fastmail.com", "fastmail.fm", "zoho.com",
    "tutanota.com", "ymail.com", "mail.com", "email.com",
    # Swedish and Nordic
    "telia.com", "bredband.net", "comhem.se", "spray.se", "passagen.se", "tele2.se",
    "bahnhof.se", "home.se", "live.se", "hotmail.se", "yahoo.se", "glocalnet.net",
    "bredband2.com", "online.no", "jubii.dk", "suomi24.fi",
    # internet providers' mailboxes: a household's, as free mail is
    "swipnet.se", "ownit.nu", "chello.se", "tele2.nu", "telenor.se", "telenor.no", "telenor.dk", "get2net.dk",
    "btinternet.com", "sky.com", "virginmedia.com", "ntlworld.com", "talktalk.net", "blueyonder.co.uk",
    "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "charter.net", "earthlink.net",
    "t-online.de", "freenet.de", "arcor.de", "orange.fr", "free.fr", "wanadoo.fr", "sfr.fr", "laposte.net",
    "libero.it", "alice.it", "tiscali.it", "bluewin.ch", "telfort.nl", "ziggo.nl", "kpnmail.nl", "planet.nl",
})
# Providers with a domain per country: hotmail.co.uk, outlook.de, yahoo.fr, gmx.net, ...
_FREE_MAIL_BRANDS = {"hotmail", "outlook", "live", "yahoo", "gmx", "aol", "yandex"}
_COUNTRY_SUFFIX = re.compile(r"(?:co\.|com\.)?[a-z]{2,3}")


def is_free_mail(domain: str) -> bool:
    """A mail provider anyone can sign up with: its domain says nothing about an employer."""
    domain = domain.strip().lower()
    if domain in FREE_MAIL:
        return True
    brand, _, rest = domain.partition(".")
    return brand in _FREE_MAIL_BRANDS and _COUNTRY_SUFFIX.fullmatch(rest) is not None


def work_domain(email_key: str) -> str | None:
    """The address's domain, or None for a free-mail provider's."""
    domain = email_key.strip().lower().rpartition("@")[2]
    if not domain or "@" not in email_key or is_free_mail(domain):
        return None
    return domain


ROLE_LOCAL_PARTS = frozenset("""
    info information sales salj support kontakt contact contactus hello hi hej hallo office
    kontoret admin administrator noreply donotreply dontreply mailerdaemon postmaster webmaster
    hostmaster abuse order orders bestallning ekonomi faktura fakturor fakturering invoice
    invoices billing accounts accounting accountspayable kundtjanst kundservice customerservice
    customercare service marketing marknad marknadsforing hr jobs jobb career careers karriar
    rekrytering recruitment recruiting reception receptionen vaxel vaxeln switchboard press
    media pr news newsletter nyhetsbrev booking bookings bokning help helpdesk it itsupport
    servicedesk team feedback privacy gdpr dataskydd legal juridik security registrator kansli
    post mail email enquiries inquiries enquiry inquiry partner partners purchasing inkop
    procurement logistics lager shop butik webshop store all alla everyone styrelsen board
    finance ir investors events event
""".split())
# Words that may follow a role word in a shared address: sales.se@, support-team@, info_nordic@
_ROLE_QUALIFIERS = frozenset("se no dk fi de uk us eu nordic nordics sverige sweden global "
                             "int intl team dept desk group".split())
_LOCAL_SEPARATORS = re.compile(r"[._+-]+")


def is_role_address(email_key: str) -> bool:
    """A shared mailbox (info@, sales.se@, no-reply@, kundtjänst@): colleagues write from it, so
    it never identifies one person on its own."""
    local = email_key.strip().rpartition("@")[0].split("+", 1)[0]
    words = [fold(word) for word in _LOCAL_SEPARATORS.split(local) if word]
    if not words:
        return False
    if "".join(words) in ROLE_LOCAL_PARTS:
        return True
    return words[0] in ROLE_LOCAL_PARTS and all(
        word in ROLE_LOCAL_PARTS or word in _ROLE_QUALIFIERS for word in words[1:])


def same_person_names(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Could these names be one person's? Nicknames and diacritics aside ('Kalle Jönsson' is
    'Karl Jonsson'); a missing name cannot tell two people apart."""
    first_a, last_a = canonical_first_name(a.get("first_name")), fold(a.get("last_name") or "")
    first_b, last_b = canonical_first_name(b.get("first_name")), fold(b.get("last_name") or "")
    if not (first_a or last_a) or not (first_b or last_b):
        return True
    if last_a and last_b and last_a != last_b:
        return False
    return not (first_a and first_b and first_a != first_b) or initial_agrees(a.get("first_name"), b.get("first_name"))


def other_first_name(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Do these name two people by their first names ('Karl' and 'Anna')? Not when the names
    could be one person's, written otherwise: a nickname or an initial, one name of a double
    name ('Anna' of 'Anna-Karin'), a spelling ('Kristoffer', 'Christoffer'; 'Sara', 'Sarah';
    'Mohammed', 'Muhammad'), written with or without its hyphen ('Ann-Sofie', 'Annsofie'), first and
    last name swapped, or a company's name in the name. A missing first name tells nothing,
    and neither does a last name alone (a marriage changes it)."""
    first_a, first_b = canonical_first_name(a.get("first_name")), canonical_first_name(b.get("first_name"))
    if not (first_a and first_b) or first_a == first_b or initial_agrees(a.get("first_name"), b.get("first_name")):
        return False
    words_a, words_b = set(first_a.split()), set(first_b.split())
    if words_a & words_b or {_sound(w) for w in words_a} & {_sound(w) for w in words_b}:
        return False
    written = [fold(str(record.get("first_name") or "")) for record in (a, b)]
    if first_a.replace(" ", "") == first_b.replace(" ", "") \
            or written[0].replace("-", "").replace(" ", "") == written[1].replace("-", "").replace(" ", ""):
        return False  # 'Ann-Sofie', 'Annsofie' (as written: its parts' nicknames read apart are 'anna sofia')
    if not all(_a_given_name(name) for name in written):  # 'Anna.berg', 'Info', 'Familjen Berg': no one's first name
        return False
    short, long = sorted(written, key=len)
    if len(short) >= 3 and long.startswith(short) and long[len(short):] not in _FEMININE_ENDINGS:
        return False  # 'Chris' of 'Christopher', 'Alex' of 'Alexander'; not 'Jan' of 'Jana'
    if len(short) >= 4 and len(long) - len(short) >= 2 and long.endswith(short):
        return False  # 'Lena' of 'Helena', 'Tina' of 'Kristina', 'Greta' of 'Margareta'
    last_a, last_b = fold(a.get("last_name") or ""), fold(b.get("last_name") or "")
    if (last_a and last_a == fold(b.get("first_name") or "")) or (last_b and last_b == fold(a.get("first_name") or "")):
        return False  # 'Berg, Anna' read the other way round
    return not any(holds_legal_form(str(record.get(name) or "")) for record in (a, b)
                   for name in ("first_name", "last_name"))


# What turns a man's name into a woman's: 'Jan' and 'Jana', 'Erik' and 'Erika', 'Stefan' and 'Stefanie'
_FEMININE_ENDINGS = frozenset({"a", "e", "ie", "ia", "ina", "ine", "ne", "na"})
# Words a mail program's display name or a form's name field holds that are no one's first name
_NOT_GIVEN_NAMES = frozenset({
    "info", "support", "sales", "salj", "ekonomi", "kundtjanst", "kundservice", "marketing", "marknad", "team",
    "familjen", "familj", "fam", "family", "admin", "office", "kontor", "order", "faktura", "invoice",
    "noreply", "service", "hr", "it", "reception", "vaxel", "kansli", "styrelsen", "board", "mr", "mrs", "ms"})


def _a_given_name(name: str) -> bool:
    """Could this (folded) be a person's first name? Not with a digit, a dot or an at sign in
    it ('anna.berg' from an address), nor a word like 'info' or 'familjen'."""
    if not name or any(ch.isdigit() or ch in ".@_" for ch in name):
        return False
    return not any(word in _NOT_GIVEN_NAMES for word in name.split())


def _sound(word: str) -> str:
    """A first name's spelling folded to how it sounds, roughly: 'christoffer' and 'kristoffer',
    'sarah' and 'sara', 'eric' and 'erik', 'joergen' and 'jorgen', 'mohammed' and 'muhammad'
    ('mhmd': its consonants, for a name of four or more of them)."""
    word = word.replace("ch", "k").replace("ph", "f").replace("th", "t").replace("ck", "k")
    word = word.replace("ae", "a").replace("oe", "o").replace("ue", "u")
    word = word.translate(str.maketrans("cqwzy", "kkvsi")).replace("x", "ks")
    word = re.sub(r"(.)\1+", r"\1", word).rstrip("h")
    word = word[:-1] if len(word) > 2 and word.endswith("e") and not word.endswith("ie") else word
    consonants = re.sub(r"[aeiou]", "", word)
    if len(consonants) >= 4:  # 'mhmd' with its count of vowels: 'anders' (2) is not 'andreas' (3)
        return f"{consonants}{len(word) - len(consonants)}"
    return word


def initial_agrees(a: Any, b: Any) -> bool:
    """One first name is an initial ('A.', 'A', 'A.-K.', 'PO' of 'Per-Olof', 'KG' of Karl Gustav)
    of the other ('Anna', 'Anna-Karin'), as mail programs, signatures and Swedish registers write
    it: no evidence either way."""
    folded = [fold(str(v or "")).replace(".", " ").replace("-", " ").split() for v in (a, b)]
    if not all(folded):
        return False
    for value, index in ((a, 0), (b, 1)):  # initials in capitals, run together: 'PO', 'HG', 'AK'
        text = str(value or "").strip()
        if 2 <= len(text) <= 3 and text.isalpha() and text.isupper():
            folded[index] = list(fold(text))
    for short, full in (folded, folded[::-1]):
        if all(len(part) == 1 for part in short) and len(short) <= len(full) \
                and all(f.startswith(i) for i, f in zip(short, full)):
            return True
    return False


# -- reading a record -------------------------------------------------------------------------------


def _items(value: Any) -> list[Any]:
    """A field's values: a list field as its items; None and NaN (pandas' blank) left out."""
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _first_of(record: Mapping[str, Any], *names: str) -> list[Any]:
    return [v for name in names for v in _items(record.get(name))]


def _names(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    first = clean_text(record.get("first_name"), 200)
    last = clean_text(record.get("last_name"), 200)
    if not (first or last):
        return split_name(record.get("full_name"))
    return first, last


def _is_person(record: Mapping[str, Any]) -> bool:
    return any(record.get(name) for name in ("first_name", "last_name", "full_name"))


@lru_cache(maxsize=65536)
def _email_key(value: str) -> str | None:
    try:
        return normalize_email(value)[1]
    except InvalidItem:
        return None


def email_keys(record: Mapping[str, Any]) -> list[str]:
    """The record's address keys (lower case), role addresses included, invalid ones left out."""
    keys = (_email_key(str(v)) for v in _first_of(record, "email", "emails"))
    return list(dict.fromkeys(key for key in keys if key))


_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@lru_cache(maxsize=65536)
def _phone_key(value: str, region: str) -> str | None:
    value = value.strip()
    if _E164.fullmatch(value):
        return value
    try:
        return normalize_phone(value, region)
    except InvalidItem:
        return None


def phone_keys(record: Mapping[str, Any]) -> list[str]:
    """E.164 keys; a number without a country code is read in the record's `region` (SE)."""
    region = str(record.get("region") or "SE").upper()
    keys = (_phone_key(str(v), region) for v in _first_of(record, "phone", "mobile_phone", "phones"))
    return list(dict.fromkeys(key for key in keys if key))


def _host(value: Any) -> str | None:
    text = (clean_text(value, 300) or "").lower()
    text = text.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    if text.startswith("www."):
        text = text[4:]
    return text if "." in text else None


def domains(record: Mapping[str, Any]) -> list[str]:
    """Work domains: the website's, then the addresses' (a role address's too); no free mail."""
    hosts = [_host(v) for v in _first_of(record, "website_domain", "domain", "website")]
    hosts += [work_domain(key) for key in email_keys(record)]
    return list(dict.fromkeys(h for h in hosts if h and not is_free_mail(h)))


def _company(record: Mapping[str, Any]) -> list[str]:
    names = _first_of(record, "company_name", "company")
    if not names and not _is_person(record):
        names = _items(record.get("name"))  # an account's name
    return [key for key in (normalize_company(str(n)) for n in names) if key]


# How a CRM field is compared: its match keys, whatever the condition's case_sensitive says.
_KEYED_FIELDS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "email": lambda r: list(dict.fromkeys(
        canonical_email(k) for k in email_keys(r) if not is_role_address(k))),
    "phone": phone_keys,
    "handle": lambda r: list(dict.fromkeys(
        h for h in (str(v).strip().lower() for v in _first_of(r, "handle", "handles")) if h)),
    "first_name": lambda r: [n for n in [canonical_first_name(_names(r)[0])] if n],
    "last_name": lambda r: [n for n in [fold(_names(r)[1] or "")] if n],
    "company_name": _company,
    "domain": domains,
}


def _parse_date(value: Any) -> date | str | None:
    """A date from a date, a datetime or text (2024-05-01, 20240501, 2024/05/01, 01.05.2024);
    text that is no date is kept as text, equal only to the same text."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = clean_text(value, 40)
    if not text:
        return None
    for pattern in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y", "%Y.%m.%d"):
        try:
            return datetime.strptime(text[:10], pattern).date()
        except ValueError:
            continue
    return fold(text)


def _values(record: Mapping[str, Any], condition: Condition) -> list[Any]:
    if condition.op == "same_date":
        return [d for d in (_parse_date(v) for v in _items(record.get(condition.field))) if d]
    keyed = _KEYED_FIELDS.get(condition.field)
    if keyed is not None:
        return keyed(record)
    texts = (clean_text(v) for v in _items(record.get(condition.field)))
    if not condition.case_sensitive:
        texts = (fold(t) for t in texts if t)
    return [t for t in texts if t]


# -- blocking keys ----------------------------------------------------------------------------------


def blocking_keys(record: Mapping[str, Any], record_type: str = "lead") -> list[tuple[str, str]]:
    """(kind, value) keys a record is indexed under, so candidates are found by exact lookups.

    People (lead, contact): 'email' (role addresses left out), 'email_canonical' (Gmail and
    plus-tag providers), 'phone', 'handle', 'name' ('robert|jonsson'), 'name_initial'
    ('r|jonsson', for typos in first names), 'birth_initial' ('1980-05-01|r') and
    'domain_name' ('acme.se|jonsson'). Accounts: 'company', 'domain', 'email', 'phone'.
    Strongest first; values at most 320 characters.
    """
    if record_type not in ("lead", "contact", "account"):
        raise ValueError(f"record_type must be lead, contact or account, not {record_type!r}")
    keys: list[tuple[str, str]] = []
    if record_type == "account":
        keys += [("company", c) for c in _company(record)]
        keys += [("domain", d) for d in domains(record)]
        keys += [("email", e) for e in email_keys(record)]
        keys += [("phone", p) for p in phone_keys(record)]
        return _unique(keys)
    for key in email_keys(record):
        if is_role_address(key):
            continue
        keys.append(("email", key))
        if key.rpartition("@")[2] in _PLUS_TAGS or key.rpartition("@")[2] in _GMAIL_DOMAINS:
            keys.append(("email_canonical", canonical_email(key)))
    keys += [("handle", h) for h in _KEYED_FIELDS["handle"](record)]
    keys += [("phone", p) for p in phone_keys(record)]
    first, last = _names(record)
    canonical = (canonical_first_name(first) or "").split()
    surname = fold(last or "").replace(" ", "")
    if canonical and surname:
        keys.append(("name", f"{canonical[0]}|{surname}"))
        keys.append(("name_initial", f"{canonical[0][0]}|{surname}"))
    if canonical:
        births = [d for d in map(_parse_date, _items(record.get("birth_date")))
                  if isinstance(d, date)]
        keys += [("birth_initial", f"{d.isoformat()}|{canonical[0][0]}") for d in births]
    if surname:
        keys += [("domain_name", f"{d}|{surname}") for d in domains(record)]
    return _unique(keys)


def _unique(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((kind, value[:320]) for kind, value in keys))


# -- rules ------------------------------------------------------------------------------------------

OPS = ("exact", "first_n", "last_n", "same_date", "fuzzy")
SCORERS = ("auto", "jaro_winkler", "token_sort", "damerau_levenshtein")
RECORD_PAIRS = ("lead-lead", "lead-contact", "contact-contact", "account-account")


@dataclass(frozen=True)
class Condition:
    """One comparison of a field, giving a similarity from 0 to 1.

    exact: equal; first_n / last_n: the first or last `n` characters equal; same_date: the
    same day; fuzzy: a similarity (`scorer` jaro_winkler, token_sort, or auto: Jaro-Winkler
    for one-word values, token-sort ratio otherwise; damerau_levenshtein: 1 - edits / the
    longer length, an edit being a character added, dropped or changed, or two adjacent ones
    swapped, for typed identifiers and digits), counted as 0 below `threshold`.
    A match counts `weight` for the pair, a mismatch `penalty` (default: the weight) against
    it. A blank side does not count with ignore_blank; without it, blank against blank is a
    match and blank against a value a mismatch. CRM fields (email, phone, handle, first_name,
    last_name, company_name, domain) compare their match keys, so case_sensitive applies to
    other fields only. A field with several values matches when any two values do.

    swap_with (off unless set) names a field this one may have been entered in instead (first
    and last name, two address lines): when the second record's two fields, swapped, both
    match the first's under this condition (neither counted as 0) and agree better swapped
    than as entered, every condition compares the second record with the two fields swapped,
    and the reasons start with 'field, other: compared swapped'. Give it a threshold: without
    one any fuzzy similarity above 0 counts as a match.
    """

    field: str
    op: str
    n: int | None = None
    ignore_blank: bool = True
    case_sensitive: bool = False
    weight: float = 1.0
    threshold: float | None = None
    penalty: float | None = None
    scorer: str = "auto"
    swap_with: str | None = None

    def __post_init__(self) -> None:
        problem = _condition_problem(self)
        if problem is not None:
            raise ConfigError(f"Condition.{problem[0]}", problem[1])

    @property
    def label(self) -> str:
        return f"{self.field} {self.op}{'' if self.n is None else f'({self.n})'}"


def _condition_problem(c: Condition) -> tuple[str, str] | None:
    if not isinstance(c.field, str) or not _FIELD_NAME.fullmatch(c.field):
        return "field", "must be a field name (letters, digits, underscores)"
    if c.op not in OPS:
        return "op", f"must be one of {', '.join(OPS)}"
    if c.op in ("first_n", "last_n"):
        if c.n is None:
            return "n", f"required for op {c.op}"
        if c.n < 1:
            return "n", "must be at least 1"
    elif c.n is not None:
        return "n", "only for op first_n or last_n"
    if not c.weight > 0 or not math.isfinite(c.weight):
        return "weight", "must be a finite number greater than zero"
    if c.penalty is not None and (not c.penalty >= 0 or not math.isfinite(c.penalty)):
        return "penalty", "must be a finite number, zero or more"
    if c.threshold is not None:
        if c.op != "fuzzy":
            return "threshold", "only for op fuzzy"
        if not 0 <= c.threshold <= 1:
            return "threshold", "must be between 0 and 1"
    if c.scorer not in SCORERS:
        return "scorer", f"must be one of {', '.join(SCORERS)}"
    if c.scorer != "auto" and c.op != "fuzzy":
        return "scorer", "only for op fuzzy"
    if c.swap_with is not None:
        if not isinstance(c.swap_with, str) or not _FIELD_NAME.fullmatch(c.swap_with):
            return "swap_with", "must be a field name (letters, digits, underscores)"
        if c.swap_with == c.field:
            return "swap_with", "must be another field than the condition's"
    return None


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RuleSet:
    """The conditions for one pair of record types and what their score decides.

    score = evidence for / (evidence for + evidence against), over the conditions both
    records can be compared on; when that evidence weighs less than `min_weight`, the
    denominator is `min_weight`, so a pair that agrees on little (a name alone) cannot merge.
    `auto_merge` false sends 'merge' pairs to review too (suggested: merge) instead of merging.
    """

    conditions: tuple[Condition, ...]
    merge_threshold: float = 0.8
    review_threshold: float = 0.6
    min_weight: float = 0.0
    auto_merge: bool = True
    # evidence against two namesakes with their own addresses at one workplace
    # ('anna.andersson@volvo.se', 'anna.m.andersson@volvo.se'): two colleagues, however alike
    # their names (see _one_workplace_two_addresses)
    colleagues_penalty: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(self.conditions))
        if not self.conditions:
            raise ConfigError("RuleSet.conditions", "must have at least one condition")
        for name in ("merge_threshold", "review_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"RuleSet.{name}", "must be between 0 and 1")
        if self.review_threshold > self.merge_threshold:
            raise ConfigError("RuleSet.review_threshold", "must not be above merge_threshold")
        for name in ("min_weight", "colleagues_penalty"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"RuleSet.{name}", "must be a finite number, zero or more")


@dataclass(frozen=True)
class Decision:
    score: float  # 0..1
    outcome: str  # merge, review or new
    reasons: list[str]


def _fuzzy(a: str, b: str, scorer: str) -> float:
    if a == b:
        return 1.0
    if scorer == "auto":
        scorer = "jaro_winkler" if " " not in a and " " not in b else "token_sort"
    if scorer == "jaro_winkler":
        return JaroWinkler.similarity(a, b)
    if scorer == "damerau_levenshtein":
        return DamerauLevenshtein.normalized_similarity(a, b)
    return fuzz.token_sort_ratio(a, b) / 100.0


def _similarity(c: Condition, a: list[Any], b: list[Any]) -> float:
    if c.op == "fuzzy":
        return max(_fuzzy(x, y, c.scorer) for x in a for y in b)
    if c.op == "first_n":
        same = any(x[:c.n] == y[:c.n] for x in a for y in b)
    elif c.op == "last_n":
        same = any(x[-c.n:] == y[-c.n:] for x in a for y in b)
    else:  # exact, same_date
        same = not set(a).isdisjoint(b)
    return 1.0 if same else 0.0


def score(a: Mapping[str, Any], b: Mapping[str, Any], ruleset: RuleSet) -> Decision:
    """Compare two records under a rule set: a score from 0 to 1, the outcome it decides, and
    one reason a condition ('first_name fuzzy: 0.93'), after any fields compared swapped."""
    evidence_for = evidence_against = 0.0
    reasons: list[str] = []
    for c in ruleset.conditions:
        if c.swap_with is not None and _swaps(a, b, c):
            b = {**b, c.field: b.get(c.swap_with), c.swap_with: b.get(c.field)}
            reasons.append(f"{c.field}, {c.swap_with}: compared swapped")
    for c in ruleset.conditions:
        a_values, b_values = _values(a, c), _values(b, c)
        if not a_values or not b_values:
            if c.ignore_blank:
                reasons.append(f"{c.label}: blank{_blank_note(a, b, c)}, ignored")
                continue
            similarity = 0.0 if a_values or b_values else 1.0
        else:
            similarity = _similarity(c, a_values, b_values)
        counted = similarity
        if c.field == "first_name" and similarity < (c.threshold or 1.0) and initial_agrees(_names(a)[0], _names(b)[0]):
            reasons.append(f"{c.label}: an initial of the other, ignored")
            continue
        if c.threshold is not None and similarity < c.threshold:
            counted = 0.0
            reasons.append(f"{c.label}: {similarity:.2f} below {c.threshold:.2f}, counted as 0")
        else:
            reasons.append(f"{c.label}: {similarity:.2f}")
        penalty = c.weight if c.penalty is None else c.penalty
        evidence_for += c.weight * counted
        evidence_against += penalty * (1.0 - counted)
    if ruleset.colleagues_penalty and (workplace := _one_workplace_two_addresses(a, b)):
        evidence_against += ruleset.colleagues_penalty
        reasons.append(f"two addresses with their last name at {workplace}: {ruleset.colleagues_penalty:g} against")
    evidence = evidence_for + evidence_against
    if evidence < ruleset.min_weight:
        reasons.append(f"little to compare: evidence {evidence:.1f} below min_weight "
                       f"{ruleset.min_weight:g}, score scaled down")
    denominator = max(evidence, ruleset.min_weight)
    value = round(evidence_for / denominator, 6) if denominator > 0 else 0.0
    if value >= ruleset.merge_threshold:
        outcome = "merge"
    elif value >= ruleset.review_threshold:
        outcome = "review"
    else:
        outcome = "new"
    return Decision(value, outcome, reasons)


def _one_workplace_two_addresses(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The work domain where two people of the very same name have different addresses that
    both spell it ('anna.andersson@volvo.se', 'anna.m.andersson@volvo.se': a workplace names
    its second Anna Andersson so because the first has the plain one), and no phone in common:
    two colleagues. (One person's aliases differ in the name: 'bill.smith@', 'william.smith@'.)"""
    (first, last), (their_first, their_last) = (
        [fold(part or "").replace(" ", "") for part in _names(record)] for record in (a, b))
    if len(last) < 3 or last != their_last or not first or first != their_first:  # namesakes, written alike
        return None
    mine = {k for k in email_keys(a) if not is_role_address(k)}
    theirs = {k for k in email_keys(b) if not is_role_address(k)}
    if not mine or not theirs or {canonical_email(k) for k in mine} & {canonical_email(k) for k in theirs}:
        return None
    if set(phone_keys(a)) & set(phone_keys(b)):
        return None
    named = [{work_domain(k) for k in keys if last in fold(k.partition("@")[0]).replace(".", "").replace("-", "")
              .replace("_", "")} for keys in (mine, theirs)]
    return next((d for d in sorted(named[0] & named[1]) if d and not is_free_mail(d)), None)


def _counted(c: Condition, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """The similarity a condition counts for two records; 0 when either side is blank."""
    a_values, b_values = _values(a, c), _values(b, c)
    if not a_values or not b_values:
        return 0.0
    similarity = _similarity(c, a_values, b_values)
    return 0.0 if c.threshold is not None and similarity < c.threshold else similarity


def _swaps(a: Mapping[str, Any], b: Mapping[str, Any], c: Condition) -> bool:
    """Do b's fields c.field and c.swap_with, swapped, both match a's, better than unswapped?"""
    other = replace(c, field=c.swap_with, swap_with=None)
    swapped = {**b, c.field: b.get(c.swap_with), c.swap_with: b.get(c.field)}
    crossed = (_counted(c, a, swapped), _counted(other, a, swapped))
    if not all(crossed):
        return False
    return sum(crossed) > _counted(c, a, b) + _counted(other, a, b)


def _blank_note(a: Mapping[str, Any], b: Mapping[str, Any], c: Condition) -> str:
    if c.field == "email" and any(is_role_address(k) for r in (a, b) for k in email_keys(r)):
        return " (role addresses do not identify a person)"
    return ""


# -- default rules ----------------------------------------------------------------------------------

# An email or handle match is strong, a mismatch weak (people have several addresses and
# phones). A phone alone never merges (min_weight): switchboards and households share one. A
# different first name is strong evidence against (family members share phones and last names).
# A company or work domain supports a name; a different company argues against it.
_PERSON_CONDITIONS = (
    Condition("email", "exact", weight=6.0, penalty=1.0),
    Condition("handle", "exact", weight=5.0, penalty=0.0),
    Condition("phone", "exact", weight=2.0, penalty=0.25),
    Condition("first_name", "fuzzy", weight=2.5, penalty=4.0, threshold=0.85, scorer="jaro_winkler"),
    Condition("last_name", "fuzzy", weight=2.0, penalty=3.0, threshold=0.88, scorer="jaro_winkler"),
    Condition("company_name", "fuzzy", weight=1.5, penalty=2.0, threshold=0.85, scorer="token_sort"),
    Condition("domain", "exact", weight=2.0, penalty=1.0),
    Condition("birth_date", "same_date", weight=2.0, penalty=4.0),
)
_PERSON_RULES = RuleSet(_PERSON_CONDITIONS, merge_threshold=0.8, review_threshold=0.6, min_weight=6.0,
                        colleagues_penalty=4.0)
_ACCOUNT_RULES = RuleSet((
    Condition("company_name", "fuzzy", weight=3.0, penalty=3.0, threshold=0.85, scorer="token_sort"),
    Condition("domain", "exact", weight=4.0, penalty=1.0),
    Condition("phone", "exact", weight=2.0, penalty=0.5),
    Condition("city", "fuzzy", weight=1.0, penalty=1.0, threshold=0.9),
), merge_threshold=0.8, review_threshold=0.6, min_weight=4.0)

DEFAULT_RULES: Mapping[str, RuleSet] = MappingProxyType({
    "lead-lead": _PERSON_RULES,
    "lead-contact": _PERSON_RULES,
    "contact-contact": _PERSON_RULES,
    "account-account": _ACCOUNT_RULES,
})

# -- configuration ----------------------------------------------------------------------------------

_RULESET_KEYS = {"merge_threshold", "review_threshold", "min_weight", "conditions", "auto_merge",
                 "colleagues_penalty"}
_CONDITION_KEYS = {"field", "op", "n", "ignore_blank", "case_sensitive", "weight", "threshold",
                   "penalty", "scorer", "swap_with"}


def rules_from_toml(mapping: Mapping[str, Any], prefix: str = "matching") -> dict[str, RuleSet]:
    """Rule sets from ingest.toml's [matching] table, one table a record pair:

        [matching.lead-contact]
        merge_threshold = 0.85
        conditions = [{ field = "email", op = "exact", weight = 6 }, ...]

    A pair not configured keeps DEFAULT_RULES; a pair without `conditions` keeps the default
    conditions with its own thresholds (a merge_threshold set below the default review
    threshold, review_threshold not set, lowers that to the merge threshold). Raises
    ConfigError naming the dotted key, conditions counted from 0:
    'matching.lead-contact.conditions[2].op: must be one of ...'.
    """
    table = _table(mapping, prefix)
    rules = dict(DEFAULT_RULES)
    for pair, raw in table.items():
        where = f"{prefix}.{pair}"
        if pair not in RECORD_PAIRS:
            raise ConfigError(where, f"unknown record pair; expected one of {', '.join(RECORD_PAIRS)}")
        rules[pair] = _ruleset(_table(raw, where), where, DEFAULT_RULES[pair])
    return rules


def _ruleset(raw: Mapping[str, Any], where: str, default: RuleSet) -> RuleSet:
    _only_keys(raw, where, _RULESET_KEYS)
    values: dict[str, Any] = {}
    for name in ("merge_threshold", "review_threshold", "min_weight", "colleagues_penalty"):
        if name in raw:
            values[name] = _number(raw[name], f"{where}.{name}")
    conditions = default.conditions
    if "conditions" in raw:
        items = raw["conditions"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{where}.conditions", "must be a non-empty list of tables")
        conditions = tuple(_condition(item, f"{where}.conditions[{i}]") for i, item in enumerate(items))
    merge = values.get("merge_threshold", default.merge_threshold)
    review = values.get("review_threshold", default.review_threshold)
    if "review_threshold" not in values and review > merge:
        review = merge  # only merge_threshold was lowered below the default review threshold
    auto_merge = raw.get("auto_merge", default.auto_merge)
    if not isinstance(auto_merge, bool):
        raise ConfigError(f"{where}.auto_merge", "must be true or false")
    try:
        return RuleSet(conditions, merge, review, values.get("min_weight", default.min_weight), auto_merge,
                       values.get("colleagues_penalty", default.colleagues_penalty))
    except ConfigError as exc:
        raise ConfigError(where + exc.key.removeprefix("RuleSet"), exc.reason) from None


def _condition(raw: Any, where: str) -> Condition:
    raw = _table(raw, where)
    _only_keys(raw, where, _CONDITION_KEYS)
    for name in ("field", "op"):
        if name not in raw:
            raise ConfigError(f"{where}.{name}", "required")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{where}.{name}"
        if name in ("field", "op", "scorer", "swap_with"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(key, "must be a non-empty string")
            values[name] = value.strip()
        elif name in ("ignore_blank", "case_sensitive"):
            if not isinstance(value, bool):
                raise ConfigError(key, "must be true or false")
            values[name] = value
        elif name == "n":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(key, "must be a whole number")
            values[name] = value
        else:
            values[name] = _number(value, key)
    try:
        return Condition(**values)
    except ConfigError as exc:
        raise ConfigError(where + exc.key.removeprefix("Condition"), exc.reason) from None


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table")
    return value


def _only_keys(data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, "must be a number")
    if not math.isfinite(value):
        raise ConfigError(key, "must be a finite number")
    return float(value)
