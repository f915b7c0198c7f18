"""Field normalizers: values as entered become match keys. Pure functions, no I/O."""
from __future__ import annotations

import json
import re
import unicodedata
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from .errors import InvalidItem

_SPACE = re.compile(r"\s+")


def _printable(text: str) -> str:
    """Line breaks unified (CRLF, CR, VT, FF become LF); other control characters dropped, and
    lone surrogates ('\\ud800' in a JSON post: no text, and no database or JSON writer takes it)."""
    text = text.replace("\r\n", "\n").translate(_BREAKS)
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) not in ("Cc", "Cs"))


# Characters text copied from web pages and documents carries unseen: a zero-width space, word
# joiner, BOM, soft hyphen, direction marks and overrides ('Berg\u200b' is no other name than
# 'Berg'; an override can make text read otherwise than it is stored). Text keeps the joiners
# (emoji, Indic and Persian script need them); an address loses them too.
_UNSEEN = ("\u200b", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f", *map(chr, range(0x202a, 0x202f)),
           *map(chr, range(0x2066, 0x206a)))
_BREAKS = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n", **dict.fromkeys(_UNSEEN)})


def clean_text(value: object, limit: int = 300) -> str | None:
    """Trimmed single-spaced text without control characters, capped; None when blank."""
    if value is None:
        return None
    if type(value) is str and len(value) <= 200:
        return _clean_short(value, limit)
    return _clean(str(value), limit)


def _clean(text: str, limit: int) -> str | None:
    if not text.isprintable():  # the common case skips the per-character scan
        text = _printable(text)
    text = _SPACE.sub(" ", text).strip()
    return text[:limit].rstrip() or None


# Lists repeat the same short values (titles, cities, countries, companies) row after row.
_clean_short = lru_cache(maxsize=1 << 16)(_clean)


def clean_body(value: object, limit: int = 100_000) -> str | None:
    """Multi-line text kept as lines; control characters dropped; capped."""
    if value is None:
        return None
    return _printable(str(value)).strip()[:limit].rstrip() or None


# The everyday address: dot-atom ASCII local part, LDH labels, an alphabetic TLD. For these
# email-validator's answer is known (valid; domain lower-cased), and asking it costs ~100 µs an
# address, the largest single cost of a list import. Anything else goes to email-validator.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})")
_SPECIAL_USE_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}


def _plain_email(text: str) -> str | None:
    match = _PLAIN_EMAIL.fullmatch(text)
    if match is None or len(text) > 254 or text.index("@") > 64:
        return None
    domain = match.group(1).lower()
    if domain.rsplit(".", 1)[1] in _SPECIAL_USE_TLDS or "--" in domain:
        return None  # special-use names are refused; IDNA (xn--) labels are decoded by the library
    return text[: text.index("@") + 1] + domain


def tidy_email(value: str) -> str:
    """The address in what was entered: out of 'Name <address>' (as mail programs copy it) or
    'mailto:address' (as web pages do), without padding or trailing punctuation."""
    text = value.strip()
    if text.endswith(">") and "<" in text:  # "Anna Berg <anna@berg.se>", as mail programs copy it
        text = text[text.rindex("<") + 1:]
    text = text.strip("<>").strip()
    if text[:7].lower() == "mailto:":  # a link's address, as web pages copy it
        text = text[7:].split("?", 1)[0].strip()
    if text and not text[-1].isalnum() and text[-1] != "]":  # a domain ends in a letter or digit
        text = _AFTER_DOMAIN.sub("", text)  # a sentence's punctuation, a quote, a bracket: never the address's
    if text and not (text[0].isalnum() or text[0] == '"'):  # (a quoted local part starts with one)
        text = _BEFORE_ADDRESS.sub("", text)  # '(anna@x.se', "'anna@x.se"
    return text


_AFTER_DOMAIN = re.compile(r"[^\w\]@]+$")
_BEFORE_ADDRESS = re.compile(r"^[(\[{'´`‘’“”«»]+")
# an address with a label before it or a note after it, or both: 'E-post: anna@x.se',
# 'E-post:anna@x.se', 'Mejl - anna@x.se', 'anna@x.se (privat)', 'anna@x.se / jobb', 'Mail: anna@x.se / privat',
# 'anna@x.se privat'; not 'anna svensson@x.se', whose space may be a typing error in the address
_ADDRESS_WORD = re.compile(r"[^\s:;,<>()\[\]/]+@[^\s:;,<>()\[\]/]+")
_NOTE_START = "([/-–,;"  # what starts a note after an address
# Words people write beside an address with nothing but a space between, in Swedish and English
# ('anna@x.se privat', 'jobb anna@x.se', 'E-post anna@x.se'): such a word is a note, never a
# mistyped piece of the address, as an unknown word may be ('anna@x.co m', 'Bo och anna@x.se')
_NOTE_WORDS = frozenset("""
    privat priv personlig hem hemma jobb arbete arb kontor tjänst tjänstemail gammal ny nya gamla
    endast bara huvud huvudadress alt alternativ alternativt fakturor faktura
    e-post epost e-postadress epostadress mejl mail e-mail email adress
    private personal home work business office old new main primary secondary other only
    invoices billing address
""".split())


def _note_words(text: str) -> bool:
    words = text.lower().strip(" \t.,;:!?()[]<>").split()
    return bool(words) and all(word.strip(".,;:!?()") in _NOTE_WORDS for word in words)


