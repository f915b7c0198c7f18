"""Rules-based matching: match keys, blocking keys, operators, configuration, and the default
rules on the pairs a CRM must merge and the ones it must keep apart."""
from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest

from crm_ingest.ingest import matching
from crm_ingest.ingest.errors import ConfigError, FatalError
from crm_ingest.ingest.matching import (
    DEFAULT_RULES,
    NICKNAMES,
    RECORD_PAIRS,
    Condition,
    Decision,
    RuleSet,
    blocking_keys,
    canonical_email,
    canonical_first_name,
    mailbox_keys,
    fold,
    is_role_address,
    normalize_company,
    other_first_name,
    rules_from_toml,
    score,
    work_domain,
)

PEOPLE = DEFAULT_RULES["lead-contact"]


def decide(a: dict, b: dict, rules: RuleSet = PEOPLE) -> Decision:
    """Score both ways round: the decision must not depend on the order."""
    there, back = score(a, b, rules), score(b, a, rules)
    assert (there.score, there.outcome) == (back.score, back.outcome)
    return there


def one(condition: Condition, **rules) -> RuleSet:
    return RuleSet((condition,), merge_threshold=rules.get("merge", 0.8),
                   review_threshold=rules.get("review", 0.6), min_weight=rules.get("min_weight", 0.0))


# -- fold -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entered, key", [
    ("Åsa", "asa"),
    ("Jönsson", "jonsson"),
    ("Ørjan", "orjan"),
    ("Weiß", "weiss"),
    ("Dvořák", "dvorak"),
    ("Łukasz Ærø", "lukasz aero"),
    ("O'Brien", "obrien"),
    ("  Anna-Karin ,  SVENSSON. ", "anna karin svensson"),
    ("ＡＣＭＥ", "acme"),
])
def test_fold_drops_case_diacritics_and_punctuation(entered, key):
    # Given a value as someone typed it
    # When it is folded
    # Then only lower-case letters, digits and single spaces remain
    assert fold(entered) == key


def test_fold_of_nothing_is_empty():
    # Given blank input
    # When it is folded
    # Then the key is empty, not an error
    assert fold("") == fold(" - ") == ""


# -- canonical_first_name ---------------------------------------------------------------------------


@pytest.mark.parametrize("nickname, name", [
    ("Bob", "robert"), ("Rob", "robert"), ("Robbie", "robert"), ("Bill", "william"),
    ("Will", "william"), ("Billy", "william"), ("Liz", "elizabeth"), ("Beth", "elizabeth"),
    ("Kate", "katherine"), ("Katie", "katherine"), ("Jim", "james"), ("Mike", "michael"),
    ("Kalle", "karl"), ("Pelle", "per"), ("Putte", "per"), ("Lasse", "lars"), ("Janne", "jan"),
    ("Nisse", "nils"), ("Olle", "olof"), ("Stina", "kristina"), ("Kicki", "kristina"),
    ("Lotta", "charlotte"), ("Maja", "maria"), ("Bosse", "bo"), ("Micke", "mikael"),
])
def test_nicknames_in_english_and_swedish_become_the_canonical_name(nickname, name):
    # Given a nickname
    # When its canonical first name is taken
    # Then it is the full name the nickname stands for, as the full name itself is
    assert canonical_first_name(nickname) == name
    assert canonical_first_name(name.capitalize()) == name


def test_a_name_without_a_nickname_is_only_folded():
    # Given names the table does not know, with diacritics and two words
    # When their canonical first names are taken
    # Then they are folded, each word on its own
    assert canonical_first_name("Åsa") == "asa"
    assert canonical_first_name("Anna-Karin") == "anna karin"
    assert canonical_first_name("Kalle Anka") == "karl anka"
    assert canonical_first_name(None) is None and canonical_first_name("  ") is None


def test_the_nickname_table_never_maps_a_name_to_another_name():
    # Given the nickname table
    # Then no canonical name is itself a nickname of something else (the mapping is one step),
    # and no nickname is listed under two names (the later one would silently win)
    assert not set(NICKNAMES.values()) & set(NICKNAMES)
    listed = [nick for nicks in matching._NICKNAMES_OF.values() for nick in nicks.split()]
    assert len(listed) == len(set(listed)) == len(NICKNAMES)


# -- normalize_company ------------------------------------------------------------------------------


@pytest.mark.parametrize("entered", [
    "Acme AB", "ACME Aktiebolag", "Acme, Inc.", "Acme Incorporated", "Acme Ltd", "Acme Limited",
    "Acme LLC", "Acme GmbH", "Acme AG", "Acme Oy", "Acme AS", "Acme ASA", "Acme A/S", "Acme ApS",
    "Acme B.V.", "Acme NV", "Acme S.A.", "Acme SARL", "Acme plc", "Acme Corp.", "Acme Corporation",
    "Acme & Co", "Acme HB", "Acme KB", "Acme AB (publ)", "AB Acme",
])
def test_company_names_with_any_legal_form_give_one_key(entered):
    # Given one company written with a legal form
    # When its name is normalized
    # Then the form, the punctuation and the case are gone
    assert normalize_company(entered) == "acme"


def test_company_keys_keep_the_words_of_the_name():
    # Given names of several words, with diacritics, and a name that is only a legal form
    # When they are normalized
    # Then the words of the name stay, folded; a bare legal form is not emptied; blank is None
    assert normalize_company("Fjällbygg Konsult AB") == "fjallbygg konsult"
    assert normalize_company("AB") == "ab"
    assert normalize_company("") is None


# -- email keys -------------------------------------------------------------------------------------


