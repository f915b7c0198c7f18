"""POST /imports and its reads, on the embedded database through the real app: the upload is a
job answered at once and landed in the background, with the same counts, report and revert as
`ingest import`; the token, sizes, rates and bad files are refused with reasons."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crm_ingest import runtime as runtime_module
from crm_ingest.api import intake
from crm_ingest.api.app import app
from crm_ingest.models import Lead, RawItem
from crm_ingest.models.migrate import upgrade
from tests.test_imports import SAMPLE

TOKEN = "imports-token-0815"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(cli, tmp_path, monkeypatch):
    upgrade(f"sqlite:///{tmp_path / 'x.db'}")
    (tmp_path / "ingest.toml").write_text(f'[api]\nimport_dir = "{tmp_path / "uploads"}"\nmax_import_bytes = 100000\n'
                                          "imports_per_ip_per_hour = 5\n", encoding="utf-8")
    monkeypatch.setenv("INGEST_API_TOKENS", TOKEN)
    monkeypatch.setattr(intake, "_counter", None)
    runtime_module._for_pid.cache_clear()
    return TestClient(app)


def finished(client, job_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/imports/{job_id}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] == "done" or time.monotonic() > deadline:
            return answer.json()
        time.sleep(0.1)


def upload(client, content: bytes, **params):
    return client.post("/imports", params={"file_name": "lista.csv", **params}, content=content,
                       headers={**AUTH, "content-type": "text/csv"})


def test_an_uploaded_list_becomes_a_job_with_the_same_outcomes_as_the_cli(client, tmp_path, sessions_for):
    # When the sample list is posted
    answer = upload(client, SAMPLE.read_bytes(), campaign="Nordic Expo", consent="legitimate interest")

    # Then a job is answered at once and, landed in the background, accounts for every row
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job"]
    assert answer.json()["status_url"] == f"/imports/{job_id}"
    job = finished(client, job_id)
    assert job["state"] == "done" and job["file"] == "lista.csv"
    counts = job["counts"]
    assert (counts["created"], counts["duplicate_in_file"], counts["rejected"], counts["rows"]) == (19, 3, 3, 25)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 19
        assert session.scalar(select(func.count()).select_from(RawItem)) == 25
    assert list((tmp_path / "uploads").iterdir()) == []  # the upload is gone once landed

    # And it is listed, and posting the same file again is the same job, adding nothing
    assert client.get("/imports", headers=AUTH).json()["imports"][0]["job"] == job_id
    again = upload(client, SAMPLE.read_bytes(), campaign="Nordic Expo")
    assert again.status_code == 200 and again.json()["already_imported"] and again.json()["job"] == job_id

    # And its rejected rows come as CSV safe for Excel, then a revert removes what it made
    report = client.get(f"/imports/{job_id}/rejected", headers=AUTH)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert len(rows) == 3 and all(row["reason"] for row in rows)
    reverted = client.post(f"/imports/{job_id}/revert", headers=AUTH)
    assert reverted.status_code == 200 and reverted.json()["records_deleted"] == 19
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 0


@pytest.mark.parametrize("given, kept", [("lista.csv", "lista.csv"), ("..\\..\\win.csv", "win.csv"),
                                         ("a/b/\x00c.csv", "c.csv")])
def test_a_lead_from_an_upload_names_the_file_as_it_was_sent(client, tmp_path, sessions_for, given, kept):
    """Every lead's details named the server's temporary file ('4df52f...-lista.csv')."""
    answer = upload(client, b"Namn;E-post\nAnna Berg;anna@berg.se\n", file_name=given)
    job = finished(client, answer.json()["job"])
    assert job["file"] == kept
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        assert session.scalar(select(Lead)).details["file"] == kept


def test_the_list_of_imports_says_done_once_every_row_is_without_asking_for_the_job(client, tmp_path, sessions_for):
    """GET /imports kept saying 'landed' for finished jobs: only GET /imports/N settled them."""
    job_id = upload(client, SAMPLE.read_bytes()).json()["job"]
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(RawItem).where(RawItem.state == "done")) == 25:
                break
        time.sleep(0.1)
    [listed] = client.get("/imports", headers=AUTH).json()["imports"]
    assert (listed["job"], listed["state"]) == (job_id, "done") and listed["finished_at"] is not None


def test_preview_reads_the_upload_without_storing_anything(client, tmp_path):
    answer = upload(client, SAMPLE.read_bytes(), preview="true")
    assert answer.status_code == 200
    data = answer.json()
    assert {"header": "E-post", "field": "email"} in data["columns"] and len(data["rows"]) == 10
    assert client.get("/imports", headers=AUTH).json()["imports"] == []
    assert list((tmp_path / "uploads").iterdir()) == []


MAP = """
[columns]
"Kontaktväg" = "email"
"Vem" = "full_name"
"Ursprung" = "lead_source"
"Intern kod" = ""
[values.lead_source]
"Vårmässan 2026" = "trade_show"
[defaults]
job_title = "Mässbesökare"
"""
# no synonym knows these headers, and "Vårmässan 2026" alone would be lead source 'other'
MAPPED = ("Kontaktväg;Vem;Intern kod;Ursprung\nanna@nordvik.se;Anna Berg;X-1;Vårmässan 2026\n"
          "per@nordvik.se;Per Ek;X-2;Vårmässan 2026\n").encode()


def test_a_map_sent_with_the_upload_maps_columns_values_and_defaults(client, sessions_for, tmp_path):
    # Given a list whose headers no synonym knows, and the map a marketer wrote for it
    # When the preview is asked for with the map, then it reads the columns the map names
    answer = upload(client, MAPPED, preview="true", map=MAP)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert {"header": "Kontaktväg", "field": "email"} in data["columns"]
    assert {"header": "Intern kod", "field": None, "ignored": True} in data["columns"]
    assert data["rows"][0]["fields"]["email"] == "anna@nordvik.se"

    # And imported with it, the rows become leads with the map's values and defaults
    job = finished(client, upload(client, MAPPED, campaign="Mässan", map=MAP).json()["job"])
    assert job["counts"]["created"] == 2, job
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
        assert [(lead.email, lead.first_name, lead.last_name) for lead in leads] == [
            ("anna@nordvik.se", "Anna", "Berg"), ("per@nordvik.se", "Per", "Ek")]
        assert {(lead.lead_source, lead.job_title) for lead in leads} == {("trade_show", "Mässbesökare")}
        assert all("X-1" not in str(lead.details) for lead in leads)  # the ignored column is not kept


@pytest.mark.parametrize("sent, says", [
    ('[columns]\n"Vem" = "mail_address"\n', "map: columns.Vem: unknown field 'mail_address'"),
    ("[columns\n", "map: syntax:"),
    ("[colums]\n", "map: colums: unknown section"),
    ("# " + "x" * 5000, "map: at most 4000 characters"),
])
def test_a_bad_map_is_refused_naming_the_key_and_nothing_is_kept(client, tmp_path, sent, says):
    answer = upload(client, MAPPED, map=sent)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["detail"]
    assert client.get("/imports", headers=AUTH).json()["imports"] == []
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []


def test_every_import_route_needs_the_token(client):
    assert client.post("/imports", content=SAMPLE.read_bytes()).status_code == 401
    assert client.post("/imports", content=b"x", headers={"authorization": "Bearer wrong"}).status_code == 401
    for path in ("/imports", "/imports/1", "/imports/1/rejected"):
        assert client.get(path).status_code == 401, path
    assert client.post("/imports/1/revert").status_code == 401


@pytest.mark.parametrize("content, params, headers, status, says", [
    (b"%PDF-1.7\n1 0 obj", {}, {}, 422, "a PDF document, not a list"),
    (b"", {}, {}, 422, "empty"),
    (b"Email\na@b.se\n" * 10000, {}, {}, 413, "over 100000 bytes"),
    (b"Email\na@b.se\n", {"upsert_by": "name"}, {}, 422, "upsert_by"),
    (b"Email\na@b.se\n", {"source": "nowhere"}, {}, 422, "source"),
    (b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nEmail\r\n--b--", {},
     {"content-type": "multipart/form-data; boundary=b"}, 415, "not a form"),
])
def test_bad_uploads_are_refused_with_the_reason_and_leave_nothing(client, tmp_path, content, params, headers,
                                                                   status, says):
    answer = client.post("/imports", params={"file_name": "lista.csv", **params}, content=content,
                         headers={**AUTH, "content-type": "text/csv", **headers})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    assert client.get("/imports", headers=AUTH).json()["imports"] == []
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []


def test_imports_are_rate_limited_per_address(client):
    for n in range(5):
        assert upload(client, b"Email\nr%d@example.se\n" % n, preview="true").status_code == 200
    refused = upload(client, b"Email\nr9@example.se\n")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


@pytest.mark.integration
def test_an_upload_is_landed_by_the_server_and_processed_by_a_real_worker(cluster, tmp_path, pg_url):
    """PostgreSQL + Redis: `ingest serve` lands the upload and a real Celery worker processes it."""
    import json
    import urllib.request

    from tests.dovecot_server import free_port
    from tests.test_browser_form import serve_api, stop_api

    env = {**cluster.env, "INGEST_API_TOKENS": TOKEN}
    cluster.worker("w1")
    port = free_port()
    api = serve_api(env, tmp_path, port)
    try:
        def call(method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                             headers={**AUTH, "content-type": "text/csv"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())

        status, started = call("POST", "/imports?campaign=Nordic%20Expo&file_name=lista.csv", SAMPLE.read_bytes())
        assert status == 202, started
        deadline = time.monotonic() + 120
        while (job := call("GET", f"/imports/{started['job']}")[1])["state"] != "done" and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop_api(api)
    counts = job["counts"]
    assert job["state"] == "done", job
    assert (counts["created"], counts["duplicate_in_file"], counts["rejected"], counts["rows"]) == (19, 3, 3, 25)


def test_an_upload_a_restart_interrupted_is_landed_on_when_the_server_starts_again(tmp_path):
    """A real `ingest serve` on the embedded database, killed while it lands an answered
    upload, then started again: the job ends with every row once, as if nothing happened."""
    import json
    import os
    import signal
    import urllib.request

    from tests.dovecot_server import free_port
    from tests.test_browser_form import serve_api, stop_api

    # Given a server and a list long enough to be landing for a while
    database = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(database)
    (tmp_path / "ingest.toml").write_text(f'[api]\nimport_dir = "{tmp_path / "uploads"}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "INGEST_CONFIG")}
    env.update(DATABASE_URL=database, INGEST_API_TOKENS=TOKEN, PYTHONUNBUFFERED="1")
    rows = 60_000
    body = "Förnamn;Efternamn;E-post\n" + "".join(f"Anna;Berg{n};anna.berg{n}@firma{n % 97}.se\n"
                                                  for n in range(rows))

    def call(port: int, method: str, path: str, data: bytes | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                         headers={**AUTH, "content-type": "text/csv"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())

    port = free_port()
    api = serve_api(env, tmp_path, port)
    try:
        status, started = call(port, "POST", "/imports?campaign=Restart&file_name=lista.csv", body.encode())
        assert status == 202, started
        job_id = started["job"]
        # When the server is killed once part of the file is landed
        deadline = time.monotonic() + 120
        while (job := call(port, "GET", f"/imports/{job_id}")[1])["rows_landed"] == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(api.pid, signal.SIGKILL)
        api.wait()
    finally:
        stop_api(api)
    assert job["state"] == "landing" and 0 < job["rows_landed"] < rows, job  # interrupted part-way
    assert sorted(p.suffix for p in (tmp_path / "uploads").iterdir()) == [".csv", ".json"]  # the upload and its note

    # Then, started again, the server lands the rest from where it stopped: every row once
    port = free_port()
    api = serve_api(env, tmp_path, port)
    try:
        deadline = time.monotonic() + 300
        while (job := call(port, "GET", f"/imports/{job_id}")[1])["state"] != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop_api(api)
    assert job["state"] == "done", job
    assert (job["counts"]["created"], job["counts"]["rows"], job["rows_landed"]) == (rows, rows, rows)
    assert list((tmp_path / "uploads").iterdir()) == []  # landed: the upload and its note are gone


def test_an_upload_that_every_start_resumes_and_never_lands_is_left_alone_after_three(client, tmp_path, sessions_for):
    """A file that stops the server landing it (say, one that exhausts its memory) must not
    take every start down with it: after MAX_RESUMES starts it is kept and not resumed."""
    import json

    from crm_ingest.api.imports import MAX_RESUMES, resume_uploads
    from crm_ingest.connectors.listfile import ListFile
    from crm_ingest.models import ImportJob
    from crm_ingest.workers.imports import ImportRequest, find_or_start_job

    # Given an upload whose job is still landing, with its note, as a killed server leaves it
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    path = uploads / "0123abcd-lista.csv"
    path.write_bytes(SAMPLE.read_bytes())
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    with sessions.begin() as session:
        job_id = find_or_start_job(session, ListFile(path, "list"), ImportRequest("list", "Expo")).id
    asked = {"job": job_id, "file_name": "lista.csv", "source": "list", "campaign": "Expo", "consent": None,
             "upsert_by": "email", "encoding": None, "sheet": None, "map": None}
    note = uploads / (path.name + ".json")

    # When servers started MAX_RESUMES times already, each stopping before it landed
    note.write_text(json.dumps({**asked, "resumed": MAX_RESUMES}), encoding="utf-8")
    # Then the next start leaves it alone, kept for a person to look at
    assert resume_uploads() == []
    assert path.exists() and json.loads(note.read_text())["resumed"] == MAX_RESUMES

    # And an upload resumed fewer times is landed on, counting the start, and removed once landed
    note.write_text(json.dumps({**asked, "resumed": MAX_RESUMES - 1}), encoding="utf-8")
    assert resume_uploads() == [job_id]
    job = finished(client, job_id)
    assert job["state"] == "done" and job["counts"]["rows"] == 25
    deadline = time.monotonic() + 30
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(uploads.iterdir()) == []
    with sessions() as session:
        assert session.get(ImportJob, job_id).state == "done"


@pytest.mark.parametrize("name, file_format", [
    ("17_affarssystem_kundlista_excel97.xls", "xls"), ("18_webbexport_html_tabell.xls", "html"),
    ("19_xml_kalkylblad_2003.xml", "xml2003"), ("20_libreoffice_masskontakter.ods", "ods"),
    ("21_kontakter_iphone_outlook_google.vcf", "vcard"),
])
def test_an_upload_in_any_format_the_cli_reads_is_read_by_its_content(client, name, file_format):
    content = (Path(__file__).parent / "fixtures" / "exports" / name).read_bytes()
    answer = client.post("/imports", params={"file_name": name, "preview": "true"}, content=content,
                         headers={**AUTH, "content-type": "application/octet-stream"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["format"] == file_format
    assert "@" in answer.json()["rows"][0]["fields"]["email"]


def _broken_workbook(path, rows: int):
    """A workbook whose last row names a shared string the workbook lacks (its XML breaks off there)."""
    import re
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Förnamn", "E-post"])
    for number in range(rows):
        sheet.append([f"Person{number}", f"p{number}@ek.se"])
    sheet.append(["Sista", "sista@ek.se"])
    book.save(path)
    with zipfile.ZipFile(path) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    last = re.findall(r'<c r="(A\d+)"[^>]*>.*?</c>', xml)[-1]
    parts["xl/worksheets/sheet1.xml"] = re.sub(rf'<c r="{last}"[^>]*>.*?</c>', f'<c r="{last}" t="s"><v>999999</v></c>',
                                               xml).encode()
    with zipfile.ZipFile(path, "w") as broken:
        for name, data in parts.items():
            broken.writestr(name, data)
    return path


def test_a_workbook_unreadable_part_way_says_so_and_its_stopped_job_can_be_reverted(client, cli, tmp_path, monkeypatch):
    from crm_ingest.workers import imports as landing

    monkeypatch.setattr(landing, "CHUNK_ROWS", 200)
    config = tmp_path / "ingest.toml"
    config.write_text(config.read_text().replace("max_import_bytes = 100000", "max_import_bytes = 10000000"))
    book = _broken_workbook(tmp_path / "lista.xlsx", 1200)

    # The command line says where the file broke off, without a traceback
    result = cli("import", str(book))
    assert result.exit_code == 1 and "lista.xlsx: not readable after row" in result.output, result.output
    assert "Traceback" not in result.output and "import-revert" in result.output

    # Over HTTP the job shows it stopped, and it can be taken back
    runtime_module._for_pid.cache_clear()
    answer = client.post("/imports", params={"file_name": "lista.xlsx", "source": "list"}, content=book.read_bytes(),
                         headers={**AUTH, "content-type": "application/octet-stream"})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job"]
    deadline = time.monotonic() + 30
    while "stopped" not in (client.get(f"/imports/{job_id}", headers=AUTH).json().get("options") or {}) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    reverted = client.post(f"/imports/{job_id}/revert", headers=AUTH)
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["records_deleted"] >= 10


@pytest.mark.parametrize("params, field", [({"campaign": "\x00"}, "campaign"), ({"campaign": "   "}, "campaign"),
                                           ({"consent": "ja\x07"}, "consent"), ({"encoding": "zlib"}, "encoding")])
def test_an_upload_naming_a_campaign_of_control_characters_or_a_codec_that_is_no_encoding_is_refused(client, params,
                                                                                                     field):
    answer = upload(client, SAMPLE.read_bytes(), **params)
    assert answer.status_code in (400, 422) and field in answer.text, answer.text
