"""The text classifier: trained from the corpus inside the installed package, no network; its
answers route items of 'auto' sources, and an unsure answer goes to review."""
from __future__ import annotations

import json
import socket
from collections import Counter

import pytest
from sqlalchemy import select

from crm_ingest.classify.model import LABELS, Classifier, default_classifier, language, load_corpus
from crm_ingest.models import RawItem


def test_the_corpus_ships_in_the_package_with_both_languages_and_every_label():
    examples = load_corpus()
    counts = Counter((e.label, e.lang) for e in examples)
    assert len(examples) >= 600
    assert all(counts[(label, lang)] >= 60 for label in LABELS for lang in ("en", "sv"))
    assert sum(e.hard for e in examples) >= 60
    assert len({e.text for e in examples}) == len(examples)  # no duplicates


def test_the_model_trains_and_answers_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the classifier tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    default_classifier.cache_clear()
    guess = default_classifier().predict("Hi, could you send us a quote for 40 licences and a demo next week?")
    assert guess.label == "lead" and 0 < guess.confidence <= 1
    assert set(guess.probabilities) == set(LABELS)


@pytest.mark.parametrize("text, label", [
    ("Hello, what would 25 user licences cost per year? We'd also like a demo.", "lead"),
    ("Hej! Vi är intresserade av era tjänster och vill gärna ha en offert på 30 platser.", "lead"),
    ("My order #4471 arrived broken and I want a refund.", "case"),
    ("Hej, jag kan inte logga in på mitt konto sedan i går, lösenordet fungerar inte.", "case"),
    ("Fakturan för oktober har fel belopp, ni har dragit två gånger.", "case"),
    ("We can get your website to the top of Google! Cheap SEO packages, reply now.", "other"),
    ("Hej! Jag heter Sara och söker sommarjobb hos er, bifogar mitt CV.", "other"),
])
def test_clear_messages_get_the_right_label(text, label):
    assert default_classifier().predict(text).label == label


def test_the_answer_says_which_words_weighed_most():
    guess = default_classifier().predict("The invoice is wrong and the delivery is late", explain=6)
    words = [word for word, _ in guess.evidence]
    assert guess.label == "case" and words and all(weight > 0 for _, weight in guess.evidence)
    assert {"invoice", "wrong", "late", "delivery"} & set(words)


def test_the_cli_explains_its_answer(cli):
    result = cli("classify", "Vad kostar det att uppgradera till 50 användare?", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["label"] == "lead" and data["language"] == "sv" and data["words"]
    shown = cli("classify", "Our whole system is down, nobody can work! URGENT")
    assert "case" in shown.output and "priority: high" in shown.output and "words that weighed most" in shown.output


def test_language_is_read_from_common_words():
    assert language("Hej, vi har ett problem med leveransen") == "sv"
    assert language("Hello, we have a problem with the delivery") == "en"


def test_a_batch_gives_the_same_answers_as_one_at_a_time():
    texts = ["quote for 10 bikes please", "my bike broke after two days", "thanks, great service!"]
    model = default_classifier()
    assert [p.label for p in model.predict_many(texts)] == [model.predict(t).label for t in texts]


def test_a_corpus_needs_two_labels():
    from crm_ingest.classify.model import Example

    with pytest.raises(ValueError):
        Classifier([Example("a", "lead"), Example("b", "lead")])


def land(cli, tmp_path, source: str, *payloads: dict) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in payloads), encoding="utf-8")
    assert cli("land", "--source", source, str(path)).exit_code == 0


def routed(sessions_for, tmp_path) -> dict[str, tuple]:
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        return {row.external_id: (row.outcome, row.record_type, row.outcome_reason)
                for row in session.scalars(select(RawItem))}


def post(n: int, text: str, **extra) -> dict:
    return {"post_id": f"p{n}", "network": "twitter", "handle": f"@user{n}", "author_name": f"User {n}",
            "text": text, **extra}