def test_one_gmail_mailbox_written_three_ways_has_one_mailbox_key():
    # Given one Gmail mailbox written three ways, and its dotless spelling
    keys = [mailbox_keys(key) for key in (
        "anna.svensson@gmail.com", "annasvensson+news@googlemail.com", "a.n.n.a.svensson@gmail.com",
        "annasvensson@gmail.com")]
    # Then each has the canonical mailbox's key, the dotless spelling too (two workers storing
    # two spellings at once meet on it)
    assert keys == [["annasvensson@gmail.com"]] * 4


@pytest.mark.parametrize("domain", ["outlook.com", "hotmail.com", "live.com", "icloud.com",
                                    "fastmail.com", "protonmail.com"])
def test_plus_tag_providers_drop_the_tag_but_keep_dots(domain):
    # Given an address with a plus-tag at a provider that delivers it to the same mailbox
    # Then the mailbox's key has no tag, and the dots stay (only Gmail ignores them)
    assert mailbox_keys(f"anna.s+crm@{domain}") == [f"anna.s@{domain}"]
    assert mailbox_keys(f"anna.s@{domain}") == []  # the address is its mailbox: no other key


def test_other_domains_keep_the_address_as_it_is():
    # Given a company address with dots and a plus sign
    # Then there is no mailbox key: the company's server decides what '+' means
    assert mailbox_keys("anna.s+crm@fjallbygg.se") == []
    assert canonical_email("anna.s+crm@fjallbygg.se") == "anna.s+crm@fjallbygg.se"


@pytest.mark.parametrize("key", [
    "a@gmail.com", "a@googlemail.com", "a@hotmail.com", "a@hotmail.co.uk", "a@outlook.de",
    "a@live.se", "a@yahoo.se", "a@yahoo.co.uk", "a@icloud.com", "a@me.com", "a@aol.com",
    "a@gmx.net", "a@web.de", "a@proton.me", "a@mail.ru", "a@telia.com", "a@bredband.net",
    "a@comhem.se", "a@spray.se", "a@passagen.se", "a@tele2.se", "a@bahnhof.se", "a@home.se",
])
def test_free_mail_addresses_have_no_work_domain(key):
    # Given an address at a provider anyone can sign up with
    # Then its domain says nothing about an employer
    assert work_domain(key) is None


def test_a_company_address_has_its_domain_as_work_domain():
    # Given company addresses, one at a subdomain named like a free-mail brand
    # Then their domains are work domains
    assert work_domain("anna@fjallbygg.se") == "fjallbygg.se"
    assert work_domain("anna@live.events.com") == "live.events.com"


@pytest.mark.parametrize("key", [
    "info@acme.se", "sales@acme.se", "support@acme.se", "kontakt@acme.se", "contact@acme.com",
    "hello@acme.com", "hej@acme.se", "office@acme.com", "admin@acme.com", "noreply@acme.com",
    "no-reply@acme.com", "order@acme.se", "ekonomi@acme.se", "faktura@acme.se",
    "invoice@acme.com", "kundtjanst@acme.se", "kundtjänst@acme.se", "kundservice@acme.se",
    "service@acme.se", "marketing@acme.com", "hr@acme.se", "jobs@acme.com", "jobb@acme.se",
    "reception@acme.se", "sales.se@acme.com", "support-team@acme.com", "info+crm@acme.se",
])
def test_shared_mailboxes_are_role_addresses(key):
    # Given an address a team shares
    # Then it is a role address
    assert is_role_address(key)


@pytest.mark.parametrize("key", ["anna.svensson@acme.se", "bo@acme.se", "hr.anna@acme.se",
                                 "serviceman@acme.com", "anna.info@acme.se"])
def test_personal_addresses_are_not_role_addresses(key):
    # Given a person's address, some containing a role word
    # Then it is not a role address
    assert not is_role_address(key)


# -- blocking keys ----------------------------------------------------------------------------------


def test_a_person_is_indexed_by_contact_points_and_name_keys():
    # Given a lead with a nickname, a Gmail address, a phone as typed, a birth date and an employer
    lead = {"first_name": "Bob", "last_name": "Jönsson", "email": "Bob.Jonsson@gmail.com",
            "phone": "070-123 45 67", "birth_date": "1980-05-01", "company_name": "Acme AB",
            "handle": "twitter:bobj"}
    # When its blocking keys are taken
    keys = blocking_keys(lead)
    # Then they are exact strings, strongest first
    assert keys == [
        ("email", "bob.jonsson@gmail.com"), ("email_canonical", "bobjonsson@gmail.com"),
        ("handle", "twitter:bobj"), ("phone", "+46701234567"), ("name", "robert|jonsson"),
        ("name_initial", "r|jonsson"), ("birth_initial", "1980-05-01|r"),
    ]


def test_a_role_address_is_no_blocking_key_but_its_domain_is():
    # Given a contact who wrote from the company's info@ address
    contact = {"first_name": "Anna", "last_name": "Berg", "email": ["info@acme.se", "anna@acme.se"]}
    # When its blocking keys are taken
    keys = blocking_keys(contact, "contact")
    # Then the shared mailbox is not a key (it would find every colleague); the last name at
    # the work domain is
    assert ("email", "info@acme.se") not in keys
    assert ("email", "anna@acme.se") in keys
    assert ("domain_name", "acme.se|berg") in keys