def _noted_address(text: str) -> str | None:
    found = _ADDRESS_WORD.search(text)
    if found is None:
        return None
    before, after = text[:found.start()].rstrip(), text[found.end():]
    if (before and before[-1] != ":" and not before.endswith(("(", "<", "[", " -", " –"))
            and not _note_words(before)):
        return None  # a word glued on by a space: part of the address, mistyped
    if (after.strip(" \t)>].,;:!?") and after.lstrip()[0] not in _NOTE_START
            and not _note_words(after)):
        return None  # 'anna@x.co m': a word after a space may be the address's own, mistyped
    return tidy_email(found.group())


# An address no person reads: a program's or a site's own ('noreply@', 'wordpress@', 'mailer-daemon@'),
# never answered, and never the writer of the mail it sends on someone's behalf
SYSTEM_ADDRESS = re.compile(
    r"^(no-?reply|do-?not-?reply|dont-?reply|noreply-[\w.-]+|mailer-daemon|postmaster|bounces?|wordpress|"
    r"www-?data|apache|nginx|webmaster|web|website|webform|forms?|formular|kontaktformular|contact-?form|mailer|"
    r"notifications?|notify|system|robot|newsletters?|nyhetsbrev|utskick|news)([+.\-_][^@]*)?@", re.IGNORECASE)


_AROUND_AT = re.compile(r"\s+@\s*|@\s+")
_INVISIBLE = dict.fromkeys(map(ord, (*_UNSEEN, "\u200c", "\u200d")))


def normalize_email(value: str, field: str = "email") -> tuple[str, str]:
    """Return (address as stored, match key). The key is the whole address in lower case.

    Syntax only: no DNS in bulk. Raises InvalidItem naming the field.
    """
    text = tidy_email(value)
    plain = _plain_email(text)
    if plain is None and (visible := text.translate(_INVISIBLE)) != text:
        text = visible  # a zero-width space or soft hyphen pasted along from a web page or a PDF
        plain = _plain_email(text)
    if plain is not None:
        return plain, plain.lower()
    if "\ufffd" in text:  # email-validator takes it as a symbol of an international address
        raise InvalidItem(field, f"invalid email {text[:80]!r}: it holds an undecodable character (\ufffd): "
                                 "the text was read in the wrong encoding, or damaged on its way")
    if text.count("@") == 1 and (word := _noted_address(text)) is not None:
        plain = _plain_email(word)
        if plain is not None:
            return plain, plain.lower()
        try:
            result = validate_email(word, check_deliverability=False)
            return result.normalized, result.normalized.lower()
        except EmailNotValidError:
            pass  # the whole cell's error says more
    if text.count("@") == 1 and (squeezed := _AROUND_AT.sub("@", text)) != text and " " not in squeezed \
            and (plain := _plain_email(squeezed)) is not None:
        return plain, plain.lower()  # 'anna @berg.se', 'anna @ berg.se': a space typed beside the '@'
    if "@" not in text and (spelled := _spelled_out(text)) is not None:
        try:
            return normalize_email(spelled, field)
        except InvalidItem:
            pass  # the cell's own error says more
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidItem(field, f"invalid email {text[:80]!r}: {exc}") from None
    return result.normalized, result.normalized.lower()


# An address written against harvesting, as web pages and scraped lists have it: 'anna(at)firma.se',
# 'anna [at] firma [dot] se', 'anna at firma dot se', 'anna(snabel-a)firma.se'
_SPELLED_AT = re.compile(r"\s*[(\[{]\s*(?:at|snabel-a)\s*[)\]}]\s*|\s+(?:at|snabel-a)\s+", re.IGNORECASE)
_SPELLED_DOT = re.compile(r"\s*[(\[{]\s*(?:dot|punkt)\s*[)\]}]\s*|\s+(?:dot|punkt)\s+", re.IGNORECASE)


def _spelled_out(text: str) -> str | None:
    """The address in a cell that spells its @ out exactly once (and its dots, if it does);
    None for any other cell."""
    if len(_SPELLED_AT.findall(text)) != 1:
        return None
    return _SPELLED_DOT.sub(".", _SPELLED_AT.sub("@", text))


# Where lists' addresses mostly are: a domain beside one of these by a typing error is named in
# the reason a row is rejected ('dan@gmail.con': did you mean gmail.com?)
_COMMON_DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "icloud.com", "live.com", "msn.com",
                   "aol.com", "me.com", "protonmail.com", "gmx.com", "gmx.de", "web.de", "hotmail.se", "live.se",
                   "outlook.se", "yahoo.se", "telia.com", "bredband.net", "comhem.se", "hotmail.co.uk",
                   "yahoo.co.uk", "btinternet.com")
_COMMON_TLDS = ("com", "se", "net", "org", "nu", "uk", "de", "eu", "io", "fi", "no", "dk")


@lru_cache(maxsize=1)
def _suffixes():
    from publicsuffixlist import PublicSuffixList  # the list it ships, read once, offline

    return PublicSuffixList(only_icann=True)


@lru_cache(maxsize=4096)
def _is_tld(label: str) -> bool:
    # 'example' is reserved for documentation (RFC 2606) and email-validator takes it: demo lists
    return label == "example" or _suffixes().publicsuffix(label, accept_unknown=False) is not None


