"""plan_item: what one raw item becomes, for each kind, and when it is rejected or ignored."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from crm_ingest.ingest.plan import plan_item
from crm_ingest.ingest.settings import SourceConfig, builtin_sources
from crm_ingest.models.records import CASE_ORIGIN

SOURCES = builtin_sources("SE")
LIST, WEB = SOURCES["list"], SOURCES["web"]
# the planner given a case source (the built-in mail and posts are 'auto': routing re-plans them
# as the classifier decides, tests/test_classifier.py)
MAIL = replace(SOURCES["mail"], record_type="case")
TWITTER = replace(SOURCES["twitter"], record_type="case")

MAIL_PAYLOAD = {
    "from_email": "Asa.Jonsson@Example.com", "from_name": "Jönsson, Åsa",
    "subject": "Order 1234 has not arrived", "text": "Hej,\r\nmy order has not arrived.\r\n",
    "message_id": "<m2@example.com>", "in_reply_to": "<m1@crm.example.se>",
    "references": ["<m0@crm.example.se>", "<m1@crm.example.se>"],
    "date": "2026-03-02T09:15:00+01:00", "headers": {"From": "Åsa <asa.jonsson@example.com>"},
}


# -- what each kind becomes ---------------------------------------------------------------------


def test_row_becomes_a_lead_with_normalized_keys_email_first():
    # Given a purchased-list row with a full name, an email and a national-format phone
    payload = {"full_name": "Åsa Jönsson", "email": " ASA@Example.com ", "phone": "070-123 45 67",
               "company": "Ek AB", "job_title": "CTO"}
    # When it is planned for the `list` source
    plan = plan_item(7, "row", payload, LIST)
    # Then it is a lead for that person, keyed by email then phone, and nothing is decided up front
    assert (plan.item_id, plan.record_type, plan.outcome, plan.reason) == (7, "lead", None, None)
    assert plan.person.scope == "lead"
    assert plan.person.keys == [("email", "asa@example.com"), ("phone", "+46701234567")]
    assert plan.person.fields.pop("details") is None  # no row number or extra columns given
    assert plan.person.fields == {
        "first_name": "Åsa", "last_name": "Jönsson", "email": "ASA@example.com",
        "phone": "+46701234567", "mobile_phone": None, "company_name": "Ek AB", "job_title": "CTO",
        "topic": None, "street": None, "postal_code": None, "city": None, "state_or_province": None, "country": None,
    }
    assert plan.case is None and plan.activity is None and plan.thread_refs == []


def test_row_with_a_fields_object_reads_the_fields_from_it():
    plan = plan_item(1, "row", {"fields": {"email": "a@example.com", "mobile_phone": "0701234567"}}, LIST)
    assert plan.person.keys == [("email", "a@example.com"), ("phone", "+46701234567")]


def test_row_with_only_a_phone_is_keyed_by_the_phone():
    plan = plan_item(1, "row", {"first_name": "Erik", "phone": "+46 70 123 45 67"}, LIST)
    assert plan.outcome is None
    assert plan.person.keys == [("phone", "+46701234567")]
    assert plan.person.fields["email"] is None


def test_row_for_a_contact_source_plans_a_contact():
    source = SourceConfig("crm-export", record_type="contact")
    plan = plan_item(1, "row", {"email": "a@example.com"}, source)
    assert plan.record_type == "contact"
    assert plan.person.scope == "contact"


def test_row_for_a_case_source_plans_a_case_for_a_contact():
    source = SourceConfig("helpdesk", record_type="case", case_origin="phone")
    payload = {"email": "a@example.com", "subject": "Broken", "description": "It broke."}
    plan = plan_item(1, "row", payload, source)
    assert plan.person.scope == "contact"
    assert plan.case["title"] == "Broken"
    assert plan.case["description"] == "It broke."
    assert plan.case["origin"] == CASE_ORIGIN["phone"]


def test_form_becomes_a_lead_with_an_activity_and_its_utm_in_details():
    # Given a web form with a message and utm parameters
    payload = {"form": "contact-us", "fields": {"name": "Åsa Jönsson", "email": "asa@example.com",
                                                "message": "Call me about pricing."},
               "utm": {"utm_source": "newsletter", "utm_campaign": "spring"}}
    # When it is planned for the `web` source
    plan = plan_item(3, "form", payload, WEB)
    # Then it is a lead whose details keep the form name and utm, and a form activity
    assert plan.record_type == "lead"
    assert plan.person.fields["first_name"] == "Åsa"
    assert plan.person.fields["details"] == {
        "form": "contact-us", "utm": {"utm_source": "newsletter", "utm_campaign": "spring"}}
    assert plan.activity == {"kind": "form", "subject": "contact-us",
                             "body": "Call me about pricing.", "sender": "asa@example.com"}


def test_form_without_utm_has_none_for_utm():
    plan = plan_item(3, "form", {"form": "demo", "fields": {"email": "asa@example.com"}}, WEB)
    assert plan.person.fields["details"] == {"form": "demo", "utm": None}


def test_email_becomes_a_case_with_origin_email_and_thread_refs():
    # Given a reply mail
    # When it is planned for the `mail` source
    plan = plan_item(9, "email", MAIL_PAYLOAD, MAIL)
    # Then it is an email-origin case for a contact, threaded by In-Reply-To then References
    assert plan.outcome is None
    assert plan.record_type == "case"
    assert plan.case["origin"] == CASE_ORIGIN["email"] == 2
    assert plan.case["title"] == "Order 1234 has not arrived"
    assert plan.case["description"] == "Hej,\nmy order has not arrived."
    assert plan.thread_refs == ["<m1@crm.example.se>", "<m0@crm.example.se>", "<m1@crm.example.se>"]
    assert plan.person.scope == "contact"
    assert plan.person.keys == [("email", "asa.jonsson@example.com")]
    assert (plan.person.fields["first_name"], plan.person.fields["last_name"]) == ("Åsa", "Jönsson")
    assert plan.activity["kind"] == "email"
    assert plan.activity["message_id"] == "<m2@example.com>"
    assert plan.activity["occurred_at"] == datetime(2026, 3, 2, 8, 15, tzinfo=timezone.utc)


def test_email_without_reply_headers_has_no_thread_refs():
    payload = {k: v for k, v in MAIL_PAYLOAD.items() if k not in ("in_reply_to", "references")}
    assert plan_item(9, "email", payload, MAIL).thread_refs == []


def test_email_without_subject_takes_the_case_title_from_the_body():
    payload = {**MAIL_PAYLOAD, "subject": None, "text": "x" * 200}
    assert plan_item(9, "email", payload, MAIL).case["title"] == "x" * 80


def test_email_with_references_as_one_header_string_threads_by_each_message_id():
    payload = {**MAIL_PAYLOAD, "in_reply_to": None, "references": "<m0@crm.example.se> <m1@crm.example.se>"}
    assert plan_item(9, "email", payload, MAIL).thread_refs == ["<m0@crm.example.se>", "<m1@crm.example.se>"]


def test_post_becomes_a_case_keyed_by_the_network_qualified_handle():
    # Given a tweet mentioning us
    payload = {"network": "twitter", "handle": "@AsaJ", "author_name": "Åsa Jönsson",
               "text": "@acme my order is late again", "created_at": "2026-03-02T08:00:00Z"}
    # When it is planned for the `twitter` source
    plan = plan_item(4, "post", payload, TWITTER)
    # Then the person is known by 'twitter:handle', and a twitter-origin case is planned
    assert plan.person.keys == [("handle", "twitter:asaj")]
    assert plan.person.fields["topic"] == "@acme my order is late again"
    assert plan.case["origin"] == CASE_ORIGIN["twitter"]
    assert plan.activity["sender"] == "@AsaJ"
    assert plan.activity["occurred_at"] == datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def test_post_without_a_network_uses_the_source_name_and_keeps_email_keys_first():
    payload = {"handle": "asaj", "text": "hello", "email": "asa@example.com"}
    plan = plan_item(4, "post", payload, TWITTER)
    assert plan.person.keys == [("email", "asa@example.com"), ("handle", "twitter:asaj")]


# -- rejected: the reason names the field ---------------------------------------------------------


@pytest.mark.parametrize("kind, payload, source, reason", [
    ("row", {"email": "not-an-email", "phone": "070-123 45 67"}, LIST, "email: invalid email"),
    ("row", {"first_name": "Åsa", "company": "Ek AB"}, LIST, "email/phone: no email and no phone"),
    ("row", {"email": "   ", "phone": ""}, LIST, "email/phone: no email and no phone"),
    ("row", {"first_name": "Åsa", "phone": "12"}, LIST, "phone: invalid phone"),
    ("row", {"fields": ["a@example.com"]}, LIST, "fields: expected an object"),
    ("row", {"email": "a@example.com", "first_name": {"x": 1}}, LIST, "first_name: expected text or a number, not an object"),
    ("row", {"email": ["a@example.com"]}, LIST, "email: expected text or a number, not a list"),
    ("form", {"fields": {"name": "Åsa"}}, WEB, "email/phone: no email and no phone"),
    ("email", {"from_email": "nobody", "subject": "hi"}, MAIL, "from: invalid email"),
    ("email", {"subject": "no sender"}, MAIL, "from: no sender address"),
    ("post", {"text": "no author"}, TWITTER, "handle: post without an author handle"),
    ("post", {"handle": "asaj", "text": "  "}, TWITTER, "text: empty post"),
], ids=["invalid-email", "no-email-no-phone", "blank-email-and-phone", "invalid-phone-no-email",
        "fields-not-an-object", "name-an-object", "email-a-list", "form-no-contact", "mail-invalid-sender", "mail-no-sender",
        "post-no-handle", "post-empty"])
def test_bad_item_is_rejected_with_the_field_and_reason(kind, payload, source, reason):
    # Given an item that cannot become a record
    # When it is planned
    plan = plan_item(5, kind, payload, source)
    # Then the plan is a rejection naming the field, with nothing to create
    assert plan.outcome == "rejected"
    assert plan.reason.startswith(reason), plan.reason
    assert plan.record_type == source.record_type
    assert plan.person is None and plan.case is None and plan.activity is None


def test_payload_marked_unreadable_by_the_connector_is_rejected_with_its_error():
    plan = plan_item(5, "row", {"error": "line 3: Expecting value", "line": "{oops"}, LIST)
    assert plan.outcome == "rejected"
    assert plan.reason == "payload: unreadable as received: line 3: Expecting value"


def test_unknown_kind_is_rejected_naming_the_kind():
    plan = plan_item(5, "fax", {"email": "a@example.com"}, LIST)
    assert plan.outcome == "rejected"
    assert plan.reason == "kind: unknown item kind 'fax'"


@pytest.mark.parametrize("payload, type_name", [(["a@example.com"], "list"), ("a@example.com", "str"),
                                                (None, "NoneType")])
def test_payload_that_is_not_an_object_is_rejected(payload, type_name):
    plan = plan_item(5, "row", payload, LIST)
    assert plan.outcome == "rejected"
    assert plan.reason == f"payload: expected an object, got {type_name}"


def test_email_with_headers_that_are_not_an_object_is_rejected():
    plan = plan_item(5, "email", {**MAIL_PAYLOAD, "headers": [["Auto-Submitted", "auto-replied"]]}, MAIL)
    assert plan.outcome == "rejected"


# -- ignored: automatic mail never becomes a case ---------------------------------------------------


@pytest.mark.parametrize("changes, reason", [
    ({"headers": {"Auto-Submitted": "auto-replied"}}, "auto-reply"),
    ({"headers": {"auto-submitted": "Auto-Generated"}}, "auto-reply"),
    ({"headers": {"X-Autoreply": "yes"}}, "auto-reply"),
    ({"headers": {"Precedence": "bulk"}}, "bulk mail"),
    ({"headers": {"Precedence": "JUNK"}}, "bulk mail"),
    ({"headers": {"Precedence": "list"}}, "bulk mail"),
    ({"headers": {"List-Unsubscribe": "<mailto:unsubscribe@news.example>"}}, "bulk mail"),
    ({"from_email": "MAILER-DAEMON@mx.example.com"}, "bounce"),
    ({"from_email": "postmaster@example.com"}, "bounce"),
    ({"headers": {"Content-Type": "multipart/report; report-type=delivery-status"}}, "bounce"),
    ({"headers": {"X-Autorespond": "yes"}}, "auto-reply"),
    ({"headers": {"Precedence": "auto_reply"}}, "auto-reply"),
    ({"headers": {"Return-Path": "<>"}}, "auto-reply"),
    ({"subject": "Automatiskt svar: Offert 2026"}, "auto-reply"),  # Outlook in Swedish, no header saying so
    ({"subject": "Automatic reply: Re: Your order"}, "auto-reply"),
    ({"subject": "Out of Office: back on Monday"}, "auto-reply"),
    ({"headers": {"X-Failed-Recipients": "nobody@example.com"}}, "bounce"),
    ({"subject": "Out of Office AutoReply: Invoice question"}, "auto-reply"),  # Exchange 2003-2010
    ({"subject": "Accepterat: Uppstartsmöte", "calendar": "REPLY"}, "calendar reply"),
    ({"subject": "Läst: Offert", "text": "Ditt meddelande ... lästes den 9 december 2026 09:58."}, "read receipt"),
    ({"subject": "Read: Invoice question", "text": "Your message was read on Monday."}, "read receipt"),
], ids=["auto-submitted", "auto-generated", "x-autoreply", "precedence-bulk", "precedence-junk",
        "precedence-list", "list-unsubscribe", "mailer-daemon", "postmaster", "dsn", "x-autorespond",
        "precedence-auto-reply", "null-sender", "subject-sv", "subject-en", "subject-ooo", "x-failed-recipients",
        "ooo-autoreply", "calendar-reply", "receipt-sv", "receipt-en"])
def test_automatic_mail_is_ignored_with_the_reason(changes, reason):
    # Given an auto-reply, a bulk mail or a bounce
    payload = {**MAIL_PAYLOAD, **changes}
    # When it is planned
    plan = plan_item(6, "email", payload, MAIL)
    # Then it is ignored, with nothing to create
    assert (plan.outcome, plan.reason) == ("ignored", reason)
    assert plan.person is None and plan.case is None and plan.thread_refs == []


@pytest.mark.parametrize("subject", ["Frånvaro i sommar: vem tar mina ärenden?", "Out of office hours support?",
                                     "Autoreply settings do not work", "Re: Automatic reply",
                                     "Read receipts do not work", "Läst er offert: frågor om priset"])
def test_a_person_writing_about_absence_or_auto_replies_is_no_auto_reply(subject):
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "subject": subject, "headers": {"Return-Path": "<anna@kund.se>"}}, MAIL)
    assert plan.outcome is None and plan.case is not None


def test_mail_saying_auto_submitted_no_is_a_person_writing():
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "headers": {"Auto-Submitted": "No"}}, MAIL)
    assert plan.outcome is None
    assert plan.case is not None


# -- partial data kept, campaigns -------------------------------------------------------------------


def test_invalid_phone_is_kept_as_entered_when_a_valid_email_identifies_the_person():
    # Given a row whose email is fine and whose phone is not a valid number
    payload = {"email": "asa@example.com", "phone": " 070-12\x00 "}
    # When it is planned
    plan = plan_item(2, "row", payload, LIST)
    # Then the person is kept, keyed by email only, with the phone as entered (cleaned)
    assert plan.outcome is None
    assert plan.person.keys == [("email", "asa@example.com")]
    assert plan.person.fields["phone"] == "070-12"


def test_campaign_comes_from_the_source_by_default():
    source = replace(LIST, campaign="Nordic Expo 2026")
    assert plan_item(1, "row", {"email": "a@example.com"}, source).campaign == "Nordic Expo 2026"


def test_campaign_in_the_payload_overrides_the_sources():
    # Given a source with a campaign, and an item naming another one
    source = replace(LIST, campaign="Nordic Expo 2026")
    payload = {"email": "a@example.com", "campaign": "  Spring Webinar "}
    # When it is planned
    # Then the item's campaign wins
    assert plan_item(1, "row", payload, source).campaign == "Spring Webinar"


def test_blank_campaign_in_the_payload_falls_back_to_the_sources():
    source = replace(LIST, campaign="Nordic Expo 2026")
    assert plan_item(1, "row", {"email": "a@example.com", "campaign": "  "}, source).campaign == \
        "Nordic Expo 2026"


def test_no_campaign_anywhere_is_none():
    assert plan_item(1, "row", {"email": "a@example.com"}, LIST).campaign is None


def test_planning_bad_numbers_and_addresses_leaves_no_cyclic_garbage():
    """A chunk is planned with the garbage collector paused (gcpause), so whatever cycles it
    makes pile up until the chunk is done. A caught error kept with its traceback is one:
    the traceback holds the frame that holds the error."""
    import gc

    rows = [{"email": "ok@example.se", "phone": "ej nummer", "mobile_phone": "fel"},  # kept as entered
            {"email": "a@@x.se; b@", "phone": "070-123 45 67"},                        # no valid address
            {"phone": "ring mig"},                                                     # rejected
            {"email": "eva@ek.se, eva.ek@gmail.com", "country": "Tyskland", "phone": "030 1234567"}]
    gc.collect()
    gc.disable()
    try:
        plans = [plan_item(n, "row", {"fields": fields}, LIST) for n, fields in enumerate(rows)]
        assert [plan.outcome for plan in plans] == [None, "rejected", "rejected", None]
        assert plans[3].person.keys[-1] == ("phone", "+49301234567")
        del plans
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("phone, mobile, expected_phone, expected_mobile, keyed", [
    # both valid: the business number is the one to call, and both find the person
    ("08-123 456 78", "070-123 45 67", "+46812345678", "+46701234567", ["+46812345678", "+46701234567"]),
    # only a mobile: it is the number to call too
    ("", "070-123 45 67", "+46701234567", "+46701234567", ["+46701234567"]),
    # the business cell is junk: the mobile is called, and the junk is not kept over it
    ("ring växeln", "070-123 45 67", "+46701234567", "+46701234567", ["+46701234567"]),
    # a junk mobile beside a good number is kept as entered, and not keyed
    ("08-123 456 78", "fel", "+46812345678", "fel", ["+46812345678"]),
    # one number in both columns: one key
    ("+46 70 123 45 67", "070-123 45 67", "+46701234567", "+46701234567", ["+46701234567"]),
])
def test_a_row_keeps_its_phone_and_its_mobile_and_keys_both(phone, mobile, expected_phone, expected_mobile, keyed):
    fields = {"email": "anna@example.se", "phone": phone, "mobile_phone": mobile}
    plan = plan_item(1, "row", {"fields": fields}, LIST)
    assert plan.outcome is None
    assert (plan.person.fields["phone"], plan.person.fields["mobile_phone"]) == (expected_phone, expected_mobile)
    assert [value for kind, value in plan.person.keys if kind == "phone"] == keyed


@pytest.mark.parametrize("cell, country, stored, further", [
    ("+1 415-555-0132, ext. 204", "USA", "+14155550132;ext=204", []),
    ("08-123 456 78 ankn. 12", None, "+46812345678;ext=12", []),
    # the extension is not the first number's; the second number is a key too, kept aside
    ("070-123 45 67 / 08-123 456 78 ankn. 12", None, "+46701234567", ["+46812345678"]),
])
def test_a_phones_extension_is_kept_on_the_record_and_left_out_of_its_key(cell, country, stored, further):
    fields = {"phone": cell, **({"country": country} if country else {})}
    plan = plan_item(1, "row", {"fields": fields}, LIST)
    assert plan.person.fields["phone"] == stored
    assert plan.person.keys == [("phone", number) for number in (stored.partition(";")[0], *further)]


@pytest.mark.parametrize("cell, country, stored", [
    ("(415) 555-0132", None, "+14155550132"),              # no country: American by its shape
    ("415-555-0132", None, "+14155550132"), ("415.555.0132", None, "+14155550132"),
    ("(415) 555-0132 x12", None, "+14155550132;ext=12"),
    ("070-123-4567", None, "+46701234567"),                # a number of the region first
    ("(415) 555-0132", "Tyskland", "+494155550132"),       # the row's country decides
    ("415-555.0132", None, "415-555.0132"),                # not the shape: kept as entered
])
def test_a_north_american_number_in_a_row_naming_no_country_is_read_as_one(cell, country, stored):
    fields = {"email": "anna@example.se", "phone": cell, **({"country": country} if country else {})}
    plan = plan_item(1, "row", {"fields": fields}, LIST)
    assert plan.person.fields["phone"] == stored


@pytest.mark.parametrize("fields, names", [
    ({"first_name": "Ingrid Svensson"}, ("Ingrid", "Svensson")),            # the whole name in its first column
    ({"first_name": "Svensson, Ingrid"}, ("Ingrid", "Svensson")),
    ({"first_name": "Anna Maria", "last_name": "Berg"}, ("Anna Maria", "Berg")),  # a last name given: as written
    ({"first_name": "Karl-Johan"}, ("Karl-Johan", None)),
    ({"first_name": "Växel"}, (None, None)), ({"full_name": "Kundtjänst"}, (None, None)),  # a door, not a name
    ({"first_name": "Info", "last_name": "Berg"}, ("Info", "Berg")),  # with a last name: someone's, however odd
    ({"full_name": "Örjan Håkansson / Lisa Persson", "email": "orjan.h@skanefro.se"}, ("Örjan", "Håkansson")),
    ({"full_name": "Örjan Håkansson / Lisa Persson", "email": "lisa.persson@skanefro.se"}, ("Lisa", "Persson")),
    ({"full_name": "Anna Berg & Bo Ek", "email": "bo@ek.se"}, ("Bo", "Ek")),  # two people: whose address it is
    ({"full_name": "Anna Berg och Bo Ek", "email": "info@ek.se"}, ("Anna", "Berg")),  # neither's: the first
    ({"full_name": "Maria och Peter Ek", "email": "info@ek.se"}, ("Maria och Peter", "Ek")),  # a couple: as written
    ({"nickname": "Rörmokar-Janne"}, ("Rörmokar-Janne", None)),  # a phone book's nickname: the only name given
    ({"email": "ANNA BERG <anna@berg.se>"}, ("Anna", "Berg")),  # the name written with the address, read alike
    ({"email": "Växel <info@kronfagel.se>"}, (None, None)),
    ({"first_name": "Jan", "nickname": "Janne"}, ("Jan", None)),  # beside a name: kept in the details only
    ({"first_name": "Mrs", "last_name": "Smith"}, (None, "Smith")),  # a title in the first name's column
    ({"first_name": "Dr. Anna", "last_name": "Smith"}, ("Anna", "Smith")),
    ({"first_name": "Fru", "last_name": "Ek"}, (None, "Ek")),
    ({"first_name": "Anna", "last_name": "Berg (slutat)"}, ("Anna", "Berg")),  # a note after the name
    ({"first_name": "anna.berg@firma.se"}, (None, None)),  # an export's address where the name was missing
    ({"full_name": "anna.berg@firma.se"}, (None, None)),
    ({"full_name": "Anna Berg <anna.berg@firma.se>"}, ("Anna", "Berg")),  # a mail program's way to write someone
    ({"full_name": '"Berg, Anna" <anna.berg@firma.se>'}, ("Anna", "Berg")),
    ({"first_name": "Anna", "last_name": "Berg\u200b"}, ("Anna", "Berg")),  # an unseen character copied along
    ({"first_name": "An\u00adna", "last_name": "\u202eBerg"}, ("Anna", "Berg")),  # soft hyphen, direction override
])
def test_a_rows_name_is_read_as_a_careful_operator_would(fields, names):
    plan = plan_item(1, "row", {"fields": {"email": "x@example.se", **fields}}, LIST)
    assert (plan.person.fields["first_name"], plan.person.fields["last_name"]) == names


@pytest.mark.parametrize("fields, names, company", [
    # a customer register (Fortnox, Visma) names the customer in its one name column
    ({"full_name": "Berg Bygg AB"}, (None, None), "Berg Bygg AB"),
    ({"full_name": "Ek & Son Handelsbolag"}, (None, None), "Ek & Son Handelsbolag"),
    ({"full_name": "Nordic Tools AS"}, (None, None), "Nordic Tools AS"),
    ({"full_name": "Acme, Inc."}, (None, None), "Acme, Inc."),
    ({"full_name": "Smith & Co"}, (None, None), "Smith & Co"),
    ({"full_name": "AB Volvo"}, (None, None), "AB Volvo"),
    ({"full_name": "Berg Bygg AB", "company": "Berg Bygg"}, (None, None), "Berg Bygg"),  # the company column wins
    # people whose names fold to a legal form ('Sá', 'As'), or a form beside name columns: people
    ({"full_name": "Pedro Sá"}, ("Pedro", "Sá"), None),
    ({"full_name": "Anna As"}, ("Anna", "As"), None),
    ({"full_name": "Jönsson, Åsa"}, ("Åsa", "Jönsson"), None),  # 'Åsa' folds to Norway's 'ASA'
    ({"full_name": "Equinor ASA"}, (None, None), "Equinor ASA"),
    ({"first_name": "Kalle", "last_name": "AB"}, ("Kalle", "Ab"), None),
])
def test_a_company_written_where_a_name_belongs_is_the_company(fields, names, company):
    plan = plan_item(1, "row", {"fields": {"email": "x@example.se", **fields}}, LIST)
    person = plan.person.fields
    assert ((person["first_name"], person["last_name"]), person["company_name"]) == (names, company)


@pytest.mark.parametrize("fields, example", [
    ({"first_name": "Exempel", "last_name": "Exempelsson", "email": "exempel@exempel.se", "phone": "070-1234567"}, True),
    ({"first_name": "Förnamn", "last_name": "Efternamn", "email": "fornamn.efternamn@foretag.se"}, True),
    ({"first_name": "John", "last_name": "Example", "email": "firstname.lastname@example.com"}, True),
    ({"first_name": "Anna", "last_name": "Berg", "email": "anna@example.com"}, False),  # one sign is not two
    ({"first_name": "Exempel", "last_name": "Berg", "email": "anna@berg.se"}, False),
    ({"first_name": "Sven", "last_name": "Svensson", "email": "sven@svensson.se"}, False),  # a real name, however plain
])
def test_a_templates_example_row_is_ignored_saying_so(fields, example):
    plan = plan_item(1, "row", {"fields": fields}, LIST)
    assert (plan.outcome == "ignored") is example
    if example:
        assert plan.reason.startswith("a template's example row (")


def test_a_row_with_only_junk_numbers_and_no_email_is_rejected_naming_the_first_junk_column():
    plan = plan_item(1, "row", {"fields": {"phone": "ring växeln", "mobile_phone": "fel"}}, LIST)
    assert plan.outcome == "rejected" and plan.reason.startswith("phone: invalid phone")


@pytest.mark.parametrize("cell, country, phone, valid", [
    ("070-123 45 67 / 08-123 45 67", None, "+46701234567", True),     # two numbers: the first valid
    ("ring växeln / 08-123 45 67", None, "+4681234567", True),       # junk, then a number
    ("+46 70 123 45 67 ::: +46 8 123 45 67", None, "+46701234567", True),  # Google's joined values
    ("070-123 45 67 eller 070-765 43 21", None, "+46701234567", True),
    ("030/12345678", "Tyskland", "+493012345678", True),             # '/' inside one number
    ("030/12345678", None, "030/12345678", False),                  # not split into a wrong one
])
def test_a_phone_cell_listing_several_numbers_gives_the_first_valid(cell, country, phone, valid):
    source = SourceConfig("list", record_type="lead")
    fields = {"email": "anna@example.se", "phone": cell, **({"country": country} if country else {})}
    plan = plan_item(1, "row", {"fields": fields}, source)
    assert plan.person.fields["phone"] == phone
    assert (("phone", phone) in plan.person.keys) is valid


@pytest.mark.parametrize("fields, name", [
    ({"email": "Anna Berg <anna@berg.se>"}, ("Anna", "Berg")),
    ({"email": '"Berg, Anna" <anna@berg.se>; Bo <bo@ek.se>'}, ("Anna", "Berg")),
    ({"email": "Anna Berg <anna@berg.se>", "first_name": "Annie"}, ("Annie", None)),  # a name given wins
    ({"email": "<anna@berg.se>"}, (None, None)),
    ({"email": "anna@berg.se <anna@berg.se>"}, (None, None)),
])
def test_the_name_an_address_is_written_with_fills_a_missing_name(fields, name):
    plan = plan_item(1, "row", {"fields": fields}, SourceConfig("list", record_type="lead"))
    assert (plan.person.fields["first_name"], plan.person.fields["last_name"]) == name
    assert plan.person.fields["email"] == "anna@berg.se"


# -- addresses on top-level domains that do not exist ---------------------------------------------


@pytest.mark.parametrize(("address", "hint"), [
    ("dan@gmail.con", "did you mean gmail.com?"), ("Eva.Berg@Hotmail.cmo", "did you mean hotmail.com?"),
    ("bo@nordvikbygg.sw", None), ("anna@firma.ocm", "did you mean firma.com?")])
def test_a_list_row_whose_address_has_no_real_top_level_domain_is_rejected_with_a_hint(address, hint):
    # Given a list row whose address was mistyped at its end, a phone beside it
    plan = plan_item(1, "row", {"email": address, "phone": "070-123 45 67"}, LIST)
    # Then it is rejected, naming the field, the domain that does not exist, and a likely fix
    assert plan.outcome == "rejected"
    tld = address.rpartition(".")[2].lower()
    assert plan.reason.startswith(f"email: invalid email {address.split('@')[0] + '@' + address.split('@')[1].lower()!r}: "
                                  f"{tld!r} is not a top-level domain")
    assert (hint in plan.reason) if hint else ("did you mean" not in plan.reason)


@pytest.mark.parametrize("address", ["anna@firma.se", "bo@acme.co.uk", "info@bücher.de", "eva@shop.xn--p1ai",
                                     "olle@acme.co", "demo@acme.example", "x@museum.museum"])
def test_a_list_row_on_any_real_top_level_domain_is_kept(address):
    assert plan_item(1, "row", {"email": address}, LIST).outcome is None


@pytest.mark.parametrize(("address", "meant"), [
    ("anna@gmial.com", "gmail.com"), ("anna@gmai.com", "gmail.com"), ("anna@gmaill.com", "gmail.com"),
    ("anna@gnail.com", "gmail.com"), ("Bo.Ek@Hotmial.se", "hotmail.se"), ("eva@yahooo.co.uk", "yahoo.co.uk"),
    ("eva@outlok.com", "outlook.com"), ("olle@gmail.co", "gmail.com"), ("olle@icloud.cm", "icloud.com"),
    ("per@comhen.se", "comhem.se")])
def test_a_list_row_whose_address_is_a_mailbox_provider_mistyped_is_rejected_naming_it(address, meant):
    # Given a list row whose address has a slip in a big provider's domain (it bounces, or reaches
    # whoever registered the misspelling), a phone beside it
    plan = plan_item(1, "row", {"email": address, "phone": "070-123 45 67"}, LIST)
    # Then it is rejected, naming the field and the domain it most likely meant
    assert plan.outcome == "rejected"
    assert plan.reason.startswith("email: invalid email ")
    assert plan.reason.endswith(f"looks like {meant} mistyped")


@pytest.mark.parametrize("address", [
    "anna@gmail.com", "anna@email.com", "anna@ymail.com", "anna@mail.com", "anna@cloud.com", "anna@hotmail.dk",
    "anna@hotmail.co.uk", "anna@yahoo.co.jp", "anna@outlook.com.au", "anna@wahoo.com", "anna@botmail.com",
    "anna@telia.se", "anna@gmx.de", "anna@live.se"])
def test_a_list_row_on_a_real_domain_beside_a_provider_is_kept(address):
    assert plan_item(1, "row", {"email": address}, LIST).outcome is None


def test_a_web_form_keeps_a_mistyped_provider_address():
    # Someone who wrote to us: the request matters more than the address (and a reply may be fixed by hand)
    plan = plan_item(1, "form", {"fields": {"email": "dan@gmial.com", "phone": "070-123 45 67"}}, WEB)
    assert plan.outcome is None and plan.person.fields["email"] == "dan@gmial.com"


def test_a_web_form_keeps_an_address_whose_top_level_domain_does_not_exist():
    # Given someone who mistyped their address in a web form, and wrote their phone too
    plan = plan_item(1, "form", {"fields": {"email": "dan@gmail.con", "phone": "070-123 45 67"}}, WEB)
    # Then the request is not rejected for it: they wrote to us, and their phone reaches them
    assert plan.outcome is None and plan.person.fields["email"] == "dan@gmail.con"


EXCHANGE_NAME = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=3f2a-asa.nystrom"


@pytest.mark.parametrize("email, kept", [
    (f"{EXCHANGE_NAME}; asa.nystrom@ostkust.se", "asa.nystrom@ostkust.se"),  # 'E-mail Address' and 'E-mail 2 Address'
    (EXCHANGE_NAME, None),
])
def test_an_exchange_directory_name_in_the_email_column_is_no_address(email, kept):
    # Given Outlook's contacts export of a colleague: 'E-mail Address' holds the Exchange
    # directory's name for her (its 'E-mail Type' EX), her address, if any, in 'E-mail 2 Address'
    plan = plan_item(1, "row", {"email": email, "phone": "070-174 06 20"}, LIST)
    # Then she is a lead, by her address where she has one, else by her phone; not rejected
    assert plan.outcome is None
    assert (plan.person.fields["email"], plan.person.fields["phone"]) == (kept, "+46701740620")


@pytest.mark.parametrize("url, kept_as", [
    ("https://www.linkedin.com/in/eriklindqvist", "linkedin"),  # LinkedIn's connections export: 'URL'
    ("se.linkedin.com/in/anna-berg-1234", "linkedin"),
    ("https://x.com/maria_h", "twitter"), ("https://www.facebook.com/ekab.se", "facebook"),
    ("https://ekab.se", "website"), ("www.linkedin-partners.se/om-oss", "website"),
])
def test_a_profile_in_a_website_column_is_kept_as_the_network_s_not_as_the_website(url, kept_as):
    payload = {"fields": {"email": "erik@lindqvist.se", "website": url}, "row": 2}
    plan = plan_item(1, "row", payload, LIST)
    assert plan.person.fields["details"]["fields"] == {kept_as: url}


@pytest.mark.parametrize("email", ["anna@berg.se\x00x", "anna\x1b@berg.se", "anna@berg.se\x7f"])
def test_an_address_holding_a_control_character_is_rejected_not_joined_into_another(email):
    plan = plan_item(1, "row", {"fields": {"email": email, "phone": "070-123 45 67"}}, LIST)
    assert (plan.outcome, plan.reason.split(" (")[0]) == ("rejected", "email: holds a control character")


def test_an_address_with_a_line_break_or_tab_around_it_is_read():
    plan = plan_item(1, "row", {"fields": {"email": "\tanna@berg.se\r\n"}}, LIST)
    assert plan.person.fields["email"] == "anna@berg.se"


@pytest.mark.parametrize("fields, kept", [
    ({"first_name": "-", "last_name": "N/A"}, {}),
    ({"first_name": "Anna", "last_name": "-", "company": "#N/A", "job_title": "n/a"}, {"first_name": "Anna"}),
    ({"company": "#SAKNAS!", "city": "N/A", "street": "-", "postal_code": "0", "country": "?"}, {}),  # Excel in Swedish
    ({"full_name": "#N/A"}, {}),
    ({"first_name": "Min-jun", "last_name": "Na"}, {"first_name": "Min-jun", "last_name": "Na"}),  # a surname, not 'n/a'
    ({"first_name": "Nil", "last_name": "Yilmaz"}, {"first_name": "Nil", "last_name": "Yilmaz"}),
])
def test_a_placeholder_in_a_text_field_is_blank_not_a_value(fields, kept):
    plan = plan_item(1, "row", {"fields": {"email": "anna@berg.se", **fields}}, LIST)
    stored = {name: value for name, value in plan.person.fields.items()
              if value is not None and name not in ("email", "details")}
    assert stored == kept


def test_an_excel_error_in_the_address_column_leaves_the_row_to_its_phone():
    plan = plan_item(1, "row", {"fields": {"email": "#N/A", "phone": "070-123 45 67"}}, LIST)
    assert plan.outcome is None and plan.person.keys == [("phone", "+46701234567")]


def test_a_list_rows_note_keeps_its_lines():
    # Given a row whose note was written over lines (a badge scanner's, a spreadsheet cell's Alt+Enter)
    plan = plan_item(1, "row", {"fields": {"email": "anna@berg.se",
                                           "notes": "Met at the stand\r\n  Wants a   quote\r\n\r\n\r\nCall in May"}}, LIST)
    # Then it is kept line by line, each line single-spaced, one blank line where there were several
    assert plan.person.fields["details"]["fields"]["notes"] == "Met at the stand\nWants a quote\n\nCall in May"


def test_a_list_rows_note_is_capped():
    plan = plan_item(1, "row", {"fields": {"email": "anna@berg.se", "notes": "ord " * 1000}}, LIST)
    assert len(plan.person.fields["details"]["fields"]["notes"]) <= 2000


@pytest.mark.parametrize("sender, reply_to, person", [
    ("wordpress@acme.se", "karin.j@gmail.com", "karin.j@gmail.com"),    # a site's contact form
    ("noreply@shopify.com", "karin.j@gmail.com", "karin.j@gmail.com"),  # a shop platform's, on the shop's behalf
    ("webshop@acme.se", "karin.j@gmail.com", "karin.j@gmail.com"),      # from the domain it writes to
    ("bo@kund.se", "karin.j@gmail.com", "bo@kund.se"),                   # a person who wants answers elsewhere
    ("info@acme.se", "anna@acme.se", "info@acme.se"),                    # a colleague: the mail is From's
    ("noreply@acme.se", "karin@@gmail.com", "noreply@acme.se"),          # no address: the mail is From's
])
def test_mail_a_site_sends_on_a_visitors_behalf_is_the_visitors(sender, reply_to, person):
    from dataclasses import replace as _replace
    payload = {"message_id": "<f1@acme.se>", "from_email": sender, "from_name": "Acme webbplats",
               "reply_to": reply_to, "reply_to_name": "Karin Jönsson", "to": ["support@acme.se"],
               "subject": "Fråga om leverans", "text": "Hej! När kommer min order?", "headers": {}}
    plan = plan_item(1, "email", payload, _replace(SOURCES["mail"], record_type="case"))
    assert plan.person.fields["email"] == person
    assert plan.activity["sender"] == person
    if person == reply_to:
        assert (plan.person.fields["first_name"], plan.person.fields["last_name"]) == ("Karin", "Jönsson")


@pytest.mark.parametrize("fields, postal_code, city", [
    ({"postal_code": "114 51 Stockholm"}, "114 51", "Stockholm"),   # a register's 'Postnr och ort'
    ({"city": "SE-411 19 GÖTEBORG"}, "411 19", "Göteborg"),
    ({"city": "0150 Oslo"}, "0150", "Oslo"),
    ({"city": "D-10115 Berlin"}, "10115", "Berlin"),
    ({"postal_code": "114 51", "city": "Stockholm"}, "114 51", "Stockholm"),  # each in its own: as written
    ({"city": "London SW1A 1AA"}, None, "London SW1A 1AA"),         # not a shape we know: as written
    ({"city": "Box 123"}, None, "Box 123"),
])
def test_a_postal_code_and_town_in_one_cell_are_read_apart(fields, postal_code, city):
    plan = plan_item(1, "row", {"fields": {"email": "anna@berg.se", **fields}}, LIST)
    assert (plan.person.fields["postal_code"], plan.person.fields["city"]) == (postal_code, city)


@pytest.mark.parametrize("message, priority, title", [
    ("AKUT: kassasystemet har kraschat\nIngen kan ta betalt i butiken", 1, "AKUT: kassasystemet har kraschat"),
    ("Hej!\n\nVår webshop ligger nere sedan i morse.", 1, "Vår webshop ligger nere sedan i morse."),
    ("Hi, could you send me last month's invoice again?", 2, "Hi, could you send me last month's invoice again?"),
    ("Hej jag kan inte logga in\nMvh Anna", 1, "Hej jag kan inte logga in"),  # no greeting line: the message
])
def test_a_web_forms_message_gives_its_case_priority_and_title(message, priority, title):
    """A form's free text is its 'message' field: the case was normal and '(no subject)' whatever it said."""
    fields = {"email": "anna@kund.example", "full_name": "Anna Berg", "message": message}
    plan = plan_item(1, "form", {"form": "contact", "fields": fields}, SourceConfig("web", kind="form",
                                                                                   record_type="case"))
    assert (plan.case["priority"], plan.case["title"], plan.case["description"]) == (priority, title, message)


