"""Benchmark: how well the rules-based matching engine (crm_ingest.ingest.matching) finds
duplicates, as pair precision, recall and F1, next to recordlinkage's ECM classifier measured in
the same run on the same candidate pairs.

    .venv/bin/python bench/dedup_quality.py [--crm-people 400] [--seed 2026] [--febrl4-records N]
                                            [--window 9] [--skip-febrl]

Data sets, all local (no network):
- febrl1: 1,000 records with 500 duplicate pairs (deduplication), from the recordlinkage package.
- febrl4: two files of 5,000 records, 5,000 true links (linking); `--febrl4-records N` uses the
  first N of each file and the links among them.
- crm: labelled pairs generated with `--seed`: Swedish and English names, nicknames, diacritics
  dropped, typos, Gmail dots, phones written differently, and the hard negatives (namesakes,
  colleagues sharing a company, role address or switchboard, family members sharing a phone).

Candidate pairs for FEBRL come from our blocking keys (`blocking_keys`: 'name' = canonical
first name + folded surname, 'name_initial', 'birth_initial'), applied to given_name, surname
and date_of_birth, plus soc_sec_id as an exact key (in the role a CRM's email and phone keys
play): records sharing any key are a pair (an exact-key index, as the database does it; no
sorted neighbourhood). Each FEBRL set is also run on the candidate pairs of recordlinkage's
sorted neighbourhood on surname (`--window`), which holds many more non-matches: a harder test
of the classifiers than of the blocking. Both classifiers see exactly the same pairs, so blocking misses
lower both recalls alike. Ours: `score` with the rule set FEBRL_RULES_TOML, read by
`rules_from_toml` as ingest.toml's [matching.contact-contact] would be; a pair counts as found
when the outcome is 'merge' (score >= 0.55; 'review' from 0.45). Its conditions, weight/penalty:
- given_name and surname: Jaro-Winkler >= 0.85, 2/1 each; `swap_with`: when the second record's
  given name and surname, swapped, both match the first's, they are compared swapped;
- date_of_birth (text YYYYMMDD): Damerau-Levenshtein >= 0.85 (one typo), 2/2;
- soc_sec_id: Damerau-Levenshtein >= 0.85 (one typo in 7 digits), 3/1.5;
- postcode: Damerau-Levenshtein >= 0.75 (one typo in 4 digits), 1/1;
- suburb: Jaro-Winkler >= 0.85, 1/1;
- address_1: Damerau-Levenshtein >= 0.85, 1/1, `swap_with` address_2 (address lines swapped);
- street_number: exact, 1/1.
A fuzzy similarity counts as itself at or above its threshold, as 0 below it; a blank side is
left out. ECM: recordlinkage's `Compare` on the same fields with the same similarities and
thresholds (binary features), plus address_2 (Damerau-Levenshtein >= 0.85) as a feature of its
own since recordlinkage cannot swap fields; `ECMClassifier().fit_predict`, unsupervised like
ours. The CRM pairs are scored with DEFAULT_RULES['lead-contact']. Needs
`pip install -e '.[bench]'` (recordlinkage). Never a test.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
import tomllib
import unicodedata
import warnings
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_ingest.ingest.matching import (  # noqa: E402
    DEFAULT_RULES,
    NICKNAMES,
    RuleSet,
    blocking_keys,
    normalize_company,
    rules_from_toml,
    score,
)

FEBRL_RULES_TOML = """
# FEBRL records are people; the rule set is read as a contact-contact pair. FEBRL's duplicates
# carry typed typos, names and address lines entered in each other's fields, and names replaced
# outright, so: names may be swapped and weigh little against a pair (penalty 1), identifier,
# date of birth and postcode allow one typed typo (Damerau-Levenshtein: one digit changed or two
# adjacent digits swapped), and the address lines may be swapped.
[matching.contact-contact]
merge_threshold = 0.55
review_threshold = 0.45
conditions = [
  { field = "given_name", op = "fuzzy", scorer = "jaro_winkler", threshold = 0.85, weight = 2, penalty = 1, swap_with = "surname" },
  { field = "surname", op = "fuzzy", scorer = "jaro_winkler", threshold = 0.85, weight = 2, penalty = 1 },
  { field = "date_of_birth", op = "fuzzy", scorer = "damerau_levenshtein", threshold = 0.85, weight = 2 },
  { field = "soc_sec_id", op = "fuzzy", scorer = "damerau_levenshtein", threshold = 0.85, weight = 3, penalty = 1.5 },
  { field = "postcode", op = "fuzzy", scorer = "damerau_levenshtein", threshold = 0.75, weight = 1 },
  { field = "suburb", op = "fuzzy", scorer = "jaro_winkler", threshold = 0.85, weight = 1 },
  { field = "address_1", op = "fuzzy", scorer = "damerau_levenshtein", threshold = 0.85, weight = 1, swap_with = "address_2" },
  { field = "street_number", op = "exact", weight = 1 },
]
"""

Pair = tuple[str, str]

# -- FEBRL ------------------------------------------------------------------------------------------


def _records(frame) -> dict[str, dict[str, Any]]:
    """Rows as our records: FEBRL's fields kept, and the names and date under our field names
    too (for the blocking keys). pandas' NaN blanks become None."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict("index")
    for row in rows.values():
        row["first_name"], row["last_name"] = row["given_name"], row["surname"]
        row["birth_date"] = row["date_of_birth"]
    return rows


