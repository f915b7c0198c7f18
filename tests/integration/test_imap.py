"""The IMAP source against a real dovecot (started here, on a free port, in a temporary folder;
scripts/ensure-dovecot.sh installs Debian's when missing): each message landed once, the
checkpoint holds across polls and restarts, a new UIDVALIDITY lands no duplicates, and the
after-fetch action (flag seen, move) happens only to landed mail."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_ingest.models import RawItem
from tests.dovecot_server import PASSWORD, Dovecot, free_port

pytestmark = pytest.mark.skipif(shutil.which("dovecot") is None,
                                reason="dovecot is not installed (scripts/ensure-dovecot.sh installs it)")

@pytest.fixture
def dovecot():
    # not under pytest's own temporary folder: that is private to root, and dovecot reads its
    # users file and writes mail as 'nobody'
    root = Path(tempfile.mkdtemp(prefix="crm-ingest-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def message(n: int, subject: str = "Cannot log in", body: str = "Since yesterday I cannot log in.",
            message_id: bool = True) -> bytes:
    headers = [f"From: Eva Lind <eva{n}@kund.example>", "To: support@acme.example", f"Subject: {subject} {n}",
               "Date: Mon, 30 Nov 2026 09:00:00 +0100", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    if message_id:
        headers.append(f"Message-ID: <m{n}@kund.example>")
    return ("\r\n".join(headers) + "\r\n\r\n" + body + f" ({n})\r\n").encode()


def deliver(server: Dovecot, *raws: bytes, folder: str = "INBOX") -> None:
    conn = server.client(folder)
    for raw in raws:
        conn.append(folder, None, None, raw)
    conn.logout()


def configure(tmp_path: Path, port: int, monkeypatch, **imap: str) -> None:
    extra = "".join(f'{k} = "{v}"\n' for k, v in imap.items())
    (tmp_path / "ingest.toml").write_text(f"""
[sources.support]
kind = "email"
record_type = "case"