def public_suffix(domain: str) -> bool:
    """Is the domain one under which anyone registers a name ('se', 'co.uk', 'com.au'), no one's own?"""
    return _suffixes().publicsuffix(domain, accept_unknown=False) == domain


def unknown_tld(address: str) -> str | None:
    """Why the address cannot be delivered, when its top-level domain is none the DNS root
    holds ('dan@gmail.con'); None for every other address (syntax is normalize_email's)."""
    domain = address.rpartition("@")[2].lower()
    tld = domain.rpartition(".")[2]
    if not tld or domain.endswith("]") or _is_tld(tld):  # an address literal ('[192.0.2.1]') has none
        return None
    guess = (get_close_matches(domain, _COMMON_DOMAINS, n=1, cutoff=0.85)
             or [f"{domain.rpartition('.')[0]}.{tld_guess}" for tld_guess in
                 get_close_matches(tld, _COMMON_TLDS, n=1, cutoff=0.6)])
    return f"{tld!r} is not a top-level domain" + (f" (did you mean {guess[0]}?)" if guess else "")


# The big mailbox providers whose names lists mistype: a list's address one slip away from one
# ('anna@gmial.com', 'bo@hotmial.se', 'eva@gmail.co') bounces, or reaches whoever registered the
# misspelling to catch such mail. Names of five letters or more only: a shorter one (live, msn,
# aol, gmx) has real neighbours one slip away.
_PROVIDERS = {"gmail": ("com",), "googlemail": ("com",), "icloud": ("com",), "protonmail": ("com", "ch"),
              "hotmail": ("com", "se", "co.uk", "de", "fr", "it", "es", "dk", "no", "fi", "nl", "be"),
              "outlook": ("com", "se", "de", "fr", "it", "es", "dk", "com.au"),
              "yahoo": ("com", "se", "co.uk", "de", "fr", "it", "es", "dk", "no", "com.au"),
              "btinternet": ("com",), "comhem": ("se",), "bredband": ("net",)}
# Real mail domains one slip from a provider's name, and a slip that reaches one of them is no slip
_REAL_NEIGHBOURS = frozenset({"email", "ymail", "mail", "cloud"})
_KEYBOARD = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


@lru_cache(maxsize=1)
def _keyboard_neighbours() -> dict[str, str]:
    """Each key's neighbours on a QWERTY keyboard (the row's own, and the rows above and below)."""
    near: dict[str, str] = {}
    for row_index, row in enumerate(_KEYBOARD):
        for at, key in enumerate(row):
            keys = row[max(at - 1, 0):at + 2]
            for other in (row_index - 1, row_index + 1):
                if 0 <= other < len(_KEYBOARD):
                    keys += _KEYBOARD[other][max(at - 1, 0):at + 2]
            near[key] = keys.replace(key, "")
    return near


def _one_slip(typed: str, meant: str) -> bool:
    """Whether `typed` is `meant` with one typing slip: a letter dropped, a letter struck twice or
    a neighbouring key struck beside it, two letters swapped, or a neighbouring key struck
    instead. The first letter is kept (a dropped first letter makes another word: gmail, mail)."""
    if typed == meant or typed[:1] != meant[:1]:
        return False
    near = _keyboard_neighbours()
    if len(typed) == len(meant) - 1:  # dropped
        return any(typed == meant[:at] + meant[at + 1:] for at in range(1, len(meant)))
    if len(typed) == len(meant) + 1:  # struck twice, or a neighbour struck too
        return any(typed[:at] + typed[at + 1:] == meant and
                   (typed[at] == typed[at - 1] or typed[at] in near.get(typed[at - 1], "")
                    or (at + 1 < len(typed) and (typed[at] == typed[at + 1] or typed[at] in near.get(typed[at + 1], ""))))
                   for at in range(1, len(typed)))
    if len(typed) != len(meant):
        return False
    differ = [at for at in range(len(meant)) if typed[at] != meant[at]]
    if len(differ) == 2 and differ[1] == differ[0] + 1:  # swapped
        return typed[differ[0]] == meant[differ[1]] and typed[differ[1]] == meant[differ[0]]
    return len(differ) == 1 and typed[differ[0]] in near.get(meant[differ[0]], "")


# A top-level domain cut short or mistyped that is a real one all the same (Colombia's, Oman's,
# Cameroon's): behind a provider's name it is a slip for .com
_COM_SLIPS = frozenset({"co", "om", "cm", "cpm", "vom", "xom", "comm", "coom", "cim", "cok", "coj"})


def mistyped_provider(address: str) -> str | None:
    """Why a list's address is a mailbox provider's domain mistyped ('gmial.com', 'gmail.co');
    None for every other address."""
    return _mistyped_domain(address[address.rfind("@") + 1:])


@lru_cache(maxsize=4096)  # by domain: a list's addresses share a few thousand
def _mistyped_domain(domain: str) -> str | None:
    domain = domain.lower().rstrip(".")
    name, _, suffix = domain.partition(".")
    if name in _PROVIDERS:
        if suffix in _PROVIDERS[name] or suffix not in _COM_SLIPS:
            return None
        return f"{domain} looks like {name}.com mistyped"
    if len(name) < 4 or name in _REAL_NEIGHBOURS:
        return None
    for provider, suffixes in _PROVIDERS.items():
        if suffix in suffixes and _one_slip(name, provider):
            return f"{domain} looks like {provider}.{suffix} mistyped"
    return None