def test_records_to_merge_share_a_blocking_key():
    # Given pairs written differently: nickname, first-name typo, Gmail dots, phone format
    pairs = [
        ({"first_name": "Bob", "last_name": "Smith"}, {"first_name": "Robert", "last_name": "Smith"}),
        ({"first_name": "Kristoffer", "last_name": "Åberg"}, {"first_name": "Kristofer", "last_name": "Aberg"}),
        ({"email": "anna.svensson@gmail.com"}, {"email": "annasvensson+x@googlemail.com"}),
        ({"phone": "08-123 456 78"}, {"phone": "+46 8 123 456 78"}),
    ]
    for a, b in pairs:
        # When both records' keys are taken
        # Then they share one, so the lookup finds the other record
        assert set(blocking_keys(a)) & set(blocking_keys(b)), (a, b)


def test_blocking_keys_refuse_an_unknown_record_type():
    # Given a record type the engine does not match
    # Then asking for its keys is a programming error, not a silent person lookup
    with pytest.raises(ValueError, match="record_type"):
        blocking_keys({"email": "a@b.se"}, "case")


def test_an_account_is_indexed_by_company_domain_email_and_phone():
    # Given an account row (its name in `name`) with a website and a shared mailbox
    account = {"name": "ACME Aktiebolag", "website_domain": "https://www.acme.se/om-oss",
               "email": "info@acme.se", "phone": "08-123 456 78"}
    # When its blocking keys are taken
    # Then the company key drops the legal form, and the role address counts for an account
    assert blocking_keys(account, "account") == [
        ("company", "acme"), ("domain", "acme.se"), ("email", "info@acme.se"),
        ("phone", "+46812345678")]


# -- operators --------------------------------------------------------------------------------------


def test_exact_compares_folded_values_unless_case_sensitive():
    # Given one value in two cases
    a, b = {"code": "AB-12"}, {"code": "ab 12"}
    # When compared exactly, with and without case sensitivity
    folded = score(a, b, one(Condition("code", "exact")))
    sensitive = score(a, b, one(Condition("code", "exact", case_sensitive=True)))
    # Then only the folded comparison matches
    assert (folded.score, sensitive.score) == (1.0, 0.0)


def test_first_n_and_last_n_compare_the_ends_of_a_value():
    # Given two postcodes sharing the first three and the last two digits
    a, b = {"postcode": "41101"}, {"postcode": "41301"}
    # Then first_n matches on 2 and not on 3; last_n matches on 2 and not on 3
    assert score(a, b, one(Condition("postcode", "first_n", n=2))).score == 1.0
    assert score(a, b, one(Condition("postcode", "first_n", n=3))).score == 0.0
    assert score(a, b, one(Condition("postcode", "last_n", n=2))).score == 1.0
    assert score(a, b, one(Condition("postcode", "last_n", n=3))).score == 0.0


def test_same_date_reads_dates_written_several_ways():
    # Given one birth date written four ways, and another date
    from datetime import date
    same = ["1980-05-01", "19800501", "01.05.1980", date(1980, 5, 1)]
    rules = one(Condition("birth_date", "same_date"))
    # Then every pair of the same day matches, and a different day does not
    for value in same:
        assert score({"birth_date": same[0]}, {"birth_date": value}, rules).score == 1.0
    assert score({"birth_date": "1980-05-01"}, {"birth_date": "1980-01-05"}, rules).score == 0.0


def test_fuzzy_gives_a_similarity_and_threshold_counts_a_low_one_as_zero():
    # Given a surname with a one-letter typo, and an address with its words in another order
    typo = ({"surname": "Svensson"}, {"surname": "Svenson"})
    moved = ({"address": "12 Storgatan"}, {"address": "Storgatan 12"})
    # When compared with Jaro-Winkler and token-sort ratio
    jw = score(*typo, one(Condition("surname", "fuzzy", scorer="jaro_winkler")))
    tokens = score(*moved, one(Condition("address", "fuzzy", scorer="token_sort")))
    strict = score(*typo, one(Condition("surname", "fuzzy", threshold=0.99)))
    # Then the similarity is high but below 1, word order does not matter to token-sort,
    # and a similarity below the threshold counts as 0 (the reason says so)
    assert 0.95 < jw.score < 1.0
    assert tokens.score == 1.0
    assert strict.score == 0.0
    assert strict.reasons == ["surname fuzzy: 0.97 below 0.99, counted as 0"]


def test_damerau_levenshtein_counts_typed_typos_as_edits():
    # Given an identifier with two adjacent digits swapped, one with a digit changed, and an
    # address with a space dropped
    rules = one(Condition("id", "fuzzy", scorer="damerau_levenshtein"))
    swapped = score({"id": "4173804"}, {"id": "4178304"}, rules)
    changed = score({"id": "7440143"}, {"id": "7440243"}, rules)
    spaced = score({"id": "walker crescent"}, {"id": "walkercrescent"}, rules)
    # Then each is one edit: 1 - edits / the longer length
    assert swapped.score == changed.score == pytest.approx(1 - 1 / 7, abs=1e-6)
    assert spaced.score == pytest.approx(1 - 1 / 15, abs=1e-6)
    # And two edits count twice
    assert score({"id": "4173804"}, {"id": "4178305"}, rules).score == pytest.approx(1 - 2 / 7, abs=1e-6)


SWAPPABLE_NAMES = RuleSet((
    Condition("given_name", "fuzzy", scorer="jaro_winkler", threshold=0.85, weight=2, swap_with="surname"),
    Condition("surname", "fuzzy", scorer="jaro_winkler", threshold=0.85, weight=2),
    Condition("dob", "same_date", weight=2),
), merge_threshold=0.8, review_threshold=0.6)


