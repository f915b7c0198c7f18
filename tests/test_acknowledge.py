"""The case-number reply: sent once per case over SMTP (a real local SMTP server), never to
automatic mail or no-reply senders, and a failure is recorded, not retried into a second copy."""
from __future__ import annotations

import json
import socket

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from crm_ingest.models import Acknowledgement


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def configure(tmp_path, port: int) -> None:
    (tmp_path / "ingest.toml").write_text(f'''
[sources.mail]
record_type = "case"

[sources.mail.acknowledge]
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from_address = "support@acme.example"
''', encoding="utf-8")


def land(cli, tmp_path, name: str, *payloads: dict) -> None:
    path = tmp_path / name
    path.write_text("".join(json.dumps(p) + "\n" for p in payloads), encoding="utf-8")
    assert cli("land", "--source", "mail", str(path)).exit_code == 0


def mail(n: int, sender: str, **extra) -> dict:
    return {"message_id": f"<a{n}@kund.example>", "from_email": sender, "from_name": "Eva Lind",
            "subject": f"Problem {n}", "text": "It broke.", **extra}


def test_one_acknowledgement_per_case_and_none_to_automatic_mail(cli, tmp_path, smtp):
    port, inbox = smtp
    configure(tmp_path, port)
    land(cli, tmp_path, "a.jsonl",
         mail(1, "eva@kund.example"),
         mail(2, "eva@kund.example", subject="Re: Problem 1", in_reply_to="<a1@kund.example>"),  # appended
         mail(3, "ooo@kund.example", headers={"Auto-Submitted": "auto-replied"}),  # ignored
         mail(4, "news@list.example", headers={"List-Unsubscribe": "<mailto:u@list.example>"}),  # bulk
         mail(5, "no-reply@shop.example"),  # a case, but nobody to answer
         mail(6, "wordpress@acme.example"),  # a site's form mail naming no visitor: nobody either
         mail(7, "wordpress@acme.example", reply_to="karin@kund.example", to=["support@acme.example"]))  # the visitor

    assert [m["To"] for m in inbox.messages] == ["eva@kund.example", "karin@kund.example"]
    sent = inbox.messages[0]
    assert sent["Subject"].startswith("[CAS-") and "Problem 1" in sent["Subject"]
    assert sent["In-Reply-To"] == "<a1@kund.example>" and sent["Auto-Submitted"] == "auto-replied"
    assert sent["X-Case"] in sent.get_content()

    # sending again sends nothing: the acknowledgement is sent, once
    again = json.loads(cli("acknowledge", "--json").output)
    assert again == {"sent": 0, "failed": 0} and len(inbox.messages) == 2


def test_a_failed_send_is_recorded_and_not_sent_twice(cli, tmp_path, sessions_for):
    configure(tmp_path, free_port())  # nothing listens there
    land(cli, tmp_path, "a.jsonl", mail(1, "eva@kund.example"))
    with sessions_for(f"sqlite:///{tmp_path / 'x.db'}")() as session:
        ack = session.scalar(select(Acknowledgement))
    assert ack.state == "failed" and "Connection refused" in ack.error
    assert json.loads(cli("acknowledge", "--json").output) == {"sent": 0, "failed": 0}


def test_a_bad_acknowledge_table_names_its_key(cli, tmp_path):
    (tmp_path / "ingest.toml").write_text('[sources.mail.acknowledge]\nsmtp_host = "x"\nfrom_address = "nobody"\n')
    result = cli("status")
    assert result.exit_code != 0 and "sources.mail.acknowledge.from_address" in result.output