def test_a_web_form_lead_gets_its_topic_from_the_message():
    fields = {"email": "anna@kund.example", "message": "Hej!\nVi vill ha en offert på 40 licenser.\nMvh Anna"}
    plan = plan_item(1, "form", {"form": "contact", "fields": fields}, SourceConfig("web", kind="form",
                                                                                   record_type="lead"))
    assert plan.person.fields["topic"] == "Vi vill ha en offert på 40 licenser."
    given = plan_item(1, "form", {"form": "contact", "fields": {**fields, "subject": "Offert"}},
                      SourceConfig("web", kind="form", record_type="lead"))
    assert given.person.fields["topic"] == "Offert"


GMAIL_FORWARD = """Kan ni ta den här? Kunden ringde också.

---------- Vidarebefordrat meddelande ---------
Från: Sven Dahl <sven.dahl@dahlsror.se>
Date: mån 9 dec. 2026 kl 09:41
Subject: Trasig leverans
To: Karin Holm <karin.holm@acme.se>


Hej Karin,
Leveransen var trasig.
Sven"""
APPLE_FORWARD = """FYI, please open a case.

Begin forwarded message:

> From: Tom Baker <tom.baker@bakerltd.co.uk>
> Subject: Invoice question
> Date: 9 December 2026 at 09:12:44 CET
> To: Karin Holm <karin.holm@acme.se>
>
> We were charged twice for invoice 88231."""
OUTLOOK_FORWARD = """

________________________________
Från: Berg, Anna <anna.berg@kund.se>
Skickat: den 9 december 2026 09:00
Till: Karin Holm <karin.holm@acme.se>
Ämne: Fel på fakturan

Hej, fakturan är fel."""