# Country names as lists write them, in the languages our lists come in (CLDR's, written by
# scripts/country_names.py): the row's country is the region its phone numbers are read in
# (a German '030 1234567' is not Swedish)
@lru_cache(maxsize=1)
def _country_codes() -> dict[str, str]:
    return json.loads((Path(__file__).parent / "data" / "country_names.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=4096)
def country_region(value: str | None) -> str | None:
    """The ISO region of a country as written ('Sverige', 'Germany', 'UK', 'de'); None when
    it is not one we know (the caller keeps its default)."""
    if not value:
        return None
    name = " ".join(value.split()).casefold()
    found = _country_codes().get(name)
    if found is None and name.startswith("the "):  # 'The Netherlands', 'the United Kingdom'
        found = _country_codes().get(name[4:])
    if found is None and _COUNTRY_PARTS.search(name):
        # 'Sweden (SE)', 'SE - Sweden', 'Sverige/Sweden': the parts we know, when they agree
        named = {_country_codes().get(part) for part in _COUNTRY_PARTS.split(name) if part}
        named.discard(None)
        found = named.pop() if len(named) == 1 else None
    return found


_COUNTRY_PARTS = re.compile(r"\s*[/|()\[\]]\s*|\s+-\s+")


# Country domains sold to the world as words ('.io', '.co', '.ai'): no hint of where a person is
_VANITY_TLDS = frozenset({"io", "co", "me", "tv", "ai", "ly", "fm", "gg", "to", "cc", "ws", "la", "sh", "ac", "im",
                          "am", "so", "st", "vc", "nu", "tk", "ml", "ga", "cf", "gq", "ag", "sc", "bz"})


@lru_cache(maxsize=4096)
def email_region(address: str | None) -> str | None:
    """The region an address's country domain names ('anna@firma.co.uk': GB, 'bo@x.no': NO);
    None for generic domains (.com, .org) and country domains used as words (.io, .co)."""
    if not address or "@" not in address:
        return None
    tld = address.rstrip(" .>").rpartition(".")[2].casefold()
    if len(tld) != 2 or tld in _VANITY_TLDS:
        return None
    region = "GB" if tld == "uk" else tld.upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


# A date as lists write one ('2024-03-15', '2024-03-15 10:12', '15.03.2024', '3/15/24', '20240315'):
# digits that are no one's phone number
DATE_WRITTEN = re.compile(r"\d{4}-\d\d-\d\d(?:[ T].*)?|\d\d?[./-]\d\d?[./-]\d{2,4}(?: .*)?|"
                          r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")


def normalize_phone(value: str, region: str, field: str = "phone") -> str:
    """E.164 by the source's region; raises InvalidItem naming the field."""
    return _e164(value.strip(), region, field)


@lru_cache(maxsize=65536)  # lists repeat switchboard and household numbers
def _e164(text: str, region: str, field: str) -> str:
    fast = _e164_fast(text, region)
    if fast is None:
        return _e164_slow(text, region, field)
    if not fast:
        raise _not_valid(text, region, field)
    return fast


def _e164_slow(text: str, region: str, field: str) -> str:
    """The reference: phonenumbers itself, ~40 µs a number. A number as people annotate it
    ('070-123 45 67 (mobil)', '08-123 456 78 ankn. 12') is read without its words."""
    number = _parsed(text, region)
    if number is None and (bare := _without_words(text)) != text:
        number = _parsed(bare, region)
    if number is None:
        if _SCIENTIFIC.fullmatch(text):
            raise InvalidItem(field, f"invalid phone {text[:40]!r}: a spreadsheet wrote the number in scientific "
                                     "notation and its last digits are lost; format the column as text and "
                                     "export it again")
        try:
            phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as exc:
            raise InvalidItem(field, f"invalid phone {text[:40]!r}: {exc}") from None
        raise _not_valid(text, region, field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Excel's display of a long number typed into a General cell ('4,67012E+11', '4.67012E+11'):
# what the file holds once saved as CSV
_SCIENTIFIC = re.compile(r"\+?\d(?:[.,]\d+)?\s*[eE]\s*\+\s*\d{1,2}")


def _parsed(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        return None
    return number


_NOTE_IN_PARENS = re.compile(r"\((?=[^)]*[^\W\d_])[^)]*\)")  # '(mobil)', '(work)'; not '(0)'
_EXTENSION_WORD = re.compile(r"\b(?:ankn(?:ytning)?|anknytn|ank)\b\.?:?", re.IGNORECASE)
# a word after the number saying what it is: '070-123 45 67 mobil', '08-123 45 67 växel'
_NOTE_AFTER = re.compile(r"(?<=\d)[\s,;-]+(?:mobil|mobile|mob|cell|hem|home|bostad|arb|arbete|work|jobb|kontor|office|"
                         r"växel|vxl|vx|direkt|direct|privat|private)\.?$", re.IGNORECASE)


def _without_words(text: str) -> str:
    return _EXTENSION_WORD.sub(" ext. ", _NOTE_AFTER.sub("", _NOTE_IN_PARENS.sub(" ", text).strip())).strip()


# A North American number as written there: '(415) 555-0132', '415-555-0132', '415.555.0132'
_NANP_SHAPE = re.compile(r"(?:\(\s*[2-9]\d{2}\s*\)\s*[2-9]\d{2}[\s.-]?\d{4}|[2-9]\d{2}([.-])[2-9]\d{2}\1\d{4})"
                         r"(?:\s*[,;]?\s*(?:ext\.?|x|#)\s*\d{1,6})?", re.IGNORECASE)  # an extension after it
_NANP_REGIONS = frozenset({"US", "CA", "PR", "GU", "VI", "AS", "MP", "AG", "AI", "BB", "BM", "BS", "DM", "DO", "GD",
                           "JM", "KN", "KY", "LC", "MS", "SX", "TC", "TT", "VC", "VG"})


def north_american_number(value: str, region: str) -> str | None:
    """E.164 of a number written in North America's way ('(415) 555-0132') that is not a number
    of `region`: a list from a Swedish fair names its American visitors' numbers so, without +1.
    None for any other text, and in a region that dials +1 itself."""
    text = value.strip()
    if region in _NANP_REGIONS or not _NANP_SHAPE.fullmatch(text):
        return None
    number = _parsed(text, "US")  # valid for its own region of +1, Canada's too
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if number is not None else None


def phone_extension(value: str, region: str) -> str | None:
    """The extension written after a number ('ext. 204', 'x204', '#12', 'ankn. 12'), or None.
    The identity key is the number without it (one switchboard); the record keeps it."""
    text = value.strip()
    if _FAST_PHONE.fullmatch(text):  # digits and punctuation alone, as almost every number: no extension
        return None
    return _extension(text, region)


@lru_cache(maxsize=4096)
def _extension(text: str, region: str) -> str | None:
    number = _parsed(text, region) or _parsed(_without_words(text), region)
    return number.extension or None if number is not None else None


def _not_valid(text: str, region: str, field: str) -> InvalidItem:
    return InvalidItem(field, f"invalid phone {text[:40]!r}: not a valid number for region {region}")


# The everyday number: ASCII digits, spaces, dashes, dots, parentheses, at most a leading '+'.
# For these, phonenumbers.parse is a fixed sequence of steps (no extension, no letters, no
# RFC 3966, nothing cut off before the first digit but punctuation) that _e164_fast replays
# with the library's own metadata, precompiled per region; the comments name the
# phonenumberutil functions mirrored. Any other shape, region, or step where parse would raise
# or the replay is not exact (a national prefix transform rule, a non-geographic code) is left
# to phonenumbers.
_FAST_PHONE = re.compile(r"\+?[0-9 ().-]{3,64}")
_NOT_DIGIT = str.maketrans("", "", "+ ().-")
_MAX_NSN = 17  # phonenumberutil._MAX_LENGTH_FOR_NSN
_REGIONS_BY_CC = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
_POSSIBLE, _LOCAL_ONLY, _TOO_SHORT, _TOO_LONG, _INVALID_LENGTH = range(5)  # ValidationResult
_NO_PLAN = object()


class _Plan:
    """One region's metadata as precompiled regexes; `simple` when parsing needs no transform."""

    __slots__ = ("cc", "cc_str", "general", "general_desc", "idd", "leading_digits", "lengths",
                 "local_lengths", "national_prefix", "simple", "types")

    def __init__(self, md: phonenumbers.PhoneMetadata) -> None:
        self.cc = md.country_code
        self.cc_str = str(md.country_code)
        self.idd = re.compile(md.international_prefix) if md.international_prefix else None
        npfp = md.national_prefix_for_parsing
        self.national_prefix = re.compile(npfp) if npfp else None
        self.general = _desc_pattern(md.general_desc)
        self.lengths = tuple(md.general_desc.possible_length)
        self.local_lengths = tuple(md.general_desc.possible_length_local_only)
        self.general_desc = _desc(md.general_desc)
        # The descs _number_type_helper tries; any match means "not UNKNOWN", so the common
        # ones go first. Mobile counts only when its pattern differs from fixed line's.
        descs = [md.fixed_line]
        if not md.same_mobile_and_fixed_line_pattern:
            descs.append(md.mobile)
        descs += [md.premium_rate, md.toll_free, md.shared_cost, md.voip, md.personal_number,
                  md.pager, md.uan, md.voicemail]
        self.types = tuple(d for d in map(_desc, descs) if d is not None)
        self.leading_digits = re.compile(md.leading_digits) if md.leading_digits is not None else None
        self.simple = not md.national_prefix_transform_rule and bool(self.lengths)


def _desc_pattern(desc) -> re.Pattern | None:
    pattern = None if desc is None else desc.national_number_pattern
    return re.compile(pattern) if pattern else None


def _desc(desc) -> tuple[frozenset[int], re.Pattern] | None:
    """(possible lengths, empty for any; pattern), or None when the desc matches nothing."""
    pattern = _desc_pattern(desc)
    return None if pattern is None else (frozenset(desc.possible_length), pattern)


_PLANS: dict[object, _Plan | None] = {}


def _plan(region: object) -> _Plan | None:
    plan = _PLANS.get(region, _NO_PLAN)
    if plan is _NO_PLAN:
        md = None
        if isinstance(region, str) and region in phonenumbers.SUPPORTED_REGIONS:
            md = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
        plan = _PLANS[region] = None if md is None else _Plan(md)
    return plan


def _match_general(number: str, plan: _Plan) -> bool:  # _match_national_number(.., general_desc, False)
    return plan.general is not None and plan.general.fullmatch(number) is not None


def _strip_national_prefix(number: str, plan: _Plan) -> str:
    """_maybe_strip_national_prefix_carrier_code for metadata without a transform rule."""
    if not number or plan.national_prefix is None:
        return number
    match = plan.national_prefix.match(number)
    if match is None:
        return number
    stripped = number[match.end():]
    if _match_general(number, plan) and not _match_general(stripped, plan):
        return number
    return stripped


def _length_result(number: str, plan: _Plan) -> int:
    """_test_number_length with PhoneNumberType.UNKNOWN (the general desc's lengths)."""
    length = len(number)
    if length in plan.local_lengths:
        return _LOCAL_ONLY
    lengths = plan.lengths
    if lengths[0] == length:
        return _POSSIBLE
    if lengths[0] > length:
        return _TOO_SHORT
    if lengths[-1] < length:
        return _TOO_LONG
    return _POSSIBLE if length in lengths[1:] else _INVALID_LENGTH


def _has_type(nsn: str, plan: _Plan) -> bool:
    """_number_type_helper(...) != UNKNOWN, each desc tested as _is_number_matching_desc does."""
    length = len(nsn)
    if plan.general_desc is None:
        return False
    lengths, pattern = plan.general_desc
    if (lengths and length not in lengths) or pattern.fullmatch(nsn) is None:
        return False
    for lengths, pattern in plan.types:
        if (not lengths or length in lengths) and pattern.fullmatch(nsn) is not None:
            return True
    return False


def _split_country_code(digits: str) -> tuple[int, str] | None:
    """_extract_country_code after an IDD or '+'; None where parse would raise."""
    if len(digits) <= 2 or digits[0] == "0":  # TOO_SHORT_AFTER_IDD, or no country code
        return None
    for size in range(1, min(len(digits), 3) + 1):
        cc = int(digits[:size])
        if cc in _REGIONS_BY_CC:
            return cc, digits[size:]
    return None


def _main_plan(cc: int) -> _Plan | None:
    """The metadata parse and is_possible_number use for a country code: its main region's."""
    return _plan(_REGIONS_BY_CC[cc][0])  # None for '001' (non-geographic)


def _e164_fast(text: str, region: str) -> str | None:
    """E.164 for an everyday number; '' when phonenumbers.parse would succeed but
    is_possible_number or is_valid_number would say no; None when unsure (ask phonenumbers)."""
    plan = _plan(region)
    if plan is None or not plan.simple or _FAST_PHONE.fullmatch(text) is None:
        return None
    digits = text.translate(_NOT_DIGIT)
    if len(digits) < 3:  # with 3 digits, _is_viable_phone_number holds for these characters
        return None
    # parse -> _maybe_extract_country_code
    if text[0] == "+":
        split = _split_country_code(digits)
        if split is None:
            return None
        cc, national = split
        target = _main_plan(cc)
    else:
        idd = plan.idd.match(digits) if plan.idd is not None else None
        if idd is not None and digits[idd.end():idd.end() + 1] != "0":  # _parse_prefix_as_idd
            split = _split_country_code(digits[idd.end():])
            if split is None:
                return None
            cc, national = split
            target = _main_plan(cc)
        else:
            cc, national, target = plan.cc, digits, plan
            if digits.startswith(plan.cc_str):  # the region's own code, written without '+'
                rest = _strip_national_prefix(digits[len(plan.cc_str):], plan)
                if ((not _match_general(digits, plan) and _match_general(rest, plan))
                        or _length_result(digits, plan) == _TOO_LONG):
                    national, target = rest, _main_plan(cc)
    if target is None or not target.simple or len(national) < 2:
        return None
    # parse: the national prefix goes when what remains has a possible length
    stripped = _strip_national_prefix(national, target)
    if _length_result(stripped, target) in (_POSSIBLE, _TOO_LONG):
        national = stripped
    if not 2 <= len(national) <= _MAX_NSN:
        return None
    # is_possible_number: the main region's lengths
    main = _main_plan(cc)
    if main is None:
        return None
    if _length_result(national, main) not in (_POSSIBLE, _LOCAL_ONLY):
        return ""
    # is_valid_number: region_code_for_number, then that region's number types
    regions = _REGIONS_BY_CC[cc]
    if len(regions) == 1:
        return f"+{cc}{national}" if _has_type(national, main) else ""
    for code in regions:  # _region_code_for_number_from_list
        candidate = _plan(code)
        if candidate is None:
            continue
        if candidate.leading_digits is not None:
            if candidate.leading_digits.match(national):
                return f"+{cc}{national}" if _has_type(national, candidate) else ""
        elif _has_type(national, candidate):
            return f"+{cc}{national}"
    return ""


_NETWORKS = {"x": "twitter", "x.com": "twitter", "twitter.com": "twitter", "fb": "facebook",
             "facebook.com": "facebook", "linkedin.com": "linkedin"}
_PROFILE_URL = re.compile(r"(?:https?://)?(?:www\.|mobile\.|m\.)?(?:twitter|x|facebook)\.com/([^/?#\s]+)|"
                          r"(?:https?://)?(?:[a-z]{2,3}\.|www\.|m\.)?linkedin\.com/in/([^/?#\s]+)", re.I)
# A person's LinkedIn profile (not a company's page): 'https://www.linkedin.com/in/anna-berg-1a2b3c/'
LINKEDIN_PROFILE = re.compile(r"(?:https?://)?(?:[a-z]{2,3}\.|www\.|m\.)?linkedin\.com/in/[^/?#\s]+", re.I)


def normalize_handle(network: str, handle: str) -> str:
    """A social handle as a key: network-qualified ('x' is twitter), without '@' or the
    profile URL around it, in lower case: '@Maria_H', 'https://x.com/maria_h' -> 'twitter:maria_h'."""
    network = network.strip().lower()
    text = handle.strip()
    url = _PROFILE_URL.match(text)
    if url:
        text = unquote(url.group(1) or url.group(2))  # LinkedIn writes 'åsa' in its links as '%C3%A5sa'
    return f"{_NETWORKS.get(network, network)}:{text.lstrip('@').lower()}"


_NOTE_IN_NAME = re.compile(r"\s+\([^()]*\)$")  # 'Anna Svensson (VD)', 'Bo Ek (slutat)'
_HONORIFICS = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "sir", "herr", "fru",
                         "fröken", "frk", "docent", "civing", "civ.ing"})
_FORMS_IN_CAPITALS = frozenset({"AB", "HB", "KB", "AS", "ASA", "OY", "AG", "SA", "BV", "NV", "LTD", "INC", "LLC"})
# Swedish degrees written before a name in two words: 'Fil. dr', 'Tekn. lic', 'Med. dr'
_DEGREE_FIRST = frozenset({"fil", "tekn", "med", "jur", "ekon", "pol", "civ"})
_DEGREE_SECOND = frozenset({"dr", "lic", "kand", "mag", "ing"})
# A role written after a person's name and a comma ('Anna Berg, VD'): not 'Berg, Anna' read the other way
_ROLE_AFTER_NAME = re.compile(
    r"(?:[\w&-]+\s+)*(?:vd|ceo|cfo|cto|coo|cmo|cio|ciso|hr|ordförande|ordf|ägare|delägare|owner|founder|grundare|"
    r"säljare|sales|director|direktör|officer|president|vp|head of .*|inköp|ekonomi|marknad|försäljning|sälj|"
    r"kundtjänst|support|ledningen|"
    r"[\w-]*(?:chef|ansvarig|ansvarige|manager|direktör|director|chief|assistent|assistant|koordinator|coordinator|"
    r"samordnare|handläggare|sekreterare|secretary))\.?", re.IGNORECASE)


# The titles as written (a set lookup, no case folding, on every row's first name)
_HONORIFIC_FORMS = frozenset(form for title in _HONORIFICS
                             for cased in (title, title.capitalize(), title.upper()) for form in (cased, cased + "."))
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "mba", "esq", "msc", "bsc"})
# Letters written after a surname and a comma ('Lindqvist, MBA'): there, never a name ('Mei Ling Ma' keeps hers)
_CREDENTIALS_AFTER_COMMA = _NAME_SUFFIXES | {"cfa", "cpa", "pmp", "cissp", "acca", "fca", "aca", "ceng", "emba", "llm",
                                             "ma", "ba", "mcips", "frics"}
_CREDENTIALS = re.compile(r"[,\s]+")
# What a profile adds to a name ('Nilsson 🌱', 'Berg 🚀'): pictographs, their skin tones and joiners
_PICTOGRAPHS = re.compile("[\u2600-\u27bf\U0001f000-\U0001faff\u200d\ufe0f\u2b00-\u2bff]+")


def _without_credentials(name: str) -> str:
    """A last name without the letters after it ('Lindqvist, MBA', 'Ek, PhD, CFA', 'Berg PhD')
    and without pictographs ('Nilsson 🌱'), as a profile writes it."""
    if not name.isascii():
        name = " ".join(_PICTOGRAPHS.sub(" ", name).split()) or name
    before, comma, after = name.rpartition(",")
    if comma and before.strip() and all(word.replace(".", "").casefold() in _CREDENTIALS_AFTER_COMMA
                                        for word in _CREDENTIALS.split(after.strip()) if word):
        return _without_credentials(before.strip())
    words = name.split(" ")
    if len(words) > 1 and words[-1].replace(".", "").casefold() in _SUFFIXES_ALONE and words[-1][:1].isupper():
        return " ".join(words[:-1])  # 'Smith Jr.', 'Berg PhD'; not 'Li Ma'
    return name


_SUFFIXES_ALONE = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "mba", "esq", "cfa", "cpa"})


