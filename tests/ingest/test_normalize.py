"""Field normalizers: values as entered become the same match key, or an InvalidItem naming the field."""
from __future__ import annotations

import pytest

from crm_ingest.ingest.errors import InvalidItem
from crm_ingest.ingest.normalize import (
    clean_body,
    clean_text,
    normalize_email,
    normalize_handle,
    name_case,
    normalize_phone,
    phone_extension,
    split_name,
)

# -- normalize_email ----------------------------------------------------------------------------


@pytest.mark.parametrize("entered", [
    "asa.jonsson@example.com",
    "Asa.Jonsson@Example.COM",
    "  asa.jonsson@example.com\t",
    "ASA.JONSSON@EXAMPLE.COM",
    "<asa.jonsson@example.com>",
    "Åsa Jonsson <asa.jonsson@example.com>",  # as a mail program copies it
    '"Jonsson, Åsa" <Asa.Jonsson@example.com> ',
    "mailto:asa.jonsson@example.com",  # as a web page's link copies it
    "MAILTO:Asa.Jonsson@Example.com?subject=Hej",
    "asa.jonsson@example.com (privat)",  # a note beside it, as people write in a cell
    "E-post: asa.jonsson@example.com", "asa.jonsson@example.com / jobb", "asa.jonsson@example.com?",
    "(asa.jonsson@example.com)", "'asa.jonsson@example.com'",
    "Mail: asa.jonsson@example.com / privat", "E-post:asa.jonsson@example.com",  # a label and a note
    "Mejl - asa.jonsson@example.com", "E-post: asa.jonsson@example.com (jobb)",
    "asa.jonsson(at)example.com", "asa.jonsson [at] example [dot] com",  # spelled out against harvesting
    "Asa.Jonsson at example dot com", "asa.jonsson(snabel-a)example.com",
    "asa.jonsson@example.com privat", "asa.jonsson@example.com Work", "Jobb asa.jonsson@example.com",
    "E-post asa.jonsson@example.com", "asa.jonsson@example.com (gammal adress)", "asa.jonsson@example.com ny",
    "asa.jonsson @example.com", "asa.jonsson@ example.com", "Asa.Jonsson @ Example.com",  # a space typed beside the @
])
def test_email_written_with_other_case_or_padding_gives_the_same_key(entered):
    # Given one address written several ways
    # When it is normalized
    _, key = normalize_email(entered)
    # Then the match key is the same lower-case address
    assert key == "asa.jonsson@example.com"


def test_email_keeps_the_local_part_as_entered_but_lowercases_the_domain():
    # Given an address with upper case on both sides of the @
    # When it is normalized
    stored, key = normalize_email("  Asa.Jonsson@Example.COM ")
    # Then the stored address keeps the local part's case, and the key is all lower case
    assert stored == "Asa.Jonsson@example.com"
    assert key == "asa.jonsson@example.com"


def test_email_with_an_idn_domain_in_punycode_or_unicode_gives_the_same_key():
    # Given one address on an internationalized domain, written as Unicode and as punycode
    # When both are normalized
    _, unicode_key = normalize_email("info@bücher.de")
    stored, puny_key = normalize_email("info@xn--bcher-kva.de")
    # Then both become the Unicode form, so they match
    assert unicode_key == puny_key == "info@bücher.de"
    assert stored == "info@bücher.de"


@pytest.mark.parametrize("entered", ["not-an-email", "a@b", "a@@b.se", "asa@", "@example.com", "", "   ",
                                     "asa@example", "asa jonsson@example.com", "asa jonsson @example.com",
                                     "asa@example.co m", "Bo och asa@example.com", "meet at noon",
                                     "asa@example.com privat m", "asa@example.se hemma hos Bo",
                                     "asa at example", "a (at) b (at) example.com"])
def test_invalid_email_raises_invalid_item_naming_the_default_field(entered):
    # Given something that is not an address
    # When it is normalized
    with pytest.raises(InvalidItem) as raised:
        normalize_email(entered)
    # Then the error names the field and says why
    assert raised.value.field == "email"
    assert "invalid email" in raised.value.reason


