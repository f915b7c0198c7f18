"""The optional reply that tells a sender their case number, sent over SMTP.

A source with `[sources.NAME.acknowledge]` queues one acknowledgement with each case an email
opens (a row unique per case, written in the case's transaction), never for mail that was
ignored (auto-replies, bounces, bulk) and never to a no-reply or system address.
`send_pending` sends what is queued: each row is marked sent in its own committed transaction
before the message goes out, so a crash can lose an acknowledgement but never send one twice.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.models import Acknowledgement, utcnow
from crm_ingest.models.bulk import insert_rows

from .errors import ConfigError
from .normalize import SYSTEM_ADDRESS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AckConfig:
    smtp_host: str
    from_address: str
    smtp_port: int | None = None  # default: 465 with tls = "ssl", 587 with starttls, else 25
    tls: str = "starttls"  # ssl | starttls | none
    user: str | None = None
    password_env: str | None = None
    subject: str = "[{ticket}] {title}"
    body: str = ("Thank you for your message. We have registered it as case {ticket} and will get "
                 "back to you.\n\nPlease keep {ticket} in the subject when you reply.\n")
    timeout_seconds: float = 30.0

    def check(self, where: str) -> None:
        if self.tls not in ("ssl", "starttls", "none"):
            raise ConfigError(f"{where}.tls", "must be one of ssl, starttls, none")
        if "@" not in self.from_address:
            raise ConfigError(f"{where}.from_address", "must be an email address")
        if bool(self.user) != bool(self.password_env):
            raise ConfigError(f"{where}.password_env", "user and password_env go together")
        for name in ("subject", "body"):
            try:
                getattr(self, name).format(ticket="CAS-00001", title="t")
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"{where}.{name}", f"placeholders are {{ticket}} and {{title}} ({exc})") from None


def queue(session: Session, cases: Iterable[tuple[int, str, str, Any]]) -> int:
    """(case id, ticket, source name, the plan) of new cases from email: queue their
    acknowledgements; returns how many were queued."""
    rows = []
    for case_id, ticket, source, plan in cases:
        sender = (plan.activity or {}).get("sender")
        if not sender or SYSTEM_ADDRESS.search(sender):
            continue
        title = (plan.case or {}).get("title") or ""
        rows.append({"case_id": case_id, "source": source, "to_address": sender[:320],
                     "subject": f"[{ticket}] {title}"[:998], "state": "pending",
                     "in_reply_to": (plan.activity or {}).get("message_id")})
    return len(insert_rows(session, Acknowledgement, rows, on_conflict_do_nothing=("case_id",),
                           returning=("id",))) if rows else 0


def send_pending(sessions: sessionmaker[Session], settings, limit: int = 100) -> dict[str, int]:
    """Send queued acknowledgements; returns counts sent and failed."""
    result = {"sent": 0, "failed": 0}
    with sessions() as session:
        pending = session.execute(select(Acknowledgement.id, Acknowledgement.source).where(
            Acknowledgement.state == "pending").order_by(Acknowledgement.id).limit(limit)).all()
    for ack_id, source_name in pending:
        config = getattr(settings.sources.get(source_name), "acknowledge", None)
        with sessions.begin() as session:  # claimed and marked before sending: at most once
            claimed = session.execute(update(Acknowledgement).where(
                Acknowledgement.id == ack_id, Acknowledgement.state == "pending")
                .values(state="sent", sent_at=utcnow())).rowcount
            ack = session.get(Acknowledgement, ack_id)
            message = _message(ack, config) if claimed and config else None
            if claimed and config is None:
                ack.state, ack.error = "failed", f"source {source_name!r} has no [acknowledge] any more"
        if message is None:
            continue
        try:
            _send(message, config, settings.secrets)
            result["sent"] += 1
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            with sessions.begin() as session:
                session.execute(update(Acknowledgement).where(Acknowledgement.id == ack_id)
                                .values(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000]))
            log.warning("acknowledgement %s to case %s not sent: %s", ack_id, message["X-Case"], exc)
            result["failed"] += 1
    return result


def _message(ack: Acknowledgement, config: AckConfig) -> EmailMessage:
    ticket, _, title = ack.subject.partition("] ")
    ticket = ticket.lstrip("[")
    message = EmailMessage()
    message["From"] = config.from_address
    message["To"] = ack.to_address
    message["Subject"] = config.subject.format(ticket=ticket, title=title)[:998]
    message["Message-ID"] = make_msgid(domain=config.from_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: other systems must not answer it
    message["X-Case"] = ticket
    if ack.in_reply_to:
        message["In-Reply-To"] = ack.in_reply_to
        message["References"] = ack.in_reply_to
    message.set_content(config.body.format(ticket=ticket, title=title))
    return message


def _send(message: EmailMessage, config: AckConfig, secrets: Mapping[str, str]) -> None:
    port = config.smtp_port or {"ssl": 465, "starttls": 587}.get(config.tls, 25)
    if config.tls == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(config.smtp_host, port, timeout=config.timeout_seconds,
                                                context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(config.smtp_host, port, timeout=config.timeout_seconds)
    with client:
        if config.tls == "starttls":
            client.starttls(context=ssl.create_default_context())
        if config.user:
            client.login(config.user, secrets.get(config.password_env or "", ""))
        client.send_message(message)
