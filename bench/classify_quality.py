"""Benchmark: how well the text classifier (crm_ingest.classify.model) files messages as lead,
case or other, on a held-out part of the shipped corpus, next to two baselines measured in the
same run; and how fast it classifies.

    .venv/bin/python bench/classify_quality.py [--test-size 0.25] [--seed 2026] [--splits 5]
                                               [--corpus PATH]

- Split: stratified by label and language (`--test-size` held out, `--seed`); the model is
  trained on the rest. Nothing is tuned on the held-out part. `--splits N` repeats with N
  seeds and reports the median accuracy, so one lucky split does not decide the figure.
- Ours: `Classifier` exactly as the pipeline builds it (word 1-2 grams + character 3-5 grams
  inside words, TF-IDF, logistic regression). Baselines: the majority label, and multinomial
  naive Bayes on word counts (scikit-learn), trained on the same split.
- Printed: accuracy, per-label precision / recall / F1 and the confusion matrix, per language
  and on the messages marked hard; 'cases misfiled' = held-out cases labelled lead or other;
  how many held-out answers fall under the default min_confidence (0.6) and would go to
  review, with the accuracy of the rest; the case priority detector (`ingest.priority`) on the
  held-out cases that carry a priority label; and throughput: texts/s for a batch of 500
  (as the pipeline calls it) and for one text at a time, plus training time; and the pipeline's
  items/s for posts of a fixed-type source next to an 'auto' (classified) one, same run.
Never a test.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_ingest.classify.model import LABELS, Classifier, Example, load_corpus  # noqa: E402
from crm_ingest.ingest.priority import case_priority  # noqa: E402

MIN_CONFIDENCE = 0.6


def split(examples: list[Example], test_size: float, seed: int) -> tuple[list[Example], list[Example]]:
    groups: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for example in examples:
        groups[(example.label, example.lang)].append(example)
    rng = random.Random(seed)
    train, test = [], []
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        cut = max(1, round(len(members) * test_size))
        test += members[:cut]
        train += members[cut:]
    return train, test


def naive_bayes(train: list[Example]):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(lowercase=True), MultinomialNB())
    model.fit([e.text for e in train], [e.label for e in train])
    return lambda texts: list(model.predict(texts))


def scores(truth: list[str], guessed: list[str]) -> dict:
    result = {"n": len(truth), "accuracy": sum(t == g for t, g in zip(truth, guessed)) / max(1, len(truth))}
    for label in LABELS:
        tp = sum(t == g == label for t, g in zip(truth, guessed))
        fp = sum(g == label != t for t, g in zip(truth, guessed))
        fn = sum(t == label != g for t, g in zip(truth, guessed))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        result[label] = (p, r, 2 * p * r / (p + r) if p + r else 0.0)
    cases = [g for t, g in zip(truth, guessed) if t == "case"]
    result["cases_misfiled"] = sum(g != "case" for g in cases) / max(1, len(cases))
    return result


def confusion(truth: list[str], guessed: list[str]) -> str:
    counts = Counter(zip(truth, guessed))
    lines = ["true \\ said " + "".join(f"{label:>8}" for label in LABELS)]
    for t in LABELS:
        lines.append(f"{t:<12}" + "".join(f"{counts[(t, g)]:>8}" for g in LABELS))
    return "\n".join(lines)


def row(name: str, s: dict) -> str:
    per = "  ".join(f"{label} {s[label][0]:.2f}/{s[label][1]:.2f}/{s[label][2]:.2f}" for label in LABELS)
    return f"{name:<34} n={s['n']:>4}  acc {s['accuracy']:.3f}  cases misfiled {s['cases_misfiled']:.1%}  {per}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--skip-pipeline", action="store_true", help="skip the pipeline items/s comparison")
    args = parser.parse_args()

    examples = load_corpus(args.corpus)
    by = Counter((e.label, e.lang) for e in examples)
    print(f"corpus: {len(examples)} messages; " + ", ".join(f"{label}/{lang} {n}" for (label, lang), n in sorted(by.items()))
          + f"; hard {sum(e.hard for e in examples)}")
    train, test = split(examples, args.test_size, args.seed)
    print(f"split (seed {args.seed}): train {len(train)}, held out {len(test)}\n")

    started = time.perf_counter()
    ours = Classifier(train)
    trained_s = time.perf_counter() - started
    predictions = ours.predict_many([e.text for e in test])
    said = [p.label for p in predictions]
    truth = [e.label for e in test]
    nb = naive_bayes(train)([e.text for e in test])
    majority = Counter(e.label for e in train).most_common(1)[0][0]

    print("precision/recall/F1 per label")
    print(row("ours (tf-idf words+chars, logreg)", scores(truth, said)))
    print(row("baseline: naive Bayes, word counts", scores(truth, nb)))
    print(row(f"baseline: majority ({majority})", scores(truth, [majority] * len(truth))))
    for lang in ("en", "sv"):
        idx = [i for i, e in enumerate(test) if e.lang == lang]
        print(row(f"ours, {lang}", scores([truth[i] for i in idx], [said[i] for i in idx])))
        print(row(f"naive Bayes, {lang}", scores([truth[i] for i in idx], [nb[i] for i in idx])))
    hard = [i for i, e in enumerate(test) if e.hard]
    if hard:
        print(row("ours, hard ones", scores([truth[i] for i in hard], [said[i] for i in hard])))
        print(row("naive Bayes, hard ones", scores([truth[i] for i in hard], [nb[i] for i in hard])))
    print("\nconfusion matrix (ours, held out)")
    print(confusion(truth, said))
    for lang in ("en", "sv"):
        idx = [i for i, e in enumerate(test) if e.lang == lang]
        print(f"\n{lang}:")
        print(confusion([truth[i] for i in idx], [said[i] for i in idx]))

    unsure = [i for i, p in enumerate(predictions) if p.confidence < MIN_CONFIDENCE]
    sure = [i for i in range(len(test)) if i not in set(unsure)]
    print(f"\nunder min_confidence {MIN_CONFIDENCE}: {len(unsure)} of {len(test)} would go to review "
          f"({len(unsure) / max(1, len(test)):.1%}); accuracy of the rest "
          f"{sum(truth[i] == said[i] for i in sure) / max(1, len(sure)):.3f}; "
          f"accuracy of those sent to review {sum(truth[i] == said[i] for i in unsure) / max(1, len(unsure)):.3f}")

    wrong = [(e, p) for e, p in zip(test, predictions) if e.label != p.label]
    if wrong:
        print(f"\nsome held-out mistakes (of {len(wrong)}):")
        for example, guess in wrong[:8]:
            print(f"  [{example.lang}] true {example.label}, said {guess.label} ({guess.confidence:.0%}): "
                  f"{example.text[:110]!r}")

    with_priority = [e for e in test if e.label == "case" and e.priority]
    if with_priority:
        said_priority = [case_priority(e.text)[0] for e in with_priority]
        hits = sum(e.priority == s for e, s in zip(with_priority, said_priority))
        counts = Counter((e.priority, s) for e, s in zip(with_priority, said_priority))
        print(f"\ncase priority (held-out cases with a label, n={len(with_priority)}): "
              f"{hits / len(with_priority):.3f} agree; baseline 'always normal' "
              f"{sum(e.priority == 'normal' for e in with_priority) / len(with_priority):.3f}")
        print("  true \\ said  " + "  ".join(f"{p:>6}" for p in ("high", "normal", "low")))
        for t in ("high", "normal", "low"):
            print(f"  {t:<11}  " + "  ".join(f"{counts[(t, s)]:>6}" for s in ("high", "normal", "low")))

    if args.splits > 1:
        accuracies, misfiled, nb_acc = [], [], []
        for seed in range(args.seed, args.seed + args.splits):
            tr, te = split(examples, args.test_size, seed)
            model = Classifier(tr)
            guess = [p.label for p in model.predict_many([e.text for e in te])]
            s = scores([e.label for e in te], guess)
            accuracies.append(s["accuracy"])
            misfiled.append(s["cases_misfiled"])
            nb_acc.append(scores([e.label for e in te], naive_bayes(tr)([e.text for e in te]))["accuracy"])
        print(f"\nover {args.splits} splits (seeds {args.seed}..{args.seed + args.splits - 1}): accuracy median "
              f"{statistics.median(accuracies):.3f} (min {min(accuracies):.3f}, max {max(accuracies):.3f}); "
              f"cases misfiled median {statistics.median(misfiled):.1%}; naive Bayes accuracy median "
              f"{statistics.median(nb_acc):.3f}")

    texts = [e.text for e in examples]
    batch = (texts * (500 // len(texts) + 1))[:500]
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        ours.predict_many(batch, explain=5)
        runs.append(time.perf_counter() - started)
    one = []
    for text in batch[:100]:
        started = time.perf_counter()
        ours.predict(text, explain=5)
        one.append(time.perf_counter() - started)
    print(f"\nthroughput: batch of 500 with explanations {500 / statistics.median(runs):,.0f} texts/s "
          f"(median of 5); one at a time {1 / statistics.median(one):,.0f} texts/s; "
          f"training on {len(train)} messages {trained_s:.2f} s")
    if not args.skip_pipeline:
        from crm_ingest.classify.model import default_classifier

        default_classifier()  # trained once a process, before the timing
        rates = pipeline_rates(texts)
        fixed, read = statistics.median(rates["case"]), statistics.median(rates["auto"])
        print(f"pipeline, posts in-process on SQLite (3,000 items, batches of 500, median of 2): "
              f"record_type case {fixed:,.0f} items/s, auto (classified) {read:,.0f} items/s "
              f"= {read / fixed:.2f}x")


def pipeline_rates(texts: list[str], items: int = 3000, rounds: int = 2) -> dict[str, list[float]]:
    """Items/s of the pipeline (in-process `run_batch`, embedded SQLite, batches of 500) for posts
    from a source whose record type is fixed ('case') and one the classifier decides ('auto')."""
    import tempfile
    import uuid
    from dataclasses import replace

    from crm_ingest.ingest.settings import from_toml
    from crm_ingest.models import make_engine, make_session_factory
    from crm_ingest.models.landing import NewItem, land_items
    from crm_ingest.models.migrate import upgrade
    from crm_ingest.workers.batch import run_batch

    rates: dict[str, list[float]] = {"case": [], "auto": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for record_type in rates:
                url = f"sqlite:///{folder}/{uuid.uuid4().hex}.db"
                upgrade(url)
                settings = replace(from_toml({"sources": {"twitter": {"record_type": record_type}}}),
                                   database_url=url)
                sessions = make_session_factory(make_engine(url))
                rnd = random.Random(1)
                batch = [NewItem(f"p{i}", "post", {"post_id": f"p{i}", "network": "twitter",
                                                   "handle": f"@user{i % 2000}", "author_name": "Alex Berg",
                                                   "text": rnd.choice(texts)}) for i in range(items)]
                with sessions.begin() as session:
                    ids = land_items(session, "twitter", batch)
                started = time.perf_counter()
                for start in range(0, len(ids), 500):
                    run_batch(sessions, ids[start:start + 500], settings)
                rates[record_type].append(items / (time.perf_counter() - started))
    return rates


if __name__ == "__main__":
    main()
