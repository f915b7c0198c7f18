"""Field normalizers: values as entered become match keys. Pure functions, no I/O."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from .errors import InvalidItem

_SPACE = re.compile(r"\s+")


def _printable(text: str) -> str:
    """Line breaks unified (CRLF, CR, VT, FF become LF); other control characters dropped."""
    text = text.replace("\r\n", "\n").translate(_BREAKS)
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) != "Cc")


_BREAKS = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n"})


def clean_text(value: object, limit: int = 300) -> str | None:
    """Trimmed single-spaced text without control characters, capped; None when blank."""
    if value is None:
        return None
    text = str(value)
    if not text.isprintable():  # the common case skips the per-character scan
        text = _printable(text)
    text = _SPACE.sub(" ", text).strip()
    return text[:limit].rstrip() or None


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


def normalize_email(value: str, field: str = "email") -> tuple[str, str]:
    """Return (address as stored, match key). The key is the whole address in lower case.

    Syntax only: no DNS in bulk. Raises InvalidItem naming the field.
    """
    text = value.strip().strip("<>").strip()
    plain = _plain_email(text)
    if plain is not None:
        return plain, plain.lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidItem(field, f"invalid email {text[:80]!r}: {exc}") from None
    return result.normalized, result.normalized.lower()


def normalize_phone(value: str, region: str, field: str = "phone") -> str:
    """E.164 by the source's region; raises InvalidItem naming the field."""
    return _e164(value.strip(), region, field)


@lru_cache(maxsize=65536)  # lists repeat switchboard and household numbers; parsing costs ~100 µs
def _e164(text: str, region: str, field: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidItem(field, f"invalid phone {text[:40]!r}: {exc}") from None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise InvalidItem(field, f"invalid phone {text[:40]!r}: not a valid number for region {region}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_handle(network: str, handle: str) -> str:
    """A social handle as a key: network-qualified, without '@', in lower case."""
    return f"{network.lower()}:{handle.strip().lstrip('@').lower()}"


def split_name(full_name: str | None) -> tuple[str | None, str | None]:
    """'Åsa Jönsson' -> ('Åsa', 'Jönsson'); 'Jönsson, Åsa' -> ('Åsa', 'Jönsson')."""
    name = clean_text(full_name, 400)
    if not name:
        return None, None
    if "," in name:
        last, _, first = name.partition(",")
        return clean_text(first, 200), clean_text(last, 200)
    first, _, last = name.rpartition(" ")
    if not first:
        return last or None, None
    return first, last