@pytest.mark.parametrize("text, email, first, title", [
    (GMAIL_FORWARD, "sven.dahl@dahlsror.se", "Sven", "Trasig leverans"),
    (APPLE_FORWARD, "tom.baker@bakerltd.co.uk", "Tom", "Invoice question"),
    (OUTLOOK_FORWARD, "anna.berg@kund.se", "Anna", "Fel på fakturan"),
])
def test_a_customers_mail_a_colleague_forwards_is_the_customers_case(text, email, first, title):
    """It was the colleague's: her contact, her case, the acknowledgement to her."""
    payload = {**MAIL_PAYLOAD, "from_email": "karin.holm@acme.se", "from_name": "Karin Holm",
               "to": ["support@acme.se"], "subject": f"VB: {title}", "text": text}
    plan = plan_item(6, "email", payload, MAIL)
    assert (plan.person.fields["email"], plan.person.fields["first_name"]) == (email, first)
    assert plan.case["title"] == title and plan.activity["sender"] == email
    assert plan.case["description"].startswith("Forwarded by Karin Holm <karin.holm@acme.se>")


def test_a_message_forwarded_as_an_attachment_is_the_customers_case_too():
    payload = {**MAIL_PAYLOAD, "from_email": "karin.holm@acme.se", "to": ["support@acme.se"],
               "text": "Se bifogat mejl från kunden.", "subject": "VB: Invoice question",
               "forwarded": {"from_email": "tom.baker@bakerltd.co.uk", "from_name": "Tom Baker",
                             "subject": "Invoice question", "text": "We were charged twice."}}
    plan = plan_item(6, "email", payload, MAIL)
    assert plan.person.fields["email"] == "tom.baker@bakerltd.co.uk"
    assert "We were charged twice." in plan.case["description"] and "Se bifogat" in plan.case["description"]