def test_swap_with_compares_names_entered_in_each_others_fields():
    # Given one person with given name and surname entered the other way round (one typo too)
    a = {"given_name": "Sybella", "surname": "Shepherd", "dob": "1946-03-21"}
    b = {"given_name": "Shepherd", "surname": "Sybela", "dob": "1946-03-21"}
    # When scored with swap_with, and with the same conditions without it
    swapping = decide(a, b, SWAPPABLE_NAMES)
    plain = decide(a, b, RuleSet(tuple(replace(c, swap_with=None) for c in SWAPPABLE_NAMES.conditions)))
    # Then the swapped names match and the reasons say so; without swap_with they do not
    assert swapping.outcome == "merge"
    assert swapping.reasons[0] == "given_name, surname: compared swapped"
    assert "surname fuzzy: 1.00" in swapping.reasons
    assert plain.outcome == "new"


def test_swap_with_needs_both_fields_to_match_swapped():
    # Given two people where one's given name is the other's surname, but nothing else crosses
    a = {"given_name": "Thomas", "surname": "Wright", "dob": "1970-01-01"}
    b = {"given_name": "Anna", "surname": "Thomas", "dob": "1970-01-01"}
    # Then nothing is swapped: one crossed match is no evidence of fields entered the other way
    decision = decide(a, b, SWAPPABLE_NAMES)
    assert not any("swapped" in reason for reason in decision.reasons)
    assert decision.outcome == "new"


def test_swap_with_leaves_fields_that_match_as_entered_alone():
    # Given the same names in the same fields, and a pair with one side blank
    a = {"given_name": "Anna", "surname": "Anna"}
    # Then nothing is swapped (swapped agrees no better), and a blank never swaps
    assert not any("swapped" in r for r in decide(a, dict(a), SWAPPABLE_NAMES).reasons)
    assert not any("swapped" in r for r in decide(a, {"given_name": "Anna"}, SWAPPABLE_NAMES).reasons)


def test_swap_with_also_swaps_crm_name_fields():
    # Given a lead with first and last name entered the other way round
    a = {"first_name": "Erik", "last_name": "Lindberg"}
    b = {"first_name": "Lindberg", "last_name": "Erik"}
    rules = RuleSet((
        Condition("first_name", "fuzzy", threshold=0.85, weight=2, swap_with="last_name"),
        Condition("last_name", "fuzzy", threshold=0.85, weight=2),
    ))
    # Then both name conditions match swapped
    assert decide(a, b, rules).score == 1.0


def test_rules_from_toml_reads_swap_with_and_the_damerau_levenshtein_scorer():
    # Given conditions with swap_with and the damerau_levenshtein scorer
    data = tomllib.loads("""
        [matching.contact-contact]
        conditions = [
          { field = "given_name", op = "fuzzy", threshold = 0.85, swap_with = "surname" },
          { field = "soc_sec_id", op = "fuzzy", scorer = "damerau_levenshtein", threshold = 0.85 },
        ]
    """)
    # Then they are read as configured, and other pairs keep conditions without swap_with
    rules = rules_from_toml(data["matching"])
    assert rules["contact-contact"].conditions == (
        Condition("given_name", "fuzzy", threshold=0.85, swap_with="surname"),
        Condition("soc_sec_id", "fuzzy", threshold=0.85, scorer="damerau_levenshtein"),
    )
    assert all(c.swap_with is None for c in rules["lead-lead"].conditions)


def test_a_field_with_several_values_matches_when_any_two_do():
    # Given records with two phones each, one in common (written differently)
    a = {"phones": ["070-111 11 11", "08-123 456 78"]}
    b = {"phones": ["+46812345678", "+46702222222"]}
    # Then the phone condition matches
    assert score(a, b, one(Condition("phone", "exact"))).score == 1.0


def test_a_blank_is_ignored_with_ignore_blank():
    # Given a pair matching on the surname, with the date of birth blank on one side
    a, b = {"surname": "Berg", "dob": "1980-05-01"}, {"surname": "Berg", "dob": ""}
    rules = RuleSet((Condition("surname", "exact"), Condition("dob", "same_date")))
    # When scored
    decision = score(a, b, rules)
    # Then the blank counts neither for nor against, and the reason says it was ignored
    assert decision.score == 1.0
    assert decision.reasons == ["surname exact: 1.00", "dob same_date: blank, ignored"]


def test_without_ignore_blank_a_blank_counts_against_and_two_blanks_match():
    # Given a condition that does not ignore blanks
    rules = RuleSet((Condition("surname", "exact"), Condition("dob", "same_date", ignore_blank=False)))
    # When one side is blank, and then both
    one_blank = score({"surname": "Berg", "dob": "1980-05-01"}, {"surname": "Berg"}, rules)
    both_blank = score({"surname": "Berg"}, {"surname": "Berg"}, rules)
    # Then the single blank is a mismatch and two blanks are a match
    assert one_blank.score == 0.5
    assert both_blank.score == 1.0


def test_penalty_weighs_a_mismatch_apart_from_a_match():
    # Given a pair agreeing on the name and differing on email, whose mismatch weighs little
    rules = RuleSet((Condition("last_name", "exact", weight=2), Condition("email", "exact", weight=6, penalty=1)))
    # When scored
    decision = score({"last_name": "Berg", "email": "a@x.se"}, {"last_name": "Berg", "email": "b@x.se"}, rules)
    # Then the score is evidence for / (for + against) = 2 / (2 + 1)
    assert decision.score == pytest.approx(2 / 3, abs=1e-6)


def test_min_weight_keeps_a_pair_that_agrees_on_little_from_merging():
    # Given a rule set that needs evidence weighing 4 and a pair agreeing on one field of weight 2
    rules = RuleSet((Condition("surname", "exact", weight=2),), min_weight=4)
    # When scored
    decision = score({"surname": "Berg"}, {"surname": "Berg"}, rules)
    # Then the score is scaled down, and the reasons say why
    assert decision.score == 0.5
    assert decision.reasons[-1].startswith("little to compare")


