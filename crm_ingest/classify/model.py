"""Reads an item's free text and says what it should become: lead, case or other.

A linear model (scikit-learn logistic regression) over TF-IDF features of the text: words and
word pairs, plus character n-grams inside words, so Swedish compounds and inflections
('fakturan', 'fakturafel'), typos and missing diacritics still meet the words the model was
trained on. It is trained on the labelled corpus shipped in the package (`data/corpus.jsonl`,
English and Swedish) the first time it is needed in a process, in about a second, so no model
file and no network are involved and a new scikit-learn release cannot break a pickled model.

`predict` returns the label, a confidence (the model's probability of that label) and the words
that weighed most toward it: each word's share of the score, its own features and the
character n-grams inside it, so `ingest classify "text"` can say why.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Sequence

import numpy as np

LABELS = ("case", "lead", "other")
LANGUAGES = ("en", "sv")
MAX_CHARS = 5000  # longer texts are cut before classifying: the start says what a message wants
CLASS_WEIGHTS = {"case": 1.5, "lead": 1.0, "other": 1.0}
_EVIDENCE_FEATURES = 60  # the strongest features of a text, shared out among its words

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)
_SWEDISH_WORDS = frozenset("""
    och att det som en är på för med har jag inte av till den om ett vi kan men så var
    från ni er ert era hej tack mvh vänliga hälsningar hälsning vill skulle kunna också eller
    när här där min mitt mina vår vårt våra har hade blir blev fick får inte ingen något nån
    sedan sen efter innan också bara nu då upp ut in än dem de dom deras sin sina sitt hos åt
    vid under över mot utan genom allt alla några man mig dig sig oss er hon han vad vem vilken
    """.split())
_ENGLISH_WORDS = frozenset("""
    the and to of a in is it you that for on with have are this be my we your can not but
    at from our hi hello thanks thank regards would could please there what when just was
    since been has had does did will get got also any all some up out about then than them
    they their its who which where why an as by or if so do am were me us he she his her
    him i'm it's we're don't i've we've has been into over under after before again
    """.split())


# Not shown as evidence: placeholders and function words (they weigh, but explain nothing)
_NOT_SHOWN = frozenset({"urltoken", "emailtoken", "handletoken"}) | _SWEDISH_WORDS | _ENGLISH_WORDS


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    lang: str = "en"
    channel: str | None = None
    priority: str | None = None
    hard: bool = False


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    language: str
    evidence: tuple[tuple[str, float], ...]  # (word, weight toward the label), strongest first


def prepare(text: str) -> str:
    """The text the model sees: Unicode-normalized, lower case, URLs and numbers as tokens."""
    text = unicodedata.normalize("NFKC", text or "")[:MAX_CHARS].lower()
    text = re.sub(r"https?://\S+|www\.\S+", " urltoken ", text)
    text = re.sub(r"\S+@\S+\.\w+", " emailtoken ", text)
    text = re.sub(r"@\w+", " handletoken ", text)
    return re.sub(r"\d+", " 0 ", text)


def language(text: str) -> str:
    """'sv' or 'en' by their most common words (and å/ä/ö): enough to route by."""
    words = _WORD.findall((text or "").lower())
    sv = sum(word in _SWEDISH_WORDS for word in words) + 2 * len(re.findall(r"[åäö]", text or "", re.I))
    en = sum(word in _ENGLISH_WORDS for word in words)
    return "sv" if sv > en else "en"


def load_corpus(path=None) -> list[Example]:
    """The labelled corpus: the package's own, or a JSON Lines file of the same shape."""
    if path is None:
        raw = resources.files("crm_ingest.classify").joinpath("data/corpus.jsonl").read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    examples = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in LABELS or not isinstance(row.get("text"), str):
            raise ValueError(f"corpus line {number}: needs a text and a label in {LABELS}")
        examples.append(Example(row["text"], row["label"], row.get("lang", "en"), row.get("channel"),
                                row.get("priority"), bool(row.get("hard"))))
    return examples