def _is_suffix(word: str) -> bool:
    return word.replace(".", "").strip().casefold() in _NAME_SUFFIXES


def name_column(name: str | None, given: bool) -> str | None:
    """A first (`given`) or last name column's cell as the name it holds: an address written
    there is no name (exports fill a missing name with it), nor is a title alone ('Mr.', 'Fru');
    a title before a first name ('Dr. Anna') and a note after a name ('Berg (slutat)') go.
    `name` is clean_text's."""
    if not name:
        return name
    if "@" in name and " " not in name:
        return None
    if name[-1] == ")":
        name = _NOTE_IN_NAME.sub("", name) or name
    if given and name.partition(" ")[0] in _HONORIFIC_FORMS:
        return name.partition(" ")[2] or None
    if not given and ("," in name or " " in name or not name.isascii()):
        return _without_credentials(name)
    if given and not name.isascii():
        return " ".join(_PICTOGRAPHS.sub(" ", name).split()) or name
    return name


def role_after_name(full_name: str | None) -> str | None:
    """The role a full name is written with after a comma ('Maria Engström, Ekonomichef'), or None."""
    name = clean_text(full_name, 400)
    if not name or "," not in name:
        return None
    before, _, after = name.rpartition(",")
    after = after.strip()
    return after[:200] if " " in before.strip() and _ROLE_AFTER_NAME.fullmatch(after) else None