@pytest.mark.parametrize("sender, forwarded_from", [
    ("kund@dahlsror.se", "sven.dahl@dahlsror.se"),  # a customer forwarding their colleague's mail: theirs
    ("karin.holm@acme.se", "olle@acme.se"),  # a colleague forwarding a colleague: an internal matter
])
def test_only_a_colleagues_forward_of_an_outsider_changes_whose_case_it_is(sender, forwarded_from):
    payload = {**MAIL_PAYLOAD, "from_email": sender, "to": ["support@acme.se"],
               "text": GMAIL_FORWARD.replace("sven.dahl@dahlsror.se", forwarded_from)}
    assert plan_item(6, "email", payload, MAIL).person.fields["email"] == sender


def test_a_mails_attachments_are_named_where_an_agent_reads_it():
    payload = {**MAIL_PAYLOAD, "text": "", "attachments": [
        {"name": "Faktura_2026-1187.pdf", "content_type": "application/pdf", "size": 40_123},
        {"name": "image001.png", "content_type": "image/png", "size": 6_000},  # the signature's logo
        {"name": "trasig.jpg", "content_type": "image/jpeg", "size": 2_400_000}]}
    plan = plan_item(6, "email", payload, MAIL)
    assert plan.case["description"] == "Attachments: Faktura_2026-1187.pdf (40 kB), trasig.jpg (2.4 MB)"
    assert plan.activity["body"] == plan.case["description"]


