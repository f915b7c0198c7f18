"""The `ingest` command line: Excel-safe export cells, row writers, and commands end to end on SQLite."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_ingest.cli import EXPORT_LIMIT_CELL, excel_safe, write_rows
from crm_ingest.models import Lead, RawItem

# -- excel_safe ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["=SUM(A1:A9)", "+46701234567", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", "\n=1+1",
                                   "\uff1dSUM(A1)", "\uff0b1+1", "\uff20SUM(A1)",
                                   "=HYPERLINK(\"http://evil.example\")"])
def test_cell_starting_like_a_formula_gets_a_quote(value):
    # Given a value Excel would run as a formula
    # When it is made safe
    # Then it is quoted with a leading apostrophe and otherwise unchanged
    assert excel_safe(value) == "'" + value


@pytest.mark.parametrize("value, expected", [
    ("Åsa Jönsson", "Åsa Jönsson"), ("a=b", "a=b"), ("asa@example.com", "asa@example.com"),
    ("", ""), (None, ""), (42, "42"), (" =1", " =1"),
])
def test_ordinary_cell_is_left_alone(value, expected):
    assert excel_safe(value) == expected


def test_negative_number_is_quoted_like_any_leading_minus():
    assert excel_safe(-5) == "'-5"


def test_cell_is_capped_below_excels_limit():
    assert excel_safe("x" * 40_000) == "x" * EXPORT_LIMIT_CELL


# -- write_rows ---------------------------------------------------------------------------------

COLUMNS = ["id", "first_name", "email", "created_at"]
ROWS = [
    {"id": 1, "first_name": "Åsa", "email": "asa@example.com",
     "created_at": datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)},
    {"id": 2, "first_name": "=cmd|' /C calc'!A0", "email": None, "created_at": None},
]


def test_csv_has_a_header_and_excel_safe_cells():
    # Given two rows, one with a formula as a name and an empty email
    stream = io.StringIO()
    # When they are written as CSV
    write_rows(stream, "csv", COLUMNS, iter(ROWS))
    # Then the header comes first, the formula is quoted and None is an empty cell
    assert list(csv.reader(io.StringIO(stream.getvalue()))) == [
        COLUMNS,
        ["1", "Åsa", "asa@example.com", "2026-03-02 08:00:00+00:00"],
        ["2", "'=cmd|' /C calc'!A0", "", ""],
    ]


def test_csv_of_no_rows_is_the_header_alone():
    stream = io.StringIO()
    write_rows(stream, "csv", COLUMNS, [])
    assert stream.getvalue() == '"id","first_name","email","created_at"\r\n'  # every cell quoted


def test_jsonl_is_one_object_a_line_with_values_unquoted():
    # Given the same rows
    stream = io.StringIO()
    # When they are written as JSON Lines
    write_rows(stream, "jsonl", COLUMNS, iter(ROWS))
    # Then each row is one JSON object, unicode kept, dates as text, no Excel quoting
    lines = stream.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": 1, "first_name": "Åsa", "email": "asa@example.com", "created_at": "2026-03-02 08:00:00+00:00"},
        {"id": 2, "first_name": "=cmd|' /C calc'!A0", "email": None, "created_at": None},
    ]
    assert "Åsa" in lines[0]


# -- the commands, end to end on SQLite ---------------------------------------------------------------


def write_jsonl(folder: Path, *payloads: dict) -> Path:
    path = folder / "file.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in payloads), encoding="utf-8")
    return path


LEAD = {"external_id": "L-1", "first_name": "Åsa", "last_name": "Jönsson",
        "email": "asa.jonsson@example.com", "phone": "070-123 45 67", "company": "Ek AB"}


def test_land_then_outcome_shows_the_record_made_from_the_item(cli, tmp_path, sessions_for):
    # Given a JSON Lines file with one lead, landed into the `list` source
    landed = cli("land", "--source", "list", str(write_jsonl(tmp_path, LEAD)), "--json")
    assert landed.exit_code == 0, landed.output
    assert json.loads(landed.output) == {"received": 1, "landed": 1, "already_landed": 0, "queued": False,
                                         "unfinished": 0, "outcomes": {"created": 1}}
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        item_id = session.scalar(select(RawItem.id).where(RawItem.external_id == "L-1"))
    # When its outcome is asked for
    result = cli("outcome", str(item_id), "--json")
    # Then it was processed into a lead, and that lead holds the item's person
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["id"], shown["source"], shown["external_id"], shown["kind"]) == \
        (item_id, "list", "L-1", "row")
    assert (shown["state"], shown["outcome"], shown["record_type"]) == ("done", "created", "lead")
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        lead = session.get(Lead, shown["record_id"])
        assert (lead.first_name, lead.last_name, lead.email, lead.phone, lead.origin_item_id) == \
            ("Åsa", "Jönsson", "asa.jonsson@example.com", "+46701234567", item_id)


def test_landing_the_same_file_again_lands_nothing_new(cli, tmp_path):
    path = write_jsonl(tmp_path, LEAD)
    cli("land", "--source", "list", str(path), "--json")
    again = json.loads(cli("land", "--source", "list", str(path), "--json").output)
    assert (again["received"], again["landed"], again["already_landed"]) == (1, 0, 1)


def test_outcome_of_an_unknown_item_exits_non_zero(cli):
    result = cli("outcome", "999", "--json")
    assert result.exit_code != 0
    assert "no item 999" in result.output


def test_export_lead_as_csv_contains_the_lead(cli, tmp_path):
    # Given a landed lead
    cli("land", "--source", "list", str(write_jsonl(tmp_path, LEAD)), "--json")
    # When leads are exported as CSV to standard output
    result = cli("export", "lead", "--format", "csv")
    # Then the CSV has the lead's columns and values
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("first_name", "last_name", "email", "company_name",
                                    "lead_source", "source")} == {
        "first_name": "Åsa", "last_name": "Jönsson", "email": "asa.jonsson@example.com",
        "company_name": "Ek AB", "lead_source": "purchased_list", "source": "list"}


def test_export_quotes_e164_phone_numbers_because_they_start_with_plus(cli, tmp_path):
    # Given a lead whose phone is stored as E.164
    cli("land", "--source", "list", str(write_jsonl(tmp_path, LEAD)), "--json")
    # When leads are exported as CSV and as JSON Lines
    [row] = csv.DictReader(io.StringIO(cli("export", "lead", "--format", "csv").output))
    [line] = cli("export", "lead", "--format", "jsonl").output.splitlines()
    # Then the CSV cell carries the formula guard (a known trade-off), JSON Lines the plain number
    assert row["phone"] == "'+46701234567"
    assert json.loads(line)["phone"] == "+46701234567"


def test_export_quotes_a_formula_typed_into_a_form(cli, tmp_path):
    path = write_jsonl(tmp_path, {**LEAD, "company": "=HYPERLINK(1)"})
    cli("land", "--source", "list", str(path), "--json")
    [row] = csv.DictReader(io.StringIO(cli("export", "lead").output))
    assert row["company_name"] == "'=HYPERLINK(1)"


def test_land_with_an_unknown_source_exits_non_zero_naming_it(cli, tmp_path):
    # Given a file and a source name nobody configured
    # When it is landed
    result = cli("land", "--source", "unknown", str(write_jsonl(tmp_path, LEAD)), "--json")
    # Then the command fails, naming the source and the ones that exist
    assert result.exit_code != 0
    assert "'unknown'" in result.output
    assert "configured: facebook, facebook_leads, list, mail, twitter, web" in result.output


def test_bad_ingest_toml_exits_non_zero_naming_the_key(cli, tmp_path):
    # Given an ingest.toml in the working directory with a misspelt pipeline key
    (tmp_path / "ingest.toml").write_text("[pipeline]\nbatch_sise = 10\n", encoding="utf-8")
    # When any command that needs the runtime runs
    result = cli("status", "--json")
    # Then it fails, naming the dotted key
    assert result.exit_code != 0
    assert "configuration: pipeline.batch_sise: unknown key" in result.output


def test_status_counts_items_by_outcome(cli, tmp_path):
    # Given one good lead and one rejected row landed
    path = write_jsonl(tmp_path, LEAD, {"external_id": "L-2", "first_name": "Nobody"})
    cli("land", "--source", "list", str(path), "--json")
    # When status is asked for
    result = cli("status", "--json")
    # Then items are counted by outcome, and there is no broker in embedded mode
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["items"]["received"] == 2
    assert status["items"]["by_outcome"] == {"created": 1, "merged": 0, "appended": 0, "review": 0,
                                             "rejected": 1, "ignored": 0}
    assert status["records"]["lead"] == 1
    assert status["queues"] is None


def test_status_of_an_empty_database_has_zero_counts(cli):
    status = json.loads(cli("status", "--json").output)
    assert status["items"]["received"] == 0
    assert set(status["items"]["by_outcome"].values()) == {0}


def test_a_database_password_is_never_printed():
    from crm_ingest.cli import _display_url

    shown = _display_url("postgresql://crm:s3cret@db:5432/crm")
    assert "s3cret" not in shown and shown.startswith("postgresql://crm:***@db")


def test_a_cell_holding_another_locales_separator_stays_one_cell_and_details_are_json():
    """A Swedish Excel splits an unquoted CSV line at ';': 'Åsa;=2+2' became a cell '=2+2'.
    Every cell is quoted now; a JSON column is written as JSON, not as Python writes a dict."""
    stream = io.StringIO()
    write_rows(stream, "csv", ["first_name", "details"], [{"first_name": "Åsa;=2+2", "details": {"form": "x",
                                                                                               "utm": None}}])
    assert stream.getvalue().splitlines()[1] == '"Åsa;=2+2","{""form"": ""x"", ""utm"": null}"'


def test_an_exported_csv_file_carries_utf8s_mark_for_excel(cli, tmp_path):
    cli("land", "--source", "list", str(write_jsonl(tmp_path, {**LEAD, "first_name": "Åsa"})), "--json")
    cli("export", "lead", "-o", str(tmp_path / "leads.csv"))
    data = (tmp_path / "leads.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "Åsa".encode() in data


@pytest.mark.parametrize("url, said", [
    ("postgresql+psycopg://postgres:hemligt@127.0.0.1:1/x", "cannot use the database at "
                                                           "postgresql+psycopg://127.0.0.1:1/x"),
    ("notaurl", "DATABASE_URL is not an address this can use"),
    ("mysql://u:hemligt@h/d", "DATABASE_URL is not an address this can use"),
    ("postgresql+psycopg://u@127.0.0.1:1/x?password=hemligt", "cannot use the database at "
                                                            "postgresql+psycopg://127.0.0.1:1/x"),
    ("postgresql+psycopg://u:hemligt@hemligt@127.0.0.1:1/x", "cannot use the database at "
                                                           "postgresql+psycopg://127.0.0.1:1/x"),
])
def test_a_database_that_cannot_be_used_is_a_message_without_its_password(cli, monkeypatch, url, said):
    monkeypatch.setenv("DATABASE_URL", url)
    from click.testing import CliRunner

    from crm_ingest import runtime as runtime_module
    from crm_ingest.cli import main

    runtime_module._for_pid.cache_clear()
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    assert said in result.output and "hemligt" not in result.output and "Traceback" not in result.output


def test_a_cell_loses_a_terminals_escape_codes_and_keeps_its_line_breaks():
    assert excel_safe("\x1b[2J\x1b]0;pwned\x07Hej\nrad två\tflik") == "[2J]0;pwnedHej\nrad två\tflik"


def test_behind_a_proxy_wrong_tokens_lock_out_the_client_that_sent_them_not_everyone(tmp_path):
    # Given `ingest serve` trusting its proxy's X-Forwarded-For (every client comes from the proxy's address)
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "INGEST_CONFIG")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", INGEST_API_TOKENS="the-right-token")
    server = subprocess.Popen([sys.executable, "-m", "crm_ingest.cli", "serve", "--port", str(port),
                               "--forwarded-allow-ips", "127.0.0.1"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        def ask(token: str, client: str) -> int:
            return httpx.get(f"{base}/items", headers={"authorization": f"Bearer {token}",
                                                       "x-forwarded-for": client}, timeout=10).status_code

        # When one client sends more wrong tokens than a minute allows
        guesses = [ask("wrong", "203.0.113.7") for _ in range(11)]
        # Then that client is refused, and another behind the same proxy is not
        assert guesses[:10] == [401] * 10 and guesses[10] == 429
        assert ask("the-right-token", "198.51.100.2") == 200
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_refuses_to_trust_every_address_s_forwarded_header(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    env.pop("REDIS_URL", None)
    result = subprocess.run([sys.executable, "-m", "crm_ingest.cli", "serve", "--port", "1", "--forwarded-allow-ips", "*"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "not '*'" in result.stderr