@pytest.mark.parametrize("entered", ["\ufffd\ufffd@x.se", "j\ufffdrgen@firma.se", "anna@f\ufffdretag.se"])
def test_an_address_holding_an_undecodable_character_is_invalid_saying_why(entered):
    # Given an address read in the wrong encoding (a form's bytes, a list's Latin-1 read as UTF-8)
    with pytest.raises(InvalidItem) as raised:
        normalize_email(entered)
    # Then it is no address (email-validator took U+FFFD as a symbol of an international one)
    assert "undecodable character" in raised.value.reason


def test_invalid_email_names_the_field_the_caller_passed():
    # Given a caller reading the address from a mail's From header
    # When the address is invalid
    with pytest.raises(InvalidItem) as raised:
        normalize_email("nobody", field="from")
    # Then the error names that field, in the message too
    assert raised.value.field == "from"
    assert str(raised.value).startswith("from: ")


# -- normalize_phone ----------------------------------------------------------------------------


@pytest.mark.parametrize("entered", [
    "070-123 45 67",
    "070 1234567",
    "0701234567",
    "(070) 123 45 67",
    "+46 70 123 45 67",
    "+46701234567",
    "0046 70 123 45 67",
    "  070-123 45 67  ",
])
def test_swedish_mobile_written_several_ways_gives_one_e164_number(entered):
    # Given one Swedish mobile number written the ways people write it
    # When it is normalized for a Swedish source
    # Then it is the same E.164 number every time
    assert normalize_phone(entered, "SE") == "+46701234567"


def test_swedish_landline_with_area_code_becomes_e164():
    # Given a Stockholm number in national format
    # When it is normalized for a Swedish source
    # Then the trunk 0 is dropped and the country code added
    assert normalize_phone("08-123 456 78", "SE") == "+46812345678"


def test_international_number_is_kept_in_its_own_country_despite_the_source_region():
    # Given a UK number written with +44, from a Swedish source
    # When it is normalized
    # Then it stays a UK number
    assert normalize_phone("+44 20 7183 8750", "SE") == "+442071838750"


def test_same_national_digits_mean_different_numbers_in_different_regions():
    # Given a national-format number without a country code
    # When it is read for a British source
    # Then it is a British number, not a Swedish one
    assert normalize_phone("020 7183 8750", "GB") == "+442071838750"


@pytest.mark.parametrize("entered, number", [
    ("070-123 45 67 (mobil)", "+46701234567"), ("08-123 456 78 (växel)", "+46812345678"),
    ("08-123 456 78 ankn. 123", "+46812345678"), ("08-123 456 78 anknytning 12", "+46812345678"),
    ("+1 (212) 555-0147 (work)", "+12125550147"), ("(08) 123 456 78", "+46812345678"),
    ("+46 (0)70-123 45 67", "+46701234567"), ("070-123 45 67 mobil", "+46701234567"),
    ("08-123 456 78 växel", "+46812345678"), ("08-123 456 78 ank 12", "+46812345678"),
])
def test_a_number_annotated_as_people_write_it_is_read_without_its_words(entered, number):
    assert normalize_phone(entered, "SE") == number


@pytest.mark.parametrize("entered, region, extension", [
    ("+1 415-555-0132, ext. 204", "SE", "204"), ("(415) 555-0132 x204", "US", "204"),
    ("08-123 456 78 ankn. 12", "SE", "12"), ("08-123 456 78 anknytning 123", "SE", "123"),
    ("08-123 45 67 ank. 12", "SE", "12"), ("070-123 45 67 mobil", "SE", None),
    ("+46 8 123 456 78 #12", "SE", "12"), ("+14155550132;ext=204", "SE", "204"),
    ("070-123 45 67", "SE", None), ("070-123 45 67 (mobil)", "SE", None), ("08-123 456 78 (växel)", "SE", None),
])
def test_an_extension_written_after_a_number_is_read_apart_from_it(entered, region, extension):
    assert phone_extension(entered, region) == extension