@pytest.mark.parametrize("name", ["Kund AB Ekonomi", "Acme Ltd Support", "AB Volvo"])
def test_a_company_or_departments_display_name_is_no_persons_name(name):
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "from_name": name}, MAIL)
    assert (plan.person.fields["first_name"], plan.person.fields["last_name"]) == (None, None)


GMAIL_REPLY = """Hej,

Tack för svaret! Jag vill gärna ha en offert på 25 licenser.

Hälsningar
Johan

Den tis 3 dec. 2026 kl 10:12 skrev Acme Sälj <salj@acme.se>:

> Hej Johan,
> Här är prislistan.
"""
OUTLOOK_REPLY = """Hej igen,

Det fungerar fortfarande inte.

Anna Berg

Från: Acme Support <support@acme.se>
Skickat: den 2 december 2026 14:03
Till: Anna Berg <anna.berg@kund.se>
Ämne: SV: Problem med inloggning

Hej Anna, prova att rensa cachen.
"""


@pytest.mark.parametrize("text, kept", [
    (GMAIL_REPLY, "Hej,\n\nTack för svaret! Jag vill gärna ha en offert på 25 licenser.\n\nHälsningar\nJohan"),
    (OUTLOOK_REPLY, "Hej igen,\n\nDet fungerar fortfarande inte.\n\nAnna Berg"),
    ("Se nedan.\n> quoted only", "Se nedan."),
    ("On Mon, 2 Dec 2026 at 10:00, Acme <s@acme.se> wrote:\n> everything quoted", "On Mon, 2 Dec 2026 at 10:00, "
     "Acme <s@acme.se> wrote:\n> everything quoted"),  # nothing new: kept as it came
])
def test_a_replys_quoted_history_stays_off_the_case_and_activity(text, kept):
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "subject": "SV: Offert", "text": text}, MAIL)
    assert plan.case["description"] == kept and plan.activity["body"] == kept


