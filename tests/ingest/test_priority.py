"""A case's priority from its text: what a support desk would call urgent, in Swedish and
English, and the everyday words that must not make a case urgent (found by a probe of 140
messages; each of these was misread before)."""
from __future__ import annotations

import pytest

from crm_ingest.ingest.priority import case_priority


@pytest.mark.parametrize("text, why", [
    ("production down", "outage"), ("Site down", "outage"), ("Servern är nere!", "outage"),
    ("Systemet är nere, ingen kan jobba", "outage"), ("Appen kraschar hela tiden", "outage"),
    ("Jag kan inte logga in", "outage"), ("Kassan funkar inte", "outage"), ("nobody can work", "outage"),
    ("our customers cannot check out", "outage"), ("Lagret har varit offline sedan klockan 14", "outage"),
    ("our payroll run failed and 300 people will not get paid tomorrow", "outage"),
    ("all our customer records are gone", "data loss"), ("Någon har kommit åt vårt konto", "security"),
    ("BRÅDSKANDE", "urgent"), ("Vi har bråttom", "urgent"),
])
def test_urgent_matters_are_high(text, why):
    assert case_priority(text) == ("high", why)


@pytest.mark.parametrize("text", [
    "Det är inte akut men fakturan är fel", "Not urgent, but the invoice is wrong",
    "no rush - the invoice amount is wrong", "Hi, this is Brad from Acme about our order",
    "Kan vi stämma av fakturan? Beloppet verkar fel.", "Courtesy reminder: our invoice 123 is unpaid",
    "Please send me a backup copy (säkerhetskopia) of my data", "What is my security question?",
    "Can you resend invoice 5512? This email and any attachments are confidential.",
    "I'm critical of the new pricing", "I reverted the setting and it still does not sync",
    "We're offline on Friday for a holiday, no need to reply",
])
def test_everyday_words_do_not_make_a_case_urgent(text):
    assert case_priority(text)[0] != "high"


@pytest.mark.parametrize("text", [
    "Hur kan ni debitera mig två gånger?! Det här är oacceptabelt",
    "How much longer do I have to wait for my refund?? 3 months now!!",
    "I was charged 200 instead of 100", "I wish you would answer your phone", "Vi önskar säga upp avtalet",
])
def test_a_complaint_is_no_how_to_question_or_suggestion(text):
    assert case_priority(text)[0] != "low"


@pytest.mark.parametrize("text", ["Hur byter jag lösenordet på routern?", "hur avkalkar man Barista 500?",
                                  "How do I export my contacts?", "Small typo on your pricing page"])
def test_questions_and_trifles_are_low(text):
    assert case_priority(text)[0] == "low"
