"""The fast path for everyday phone numbers must agree with phonenumbers on every number.

The reference is _e164_slow (parse + is_possible_number + is_valid_number + E.164), the
implementation before the fast path. The fast path may decline (None) but never answer
differently: a number only when the reference gives that number, '' (not valid) only when the
reference rejects it as not valid. normalize_phone must give the reference's number or its
exact rejection.
"""
import random
from collections import Counter
from functools import cache

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType

from crm_ingest.ingest.errors import InvalidItem
from crm_ingest.ingest.normalize import _e164, _e164_fast, _e164_slow, normalize_phone

MAIN_REGIONS = ["SE", "GB", "US", "DE", "NO", "DK", "FI", "FR", "NL"]
ALL_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [getattr(PhoneNumberType, name) for name in dir(PhoneNumberType)
         if name.isupper() and isinstance(getattr(PhoneNumberType, name), int)]
SEPARATORS = [" ", " ", "-", ".", "", " - ", "  "]
ODD = ["ext 12", "x12", "#", "/", "Tel: ", "tel:", "++", "+ ", "١", "０", "ABC", "*", ";ext=1", "\t",
       "(0)", "+-", ",", "~", "–"]


@cache  # the cases are checked twice; phonenumbers is asked once a case
def reference(text: str, region: str) -> tuple[str, str]:
    try:
        return "ok", _e164_slow(text, region, "phone")
    except InvalidItem as exc:
        return "rejected", exc.reason


def new(text: str, region: str) -> tuple[str, str]:
    try:
        return "ok", normalize_phone(text, region)
    except InvalidItem as exc:
        return "rejected", exc.reason


def idd_for(region: str) -> str:
    md = PhoneMetadata.metadata_for_region(region)
    prefix = md.preferred_international_prefix or md.international_prefix or "00"
    return prefix if prefix.isdigit() else "00"


def seeds() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    """(region, number) for every region's example number of every type."""
    found = []
    for region in ALL_REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append((region, number))
    return found


def group(rng: random.Random, digits: str) -> str:
    """Digits split at random places by everyday separators, sometimes with parentheses."""
    out, i = [], 0
    while i < len(digits):
        size = rng.randint(1, 4)
        out.append(digits[i:i + size])
        i += size
    sep = rng.choice(SEPARATORS)
    text = sep.join(out)
    if len(out) > 1 and rng.random() < 0.2:
        text = f"({out[0]}) " + sep.join(out[1:])
    return text


def perturb(rng: random.Random, digits: str) -> str:
    """A typo: a digit changed, dropped, doubled or added, or the end cut off."""
    if not digits:
        return digits
    i = rng.randrange(len(digits))
    kind = rng.randrange(6)
    if kind == 0:
        return digits[:i] + rng.choice("0123456789") + digits[i + 1:]
    if kind == 1:
        return digits[:i] + digits[i + 1:]
    if kind == 2:
        return digits[:i] + digits[i] + digits[i:]
    if kind == 3:
        return digits + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 4)))
    if kind == 4:
        return digits[: max(1, i)]
    return rng.choice(["0", "1", "00", "9"]) + digits


def writings(rng: random.Random, region: str, number: phonenumbers.PhoneNumber, parse_region: str):
    """The ways one number is written: international, IDD, national, bare, typos, odd text."""
    cc = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    prefix = PhoneMetadata.metadata_for_region(region).national_prefix or ""
    yield international
    yield national
    yield "+" + cc + nsn
    yield "+" + cc + " " + group(rng, nsn)
    yield "+" + cc + " (" + (prefix or "0") + ")" + group(rng, nsn)
    yield idd_for(parse_region) + cc + group(rng, nsn)
    yield rng.choice(["00", "011", "0011", "000", "810", "99"]) + " " + cc + " " + group(rng, nsn)
    yield cc + group(rng, nsn)
    yield prefix + group(rng, nsn)
    yield group(rng, nsn)
    yield "0" + nsn
    for _ in range(2):
        yield "+" + cc + " " + group(rng, perturb(rng, nsn))
        yield prefix + group(rng, perturb(rng, nsn))
        yield rng.choice(["", "+", "0", "00", "1", cc]) + group(rng, perturb(rng, cc + nsn))
    yield national.replace(" ", rng.choice(SEPARATORS))
    odd = rng.choice(ODD)
    yield rng.choice([odd + international, national + " " + odd, national.replace(" ", odd, 1)])


def random_strings(rng: random.Random, count: int):
    for _ in range(count):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 20)))
        head = rng.choice(["", "", "+", "0", "00", "+0", "(", "1", "011"])
        tail = rng.choice(["", "", "", ".", ")", "-", " "])
        yield head + group(rng, digits) + tail


def cases() -> list[tuple[str, str]]:
    rng = random.Random(20260311)
    found = []
    for region, number in seeds():
        parse_regions = {region, rng.choice(MAIN_REGIONS), rng.choice(ALL_REGIONS)}
        for parse_region in sorted(parse_regions):
            found += [(text, parse_region) for text in writings(rng, region, number, parse_region)]
    for region in MAIN_REGIONS:
        found += [(text, region) for text in random_strings(rng, 1500)]
    found += [(text, rng.choice(ALL_REGIONS)) for text in random_strings(rng, 3000)]
    return found


CASES = cases()


def test_there_are_tens_of_thousands_of_cases_over_every_region():
    assert len(CASES) > 40_000
    assert {region for _, region in CASES} >= set(ALL_REGIONS)


