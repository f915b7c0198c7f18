"""Write crm_ingest/ingest/data/country_names.json: country names as lists write them -> ISO
region, from CLDR (via Babel) in the languages our lists come in, and ISO 3166's three-letter
codes and names ('SWE', 'DEU', 'Czech Republic', 'Korea, Republic of', as ERP systems write
them; via pycountry). Run when adding a
language:

    .venv/bin/pip install babel pycountry && .venv/bin/python scripts/country_names.py

The table is shipped instead of Babel: its locale data is a million objects that every full
garbage collection of a worker walks again (measured: a third more worker CPU on a 1M import).
"""
from __future__ import annotations

import json
from pathlib import Path

import phonenumbers
import pycountry
from babel import Locale

LOCALES = ("en", "sv", "de", "nb", "nn", "da", "fi", "fr", "es", "nl", "it", "pl")
ALIASES = {"uk": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "northern ireland": "GB",
           "great britain": "GB", "britain": "GB", "skottland": "GB", "usa": "US", "u.s.a.": "US",
           "u.s.": "US", "united states of america": "US", "america": "US", "holland": "NL", "uae": "AE",
           "förenta staterna": "US", "amerika": "US", "u.k.": "GB", "ivory coast": "CI",
           "elfenbenskusten": "CI", "konungariket sverige": "SE", "kongeriget danmark": "DK",
           "kongeriket norge": "NO", "republiken finland": "FI", "sydkorea": "KR", "korea": "KR"}
OUT = Path(__file__).resolve().parents[1] / "crm_ingest" / "ingest" / "data" / "country_names.json"


def main() -> None:
    codes: dict[str, str] = {}
    for locale in LOCALES:
        for code, name in Locale(locale).territories.items():
            if len(code) == 2 and code.isalpha():
                codes.setdefault(" ".join(name.split()).casefold(), code)
    for country in pycountry.countries:  # ISO 3166's names, as ERP and form exports write them
        for name in (country.name, getattr(country, "official_name", None), getattr(country, "common_name", None)):
            if name:
                codes.setdefault(" ".join(name.split()).casefold(), country.alpha_2)
    for code in phonenumbers.SUPPORTED_REGIONS:
        codes.setdefault(code.casefold(), code)
    for country in pycountry.countries:  # after every name: a three-letter name is a name first
        codes.setdefault(country.alpha_3.casefold(), country.alpha_2)
    codes.update(ALIASES)
    OUT.write_text(json.dumps(dict(sorted(codes.items())), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{len(codes)} names -> {OUT}")


if __name__ == "__main__":
    main()
