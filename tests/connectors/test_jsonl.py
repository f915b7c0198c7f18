"""JSON Lines connector: stable ids from the payload or its hash; unreadable lines landed, not dropped."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_ingest.connectors.jsonl import JsonLines, external_id_of


def write(tmp_path: Path, lines: list[str] | bytes, name: str = "items.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(lines if isinstance(lines, bytes) else "".join(f"{line}\n" for line in lines).encode())
    return path


def fetch(path: Path, source: str = "web", kind: str = "form") -> list:
    return list(JsonLines(path, source, kind).fetch())


@pytest.mark.parametrize("payload, expected", [
    ({"external_id": "L-1", "id": 2, "message_id": "<m>"}, "L-1"),
    ({"id": 42, "message_id": "<m>"}, "42"),
    ({"message_id": "<m1@example.com>", "post_id": "p"}, "<m1@example.com>"),
    ({"post_id": "1765"}, "1765"),
    ({"leadgen_id": 987}, "987"),
    ({"id": "  A7  "}, "A7"),
    ({"id": 0}, "0"),
    ({"external_id": "", "id": "x"}, "x"),
    ({"external_id": "   ", "id": "x"}, "x"),
    ({"external_id": None, "id": "x"}, "x"),
    ({"external_id": True, "id": "x"}, "x"),
    ({"external_id": {"nested": 1}, "id": "x"}, "x"),
])
def test_id_is_the_first_usable_id_field_of_the_payload(tmp_path, payload, expected):
    # Given a line whose payload carries its own id (maybe under several names)
    path = write(tmp_path, [json.dumps(payload)])
    # When it is fetched
    [item] = fetch(path)
    # Then the external id is the first usable one, as text, and the payload is kept whole
    assert item.external_id == expected
    assert item.payload == payload


def test_items_carry_the_connectors_kind_and_come_in_file_order(tmp_path):
    path = write(tmp_path, ['{"id": "b"}', '{"id": "a"}', '{"id": "c"}'])
    items = fetch(path, kind="post")
    assert [item.external_id for item in items] == ["b", "a", "c"]
    assert {item.kind for item in items} == {"post"}


def test_payload_without_an_id_gets_a_stable_hash_id_independent_of_key_order(tmp_path):
    # Given the same payload written twice with its keys in different orders, in two files
    first = write(tmp_path, ['{"email": "asa@example.com", "name": "Åsa", "utm": {"a": 1, "b": 2}}'],
                  "1.jsonl")
    second = write(tmp_path, ['{"utm": {"b": 2, "a": 1}, "name": "Åsa", "email": "asa@example.com"}'],
                   "2.jsonl")
    # When both are fetched, twice
    ids = {item.external_id for path in (first, second, first) for item in fetch(path)}
    # Then there is one id, a sha256 of the payload
    assert len(ids) == 1
    [only] = ids
    assert only.startswith("sha256:") and len(only) == len("sha256:") + 64


def test_different_payloads_without_ids_get_different_hash_ids():
    assert external_id_of({"email": "a@example.com"}) != external_id_of({"email": "b@example.com"})


def test_line_that_is_not_json_is_yielded_with_an_error_payload(tmp_path):
    # Given a file with a broken line between two good ones
    path = write(tmp_path, ['{"id": "1"}', '{"id": "2", oops', '{"id": "3"}'])
    # When it is fetched
    items = fetch(path)
    # Then nothing is dropped: the broken line is an item whose payload says what went wrong, and where
    assert len(items) == 3
    bad = items[1]
    assert bad.payload["error"].startswith("line 2: ")
    assert bad.payload["line"] == '{"id": "2", oops\n'
    assert bad.external_id.startswith("line") and "-sha256:" in bad.external_id
    assert bad.kind == "form"
    assert [items[0].external_id, items[2].external_id] == ["1", "3"]


@pytest.mark.parametrize("line, type_name", [('[{"id": "1"}, {"id": "2"}]', "list"), ('"text"', "str"),
                                             ("42", "int"), ("null", "NoneType")])
def test_json_that_is_not_an_object_is_yielded_with_an_error_payload(tmp_path, line, type_name):
    [item] = fetch(write(tmp_path, [line]))
    assert item.payload["error"] == f"line 1: expected a JSON object, got {type_name}"
    assert item.payload["line"] == line + "\n"


def test_line_that_is_not_utf8_is_yielded_with_an_error_payload(tmp_path):
    [item] = fetch(write(tmp_path, b'{"name": "\xc5sa"}\n'))
    assert item.payload["error"].startswith("line 1: ")
    assert item.payload["line"] == '{"name": "\ufffdsa"}\n'


def test_the_same_broken_line_gets_the_same_id_each_fetch(tmp_path):
    path = write(tmp_path, ["{oops"])
    assert fetch(path)[0].external_id == fetch(path)[0].external_id


def test_blank_lines_are_skipped_but_still_counted_for_line_numbers(tmp_path):
    # Given blank and whitespace-only lines around the items
    path = write(tmp_path, b'\n{"id": "1"}\n   \n\t\r\n{oops\n\n')
    # When it is fetched
    items = fetch(path)
    # Then only the two real lines are items, and the error names the line in the file
    assert [item.payload.get("id") for item in items] == ["1", None]
    assert items[1].payload["error"].startswith("line 5: ")


def test_last_line_without_a_newline_is_read(tmp_path):
    [item] = fetch(write(tmp_path, b'{"id": "last"}'))
    assert item.external_id == "last"


def test_empty_file_yields_nothing(tmp_path):
    assert fetch(write(tmp_path, b"")) == []


def test_a_line_too_long_or_nested_too_deep_is_an_item_saying_so_and_the_next_lines_are_read(tmp_path, monkeypatch):
    import crm_ingest.connectors.jsonl as jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE", 10_000)
    # Given a line nested deeper than json can read, and a line longer than a payload may be
    deep = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
    path = write(tmp_path, ['{"id": "1"}', deep, '{"id": "3", "note": "' + "x" * 50_000 + '"}', '{"id": "4"}'])
    # When it is fetched
    items = fetch(path)
    # Then each is an item naming the line and the reason, the long one cut, and the lines after are read
    assert [item.payload.get("error") for item in items] == [
        None, "line 2: nested deeper than a payload may be", "line 3: line longer than 10000 bytes", None]
    assert len(items[2].payload["line"]) == 2000
    assert [items[0].external_id, items[3].external_id] == ["1", "4"]
    assert fetch(path)[2].external_id == items[2].external_id  # the same each fetch