def fast_answer_as_reference(text: str, region: str, fast: str) -> tuple[str, str]:
    if fast:
        return "ok", fast
    return "rejected", f"invalid phone {text[:40]!r}: not a valid number for region {region}"


def test_fast_path_answers_only_with_the_reference_answer():
    wrong, answered, rejected = [], Counter(), Counter()
    for text, region in CASES:
        text = text.strip()
        expected = reference(text, region)
        fast = _e164_fast(text, region)
        if fast is None:
            continue
        (answered if fast else rejected)[expected[0]] += 1
        if fast_answer_as_reference(text, region, fast) != expected:
            wrong.append((text, region, fast, expected))
    assert wrong == []
    # The fast path is not idle: it answers for most valid numbers and rejects many invalid ones.
    valid = sum(reference(text.strip(), region)[0] == "ok" for text, region in CASES)
    assert answered["ok"] > 0.75 * valid
    assert rejected["rejected"] > 5000


def test_normalize_phone_gives_the_reference_number_or_the_same_rejection():
    _e164.cache_clear()
    wrong = [(text, region, got, expected) for text, region in CASES
             if (got := new(text, region)) != (expected := reference(text.strip(), region))]
    assert wrong == []


def test_main_regions_everyday_mobiles_take_the_fast_path_and_agree():
    rng = random.Random(7)
    checked = 0
    for _ in range(3000):
        sub = "".join(rng.choice("0123456789") for _ in range(7))
        for text, region in [(f"+46 70 {sub[:3]} {sub[3:5]} {sub[5:]}", "SE"), (f"070-{sub}", "SE"),
                             (f"0046 70{sub}", "SE"), (f"+44 7911 {sub[:6]}", "GB"),
                             (f"07911 {sub[:6]}", "GB"), (f"(212) 55{sub[0]}-{sub[1:5]}", "US"),
                             (f"+1 415-{sub[:3]}-{sub[3:7]}", "US"), (f"1 212 {sub[:3]} {sub[3:]}", "US")]:
            kind, expected = reference(text, region)
            if kind == "ok":
                assert _e164_fast(text, region) == expected, text
                checked += 1
    assert checked > 15_000


# -- readable examples -------------------------------------------------------------------------


@pytest.mark.parametrize(("entered", "region", "expected"), [
    ("070-123 45 67", "SE", "+46701234567"),
    ("+46 (0)70-123 45 67", "SE", "+46701234567"),
    ("0046 70 123 45 67", "SE", "+46701234567"),
    ("46 70 123 45 67", "SE", "+46701234567"),
    ("020 7183 8750", "GB", "+442071838750"),
    ("+44 20 7183 8750", "SE", "+442071838750"),
    ("07911 123456", "GB", "+447911123456"),
    ("(212) 555-0123", "US", "+12125550123"),
    ("1-212-555-0123", "US", "+12125550123"),
    ("011 46 70 123 45 67", "US", "+46701234567"),
    ("030 123456", "DE", "+4930123456"),
    ("412 34 567", "NO", "+4741234567"),
    ("32 12 34 56", "DK", "+4532123456"),
    ("040 1234567", "FI", "+358401234567"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("06-12345678", "NL", "+31612345678"),
])
def test_everyday_numbers_are_answered_by_the_fast_path(entered, region, expected):
    assert _e164_fast(entered, region) == expected
    assert _e164_slow(entered, region, "phone") == expected


@pytest.mark.parametrize(("entered", "region"), [
    ("+44 7700 900123", "GB"),     # possible but never valid (the range for drama)
    ("070-123 45 6", "SE"),        # a digit short
    ("(212) 555-01234", "US"),     # a digit too many
    ("070-12", "SE"),              # parse reads it; far too short to be valid
    ("+46 70 123 45 67", "GB"),    # an international number read for another region: valid
])
def test_numbers_parse_would_read_are_judged_by_the_fast_path_too(entered, region):
    fast = _e164_fast(entered, region)
    assert fast is not None
    assert fast_answer_as_reference(entered, region, fast) == reference(entered, region)
    assert new(entered, region) == reference(entered, region)


@pytest.mark.parametrize(("entered", "region"), [
    ("070-123 45 67 ext 12", "SE"),       # extension
    ("1-800-FLOWERS", "US"),               # vanity letters
    ("tel:+46-70-123-45-67", "SE"),        # RFC 3966
    ("Tel: 070-123 45 67", "SE"),          # text before the number
    ("+46 70 123 45 67", "XX"),            # unknown region
    ("070 123 45 67", "AR"),               # region with a national prefix transform rule
    ("+800 1234 5678", "SE"),              # non-geographic country code
    ("+0 70 123 45 67", "SE"),             # no country code after '+'
    ("12", "SE"),                          # two digits: parse has its own rules for these
])
def test_other_shapes_are_left_to_phonenumbers(entered, region):
    assert _e164_fast(entered, region) is None
    assert new(entered, region) == reference(entered, region)


def test_rejection_names_the_field_and_region_whichever_path_decides():
    for entered in ["+44 7700 900123", "+44 7700 900123 x1"]:
        with pytest.raises(InvalidItem) as raised:
            normalize_phone(entered, "SE", field="mobile_phone")
        assert raised.value.field == "mobile_phone"
        assert raised.value.reason == reference(entered, "SE")[1]