@pytest.mark.parametrize("entered", ["abc", "", "12", "070-12", "+46 70 123 45 67 89 01 23"])
def test_invalid_phone_raises_invalid_item_naming_the_field(entered):
    # Given something that is not a valid number
    # When it is normalized
    with pytest.raises(InvalidItem) as raised:
        normalize_phone(entered, "SE")
    # Then the error names the phone field
    assert raised.value.field == "phone"
    assert "invalid phone" in raised.value.reason


def test_invalid_phone_names_the_field_the_caller_passed():
    with pytest.raises(InvalidItem) as raised:
        normalize_phone("abc", "SE", field="mobile_phone")
    assert raised.value.field == "mobile_phone"


def test_possible_but_unassigned_number_is_rejected_with_the_region_in_the_reason():
    # Given a UK mobile number in the range reserved for fiction (possible but never valid)
    # When it is normalized
    with pytest.raises(InvalidItem) as raised:
        normalize_phone("+44 7700 900123", "SE")
    # Then it is rejected, saying which region it was read for
    assert "not a valid number for region SE" in raised.value.reason


# -- split_name ---------------------------------------------------------------------------------


@pytest.mark.parametrize("full_name, expected", [
    ("Åsa Jönsson", ("Åsa", "Jönsson")),
    ("Jönsson, Åsa", ("Åsa", "Jönsson")),
    ("  Åsa   Jönsson  ", ("Åsa", "Jönsson")),
    ("Anna Maria Berg", ("Anna Maria", "Berg")),
    ("Berg, Anna Maria", ("Anna Maria", "Berg")),
    ("Madonna", ("Madonna", None)),
    ("Jönsson,", (None, "Jönsson")),
    ("ANNA SVENSSON (VD)", ("ANNA", "SVENSSON")),           # a note in brackets is not a name
    ("Dr. Anna Svensson", ("Anna", "Svensson")), ("Herr Bo Ek", ("Bo", "Ek")),
    ("Prof. Dr. Hans Meier", ("Hans", "Meier")), ("Mr. Smith", (None, "Smith")),
    ("Fru Berg, Anna", ("Anna", "Berg")), ("Frida Ek", ("Frida", "Ek")),   # Frida is no 'Fru'
    ("Herr", ("Herr", None)),
    ("John Smith Jr.", ("John", "Smith")), ("John Smith, Jr.", ("John", "Smith")),  # a suffix is no name
    ("Margaret O'Neill, PhD", ("Margaret", "O'Neill")), ("Carl Bonde III", ("Carl", "Bonde")),
    ("Yo-Yo Ma", ("Yo-Yo", "Ma")), ("Anna Maria Sen", ("Anna Maria", "Sen")), ("Smith, John Jr.", ("John", "Smith")),
    ("Anna-Karin von Essen", ("Anna-Karin", "von Essen")), ("Gustav af Klint", ("Gustav", "af Klint")),  # a particle
    ("Jan Van der Berg", ("Jan", "Van der Berg")), ("Anna Maria de la Cruz", ("Anna Maria", "de la Cruz")),  # starts
    ("Carl von Sydow Jr.", ("Carl", "von Sydow")), ("Anna Le", ("Anna", "Le")),  # the surname; a last word is one
    ("", (None, None)),
    ("   ", (None, None)),
    (None, (None, None)),
])
def test_split_name_gives_first_and_last(full_name, expected):
    # Given a full name as entered
    # When it is split
    # Then the last word (or the part before a comma) is the last name
    assert split_name(full_name) == expected


# -- clean_text / clean_body --------------------------------------------------------------------


def test_clean_text_drops_nul_and_control_characters():
    # Given text with a NUL, a bell and an escape in it
    # When it is cleaned
    # Then those characters are gone and the letters around them are kept
    assert clean_text("Å\x00sa\x07 Jöns\x1bson") == "Åsa Jönsson"


def test_clean_text_collapses_whitespace_and_trims():
    # Given text padded and broken across tabs and newlines
    # When it is cleaned
    # Then it is one line, single-spaced, trimmed
    assert clean_text("  Ek \t AB\n\n Stockholm  ") == "Ek AB Stockholm"


@pytest.mark.parametrize("value", [None, "", "   ", "\x00\x01", "\t\n"])
def test_clean_text_of_blank_or_only_control_characters_is_none(value):
    assert clean_text(value) is None