def test_outcome_follows_the_thresholds():
    # Given thresholds at 0.8 and 0.5 and pairs scoring 1, 2/3 and 0
    rules = RuleSet((Condition("a", "exact"), Condition("b", "exact"), Condition("c", "exact")),
                    merge_threshold=0.8, review_threshold=0.5)
    base = {"a": "1", "b": "1", "c": "1"}
    # Then they are merge, review and new
    assert score(base, base, rules).outcome == "merge"
    assert score(base, {**base, "c": "2"}, rules).outcome == "review"
    assert score(base, {"a": "2", "b": "2", "c": "2"}, rules).outcome == "new"


def test_reasons_name_each_condition_and_its_similarity():
    # Given two leads under the default rules
    decision = decide({"first_name": "Bob", "last_name": "Smith", "email": "bob@acme.com"},
                      {"first_name": "Robert", "last_name": "Smith", "email": "robert@acme.com"})
    # Then there is one reason a condition, in the rule set's order
    assert len(decision.reasons) == len(PEOPLE.conditions)
    assert decision.reasons[0] == "email exact: 0.00"
    assert "first_name fuzzy: 1.00" in decision.reasons
    assert "phone exact: blank, ignored" in decision.reasons


# -- configuration ----------------------------------------------------------------------------------


def config_error(mapping) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        rules_from_toml(mapping)
    return raised.value


def test_rules_from_toml_reads_a_matching_table():
    # Given ingest.toml's [matching] table for one pair
    data = tomllib.loads("""
        [matching.lead-contact]
        merge_threshold = 0.9
        review_threshold = 0.7
        min_weight = 3
        conditions = [
          { field = "email", op = "exact", weight = 6, penalty = 1 },
          { field = "first_name", op = "fuzzy", threshold = 0.85, scorer = "jaro_winkler" },
          { field = "phone", op = "last_n", n = 8, ignore_blank = false },
        ]
    """)
    # When the rules are read
    rules = rules_from_toml(data["matching"])
    # Then that pair has the configured rule set and the others keep the defaults
    assert rules["lead-contact"] == RuleSet((
        Condition("email", "exact", weight=6, penalty=1),
        Condition("first_name", "fuzzy", threshold=0.85, scorer="jaro_winkler"),
        Condition("phone", "last_n", n=8, ignore_blank=False),
    ), merge_threshold=0.9, review_threshold=0.7, min_weight=3, colleagues_penalty=4.0)  # as the default's
    assert rules["lead-lead"] is DEFAULT_RULES["lead-lead"]


def test_without_configuration_every_pair_has_default_rules():
    # Given no [matching] table
    # When the rules are read
    rules = rules_from_toml({})
    # Then every record pair has its default rule set
    assert set(rules) == set(RECORD_PAIRS) == set(DEFAULT_RULES)
    assert rules == dict(DEFAULT_RULES)


def test_a_pair_with_thresholds_only_keeps_the_default_conditions():
    # Given a pair that only raises its merge threshold
    rules = rules_from_toml({"lead-lead": {"merge_threshold": 0.95}})
    # Then its conditions are the default ones
    assert rules["lead-lead"].conditions == DEFAULT_RULES["lead-lead"].conditions
    assert rules["lead-lead"].merge_threshold == 0.95


@pytest.mark.parametrize("mapping, key, reason", [
    ({"lead-contact": {"conditions": [{"field": "email", "op": "exact"}, {"field": "phone", "op": "exact"},
                                      {"field": "first_name", "op": "sounds_like"}]}},
     "matching.lead-contact.conditions[2].op", "must be one of exact, first_n, last_n, same_date, fuzzy"),
    ({"lead-contacts": {}}, "matching.lead-contacts", "unknown record pair"),
    ({"lead-lead": {"merge": 0.9}}, "matching.lead-lead.merge", "unknown key"),
    ({"lead-lead": {"merge_threshold": "high"}}, "matching.lead-lead.merge_threshold", "must be a number"),
    ({"lead-lead": {"merge_threshold": 1.5}}, "matching.lead-lead.merge_threshold", "between 0 and 1"),
    ({"lead-lead": {"merge_threshold": 0.7, "review_threshold": 0.8}},
     "matching.lead-lead.review_threshold", "must not be above merge_threshold"),
    ({"lead-lead": {"min_weight": -1}}, "matching.lead-lead.min_weight", "zero or more"),
    ({"lead-lead": "strict"}, "matching.lead-lead", "must be a table"),
    ({"lead-lead": {"conditions": []}}, "matching.lead-lead.conditions", "non-empty list"),
    ({"lead-lead": {"conditions": ["email"]}}, "matching.lead-lead.conditions[0]", "must be a table"),
    ({"lead-lead": {"conditions": [{"op": "exact"}]}}, "matching.lead-lead.conditions[0].field", "required"),
    ({"lead-lead": {"conditions": [{"field": "email"}]}}, "matching.lead-lead.conditions[0].op", "required"),
    ({"lead-lead": {"conditions": [{"field": "first name", "op": "exact"}]}},
     "matching.lead-lead.conditions[0].field", "must be a field name"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "wieght": 2}]}},
     "matching.lead-lead.conditions[0].wieght", "unknown key"),
    ({"lead-lead": {"conditions": [{"field": "phone", "op": "last_n"}]}},
     "matching.lead-lead.conditions[0].n", "required for op last_n"),
    ({"lead-lead": {"conditions": [{"field": "phone", "op": "last_n", "n": 0}]}},
     "matching.lead-lead.conditions[0].n", "at least 1"),
    ({"lead-lead": {"conditions": [{"field": "phone", "op": "last_n", "n": 7.5}]}},
     "matching.lead-lead.conditions[0].n", "whole number"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "n": 3}]}},
     "matching.lead-lead.conditions[0].n", "only for op first_n or last_n"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "threshold": 0.9}]}},
     "matching.lead-lead.conditions[0].threshold", "only for op fuzzy"),
    ({"lead-lead": {"conditions": [{"field": "last_name", "op": "fuzzy", "threshold": 90}]}},
     "matching.lead-lead.conditions[0].threshold", "between 0 and 1"),
    ({"lead-lead": {"conditions": [{"field": "last_name", "op": "fuzzy", "scorer": "soundex"}]}},
     "matching.lead-lead.conditions[0].scorer", "must be one of auto, jaro_winkler, token_sort"),
    ({"lead-lead": {"conditions": [{"field": "last_name", "op": "fuzzy", "swap_with": "last_name"}]}},
     "matching.lead-lead.conditions[0].swap_with", "must be another field"),
    ({"lead-lead": {"conditions": [{"field": "last_name", "op": "fuzzy", "swap_with": "first name"}]}},
     "matching.lead-lead.conditions[0].swap_with", "must be a field name"),
    ({"lead-lead": {"conditions": [{"field": "last_name", "op": "fuzzy", "swap_with": 3}]}},
     "matching.lead-lead.conditions[0].swap_with", "must be a non-empty string"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "weight": 0}]}},
     "matching.lead-lead.conditions[0].weight", "greater than zero"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "weight": True}]}},
     "matching.lead-lead.conditions[0].weight", "must be a number"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "penalty": -1}]}},
     "matching.lead-lead.conditions[0].penalty", "zero or more"),
    ({"lead-lead": {"conditions": [{"field": "email", "op": "exact", "ignore_blank": "no"}]}},
     "matching.lead-lead.conditions[0].ignore_blank", "true or false"),
])
def test_a_bad_matching_table_names_the_dotted_key(mapping, key, reason):
    # Given a [matching] table with one mistake
    # When the rules are read
    error = config_error(mapping)
    # Then the error is a fatal configuration error naming the key and what is wrong
    assert isinstance(error, FatalError)
    assert error.key == key
    assert reason in error.reason
    assert str(error).startswith(f"{key}: ")