def _index(records: dict[str, dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    index: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record_id, record in records.items():
        keys = blocking_keys(record, "contact")
        if record["soc_sec_id"]:  # FEBRL's identifier, looked up as CRM records are by email and phone
            keys.append(("soc_sec_id", record["soc_sec_id"]))
        for key in keys:
            index[key].append(record_id)
    return index


def dedup_pairs(records: dict[str, dict[str, Any]]) -> set[Pair]:
    pairs: set[Pair] = set()
    for ids in _index(records).values():
        pairs.update(tuple(sorted(p)) for p in combinations(ids, 2))
    return pairs


def link_pairs(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> set[Pair]:
    right_index = _index(right)
    pairs: set[Pair] = set()
    for key, ids in _index(left).items():
        pairs.update((a, b) for a in ids for b in right_index.get(key, ()))
    return pairs


def ecm_matches(pairs: list[Pair], left_frame, right_frame=None) -> set[Pair]:
    import pandas as pd
    import recordlinkage as rl

    index = pd.MultiIndex.from_tuples(pairs)
    # The fields, similarities and thresholds of FEBRL_RULES_TOML (recordlinkage has no swapped
    # fields: address_2, which ours reads only to find swapped address lines, is a feature here).
    compare = rl.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    dl = "damerau_levenshtein"
    compare.string("date_of_birth", "date_of_birth", method=dl, threshold=0.85, label="date_of_birth")
    compare.string("soc_sec_id", "soc_sec_id", method=dl, threshold=0.85, label="soc_sec_id")
    compare.string("postcode", "postcode", method=dl, threshold=0.75, label="postcode")
    compare.string("suburb", "suburb", method="jarowinkler", threshold=0.85, label="suburb")
    compare.string("address_1", "address_1", method=dl, threshold=0.85, label="address_1")
    compare.string("address_2", "address_2", method=dl, threshold=0.85, label="address_2")
    compare.exact("street_number", "street_number", label="street_number")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation chatter from recordlinkage 0.16
        features = (compare.compute(index, left_frame) if right_frame is None
                    else compare.compute(index, left_frame, right_frame))
        found = rl.ECMClassifier().fit_predict(features)
    return {tuple(p) for p in found}


def ours_matches(pairs: Iterable[Pair], left: dict, right: dict, rules: RuleSet) -> tuple[set[Pair], int]:
    found: set[Pair] = set()
    reviews = 0
    for a, b in pairs:
        outcome = score(left[a], right[b], rules).outcome
        if outcome == "merge":
            found.add((a, b))
        reviews += outcome == "review"
    return found, reviews


def prf(found: set, truth: set) -> tuple[float, float, float]:
    hits = len(found & truth)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def febrl_rows(rules: RuleSet, febrl4_records: int | None, window: int) -> list[dict[str, Any]]:
    """Both FEBRL sets, each under two blockings: our keys, and recordlinkage's sorted
    neighbourhood on surname (more candidates, more non-matches among them: a harder test of
    the classifiers)."""
    import recordlinkage as rl
    from recordlinkage.datasets import load_febrl1, load_febrl4

    rows = []
    frame, links = load_febrl1(return_links=True)
    records = _records(frame)
    truth = {tuple(sorted(link)) for link in links}
    def neighbourhood() -> rl.Index:  # a fresh indexer each time: one reused across calls misbehaves
        index = rl.Index()
        index.sortedneighbourhood("surname", window=window)
        return index

    for blocking, candidates in (("our keys", dedup_pairs(records)),
                                 (f"sorted nbh {window}", neighbourhood().index(frame))):
        candidates = sorted({tuple(sorted(p)) for p in candidates})
        rows.append(_evaluate(f"febrl1 dedup, {blocking}", candidates, truth, rules,
                              records, records, frame, None))

    left_frame, right_frame, links = load_febrl4(return_links=True)
    if febrl4_records:
        left_frame, right_frame = left_frame.iloc[:febrl4_records], right_frame.iloc[:febrl4_records]
    left, right = _records(left_frame), _records(right_frame)
    truth = {(a, b) for a, b in links if a in left and b in right}
    size = f" (first {febrl4_records})" if febrl4_records else ""
    for blocking, candidates in (("our keys", link_pairs(left, right)),
                                 (f"sorted nbh {window}", neighbourhood().index(left_frame, right_frame))):
        candidates = sorted({tuple(p) for p in candidates})
        rows.append(_evaluate(f"febrl4 link{size}, {blocking}", candidates, truth, rules,
                              left, right, left_frame, right_frame))
    return rows


def _evaluate(name, candidates, truth, rules, left, right, left_frame, right_frame) -> dict[str, Any]:
    started = time.perf_counter()
    ours, reviews = ours_matches(candidates, left, right, rules)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ecm = ecm_matches(candidates, left_frame, right_frame)
    if right_frame is None:
        ecm = {tuple(sorted(p)) for p in ecm}
    return _row(name, candidates, truth, ours, reviews, ecm, ours_seconds, time.perf_counter() - started)


def _row(name, candidates, truth, ours, reviews, ecm, ours_seconds, ecm_seconds) -> dict[str, Any]:
    candidate_set = set(candidates)
    return {"data set": name, "pairs": len(candidates), "true": len(truth),
            "blocking recall": len(truth & candidate_set) / len(truth) if truth else 0.0,
            "ours": prf(ours, truth), "review": reviews, "ecm": prf(ecm, truth) if ecm is not None else None,
            "ours s": ours_seconds, "ecm s": ecm_seconds}


# -- CRM-style labelled pairs ------------------------------------------------------------------------

SV_FIRST = ["Anna", "Eva", "Maria", "Karin", "Sara", "Lena", "Emma", "Johanna", "Ingrid", "Åsa",
            "Linnéa", "Elsa", "Ebba", "Sofia", "Erik", "Lars", "Karl", "Anders", "Johan", "Per",
            "Nils", "Mikael", "Björn", "Göran", "Håkan", "Jörgen", "Oskar", "Gustav", "Måns",
            "Olof", "Ulf", "Linus", "Viktor", "Agnes", "Märta", "Tove", "Kristina", "Charlotte",
            "Bo", "Jan", "Magnus", "Fredrik", "Tobias", "Stefan"]
SV_LAST = ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
           "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Jönsson", "Lindberg",
           "Lindström", "Bergström", "Sjöberg", "Åberg", "Öberg", "Holmqvist", "Lundgren",
           "Wallin", "Hägg", "Björk", "Ekström", "Sandström", "Forsberg", "Nyström", "Söderberg"]
EN_FIRST = ["James", "Oliver", "Harry", "George", "Jack", "William", "Thomas", "Michael", "David",
            "John", "Robert", "Daniel", "Olivia", "Amelia", "Emily", "Charlotte", "Sophie",
            "Jessica", "Sarah", "Emma", "Jennifer", "Elizabeth", "Megan", "Katherine", "Richard",
            "Patrick", "Siobhan", "Aisha", "Priya", "Zoë", "Christopher", "Alexander", "Samuel"]
EN_LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
           "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
           "Hall", "Wood", "Jackson", "Clarke", "Miller", "O'Brien", "McDonald", "Patel", "Murphy"]
COMPANY_A = ["Nordvik", "Solberga", "Fjäll", "Skog", "Havs", "Älv", "Granit", "Mälar", "Northwind",
             "Blue Harbour", "Redwood", "Silverline", "Oakfield", "Brightstone", "Kingsbridge"]
COMPANY_B = ["Bygg", "Data", "Konsult", "Teknik", "Logistik", "Energi", "Software", "Consulting",
             "Analytics", "Systems", "Health", "Retail"]
LEGAL = [(" AB", " Aktiebolag"), (" AB", ""), (" Ltd", " Limited"), (" Inc.", ", Inc"),
         (" AB", " AB (publ)"), (" A/S", " AS")]
FREE = ["gmail.com", "hotmail.com", "outlook.com", "yahoo.se", "telia.com", "icloud.com"]
ROLES = ["info", "kontakt", "sales", "support", "ekonomi", "hello", "order", "kundtjanst"]
# Nicknames the engine's table leaves out on purpose (each stands for two names): expected misses.
AMBIGUOUS = {"Christopher": "Chris", "Alexander": "Alex", "Samuel": "Sam", "Jonathan": "Jon"}


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ch.isalnum() and ch.isascii())