def test_an_auto_source_lets_the_classifier_decide(cli, tmp_path, sessions_for):
    (tmp_path / "ingest.toml").write_text('[sources.twitter]\nrecord_type = "auto"\n', encoding="utf-8")
    land(cli, tmp_path, "twitter",
         post(1, "@acme how much is the pro plan for a team of 12? thinking of switching"),
         post(2, "@acme your app keeps crashing when I upload photos, please fix"),
         post(3, "@acme follow us for amazing crypto giveaways!!! 🚀🚀"))
    got = routed(sessions_for, tmp_path)
    assert (got["p1"][0], got["p1"][1]) == ("created", "lead")
    assert (got["p2"][0], got["p2"][1]) == ("created", "case")
    assert got["p3"][0] == "ignored" and "classified as other" in got["p3"][2]
    assert "classified as case" in got["p2"][2]


def test_an_unsure_answer_goes_to_review(cli, tmp_path, sessions_for):
    (tmp_path / "ingest.toml").write_text('[sources.twitter]\nrecord_type = "auto"\nmin_confidence = 0.995\n',
                                          encoding="utf-8")
    land(cli, tmp_path, "twitter", post(1, "@acme hmm"))
    outcome, record_type, reason = routed(sessions_for, tmp_path)["p1"]
    assert (outcome, record_type) == ("review", None)
    assert "unsure" in reason and "below min_confidence 0.995" in reason


def test_a_rule_can_act_on_the_classifiers_answer(cli, tmp_path, sessions_for):
    (tmp_path / "ingest.toml").write_text('''
[sources.twitter]
record_type = "case"

[[sources.twitter.rules]]
label = "other"
action = "review"
reason = "social team looks at chatter"
''', encoding="utf-8")
    land(cli, tmp_path, "twitter", post(1, "@acme my invoice is wrong, charged twice"),
         post(2, "@acme lol this meme about mondays 😂"))
    got = routed(sessions_for, tmp_path)
    assert got["p1"][:2] == ("created", "case")
    assert got["p2"][:2] == ("review", None) and "social team" in got["p2"][2]


def test_a_reply_to_a_case_stays_with_it_whatever_its_text(cli, tmp_path, sessions_for):
    (tmp_path / "ingest.toml").write_text('[sources.mail]\nrecord_type = "auto"\n', encoding="utf-8")
    first = {"message_id": "<a1@kund.example>", "from_email": "eva@kund.example", "from_name": "Eva Lind",
             "subject": "Cannot log in", "text": "Since yesterday I cannot log in to my account, please help."}
    land(cli, tmp_path, "mail", first)
    reply = {"message_id": "<a2@kund.example>", "from_email": "eva@kund.example", "from_name": "Eva Lind",
             "subject": "Re: Cannot log in", "text": "Thanks a lot, have a nice weekend!",
             "in_reply_to": "<a1@kund.example>"}
    land(cli, tmp_path, "mail", reply)
    got = routed(sessions_for, tmp_path)
    assert got["<a1@kund.example>"][:2] == ("created", "case")
    assert got["<a2@kund.example>"][:2] == ("appended", "case")


def test_hostile_items_get_an_outcome_never_a_failure(cli, tmp_path, sessions_for):
    # Given mail and posts with fields of the wrong type, enormous text and odd characters
    land(cli, tmp_path, "twitter",
         post(1, ["not", "text"]), post(2, "x" * 1_000_000), post(3, "\x00\ufeff@acme \u202e hjälp"),
         post(4, "@acme help, my order is late", retweet={"x": 1}, public="maybe"))
    path = tmp_path / "mail.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in [
        {"message_id": "<h1@x>", "from_email": "a@kund.example", "to": 123, "cc": {"a": 1}, "subject": None,
         "text": 5, "mailbox": ["INBOX"]},
        {"message_id": "<h2@x>", "from_email": "b@kund.example", "subject": "Hej", "text": "ö" * 300_000}]))
    assert cli("land", "--source", "mail", str(path)).exit_code == 0

    # Then every one has an outcome (rejected, ignored, review or a record), none failed
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        rows = session.execute(select(RawItem.external_id, RawItem.state, RawItem.outcome)).all()
    assert len(rows) == 6
    assert {state for _, state, _ in rows} == {"done"}, rows
    assert all(outcome in ("created", "merged", "rejected", "ignored", "review") for _, _, outcome in rows)