def test_the_example_error_reads_as_documented():
    # Given a third condition with an unknown operator
    error = config_error({"lead-contact": {"conditions": [
        {"field": "email", "op": "exact"}, {"field": "phone", "op": "exact"}, {"field": "x", "op": "like"}]}})
    # Then the message is the dotted key and the allowed operators
    assert str(error) == "matching.lead-contact.conditions[2].op: must be one of exact, first_n, last_n, same_date, fuzzy"


def test_rules_built_in_code_are_checked_too():
    # Given conditions and rule sets built in code with a mistake
    # Then they fail the same way, naming the attribute
    with pytest.raises(ConfigError, match=r"^Condition.op: must be one of"):
        Condition("email", "equals")
    with pytest.raises(ConfigError, match=r"^RuleSet.conditions:"):
        RuleSet(())


# -- default rules: pairs to merge ------------------------------------------------------------------


def test_merges_the_same_email_in_another_case():
    # Given a known contact and a list row with the same address in capitals, nothing else
    known = {"first_name": "Anna", "last_name": "Svensson", "email": "anna.svensson@fjallbygg.se"}
    row = {"email": "Anna.Svensson@FJALLBYGG.SE"}
    # When they are scored
    decision = decide(known, row)
    # Then they merge
    assert decision.outcome == "merge"


def test_merges_the_same_gmail_mailbox_written_with_dots_and_a_plus_tag():
    # Given one person once with dots, once without and with a tag at googlemail.com
    a = {"first_name": "Erik", "last_name": "Lund", "email": "erik.lund@gmail.com"}
    b = {"first_name": "Erik", "last_name": "Lund", "email": "eriklund+webinar@googlemail.com"}
    # When they are scored
    # Then they merge
    assert decide(a, b).outcome == "merge"


def test_merges_the_same_phone_with_a_similar_name():
    # Given the same mobile written two ways, the name once with a typo, different addresses
    a = {"first_name": "Kristoffer", "last_name": "Lindqvist", "phone": "070-123 45 67",
         "email": "kristoffer@nordvik.se"}
    b = {"first_name": "Kristofer", "last_name": "Lindqvist", "phone": "+46 70 123 45 67",
         "email": "k.lindqvist@gmail.com"}
    # When they are scored
    # Then they merge
    assert decide(a, b).outcome == "merge"


def test_merges_a_one_letter_typo_in_the_last_name_with_the_same_phone():
    # Given the same phone and a surname missing one letter
    a = {"first_name": "Erik", "last_name": "Svensson", "phone": "0701234567"}
    b = {"first_name": "Erik", "last_name": "Svenson", "phone": "+46701234567"}
    # When they are scored
    # Then they merge
    assert decide(a, b).outcome == "merge"


def test_merges_a_nickname_with_the_same_last_name_and_company():
    # Given Bob Smith at Acme AB and Robert Smith at ACME Inc., with different mobiles
    a = {"first_name": "Bob", "last_name": "Smith", "company_name": "Acme AB", "phone": "0701111111"}
    b = {"first_name": "Robert", "last_name": "Smith", "company_name": "ACME Inc.", "phone": "0702222222"}
    # When they are scored
    # Then they merge
    assert decide(a, b).outcome == "merge"