def split_name(full_name: str | None) -> tuple[str | None, str | None]:
    """'Åsa Jönsson' -> ('Åsa', 'Jönsson'); 'Jönsson, Åsa' -> ('Åsa', 'Jönsson'). Each part at
    most 200 characters, as the name columns hold (a 1 MB cell made a 400-character first name,
    which PostgreSQL refuses)."""
    first, last = _split_name(full_name)
    return (first[:200].rstrip() or None) if first else first, (last[:200].rstrip() or None) if last else last


def _split_name(full_name: str | None) -> tuple[str | None, str | None]:
    name = clean_text(full_name, 400)
    if name and "@" in name:
        if " " not in name:  # an address in the name's column: no name
            return None, None
        if "<" in name:  # 'Anna Berg <anna@berg.se>', as a mail program writes a person
            name = name[:name.index("<")].strip(" \"'")
    if name and name[-1] == ")":
        name = clean_text(_NOTE_IN_NAME.sub("", name), 400) or name
    if not name:
        return None, None
    if "," in name:  # 'Anna Berg, VD': the role after the name, not the first name after the surname
        before, _, after = name.rpartition(",")
        if " " in before.strip() and _ROLE_AFTER_NAME.fullmatch(after.strip()):
            name = before.strip()
    words = name.split(" ")
    titled = False
    while len(words) > 1:
        if words[0].rstrip(".").casefold() in _HONORIFICS:  # 'Dr. Anna Svensson'
            words, titled = words[1:], True
        elif len(words) > 2 and words[0].rstrip(".").casefold() in _DEGREE_FIRST \
                and words[1].rstrip(".").casefold() in _DEGREE_SECOND:  # 'Fil. dr Per Ek'
            words, titled = words[2:], True
        else:
            break
    if titled:
        if len(words) == 1 and "," not in name:  # 'Mr. Smith'
            return None, words[0]
        name = " ".join(words)
    if "," in name and _is_suffix(name.rpartition(",")[2]):  # 'John Smith, Jr.', 'Anna Berg, PhD'
        name = name.rpartition(",")[0].strip()
    elif len(words) > 2 and _is_suffix(words[-1]):  # 'John Smith Jr.', 'Carl Bonde III'
        name = " ".join(words[:-1])
    if "," in name:
        last, _, first = name.partition(",")
        return clean_text(first, 200), clean_text(last, 200)
    words = name.split(" ")
    if len(words) > 1 and len(words[0]) > 2 and words[0].isupper() and not any(w.isupper() for w in words[1:]) \
            and words[0] not in _FORMS_IN_CAPITALS:  # (not 'PG Larsson', 'AJ Smith': initials)
        return " ".join(words[1:]), words[0]  # 'ANDERSSON Anna': a register writes the surname first, in capitals
    for index in range(1, len(words) - 1):  # 'Anna-Karin von Essen', 'Jan van der Berg': the particle starts the surname
        if words[index].casefold() in _PARTICLES:
            return " ".join(words[:index]), " ".join(words[index:])
    first, _, last = name.rpartition(" ")
    if not first:
        return last or None, None
    return first, last