def _strip_diacritics(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _typo(rng: random.Random, word: str) -> str:
    """One letter dropped, doubled, swapped with the next, or replaced."""
    i = rng.randrange(1, len(word) - 1) if len(word) > 3 else len(word) - 1
    kind = rng.choice(["drop", "double", "swap", "replace"])
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + rng.choice("aeiklnrst") + word[i + 1:]


def _mobile(rng: random.Random) -> str:
    return "07" + rng.choice("02369") + "".join(rng.choices("0123456789", k=7))


def _written(rng: random.Random, national: str) -> str:
    """A Swedish number as people write it."""
    n = national
    return rng.choice([f"{n[:3]}-{n[3:6]} {n[6:8]} {n[8:]}", f"+46 {n[1:3]} {n[3:6]} {n[6:8]} {n[8:]}",
                       f"+46{n[1:]}", f"0046 {n[1:3]}-{n[3:]}", n, f"({n[:3]}) {n[3:]}"])


class People:
    """Base people and companies, always the same for a seed."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.serial = 0

    def company(self) -> tuple[str, str, str]:
        """(name as written once, as written elsewhere, work domain)."""
        rng = self.rng
        core = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}"
        one, other = rng.choice(LEGAL)
        self.serial += 1
        domain = f"{_ascii(core)}{self.serial}.se"
        other_name = core.upper() if rng.random() < 0.3 else core
        return core + one, other_name + other, domain

    def person(self, first: str | None = None, last: str | None = None, *, free_mail: bool | None = None,
               company: tuple[str, str, str] | None = None) -> dict[str, Any]:
        rng = self.rng
        swedish = rng.random() < 0.6
        first = first or rng.choice(SV_FIRST if swedish else EN_FIRST)
        last = last or rng.choice(SV_LAST if swedish else EN_LAST)
        company = company or self.company()
        self.serial += 1
        free = rng.random() < 0.3 if free_mail is None else free_mail
        local = rng.choice([f"{_ascii(first)}.{_ascii(last)}", f"{_ascii(first)[0]}{_ascii(last)}",
                            f"{_ascii(first)}"]) + ("" if not free else str(self.serial))
        domain = rng.choice(FREE) if free else company[2]
        return {"first_name": first, "last_name": last, "email": f"{local}@{domain}",
                "phone": _written(rng, _mobile(rng)), "company_name": company[0],
                "_company": company}


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def crm_pairs(seed: int, per_kind: int) -> list[tuple[str, bool, dict, dict]]:
    """(kind, same person?, record a, record b)."""
    rng = random.Random(seed)
    people = People(rng)
    nick_pairs = sorted(NICKNAMES.items())  # (nickname, name)
    pairs: list[tuple[str, bool, dict, dict]] = []

    def add(kind: str, same: bool, a: dict, b: dict) -> None:
        pairs.append((kind, same, _public(a), _public(b)))

    for _ in range(per_kind):
        # -- the same person written differently --
        a = people.person(free_mail=False)
        add("email in another case", True, a, {"email": f"  {a['email'].upper()} "})

        a = people.person(free_mail=True)
        local = a["email"].split("@")[0]
        if "." not in local:
            local = f"{local[:2]}.{local[2:]}"
        gmail = dict(a, email=f"{local}@gmail.com")
        b = dict(a, email=f"{local.replace('.', '')}+{rng.choice(['news', 'crm', 'x'])}@googlemail.com",
                 phone=_written(rng, _mobile(rng)))
        add("gmail dots and tag", True, gmail, b)

        a = people.person()
        number = _mobile(rng)
        a["phone"] = _written(rng, number)
        b = dict(a, phone=_written(rng, number), first_name=_typo(rng, a["first_name"]),
                 email=None, company_name=None)
        add("same phone, typo in first name", True, a, b)

        a = people.person()
        number = _mobile(rng)
        a["phone"] = _written(rng, number)
        b = dict(a, phone=_written(rng, number), last_name=_typo(rng, a["last_name"]), email=None)
        add("same phone, typo in last name", True, a, b)

        if rng.random() < 0.2:
            name, nick = rng.choice(sorted(AMBIGUOUS.items()))
        else:
            nick, name = rng.choice(nick_pairs)
            name, nick = name.capitalize(), nick.capitalize()
        a = people.person(first=name, free_mail=False)
        b = dict(people.person(first=nick, last=a["last_name"], company=a["_company"]),
                 company_name=a["_company"][1])
        add("nickname, same company", True, a, b)

        nick, name = rng.choice(nick_pairs)
        a = people.person(first=name.capitalize(), free_mail=False)
        b = people.person(first=nick.capitalize(), last=a["last_name"], company=a["_company"], free_mail=False)
        b["email"] = f"{_ascii(nick)}@{a['_company'][2]}"
        b["company_name"] = None
        add("nickname, same work domain", True, a, b)

        a = people.person(first=rng.choice(["Åsa", "Björn", "Göran", "Håkan", "Jörgen", "Märta", "Måns"]),
                          last=rng.choice(["Jönsson", "Sjöberg", "Åberg", "Öberg", "Söderberg", "Hägg"]))
        b = dict(a, first_name=_strip_diacritics(a["first_name"]), last_name=_strip_diacritics(a["last_name"]),
                 company_name=_strip_diacritics(a["_company"][1]), email=None, phone=None)
        add("diacritics dropped, same company", True, a, b)

        # -- different people --
        a = people.person()
        b = people.person(first=a["first_name"], last=a["last_name"])
        if normalize_company(a["company_name"]) != normalize_company(b["company_name"]):
            add("namesakes, other company", False, a, b)

        a = people.person(free_mail=False)
        b = people.person(company=a["_company"], free_mail=False)
        if b["first_name"] != a["first_name"] or b["last_name"] != a["last_name"]:
            add("colleagues, same company", False, a, b)

        a = people.person()
        b = people.person(company=a["_company"])
        role = f"{rng.choice(ROLES)}@{a['_company'][2]}"
        a["email"], b["email"] = role, role.upper() if rng.random() < 0.3 else role
        if b["first_name"] != a["first_name"]:
            add("colleagues, shared role address", False, a, b)

        a = people.person()
        b = people.person(company=a["_company"])
        switchboard = "08" + "".join(rng.choices("0123456789", k=7))
        a["phone"], b["phone"] = _written(rng, switchboard), _written(rng, switchboard)
        if b["first_name"] != a["first_name"]:
            add("colleagues, switchboard phone", False, a, b)

        a = people.person()
        b = people.person(last=a["last_name"])
        home = _mobile(rng)
        a["phone"], b["phone"] = _written(rng, home), _written(rng, home)
        b["company_name"] = None if rng.random() < 0.5 else b["company_name"]
        if b["first_name"] != a["first_name"]:
            add("family, household phone", False, a, b)

        a = people.person()
        first = rng.choice([n for n in SV_FIRST + EN_FIRST if n[0] == a["first_name"][0] and n != a["first_name"]]
                           or ["Zed"])
        b = people.person(first=first, last=a["last_name"])
        add("same initial and last name", False, a, b)
    return pairs


def crm_rows(seed: int, per_kind: int, rules: RuleSet) -> tuple[dict[str, Any], dict[str, Counter]]:
    pairs = crm_pairs(seed, per_kind)
    started = time.perf_counter()
    found, truth, candidates = set(), set(), 0
    reviews = 0
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for i, (kind, same, a, b) in enumerate(pairs):
        decision = score(a, b, rules)
        by_kind[(kind, same)][decision.outcome] += 1
        if same:
            truth.add(i)
            candidates += bool(set(blocking_keys(a)) & set(blocking_keys(b)))
        if decision.outcome == "merge":
            found.add(i)
        reviews += decision.outcome == "review"
    seconds = time.perf_counter() - started
    row = {"data set": f"crm labelled (seed {seed})", "pairs": len(pairs), "true": len(truth),
           "blocking recall": candidates / len(truth) if truth else 0.0, "ours": prf(found, truth),
           "review": reviews, "ecm": None, "ours s": seconds, "ecm s": None}
    return row, by_kind


# -- report -----------------------------------------------------------------------------------------


def _prf_text(values) -> str:
    return "–" if values is None else " / ".join(f"{v:.3f}" for v in values)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ["data set", "pairs", "true links", "blocking recall", "ours P / R / F1", "ours review",
              "ECM P / R / F1", "ours s", "ECM s"]
    lines = [[r["data set"], f"{r['pairs']:,}", f"{r['true']:,}", f"{r['blocking recall']:.3f}",
              _prf_text(r["ours"]), f"{r['review']:,}", _prf_text(r["ecm"]), f"{r['ours s']:.1f}",
              "–" if r["ecm s"] is None else f"{r['ecm s']:.1f}"] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for line in lines:
        print(" | ".join(v.ljust(w) for v, w in zip(line, widths)))


def print_kinds(by_kind: dict[tuple[str, bool], Counter]) -> None:
    print("\ncrm labelled pairs by kind (outcome counts under DEFAULT_RULES['lead-contact']):")
    width = max(len(kind) for kind, _ in by_kind)
    for (kind, same), counts in by_kind.items():
        total = sum(counts.values())
        want = "merge" if same else "new"
        print(f"  {'same' if same else 'diff'}  {kind.ljust(width)}  n={total:4}  merge {counts['merge']:4}"
              f"  review {counts['review']:4}  new {counts['new']:4}  ({counts[want] / total:.0%} {want})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm-people", type=int, default=400, help="pairs generated per kind")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--febrl4-records", type=int, default=None,
                        help="use only the first N records of each febrl4 file")
    parser.add_argument("--window", type=int, default=9, help="sorted neighbourhood window")
    parser.add_argument("--skip-febrl", action="store_true")
    args = parser.parse_args()

    febrl_rules = rules_from_toml(tomllib.loads(FEBRL_RULES_TOML)["matching"])["contact-contact"]
    rows = [] if args.skip_febrl else febrl_rows(febrl_rules, args.febrl4_records, args.window)
    crm_row, by_kind = crm_rows(args.seed, args.crm_people, DEFAULT_RULES["lead-contact"])
    rows.append(crm_row)
    print_table(rows)
    print_kinds(by_kind)


if __name__ == "__main__":
    main()