def test_merges_a_swedish_nickname_with_the_same_last_name_and_work_domain():
    # Given Kalle and Karl Nilsson with two addresses and two phones at the same company domain
    a = {"first_name": "Kalle", "last_name": "Nilsson", "email": "kalle@nordvik.se", "phone": "0701111111"}
    b = {"first_name": "Karl", "last_name": "Nilsson", "email": "karl.nilsson@nordvik.se", "phone": "0702222222"}
    # When they are scored
    # Then they merge
    assert decide(a, b).outcome == "merge"


def test_merges_a_name_written_with_and_without_diacritics():
    # Given Åsa Jönsson at Fjällbygg AB and Asa Jonsson at Fjallbygg, typed without å and ö
    a = {"first_name": "Åsa", "last_name": "Jönsson", "company_name": "Fjällbygg AB"}
    b = {"first_name": "Asa", "last_name": "Jonsson", "company_name": "Fjallbygg"}
    # When they are scored
    decision = decide(a, b)
    # Then they merge, every name condition agreeing fully
    assert decision.outcome == "merge"
    assert "first_name fuzzy: 1.00" in decision.reasons and "last_name fuzzy: 1.00" in decision.reasons


def test_merges_accounts_with_the_same_name_in_other_legal_forms_and_domain():
    # Given an account 'Acme AB' with a website and 'ACME Aktiebolag' writing from info@
    a = {"name": "Acme AB", "website_domain": "acme.se"}
    b = {"name": "ACME Aktiebolag", "email": "info@acme.se"}
    # When they are scored under the account rules
    # Then they merge
    assert decide(a, b, DEFAULT_RULES["account-account"]).outcome == "merge"


# -- default rules: pairs to keep apart -------------------------------------------------------------


def test_keeps_namesakes_at_different_companies_apart():
    # Given two Anna Svenssons at different companies with different addresses and phones
    a = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Fjällbygg AB",
         "email": "anna.svensson@fjallbygg.se", "phone": "0701111111"}
    b = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Nordvik Konsult AB",
         "email": "anna.svensson@nordvik.se", "phone": "0702222222"}
    # When they are scored
    # Then they stay two people
    assert decide(a, b).outcome == "new"


def test_keeps_namesakes_with_free_mail_at_different_companies_apart():
    # Given the same namesakes, writing from Gmail and Hotmail (so no work domain to compare)
    a = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Fjällbygg AB",
         "email": "anna.svensson@gmail.com", "phone": "0701111111"}
    b = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Nordvik Konsult AB",
         "email": "asvensson@hotmail.com", "phone": "0702222222"}
    # When they are scored
    # Then they stay two people
    assert decide(a, b).outcome == "new"


def test_a_name_alone_is_never_enough_to_merge():
    # Given two records with the same name and nothing else
    a, b = {"first_name": "Anna", "last_name": "Svensson"}, {"first_name": "Anna", "last_name": "Svensson"}
    # When they are scored
    # Then a person must look at them
    assert decide(a, b).outcome == "review"


def test_keeps_colleagues_sharing_a_company_apart():
    # Given two colleagues at Acme AB with their own work addresses
    a = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Acme AB", "email": "anna@acme.se"}
    b = {"first_name": "Per", "last_name": "Karlsson", "company_name": "Acme AB", "email": "per@acme.se"}
    # When they are scored
    # Then they stay two people
    assert decide(a, b).outcome == "new"


def test_keeps_colleagues_sharing_a_role_address_apart():
    # Given two colleagues who both wrote from info@acme.se
    a = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Acme AB", "email": "info@acme.se"}
    b = {"first_name": "Per", "last_name": "Karlsson", "company_name": "Acme AB", "email": "INFO@acme.se"}
    # When they are scored
    decision = decide(a, b)
    # Then they stay two people, and the shared address did not count
    assert decision.outcome == "new"
    assert decision.reasons[0] == "email exact: blank (role addresses do not identify a person), ignored"


def test_a_role_address_alone_never_merges():
    # Given two records known only by the same role address
    # When they are scored
    # Then they are not merged: nothing identifies a person
    assert decide({"email": "kundtjanst@acme.se"}, {"email": "kundtjanst@acme.se"}).outcome == "new"


def test_keeps_colleagues_sharing_a_switchboard_phone_apart():
    # Given two colleagues who both gave the switchboard, written two ways
    a = {"first_name": "Anna", "last_name": "Svensson", "company_name": "Acme AB", "phone": "08-123 456 78"}
    b = {"first_name": "Per", "last_name": "Karlsson", "company_name": "Acme AB", "phone": "+46812345678"}
    # When they are scored
    # Then they stay two people
    assert decide(a, b).outcome == "new"


def test_colleagues_with_the_same_last_name_and_switchboard_are_at_most_reviewed():
    # Given Anna and Per Andersson at Acme with the switchboard and their own addresses
    a = {"first_name": "Anna", "last_name": "Andersson", "company_name": "Acme AB",
         "phone": "08-123 456 78", "email": "anna.andersson@acme.se"}
    b = {"first_name": "Per", "last_name": "Andersson", "company_name": "Acme AB",
         "phone": "+46812345678", "email": "per.andersson@acme.se"}
    # When they are scored
    # Then they are not merged
    assert decide(a, b).outcome != "merge"


def test_a_phone_alone_never_merges():
    # Given two records known only by the same phone
    # When they are scored
    # Then they are not merged: a phone may be a switchboard or a household's
    assert decide({"phone": "0701234567"}, {"phone": "+46701234567"}).outcome == "new"


def test_keeps_family_members_sharing_a_household_phone_apart():
    # Given Lars and Ingrid Berg with the home phone written two ways
    a = {"first_name": "Lars", "last_name": "Berg", "phone": "0701234567"}
    b = {"first_name": "Ingrid", "last_name": "Berg", "phone": "+46701234567"}
    # When they are scored
    # Then they stay two people
    assert decide(a, b).outcome == "new"


