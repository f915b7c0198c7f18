"""Mail from an IMAP mailbox (the standard library's imaplib), each message landed once.

The checkpoint is the folder's UIDVALIDITY and the highest UID landed: a poll fetches the UIDs
above it, oldest first, in chunks, and the runner saves the cursor in the transaction that
lands the chunk. A changed UIDVALIDITY (the folder was rebuilt) re-reads the whole folder; the
Message-ID, or the content hash of a message without one, is the item's external id, so nothing
is landed twice. Messages are read with BODY.PEEK (no \\Seen as a side effect); what to do with
them afterwards (flag \\Seen, the default; move to a folder; nothing) happens on the next poll
and only to messages at or below the saved checkpoint, so a message is never moved out of
sight before its landing committed. Nothing is ever deleted unless the mailbox is configured to
move to a folder and expunge, which this module does only for moved messages.
"""
from __future__ import annotations

import imaplib
import re
import socket
import ssl
from typing import Any, Iterator

from crm_ingest.connectors.base import NewItem
from crm_ingest.connectors.mailparse import MAX_MESSAGE_BYTES, empty_payload, external_id_for, parse_message
from crm_ingest.ingest.endpoints import ImapConfig
from crm_ingest.ingest.errors import IngestError

FETCH_CHUNK = 100  # UIDs a FETCH command asks for
FETCH_BYTES = 32 * 1024 * 1024  # message bodies one FETCH asks for together, as their sizes say
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


class MailboxError(IngestError):
    """The mailbox cannot be read: the server is unreachable, refuses the login or the folder.
    `credentials` is true when the login was refused (polling again will not help)."""

    def __init__(self, message: str, *, credentials: bool = False) -> None:
        super().__init__(message)
        self.credentials = credentials