def name_case(name: str | None) -> str | None:
    """A name written all in capitals or all in small letters, as names are written: 'PETRA LUND'
    -> 'Petra Lund', "o'neill" -> "O'Neill", 'VON ESSEN' -> 'von Essen'. Any other as entered
    ('McDonald', 'de Vries'): mixed case is a person's own."""
    if not name or not (name.isupper() or name.islower()):
        return name
    words = name.lower().split(" ")
    last = len(words) - 1
    cased = " ".join(word if index < last and word in _PARTICLES else _INITIAL.sub(_upper, word)
                     for index, word in enumerate(words))
    return _MC.sub(_mc, cased) if "Mc" in cased else cased  # 'MCDONALD' -> 'McDonald' ('Mac' may be 'Mack')


def place_case(name: str) -> str:
    """A place written in capitals as a letter writes it: 'ST ALBANS' -> 'St Albans', 'DEN HAAG' ->
    'Den Haag' (no word of it a surname's particle)."""
    return " ".join(_INITIAL.sub(_upper, word) for word in name.lower().split(" "))


_INITIAL = re.compile(r"(?:^|(?<=[-'’]))[^\W\d_]")
_MC = re.compile(r"(^|[-'’ ])Mc([^\W\d_])")


def _mc(match: re.Match) -> str:
    return f"{match.group(1)}Mc{match.group(2).upper()}"


def _upper(match: re.Match) -> str:
    return match.group(0).upper()


# Words that start a surname after the given names (Swedish and German nobility, Dutch,
# French, Italian, Spanish and Portuguese names); a last word is the surname whatever it is
_PARTICLES = frozenset({"von", "af", "av", "zu", "van", "der", "den", "ter", "ten", "de", "du", "des", "la", "le",
                        "di", "da", "del", "della", "dos", "das", "do", "st.", "st", "saint", "bin", "ibn"})