def test_a_forward_keeps_what_it_forwards():
    text = "Se nedan.\n\n-----Original Message-----\nFrom: Bob <bob@x.example>\nSent: Monday\n\nOrder 12 is late"
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "subject": "FW: Order", "text": text}, MAIL)
    assert plan.case["description"] == text


def test_a_mail_read_only_in_part_is_still_the_senders_case_saying_what_was_not_read():
    """A customer's mail whose structure the parser could not take apart (parts nested 2,000
    deep) was rejected whole, though its sender and text were read."""
    payload = {**MAIL_PAYLOAD, "text": "Hej, fakturan är fel.",
               "error": "body: unparsable: RecursionError; the message's text is kept as the body"}
    plan = plan_item(6, "email", payload, MAIL)
    assert plan.outcome is None and plan.person.fields["email"] == "Asa.Jonsson@example.com"
    assert plan.case["description"] == ("Hej, fakturan är fel.\n\n(Part of this mail could not be read: body: "
                                        "unparsable: RecursionError; the message's text is kept as the body)")
    unread = plan_item(6, "email", {"error": "unparsable message: ValueError"}, MAIL)  # no sender: nothing to file
    assert (unread.outcome, unread.reason) == ("rejected", "payload: unreadable as received: unparsable message: "
                                                           "ValueError")