class ImapMailbox:
    """Connector over one IMAP folder."""

    def __init__(self, config: ImapConfig, source: str, password: str | None) -> None:
        if not password:
            raise MailboxError(f"{source}: the password variable {config.password_env} is not set",
                               credentials=True)
        self.config, self.source, self._password = config, source, password

    def __repr__(self) -> str:  # never the password
        return f"ImapMailbox({self.source}: {self.config.user}@{self.config.host}/{self.config.folder})"

    def fetch(self, since: dict[str, Any] | None) -> Iterator[NewItem]:
        conn = self._connect()
        try:
            validity = self._select(conn)
            last = int(since["uid"]) if since and str(since.get("uidvalidity")) == str(validity) else 0
            if since and last:
                self._after_landing(conn, last)
            for uids in _chunks(self._uids_above(conn, last), FETCH_CHUNK):
                yield from self._messages(conn, uids, validity)
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    # -- protocol ------------------------------------------------------------------------------

    def _connect(self) -> imaplib.IMAP4:
        c = self.config
        try:
            if c.tls == "ssl":
                conn = imaplib.IMAP4_SSL(c.host, c.port or 993, ssl_context=ssl.create_default_context(),
                                         timeout=c.timeout_seconds)
            else:
                conn = imaplib.IMAP4(c.host, c.port or 143, timeout=c.timeout_seconds)
                if c.tls == "starttls":
                    conn.starttls(ssl.create_default_context())
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            port = c.port or (993 if c.tls == "ssl" else 143)
            raise MailboxError(f"{self.source}: cannot reach {c.host} port {port}: {exc}") from None
        try:
            conn.login(c.user, self._password)
        except imaplib.IMAP4.error as exc:
            _close(conn)
            raise MailboxError(f"{self.source}: the server refused the login of {c.user}: "
                               f"{_text(exc)}", credentials=True) from None
        except (OSError, socket.timeout) as exc:
            _close(conn)
            raise MailboxError(f"{self.source}: connection lost while logging in: {exc}") from None
        return conn

    def _select(self, conn: imaplib.IMAP4) -> int:
        folder = _quoted(self.config.folder)
        typ, data = conn.select(folder, readonly=self.config.after == "none")
        if typ != "OK":
            raise MailboxError(f"{self.source}: cannot open folder {self.config.folder!r}: {_text(data)}")
        validity = conn.response("UIDVALIDITY")[1]
        if not validity or validity[0] is None:
            raise MailboxError(f"{self.source}: the server gave no UIDVALIDITY for {self.config.folder!r}")
        return int(validity[0])

    def _uids_above(self, conn: imaplib.IMAP4, last: int) -> list[int]:
        typ, data = conn.uid("SEARCH", None, f"UID {last + 1}:*")
        if typ != "OK":
            raise MailboxError(f"{self.source}: UID SEARCH failed: {_text(data)}")
        # 'n:*' always includes the highest UID, even when it is below n: filter
        return sorted(uid for uid in (int(x) for x in (data[0] or b"").split()) if uid > last)

    def _messages(self, conn: imaplib.IMAP4, uids: list[int], validity: int) -> Iterator[NewItem]:
        """The messages in UID order: their sizes asked first, so that a message over
        MAX_MESSAGE_BYTES is never downloaded (it lands as an item naming its size) and the
        others come in FETCHes of at most FETCH_BYTES together (a hundred 20 MB messages
        were all held at once)."""
        sizes = self._sizes(conn, uids)
        group: list[int] = []
        group_bytes = 0
        for uid in uids:
            if uid not in sizes:  # expunged between SEARCH and FETCH: nothing to land
                continue
            size = sizes[uid]
            if size > MAX_MESSAGE_BYTES or (group and group_bytes + size > FETCH_BYTES):
                yield from self._bodies(conn, group, validity)
                group, group_bytes = [], 0
            if size > MAX_MESSAGE_BYTES:
                where = f"{self.config.folder} UID {uid} (UIDVALIDITY {validity})"
                payload = {**empty_payload(), "error": f"message of {size} bytes is over the "
                                                       f"{MAX_MESSAGE_BYTES}-byte cap", "mailbox": where}
                yield NewItem(external_id=f"oversize:{validity}:{uid}", kind="email", payload=payload,
                              cursor={"uidvalidity": validity, "uid": uid})
                continue
            group.append(uid)
            group_bytes += size
        yield from self._bodies(conn, group, validity)

    def _sizes(self, conn: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
        typ, data = conn.uid("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
        if typ != "OK":
            raise MailboxError(f"{self.source}: FETCH failed: {_text(data)}")
        sizes: dict[int, int] = {}
        for line in data:
            head = line[0] if isinstance(line, tuple) else line
            uid = re.search(rb"UID (\d+)", head or b"")
            size = re.search(rb"RFC822\.SIZE (\d+)", head or b"")
            if uid:
                sizes[int(uid.group(1))] = int(size.group(1)) if size else 0
        return sizes

    def _bodies(self, conn: imaplib.IMAP4, uids: list[int], validity: int) -> Iterator[NewItem]:
        if not uids:
            return
        typ, data = conn.uid("FETCH", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        if typ != "OK":
            raise MailboxError(f"{self.source}: FETCH failed: {_text(data)}")
        fetched: dict[int, bytes] = {}
        for part in data:
            if not isinstance(part, tuple):
                continue
            head, body = part
            uid = re.search(rb"UID (\d+)", head)
            if uid and body is not None:
                fetched[int(uid.group(1))] = body
        for uid in uids:
            raw = fetched.pop(uid, None)
            if raw is None:  # expunged since its size was asked
                continue
            if len(raw) > MAX_MESSAGE_BYTES:  # grown past what its size said: as any oversize one
                payload = {**empty_payload(), "error": f"message of over {MAX_MESSAGE_BYTES} bytes, over the "
                                                       f"{MAX_MESSAGE_BYTES}-byte cap", "mailbox": self.config.folder}
                yield NewItem(external_id=f"oversize:{validity}:{uid}", kind="email", payload=payload,
                              cursor={"uidvalidity": validity, "uid": uid})
                continue
            payload = parse_message(raw)
            payload["mailbox"] = self.config.folder
            yield NewItem(external_id=external_id_for(raw, payload), kind="email", payload=payload,
                          cursor={"uidvalidity": validity, "uid": uid})

    def _after_landing(self, conn: imaplib.IMAP4, last: int) -> None:
        """Flag or move what earlier polls landed (UIDs up to the saved checkpoint)."""
        after = self.config.after
        if after == "none":
            return
        typ, data = conn.uid("SEARCH", None, f"UID 1:{last}" + (" UNSEEN" if after == "seen" else ""))
        uids = [u for u in (int(x) for x in (data[0] or b"").split()) if u <= last] if typ == "OK" else []
        for chunk in _chunks(uids, 500):
            ids = ",".join(map(str, chunk))
            if after == "seen":
                conn.uid("STORE", ids, "+FLAGS.SILENT", r"(\Seen)")
            else:
                target = _quoted(self.config.move_to or "")
                if "MOVE" in conn.capabilities:  # RFC 6851; else copy, flag deleted, expunge
                    typ, data = conn.uid("MOVE", ids, target)
                else:
                    typ, data = conn.uid("COPY", ids, target)
                    if typ == "OK":
                        conn.uid("STORE", ids, "+FLAGS.SILENT", r"(\Deleted)")
                        conn.expunge()
                if typ != "OK":
                    raise MailboxError(f"{self.source}: cannot move to {self.config.move_to!r}: {_text(data)}")


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = b" ".join(v for v in value if isinstance(v, bytes)) if value else b""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:300]


def _close(conn: imaplib.IMAP4) -> None:
    try:
        conn.shutdown()
    except OSError:
        pass
