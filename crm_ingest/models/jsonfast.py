"""JSON in and out of PostgreSQL with orjson, falling back to the standard library.

A list import moves every row through JSON three times (landed, read back, written into a
record's details); the standard library's encoder and decoder were a fifth of the landing
process's time. orjson gives the same values for everything we store; what it refuses
(integers beyond 64 bits, NaN) goes through `json` as before.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS
# orjson reads an integer beyond 64 bits as a float, losing digits: text holding a run of
# 19 digits (also inside a string; rare, and then merely slower) is read by `json`, exactly.
# The run is found by marking digits and searching the marks: a regular expression tried at
# every position cost as much as parsing (an import chunk is ~1 MB of JSON).
_DIGIT_MARKS = bytes(48 if 48 <= byte <= 57 else 46 for byte in range(256))  # digit -> "0", rest -> "."
_LONG_RUN = b"0" * 19


def dumps_bytes(value: Any) -> bytes:
    """UTF-8 JSON text (non-ASCII kept as is, as `ensure_ascii=False` does)."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def loads(text: str | bytes) -> Any:
    try:
        data = text.encode() if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8, so not orjson's to read
        return json.loads(text)
    if _LONG_RUN in data.translate(_DIGIT_MARKS):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # what orjson refuses and `json` reads (NaN, Infinity)
        return json.loads(data)