def test_a_customers_own_sentence_shaped_like_a_quote_header_is_kept():
    text = "Hej,\nDen fakturan skrev ni fel på:\nnr 4412, 1 200 kr för mycket."
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "subject": "SV: Faktura", "text": text}, MAIL)
    assert plan.case["description"] == text


def test_a_lead_ads_question_written_in_capitals_or_words_is_facebooks_standard_one():
    """'EMAIL' and 'Full Name' (as a form's builder wrote them) were left among the answers, and
    the lead rejected for having no email."""
    payload = {"leadgen_id": "9300", "form_id": "1", "field_data": [
        {"name": "EMAIL", "values": ["ana@example.net"]}, {"name": "Full Name", "values": ["Ana Lind"]},
        {"name": "Vilken storlek?", "values": ["M"]}]}
    plan = plan_item(1, "leadgen", payload, SourceConfig("facebook_leads", kind="leadgen", record_type="lead"))
    assert (plan.person.fields["email"], plan.person.fields["first_name"]) == ("ana@example.net", "Ana")
    assert plan.person.fields["details"]["answers"] == {"Vilken storlek?": "M"}


def test_a_reply_answering_between_the_quoted_lines_is_kept_whole():
    text = ("Svar nedan.\n\nDen tis 3 dec. 2026 kl 10:12 skrev Acme <s@acme.se>:\n> Vilken modell har ni?\n"
            "X1 från 2024.\n> Och serienumret?\nSN-4412.")
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "subject": "SV: Ärende", "text": text}, MAIL)
    assert plan.case["description"] == text