def test_clean_text_caps_the_length():
    # Given text longer than the cap
    # When it is cleaned with a limit
    # Then it is cut to the limit
    assert clean_text("x" * 500, 300) == "x" * 300
    assert clean_text("abcdef", 4) == "abcd"


def test_clean_text_caps_after_collapsing_whitespace():
    # Given text whose padding would take up the cap
    # When it is cleaned
    # Then the cap counts characters of the cleaned text, not of the raw one
    assert clean_text("   ab    cd   ", 5) == "ab cd"


def test_clean_text_capped_at_a_space_is_still_trimmed():
    assert clean_text("Ek AB", 3) == "Ek"


def test_clean_text_turns_non_strings_into_text():
    assert clean_text(46701234567) == "46701234567"


@pytest.mark.parametrize("separator", ["\r", "\x0b", "\x0c"])
def test_clean_text_treats_carriage_return_as_a_word_break(separator):
    # Given two words separated only by a carriage return (or vertical tab, form feed)
    # When the text is cleaned
    # Then they stay two words
    assert clean_text(f"Åsa{separator}Jönsson") == "Åsa Jönsson"


def test_clean_body_keeps_lines_and_drops_nul():
    # Given a multi-line body with a NUL and CRLF line ends
    # When it is cleaned as a body
    # Then the lines are kept and the NUL is gone
    assert clean_body("Hej!\r\n\x00Tack.\r\n") == "Hej!\nTack."


def test_clean_body_keeps_lines_separated_by_a_bare_carriage_return():
    assert clean_body("line one\rline two") == "line one\nline two"


# -- normalize_handle ---------------------------------------------------------------------------


@pytest.mark.parametrize("network, handle", [
    ("twitter", "@AsaJ"), ("Twitter", "asaj"), ("TWITTER", "  @asaJ "), ("twitter", "ASAJ"),
])
def test_handle_is_network_qualified_lower_case_without_at(network, handle):
    # Given one handle written with or without '@', in any case
    # When it is normalized
    # Then it is one key
    assert normalize_handle(network, handle) == "twitter:asaj"


def test_same_handle_on_different_networks_gives_different_keys():
    assert normalize_handle("twitter", "asaj") != normalize_handle("facebook", "asaj")


@pytest.mark.parametrize("written, region", [
    ("Sverige", "SE"), ("sweden", "SE"), ("SE", "SE"), ("Deutschland", "DE"), ("Tyskland", "DE"),
    ("Germany", "DE"), ("United Kingdom", "GB"), ("Storbritannien", "GB"), ("UK", "GB"), ("England", "GB"),
    ("Norge", "NO"), ("no", "NO"), ("Suomi", "FI"), ("Finland", "FI"), ("Danmark", "DK"), ("USA", "US"),
    ("  united   states ", "US"), ("The Netherlands", "NL"), ("the United Kingdom", "GB"),
    ("SWE", "SE"), ("DEU", "DE"), ("gbr", "GB"), ("NOR", "NO"), ("Förenta staterna", "US"),  # ERP exports' codes
    ("Czech Republic", "CZ"), ("Korea, Republic of", "KR"), ("Kingdom of Sweden", "SE"),  # ISO 3166's names
    ("U.K.", "GB"), ("Hong Kong", "HK"), ("Ivory Coast", "CI"),
    ("Sweden (SE)", "SE"), ("SE - Sweden", "SE"), ("Sverige/Sweden", "SE"),  # a name and its code, or two names
    ("Sweden / Norway", None), ("Atlantis (AT)", "AT"),  # two countries: neither; the part known
    ("Atlantis", None), ("The", None), ("", None), (None, None),
])
def test_a_country_as_lists_write_it_gives_its_region(written, region):
    from crm_ingest.ingest.normalize import country_region

    assert country_region(written) == region


@pytest.mark.parametrize("entered", ["anna\u200b@example.se", "an\u00adna@example.se", "\ufeffanna@example.se"])
def test_invisible_characters_pasted_into_an_address_are_dropped(entered):
    assert normalize_email(entered) == ("anna@example.se", "anna@example.se")