[sources.support.imap]
host = "127.0.0.1"
port = {port}
tls = "none"
user = "support"
password_env = "SUPPORT_IMAP_PASSWORD"
{extra}""", encoding="utf-8")
    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", PASSWORD)


def poll(cli) -> dict:
    result = cli("poll", "support", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def landed(sessions) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(RawItem.external_id).order_by(RawItem.id)))


def test_new_mail_is_landed_once_and_the_checkpoint_holds(dovecot, cli, tmp_path, monkeypatch, sessions_for):
    configure(tmp_path, dovecot.port, monkeypatch)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    deliver(dovecot, message(1), message(2), message(3, message_id=False))

    first = poll(cli)
    assert (first["received"], first["landed"]) == (3, 3)
    again = poll(cli)  # nothing new: the checkpoint (UIDVALIDITY, UID) holds
    assert again["received"] == 0
    deliver(dovecot, message(4))
    assert poll(cli)["landed"] == 1
    ids = landed(sessions)
    assert ids[:2] == ["<m1@kund.example>", "<m2@kund.example>"] and ids[2].startswith("sha256:")
    assert ids[3] == "<m4@kund.example>"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawItem).where(RawItem.outcome == "created")) == 4
        assert set(session.scalars(select(RawItem.payload["mailbox"].as_string()))) == {"INBOX"}

    # landed mail is flagged seen by the next poll, never before it was landed
    conn = dovecot.client()
    unseen = conn.uid("SEARCH", None, "UNSEEN")[1][0].split()
    conn.logout()
    assert [int(u) for u in unseen] == [4]


def test_a_new_uidvalidity_rereads_the_folder_without_duplicates(dovecot, cli, tmp_path, monkeypatch,
                                                                 sessions_for):
    configure(tmp_path, dovecot.port, monkeypatch)
    sessions = sessions_for(f"sqlite:///{tmp_path / 'x.db'}")
    deliver(dovecot, message(1), message(2, message_id=False))
    assert poll(cli)["landed"] == 2

    # When the folder is rebuilt (a new UIDVALIDITY) with the same messages and one new one
    conn = dovecot.client()
    validity = int(conn.response("UIDVALIDITY")[1][0])
    conn.logout()
    dovecot.doveadm("mailbox", "update", "-u", "support", "--uid-validity", str(validity + 7), "INBOX")
    deliver(dovecot, message(3))

    result = poll(cli)
    # Then the folder is read again from the start and only the new message is landed
    assert (result["received"], result["landed"]) == (3, 1)
    assert len(landed(sessions)) == 3


def test_landed_mail_is_moved_to_a_folder_on_the_next_poll(dovecot, cli, tmp_path, monkeypatch):
    configure(tmp_path, dovecot.port, monkeypatch, after="move", move_to="Processed")
    conn = dovecot.client()
    conn.create("Processed")
    conn.logout()
    deliver(dovecot, message(1), message(2))
    assert poll(cli)["landed"] == 2
    deliver(dovecot, message(3))
    assert poll(cli)["landed"] == 1

    inbox, processed = dovecot.client("INBOX"), dovecot.client("Processed")
    assert len(inbox.uid("SEARCH", None, "ALL")[1][0].split()) == 1  # the newest waits for the next poll
    assert len(processed.uid("SEARCH", None, "ALL")[1][0].split()) == 2
    inbox.logout()
    processed.logout()


def test_a_refused_login_is_a_clear_error_and_lands_nothing(dovecot, cli, tmp_path, monkeypatch, sessions_for):
    configure(tmp_path, dovecot.port, monkeypatch)
    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", "wrong")
    deliver(dovecot, message(1))
    result = cli("poll", "support")
    assert result.exit_code != 0
    assert "refused the login of support" in result.output and "wrong" not in result.output

    monkeypatch.delenv("SUPPORT_IMAP_PASSWORD")
    missing = cli("poll", "support")
    assert missing.exit_code != 0 and "SUPPORT_IMAP_PASSWORD is not set" in missing.output


def test_an_unreachable_server_is_a_clear_error(cli, tmp_path, monkeypatch):
    configure(tmp_path, free_port(), monkeypatch)
    result = cli("poll", "support")
    assert result.exit_code != 0 and "cannot reach 127.0.0.1" in result.output


def test_a_failing_mailbox_shows_as_unhealthy_and_recovers(dovecot, cli, tmp_path, monkeypatch):
    configure(tmp_path, dovecot.port, monkeypatch)
    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", "wrong")
    assert cli("poll", "support").exit_code != 0
    listed = {s["source"]: s for s in json.loads(cli("sources", "--json").output)["sources"]}
    support = listed["support"]
    assert (support["healthy"], support["failures"], support["credentials_failed"]) == (False, 1, True)
    assert "refused the login" in support["last_error"] and support["next_try_after"]
    assert listed["web"]["polled"] is False  # other sources are not polled, and not affected

    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", PASSWORD)
    assert cli("poll", "support").exit_code == 0
    support = {s["source"]: s for s in json.loads(cli("sources", "--json").output)["sources"]}["support"]
    assert (support["healthy"], support["failures"], support["last_error"]) == (True, 0, None)


def test_the_scheduled_poll_backs_off_a_refused_login(dovecot, tmp_path, monkeypatch):
    from crm_ingest import runtime as runtime_module
    from crm_ingest.workers.tasks import poll_source

    configure(tmp_path, dovecot.port, monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("SUPPORT_IMAP_PASSWORD", "wrong")
    monkeypatch.delenv("REDIS_URL", raising=False)
    runtime_module._for_pid.cache_clear()
    try:
        from crm_ingest.models.migrate import upgrade

        upgrade(f"sqlite:///{tmp_path / 'x.db'}")
        first = poll_source.run("support")
        second = poll_source.run("support")  # right away: not tried again
    finally:
        runtime_module._for_pid.cache_clear()
    assert first["credentials"] is True and "refused the login" in first["error"]
    assert "next try after" in second["skipped"]


def test_a_message_over_the_cap_is_never_downloaded_and_the_rest_come_a_few_megabytes_at_a_time(dovecot, monkeypatch):
    import crm_ingest.connectors.imap as imap
    from crm_ingest.connectors.imap import ImapMailbox
    from crm_ingest.ingest.endpoints import ImapConfig

    # Given a folder where the third of five messages is over the cap, and a cap on a FETCH's bytes
    # that two of the others fill
    monkeypatch.setattr(imap, "MAX_MESSAGE_BYTES", 200_000)
    monkeypatch.setattr(imap, "FETCH_BYTES", 100_000)
    notes = [message(n, body="Se bifogad logg. " + "x" * 60_000) for n in (1, 2)]
    deliver(dovecot, *notes, message(3, body="y" * 300_000), message(4), message(5))
    asked: list[str] = []
    real = imap.imaplib.IMAP4.uid

    def uid(conn, command, *args):
        asked.append(" ".join([command, *map(str, args)]))
        return real(conn, command, *args)

    monkeypatch.setattr(imap.imaplib.IMAP4, "uid", uid)
    config = ImapConfig(host="127.0.0.1", port=dovecot.port, tls="none", user="support",
                        password_env="X", folder="INBOX", timeout_seconds=5, after="none")
    # When the folder is read
    items = list(ImapMailbox(config, "support", PASSWORD).fetch(None))
    # Then every message is an item, in order; the one over the cap names its size, and its
    # body was never asked for; the bodies came in FETCHes of the cap's size
    assert [item.cursor["uid"] for item in items] == [1, 2, 3, 4, 5]
    assert items[2].external_id.startswith("oversize:") and "over the 200000-byte cap" in items[2].payload["error"]
    assert [item.payload["subject"] for item in items if item is not items[2]] == [
        f"Cannot log in {n}" for n in (1, 2, 4, 5)]
    bodies = [line for line in asked if "BODY.PEEK[]" in line]
    assert bodies == ["FETCH 1 (UID BODY.PEEK[])", "FETCH 2 (UID BODY.PEEK[])", "FETCH 4,5 (UID BODY.PEEK[])"]