CC_SELF_REPLY = """Hej, pumpen läcker fortfarande.

Anna

________________________________
Från: Lisa Support <lisa@acme.se>
Skickat: den 2 december 2026 14:03
Till: Anna Berg <anna@kund.se>
Ämne: Trasig pump

Hej Anna, prova att byta packningen."""


@pytest.mark.parametrize("changes", [
    {"to": ["support@acme.se"], "cc": ["anna@kund.se"], "subject": "SV: Trasig pump", "text": CC_SELF_REPLY},
    {"to": ["support@acme.se"], "cc": ["erik@kund.se"], "subject": "VB: Offert 2231", "text": GMAIL_FORWARD},
    {"to": ["support@acme.se", "anna@kund.se"], "subject": "SV: Trasig pump", "text": CC_SELF_REPLY},
])
def test_a_customers_own_mail_quoting_someone_is_no_colleagues_forward(changes):
    """A customer who cc'd herself or a colleague handed her case to whoever she quoted."""
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "from_email": "anna@kund.se", "from_name": "Anna Berg", **changes}, MAIL)
    assert plan.person.fields["email"] == "anna@kund.se" and plan.activity["sender"] == "anna@kund.se"


@pytest.mark.parametrize("text", [
    "Hello,\nOn 3 February I wrote:\nplease refund by Friday or I dispute the charge.",
    "Hej,\nDen 3 februari skrev jag till er så här:\nNi lovade leverans.",
    "Hej, vi bokade följande transport hos er:\nFrån: Stockholm\nTill: Malmö\nDatum: 2026-02-20\nMvh Anna",
    "Hej\nFrom: Acme <noreply@acme.se>\nDate: 1 mars\nVarför fastnar era mejl i SPF?",
])
def test_a_customers_own_words_shaped_like_quoted_history_are_kept(text):
    plan = plan_item(6, "email", {**MAIL_PAYLOAD, "subject": "SV: Ärende", "text": text}, MAIL)
    assert plan.case["description"] == text


@pytest.mark.parametrize("changes", [
    {"subject": "Read: the attached contract", "text": "Please sign page 3 and send it back by Friday."},
    {"subject": "Läst: ditt förslag, några frågor", "text": "Vi vill ha 50 licenser, vad kostar det?"},
    {"subject": "New time proposed: Service visit", "calendar": "COUNTER", "text": "The machine leaks oil."},
])
def test_a_persons_mail_shaped_like_a_receipt_or_a_calendar_answer_is_read(changes):
    assert plan_item(6, "email", {**MAIL_PAYLOAD, **changes}, MAIL).outcome is None


def test_a_newsletter_a_colleague_forwards_is_not_its_senders_case():
    text = GMAIL_FORWARD.replace("Sven Dahl <sven.dahl@dahlsror.se>", "Leverantören <nyhetsbrev@leverantor.se>")
    payload = {**MAIL_PAYLOAD, "from_email": "karin.holm@acme.se", "from_name": "Karin Holm",
               "to": ["support@acme.se"], "subject": "VB: Nyheter i december", "text": text}
    assert plan_item(6, "email", payload, MAIL).person.fields["email"] == "karin.holm@acme.se"


@pytest.mark.parametrize("fields, title", [
    ({"full_name": "Maria Engström, Ekonomichef", "email": "maria@svea.se"}, "Ekonomichef"),
    ({"full_name": "Maria Engström, Ekonomichef", "job_title": "CFO", "email": "maria@svea.se"}, "CFO"),
    ({"full_name": "Engström, Maria", "email": "maria@svea.se"}, None),  # the surname first, no role
])
def test_a_role_written_after_the_name_is_the_job_title_when_the_row_gives_none(fields, title):
    plan = plan_item(1, "row", {"fields": fields}, SourceConfig("list", record_type="lead"))
    assert (plan.person.fields["first_name"], plan.person.fields["job_title"]) == ("Maria", title)


@pytest.mark.parametrize("city, written", [("JÖNKÖPING", "Jönköping"), ("UPPSALA C", "Uppsala C"), ("NYC", "NYC"),
                                           ("Göteborg", "Göteborg"), ("ST ALBANS", "St Albans"), ("DEN HAAG", "Den Haag")])
def test_a_town_written_in_capitals_is_written_as_a_letter_writes_it(city, written):
    plan = plan_item(1, "row", {"fields": {"email": "a@ek.se", "city": city}}, SourceConfig("list", record_type="lead"))
    assert plan.person.fields["city"] == written


@pytest.mark.parametrize("cell", ["2024-03-04", "2024-03-04 00:00:00", "04.03.2024"])
def test_a_date_in_the_phone_column_is_no_number(cell):
    # a date cell in the phone's column was read as +4620240304, keyed and matched on
    kept = plan_item(1, "row", {"fields": {"email": "a@ek.se", "phone": cell}}, SourceConfig("list", record_type="lead"))
    alone = plan_item(1, "row", {"fields": {"phone": cell}}, SourceConfig("list", record_type="lead"))
    assert kept.person.fields["phone"] is None and [kind for kind, _ in kept.person.keys] == ["email"]
    assert kept.person.remarks == [f"phone {cell!r} not kept: a date, not a phone number"]
    assert (alone.outcome, alone.reason) == ("rejected", f"phone: a date, not a phone number: {cell!r}")


def test_an_address_longer_than_any_says_so_not_that_it_lacks_an_at_sign():
    plan = plan_item(1, "row", {"fields": {"email": "a" * 10_000 + "@ek.se"}}, SourceConfig("list", record_type="lead"))
    assert (plan.outcome, plan.reason) == ("rejected", "email: 10,006 characters: longer than any address (254 at most)")


def test_a_danish_mobile_written_as_eight_digits_is_no_date():
    fields = {"email": "a@ek.dk", "phone": "20120315", "country": "Danmark"}
    assert plan_item(1, "row", {"fields": fields}, SourceConfig("list", record_type="lead")).person.fields["phone"] \
        == "+4520120315"