@pytest.mark.parametrize("entered", ["4,67012E+11", "4.67012E+11", "4,47911e+11"])
def test_a_number_a_spreadsheet_wrote_in_scientific_notation_is_refused_saying_so(entered):
    # the digits after the sixth are gone from the file: no number can be made of it
    with pytest.raises(InvalidItem) as raised:
        normalize_phone(entered, "SE", "Mobil")
    assert raised.value.field == "Mobil" and "scientific notation" in raised.value.reason


@pytest.mark.parametrize("entered, written", [
    ("PETRA", "Petra"), ("ÅSA ÖBERG", "Åsa Öberg"), ("O'NEILL", "O'Neill"), ("anna-karin", "Anna-Karin"),
    ("VON ESSEN", "von Essen"), ("DE LA CRUZ", "de la Cruz"),     # a particle before the surname stays small
    ("McDonald", "McDonald"), ("de Vries", "de Vries"), ("Anna", "Anna"),  # mixed case: the person's own
    ("A", "A"), (None, None),
    ("MCDONALD", "McDonald"), ("anna mckay-smith", "Anna McKay-Smith"), ("MACDONALD", "Macdonald"),  # Mac: or Mack
])
def test_a_name_in_capitals_or_small_letters_is_written_as_names_are(entered, written):
    assert name_case(entered) == written


def test_lone_surrogates_are_no_text_and_never_reach_the_database():
    """A JSON line or post may carry '\\ud800' (valid JSON escape, no Unicode character): no
    database driver or JSON writer takes it, so a lead holding it broke every list it was in."""
    assert clean_text("\ud800Anna \udfffBerg") == "Anna Berg"
    assert clean_body("rad 1\n\ud83dsmile") == "rad 1\nsmile"
    assert clean_text("\U0001F600 ok") == "\U0001F600 ok"  # an emoji is one character, kept


def test_a_name_split_from_one_huge_cell_fits_the_name_columns():
    """A 1 MB name cell gave a 400-character first name for a 200-character column."""
    first, last = split_name("A" * 1_000_000)
    assert len(first) == 200 and last is None
    first, last = split_name("Anna " + "B" * 500)
    assert first == "Anna" and len(last) == 200


@pytest.mark.parametrize("written, first, last", [
    ("ANDERSSON Anna", "Anna", "ANDERSSON"), ("PG Larsson", "PG", "Larsson"), ("AJ Smith", "AJ", "Smith"),
    ("Jur Anna Berg", "Jur Anna", "Berg"), ("Med Ek", "Med", "Ek"), ("Fil. dr Per Ek", "Per", "Ek"),
    ("Anna Berg, VD", "Anna", "Berg"), ("Anna Berg, IT-chef", "Anna", "Berg"),
    ("Anna Berg, Marketing Manager", "Anna", "Berg"), ("Berg Andersson, Anna", "Anna", "Berg Andersson"),
])
def test_a_name_is_split_as_registers_and_signatures_write_it(written, first, last):
    from crm_ingest.ingest.normalize import split_name
    assert split_name(written) == (first, last)


@pytest.mark.parametrize("cell, given, name", [
    ("Lindqvist, MBA", False, "Lindqvist"), ("Ek, PhD, CFA", False, "Ek"), ("Nilsson 🌱", False, "Nilsson"),
    ("Berg, CFA 🚀", False, "Berg"), ("Smith Jr.", False, "Smith"), ("Anna 🌸", True, "Anna"),
    ("Berg, Anna", False, "Berg, Anna"), ("Li Ma", False, "Li Ma"), ("von Essen", False, "von Essen"),
    ("Chen, MA", False, "Chen"),
])
def test_a_name_column_drops_the_credentials_and_pictographs_a_profile_adds(cell, given, name):
    from crm_ingest.ingest.normalize import name_column
    assert name_column(cell, given) == name


@pytest.mark.parametrize("full, first, last", [("Mei Ling Ma", "Mei Ling", "Ma"), ("Nguyen Van Ba", "Nguyen", "Van Ba")])
def test_a_surname_that_is_also_a_degree_s_letters_is_kept(full, first, last):
    from crm_ingest.ingest.normalize import split_name
    assert split_name(full) == (first, last)
