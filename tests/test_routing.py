"""Rules per source decide what an item becomes (first match wins), and a new case gets its
priority, SLA times, entitlement, queue and the customer's other active cases. Embedded path,
through the CLI."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_ingest.ingest.errors import ConfigError
from crm_ingest.ingest.routing import Facts, Rule, decide, facts_of
from crm_ingest.ingest.settings import from_toml
from crm_ingest.models import Case, Contact, Entitlement, Lead, RawItem

MAIL_RULES = '''
[sources.mail]
kind = "email"
record_type = "case"
queue = "Support"

[[sources.mail.rules]]
name = "sales mailbox"
to = ["sales@acme.example"]
action = "lead"
queue = "Inside sales"

[[sources.mail.rules]]
keywords = ["unsubscribe", "avregistrera mig"]
action = "ignore"
reason = "an unsubscribe request, handled by marketing"

[[sources.mail.rules]]
keywords = ["faktura", "invoice"]
action = "case"
queue = "Billing"

[[sources.mail.rules]]
keywords = ["job application", "ansökan"]
action = "review"
reason = "for HR to look at"

[[sources.mail.rules]]
keywords = ["one more thing", "en sak till"]
action = "append"
'''


def mail(n: int, sender: str, subject: str, text: str = "", to: str = "support@acme.example", **extra) -> dict:
    return {"message_id": f"<m{n}@example.com>", "from_email": sender, "from_name": sender.split("@")[0].title(),
            "to": [to], "subject": subject, "text": text, **extra}


def land(cli, tmp_path, source: str, *payloads: dict, name: str = "items.jsonl") -> None:
    path = tmp_path / name
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in payloads), encoding="utf-8")
    result = cli("land", "--source", source, str(path))
    assert result.exit_code == 0, result.output


def outcomes(sessions) -> list[tuple]:
    with sessions() as session:
        return [tuple(row) for row in session.execute(
            select(RawItem.external_id, RawItem.outcome, RawItem.record_type, RawItem.outcome_reason)
            .order_by(RawItem.id))]


@pytest.fixture
def sessions(tmp_path, sessions_for):
    return sessions_for(f"sqlite:///{tmp_path / 'x.db'}")


def test_the_first_matching_rule_decides_and_each_action_does_what_it_says(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text(MAIL_RULES, encoding="utf-8")
    land(cli, tmp_path, "mail",
         mail(1, "eva@kund.example", "Pricing", "What would 40 seats cost?", to="sales@acme.example"),
         # the sales rule comes first, so an invoice question to sales@ is a lead
         mail(2, "bo@kund.example", "Faktura", "Fakturan saknar ordernummer", to="sales@acme.example"),
         mail(3, "bo@kund.example", "Faktura 7781", "Fakturan har fel belopp"),
         mail(4, "li@kund.example", "Unsubscribe", "Please unsubscribe me"),
         mail(5, "jo@example.org", "Job application", "Here is my CV"),
         mail(6, "kim@kund.example", "Login", "I cannot log in"),
         mail(7, "bo@kund.example", "Also", "One more thing: the VAT number is wrong too"))

    got = {external: (outcome, record_type) for external, outcome, record_type, _ in outcomes(sessions)}
    assert got == {"<m1@example.com>": ("created", "lead"), "<m2@example.com>": ("created", "lead"),
                   "<m3@example.com>": ("created", "case"), "<m4@example.com>": ("ignored", None),
                   "<m5@example.com>": ("review", None), "<m6@example.com>": ("created", "case"),
                   "<m7@example.com>": ("appended", "case")}
    reasons = {external: reason for external, _, _, reason in outcomes(sessions)}
    assert reasons["<m4@example.com>"] == "rule 2: an unsubscribe request, handled by marketing"
    assert reasons["<m5@example.com>"] == "rule 4: for HR to look at"
    assert reasons["<m1@example.com>"] == "by sales mailbox"
    with sessions() as session:
        queues = {case.title: case.queue for case in session.scalars(select(Case))}
        assert queues == {"Faktura 7781": "Billing", "Login": "Support"}
        assert {lead.email: lead.queue for lead in session.scalars(select(Lead))} == {
            "eva@kund.example": "Inside sales", "bo@kund.example": "Inside sales"}
        # the appended mail went to Bo's active case
        appended = session.scalar(select(RawItem).where(RawItem.external_id == "<m7@example.com>"))
        bo_case = session.scalar(select(Case).where(Case.title == "Faktura 7781"))
        assert appended.record_id == bo_case.id


def test_an_unknown_sender_of_a_case_gets_a_contact_unless_the_rule_says_not_to(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('''
[[sources.mail.rules]]
sender = "unknown"
keywords = ["vip"]
action = "case"
create_contact = false
''', encoding="utf-8")
    land(cli, tmp_path, "mail", mail(1, "new@kund.example", "Help", "My order is late"),
         mail(2, "other@kund.example", "VIP help", "vip: my order is late"))
    got = {external: (outcome, reason) for external, outcome, _, reason in outcomes(sessions)}
    assert got["<m1@example.com>"][0] == "created"
    assert got["<m2@example.com>"] == ("review", "rule 1: the sender is unknown and no contact is created "
                                                 "for unknown senders")
    with sessions() as session:
        assert [c.email for c in session.scalars(select(Contact))] == ["new@kund.example"]
        case = session.scalar(select(Case))
        assert case.contact_id == session.scalar(select(Contact.id))


def test_known_and_unknown_senders_follow_their_own_rules(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('''
[[sources.mail.rules]]
sender = "known"
action = "case"
queue = "Customers"

[[sources.mail.rules]]
sender = "unknown"
action = "lead"
''', encoding="utf-8")
    land(cli, tmp_path, "mail", mail(1, "eva@kund.example", "Hello", "First mail"), name="a.jsonl")
    land(cli, tmp_path, "mail", mail(2, "eva@kund.example", "Hello again", "Second mail"), name="b.jsonl")
    got = [(outcome, record_type) for _, outcome, record_type, _ in outcomes(sessions)]
    assert got == [("created", "lead"), ("created", "case")]


def test_a_case_that_requires_an_entitlement_takes_one_or_waits_for_review(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('''
[[sources.mail.rules]]
action = "case"
require_entitlement = true
''', encoding="utf-8")
    # Given a contact with an entitlement for two cases, and one without
    land(cli, tmp_path, "mail", mail(1, "eva@kund.example", "Hello", "I need help"), name="a.jsonl")
    with sessions() as session:
        eva = session.scalar(select(Contact.id).where(Contact.email == "eva@kund.example"))
    assert outcomes(sessions)[0][1] == "review"  # no entitlement yet
    added = cli("entitlement", "add", "--contact", str(eva), "--cases", "2", "--ends", "2027-12-31", "--json")
    assert added.exit_code == 0, added.output

    # When she opens three cases, and a stranger one
    land(cli, tmp_path, "mail", *[mail(n, "eva@kund.example", f"Problem {n}", "It broke") for n in (2, 3, 4)],
         mail(5, "kim@kund.example", "Problem", "It broke"), name="b.jsonl")

    # Then two cases are opened under the entitlement, which has none left; the rest wait
    got = [(external, outcome) for external, outcome, _, _ in outcomes(sessions)]
    assert got == [("<m1@example.com>", "review"), ("<m2@example.com>", "created"),
                   ("<m3@example.com>", "created"), ("<m4@example.com>", "review"), ("<m5@example.com>", "review")]
    with sessions() as session:
        entitlement = session.scalar(select(Entitlement))
        assert entitlement.cases_remaining == 0
        assert [c.entitlement_id for c in session.scalars(select(Case))] == [entitlement.id] * 2
    reason = outcomes(sessions)[-1][3]
    assert "needs a valid entitlement" in reason and "has none" in reason
    listed = json.loads(cli("entitlement", "list", "--json").output)["entitlements"]
    assert listed[0]["cases_remaining"] == 0
    assert "2027-12-31" in cli("entitlement", "list").output  # its last day, as given (it ends as 2028 begins)


def test_an_account_entitlement_covers_its_contacts(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('''
[[sources.mail.rules]]
action = "case"
require_entitlement = true
''', encoding="utf-8")
    land(cli, tmp_path, "mail", mail(1, "eva@kund.example", "Hello", "Hi", from_name="Eva"), name="a.jsonl")
    # the contact's company: made an account by a crm row naming it
    (tmp_path / "ingest.toml").write_text('''
[sources.crm]
kind = "row"
record_type = "contact"

[[sources.mail.rules]]
action = "case"
require_entitlement = true
''', encoding="utf-8")
    land(cli, tmp_path, "crm", {"id": "c1", "fields": {"email": "eva@kund.example", "company": "Kund AB"}},
         name="c.jsonl")
    with sessions() as session:
        account = session.scalar(select(Contact.account_id).where(Contact.email == "eva@kund.example"))
    assert account is not None
    assert cli("entitlement", "add", "--account", str(account), "--cases", "5").exit_code == 0
    land(cli, tmp_path, "mail", mail(2, "bo@kund.example", "Help", "It broke"), name="b.jsonl")
    assert outcomes(sessions)[-1][1] == "created"  # Bo's work domain finds Kund AB's account


def test_case_priority_sets_its_sla_times(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('''
[sources.mail]
record_type = "case"

[sla.high]
first_response_hours = 2
resolve_hours = 12
''', encoding="utf-8")
    land(cli, tmp_path, "mail",
         mail(1, "a@kund.example", "URGENT: site down", "Our shop is down since 9, nothing works"),
         mail(2, "b@kund.example", "Question", "Where do I find the export button?"),
         mail(3, "c@kund.example", "Order", "My order has not arrived"),
         mail(4, "d@kund.example", "Säkerhet", "Vi tror att vårt konto har blivit hackat"))
    with sessions() as session:
        cases = {case.title: case for case in session.scalars(select(Case))}
    got = {title: (case.priority, case.priority_reason) for title, case in cases.items()}
    assert got == {"URGENT: site down": (1, "outage"), "Question": (3, "how-to"), "Order": (2, None),
                   "Säkerhet": (1, "security")}
    for title, (respond, resolve) in {"URGENT: site down": (2, 12), "Question": (24, 240), "Order": (8, 72)}.items():
        case = cases[title]
        assert case.first_response_by - case.created_at == pytest.approx(timedelta(hours=respond), abs=timedelta(seconds=5))
        assert case.resolve_by - case.created_at == pytest.approx(timedelta(hours=resolve), abs=timedelta(seconds=5))


def test_a_new_case_names_the_customers_other_active_cases(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('[sources.mail]\nrecord_type = "case"\n', encoding="utf-8")
    land(cli, tmp_path, "mail", mail(1, "eva@kund.example", "First", "The app crashes"), name="a.jsonl")
    land(cli, tmp_path, "mail", mail(2, "eva@kund.example", "Second", "And the invoice is wrong"), name="b.jsonl")
    with sessions() as session:
        first, second = session.scalars(select(Case).order_by(Case.id)).all()
    assert first.other_active_cases is None
    assert second.other_active_cases == [first.ticket_number]


def test_renamed_record_types_show_in_the_output(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('[labels]\naccount = "company"\nlead = "prospect"\n', encoding="utf-8")
    path = tmp_path / "forms.jsonl"
    path.write_text(json.dumps({"id": "f1", "fields": {"email": "eva@kund.example"}}) + "\n")
    assert cli("land", "--source", "web", str(path)).exit_code == 0
    shown = cli("outcome", "1")
    assert "record: prospect" in shown.output
    as_json = json.loads(cli("outcome", "1", "--json").output)
    assert (as_json["record_type"], as_json["record_label"]) == ("lead", "prospect")  # the data keeps its names
    demo = cli("demo")
    assert "prospects" in demo.output and "companies" in demo.output
    exported = cli("export", "companies", "--format", "jsonl")
    assert exported.exit_code == 0, exported.output
    assert cli("export", "nonsense").exit_code != 0


def test_rules_read_every_condition_from_a_payload():
    facts = facts_of("post", {"text": "RT love it", "public": True, "retweet": True})
    assert (facts.public, facts.retweet, facts.text) == (True, True, "RT love it")
    email = facts_of("email", {"to": ["A@X.se"], "cc": "b@x.se; c@x.se", "mailbox": "INBOX/Sales",
                               "subject": "Hi", "text": "there"})
    assert email.recipients == ("a@x.se", "b@x.se", "c@x.se") and email.mailbox == "inbox/sales"
    form = facts_of("form", {"form": "Demo", "fields": {"message": "Book a demo"}})
    assert (form.form, form.text) == ("demo", "Book a demo")


@pytest.mark.parametrize("rule, facts, known, expected", [
    (Rule("ignore", retweet=True), Facts("post", retweet=True), False, "ignore"),
    (Rule("ignore", retweet=True), Facts("post", retweet=False), False, "case"),
    (Rule("lead", public=False), Facts("post", public=False), False, "lead"),
    (Rule("lead", public=False), Facts("post", public=True), False, "case"),
    (Rule("lead", form=("demo",)), Facts("form", form="demo"), False, "lead"),
    (Rule("lead", mailbox=("inbox/sales",)), Facts("email", mailbox="inbox/sales"), False, "lead"),
    (Rule("lead", keywords=("offert",)), Facts("email", text="Kan vi få en OFFERT?"), False, "lead"),
    (Rule("lead", keywords=("offert",)), Facts("email", text="offerten kom fram"), False, "case"),  # whole words
    (Rule("lead", keywords=("price list",)), Facts("email", text="your price   list please"), False, "lead"),
    (Rule("lead", language="sv"), Facts("email", text="Hej, vi vill gärna veta mer om er tjänst"), False, "lead"),
    (Rule("lead", language="sv"), Facts("email", text="Hello, we would like to know more"), False, "case"),
    (Rule("lead", sender="known"), Facts("email"), True, "lead"),
    (Rule("lead", sender="known"), Facts("email"), False, "case"),
])
def test_each_condition(rule, facts, known, expected):
    route = decide((rule,), "case", facts, known_sender=known, classify=_no_classifier, min_confidence=0.6)
    assert route.action == expected


def _no_classifier(text):
    raise AssertionError("the classifier must not be asked")


@pytest.mark.parametrize("raw, key, reason", [
    ([{"to": "x@y.se"}], "sources.mail.rules[0].action", "required"),
    ([{"action": "explode"}], "sources.mail.rules[0].action", "must be one of"),
    ([{"action": "lead", "colour": "red"}], "sources.mail.rules[0].colour", "unknown key"),
    ([{"action": "lead", "sender": "maybe"}], "sources.mail.rules[0].sender", "must be one of"),
    ([{"action": "lead", "retweet": "yes"}], "sources.mail.rules[0].retweet", "true or false"),
    ([{"action": "lead", "keywords": []}], "sources.mail.rules[0].keywords", "non-empty"),
    ({"action": "lead"}, "sources.mail.rules", "array of tables"),
])
def test_a_bad_rule_names_its_dotted_key(raw, key, reason):
    with pytest.raises(ConfigError) as error:
        from_toml({"sources": {"mail": {"rules": raw}}})
    assert error.value.key == key and reason in error.value.reason


def test_bad_sla_and_labels_name_their_keys():
    for data, key in (({"sla": {"urgent": {}}}, "sla.urgent"),
                      ({"sla": {"high": {"first_response_hours": 10, "resolve_hours": 2}}}, "sla.high"),
                      ({"labels": {"thing": "x"}}, "labels.thing"),
                      ({"sources": {"mail": {"min_confidence": 2}}}, "sources.mail.min_confidence")):
        with pytest.raises(ConfigError) as error:
            from_toml(data)
        assert error.value.key == key


def test_a_person_decides_an_item_in_review(cli, tmp_path, sessions):
    (tmp_path / "ingest.toml").write_text('''
[[sources.mail.rules]]
keywords = ["maybe"]
action = "review"
''', encoding="utf-8")
    land(cli, tmp_path, "mail", mail(1, "eva@kund.example", "Maybe", "maybe a lead, maybe not"),
         mail(2, "bo@kund.example", "Maybe", "maybe spam"))
    assert [o for _, o, _, _ in outcomes(sessions)] == ["review", "review"]

    # A person finds what waits for them, oldest first, with who wrote and what
    waiting = json.loads(cli("items", "--json").output)
    assert [(item["id"], item["sender"], item["says"]) for item in waiting["items"]] == \
        [(1, "Eva <eva@kund.example>", "Maybe"), (2, "Bo <bo@kund.example>", "Maybe")]
    assert waiting["items"][0]["reason"] and waiting["next_after_id"] is None
    assert [item["id"] for item in json.loads(cli("items", "--limit", "1", "--after", "1", "--json").output)["items"]] \
        == [2]

    as_lead = json.loads(cli("decide", "1", "lead", "--reason", "asked for prices on the phone", "--json").output)
    ignored = json.loads(cli("decide", "2", "ignore", "--json").output)

    assert (as_lead["outcome"], as_lead["record_type"]) == ("created", "lead")
    assert ignored["outcome"] == "ignored"
    got = outcomes(sessions)
    assert got[0][1:] == ("created", "lead", "decided in review: asked for prices on the phone")
    assert got[1][1] == "ignored"
    with sessions() as session:
        assert [lead.email for lead in session.scalars(select(Lead))] == ["eva@kund.example"]
    again = cli("decide", "1", "case")
    assert again.exit_code != 0 and "not waiting for review" in again.output
    assert json.loads(cli("items", "--json").output)["items"] == []


class _Said:
    def __init__(self, label: str, confidence: float) -> None:
        self.label, self.confidence, self.evidence = label, confidence, (("bifogad", 0.4),)
        self.probabilities = {label: confidence}


@pytest.mark.parametrize("attachments, forwarded, action", [
    ([{"name": "Faktura_2026-1187.pdf", "content_type": "application/pdf", "size": 40_000}], None, "review"),
    ([], {"from_email": "tom@baker.example", "text": "x"}, "review"),
    ([{"name": "image001.png", "content_type": "image/png", "size": 8_000}], None, "ignore"),  # a signature's logo
    ([], None, "ignore"),
])
def test_mail_the_classifier_would_ignore_goes_to_review_when_its_matter_may_be_attached(attachments, forwarded,
                                                                                           action):
    payload = {"subject": "Fel på fakturan, se bifogad", "text": "", "attachments": attachments,
               **({"forwarded": forwarded} if forwarded else {})}
    route = decide((), "auto", facts_of("email", payload), known_sender=False,
                   classify=lambda text: _Said("other", 0.7), min_confidence=0.6)
    assert route.action == action
    if action == "review":
        assert "which the classifier does not read" in route.reason