class Classifier:
    """A trained model; `predict` one text, `predict_many` a batch (much faster per text)."""

    def __init__(self, examples: Sequence[Example], *, c: float = 8.0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion

        if len({e.label for e in examples}) < 2:
            raise ValueError("the corpus needs examples of at least two labels")
        self.words = TfidfVectorizer(preprocessor=prepare, token_pattern=_WORD.pattern, ngram_range=(1, 2),
                                     sublinear_tf=True, min_df=1)
        self.chars = TfidfVectorizer(preprocessor=prepare, analyzer="char_wb", ngram_range=(3, 5),
                                     sublinear_tf=True, min_df=2)
        self.features = FeatureUnion([("words", self.words), ("chars", self.chars)])
        matrix = self.features.fit_transform([e.text for e in examples])
        # A customer's problem filed as a lead or as chatter is the costly mistake: cases weigh more.
        self.model = LogisticRegression(C=c, max_iter=5000, class_weight=CLASS_WEIGHTS, solver="newton-cg")
        self.model.fit(matrix, [e.label for e in examples])
        self.labels = tuple(self.model.classes_)
        self.size = len(examples)
        self._word_names = self.words.get_feature_names_out()
        self._words_of = [tuple(name.split()) for name in self._word_names]
        coef = self.model.coef_  # each label's weights against the mean of the others'
        self._directions = ([-coef[0], coef[0]] if coef.shape[0] == 1 else
                            [coef[i] - (coef.sum(axis=0) - coef[i]) / (coef.shape[0] - 1)
                             for i in range(coef.shape[0])])
        self._char_names = self.chars.get_feature_names_out().tolist()

    def predict(self, text: str, explain: int = 8) -> Prediction:
        return self.predict_many([text], explain=explain)[0]

    def predict_many(self, texts: Iterable[str], explain: int = 0) -> list[Prediction]:
        texts = [t or "" for t in texts]
        if not texts:
            return []
        matrix = self.features.transform(texts).tocsr()
        probabilities = self.model.predict_proba(matrix)
        result = []
        for row, (text, probs) in enumerate(zip(texts, probabilities)):
            best = int(probs.argmax())
            label = self.labels[best]
            evidence = self._evidence(text, matrix[row], best, explain) if explain else ()
            result.append(Prediction(str(label), float(probs[best]), {str(l): round(float(p), 4) for l, p in
                                                                       zip(self.labels, probs)},
                                     language(text), evidence))
        return result

    def _evidence(self, text: str, row, label_index: int, top: int) -> tuple[tuple[str, float], ...]:
        """Each word's contribution to the label's score against the other labels: its word
        features, and its character n-grams shared among the words that hold them."""
        direction = self._directions[label_index]
        contributions = row.data * direction[row.indices]
        if len(contributions) > _EVIDENCE_FEATURES:  # the features that pushed most are enough
            keep = np.argpartition(-contributions, _EVIDENCE_FEATURES)[:_EVIDENCE_FEATURES]
            indices, contributions = row.indices[keep], contributions[keep]
        else:
            indices = row.indices
        n_words = len(self._word_names)
        weights: dict[str, float] = {}
        grams: list[tuple[str, float]] = []
        for index, contribution in zip(indices.tolist(), contributions.tolist()):
            if contribution <= 0:
                continue
            if index < n_words:
                words = self._words_of[index]
                for word in words:
                    weights[word] = weights.get(word, 0.0) + contribution / len(words)
            else:
                grams.append((self._char_names[index - n_words], contribution))
        if grams:
            padded = [f" {word} " for word in set(_WORD.findall(prepare(text)))]
            for gram, contribution in grams:
                holders = [word[1:-1] for word in padded if gram in word]
                for word in holders:
                    weights[word] = weights.get(word, 0.0) + contribution / len(holders)
        ranked = sorted(((w, round(v, 3)) for w, v in weights.items() if w not in _NOT_SHOWN and len(w) > 2),
                        key=lambda item: -item[1])
        return tuple((w, v) for w, v in ranked[:top] if v > 0)


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The model trained on the package's corpus, once a process."""
    return Classifier(load_corpus())