def test_family_members_sharing_an_address_too_are_at_most_reviewed():
    # Given the same couple sharing one Gmail address as well
    a = {"first_name": "Lars", "last_name": "Berg", "phone": "0701234567", "email": "bergs@gmail.com"}
    b = {"first_name": "Ingrid", "last_name": "Berg", "phone": "+46701234567", "email": "bergs@gmail.com"}
    # When they are scored
    # Then they are not merged: a person looks at them
    assert decide(a, b).outcome == "review"


def test_keeps_different_accounts_apart():
    # Given two companies with different names and domains, sharing a business-centre phone
    a = {"name": "Acme AB", "website_domain": "acme.se", "phone": "08-123 456 78"}
    b = {"name": "Nordvik Konsult AB", "website_domain": "nordvik.se", "phone": "08-123 456 78"}
    # When they are scored under the account rules
    # Then they stay two accounts
    assert decide(a, b, DEFAULT_RULES["account-account"]).outcome == "new"


def test_a_records_phone_with_an_extension_and_its_mobile_are_both_its_numbers():
    record = {"phone": "+14155550132;ext=204", "mobile_phone": "070-123 45 67"}
    assert blocking_keys(record, "lead")[:2] == [("phone", "+14155550132"), ("phone", "+46701234567")]


def test_two_namesakes_with_their_own_addresses_at_one_workplace_are_reviewed_not_merged():
    """Two Anna Andersson at Volvo (anna.andersson@, anna.m.andersson@, each her own mobile)
    were merged at 0.86: one lead owning both addresses, the Controller's mail filed under the
    buyer's record."""
    buyer = {"first_name": "Anna", "last_name": "Andersson", "email": "anna.andersson@volvo.se",
             "company_name": "Volvo AB", "phone": "+46703111111"}
    controller = {**buyer, "email": "anna.m.andersson@volvo.se", "phone": "+46703222222"}
    decision = matching.score(buyer, controller, matching.DEFAULT_RULES["lead-lead"])
    assert decision.outcome == "review"
    assert "two addresses with their last name at volvo.se: 4 against" in decision.reasons
    # one person's aliases (a nickname, or a shared phone) still merge
    bill = {**buyer, "first_name": "Bill", "last_name": "Smith", "email": "bill.smith@acme.example", "phone": None}
    william = {**bill, "first_name": "William", "email": "william.smith@acme.example"}
    assert matching.score(bill, william, matching.DEFAULT_RULES["lead-lead"]).outcome == "merge"
    same_phone = {**controller, "phone": buyer["phone"]}
    assert matching.score(buyer, same_phone, matching.DEFAULT_RULES["lead-lead"]).outcome == "merge"


@pytest.mark.parametrize("a, b, agrees", [
    ("A.", "Anna", True), ("Anna", "A", True), ("A.-K.", "Anna-Karin", True), ("B.", "Anna", False),
    ("Anna", "Anders", False), ("A.K.", "Anna", False),
])
def test_an_initial_is_no_evidence_against_the_name_it_begins(a, b, agrees):
    """'A. Berg' (a mail's display name) and 'Anna Berg' (a list) with one phone: each list row
    was a new lead, the initial taken for another first name."""
    assert matching.initial_agrees(a, b) is agrees
    assert matching.same_person_names({"first_name": a, "last_name": "Berg"},
                                      {"first_name": b, "last_name": "Berg"}) is agrees


@pytest.mark.parametrize("a, b", [("Elisabet", "Lisa"), ("Mikael", "Michael"), ("Anna-Karin", "Anna"),
                                  ("Anna Maria", "Anna"), ("Jörgen", "Joergen"), ("Ann", "Anne"), ("Sara", "Sarah"),
                                  ("Erik", "Eric"), ("Kristoffer", "Christoffer"),
                                  ("Mohammed", "Muhammad"), ("A.", "Anna"), ("Bill", "William"), ("Kalle", "Karl"),
                                  ("Ann-Sofie", "Annsofie"), ("Chris", "Christopher"), ("Alex", "Alexander"),
                                  ("Aleksander", "Alexander"), ("Lena", "Helena"), ("Tina", "Kristina"),
                                  ("Anna.berg", "Anna"), ("Info", "Lena"), ("Familjen Berg", "Per")])
def test_one_persons_first_name_written_otherwise_is_not_another_person(a, b):
    assert not other_first_name({"first_name": a, "last_name": "Berg"}, {"first_name": b, "last_name": "Berg"})


@pytest.mark.parametrize("a, b", [("Karl", "Anna"), ("Per", "Stina"), ("Petra", "Peter"), ("Erik", "Emil"),
                                  ("Johan", "Jonas"), ("Maria", "Mario"), ("Jan", "Jana"), ("Ola", "Nicola"),
                                  ("Erik", "Erika"), ("Daniel", "Daniela"), ("Stefan", "Stefanie"), ("Emil", "Emilia"),
                                  ("Anna", "Hanna"), ("Anders", "Andreas"), ("Eva", "Evert")])
def test_two_first_names_of_two_people_are_told_apart(a, b):
    assert other_first_name({"first_name": a, "last_name": "Berg"}, {"first_name": b, "last_name": "Berg"})


def test_swapped_names_and_company_names_are_no_other_person():
    assert not other_first_name({"first_name": "Berg", "last_name": "Anna"}, {"first_name": "Anna", "last_name": "Berg"})
    assert not other_first_name({"first_name": "Acme AB"}, {"first_name": "Anna", "last_name": "Berg"})
