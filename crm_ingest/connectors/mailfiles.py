"""Email from files (one .eml, a folder of them, an mbox or a Maildir), one landed item a message."""
from __future__ import annotations

import mailbox
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from crm_ingest.connectors.base import NewItem
from crm_ingest.connectors.mailparse import MAX_MESSAGE_BYTES, empty_payload, external_id_for, parse_message
from crm_ingest.ingest.errors import ConfigError

__all__ = ["MailFiles", "external_id_for", "parse_message"]


class MailFiles:
    """Connector over mail stored in files. Files carry no cursor: a re-fetch yields everything
    again and landing ignores what it already has (same external ids)."""

    def __init__(self, path: Path, source: str = "mail") -> None:
        self.path = Path(path)
        self.source = source
        if not self.path.exists():
            raise ConfigError("path", f"{self.path} does not exist")

    def fetch(self, since: dict[str, Any] | None = None) -> Iterator[NewItem]:
        """Yield one item per message, reading them one at a time; `since` is ignored."""
        try:
            for origin, read in _stored_messages(self.path):
                yield _item(origin, read)
        except OSError as exc:  # the file or folder went away or cannot be read
            raise ConfigError("path", f"cannot read {exc.filename or self.path}: {exc.strerror or exc}") from None


def _stored_messages(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """Where each message is and how to read its bytes, without reading them yet."""
    if path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
        yield from _mailbox_messages(mailbox.Maildir(path, create=False), path, sort=True)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*.eml") if not p.is_dir()):
            yield str(file), _capped(file.read_bytes, lambda file=file: file.stat().st_size)
    elif _looks_like_mbox(path):
        yield from _mailbox_messages(mailbox.mbox(path, create=False), path, sort=False)
    else:
        yield str(path), _capped(path.read_bytes, lambda: path.stat().st_size)


class Oversize(Exception):
    """A stored message over MAX_MESSAGE_BYTES: not read."""


def _capped(read: Callable[[], bytes], size: Callable[[], int | None]) -> Callable[[], bytes]:
    """`read`, unless the message's size (where it can be told before reading) is over the cap."""
    def capped() -> bytes:
        known = size()
        if known is not None and known > MAX_MESSAGE_BYTES:
            raise Oversize(f"message of {known} bytes is over the {MAX_MESSAGE_BYTES}-byte cap")
        return read()
    return capped


def _stored_size(box: mailbox.Mailbox, key: str) -> int | None:
    """A message's size in an mbox (its offsets) or a Maildir (its file), without reading it;
    None where the mailbox module keeps it otherwise."""
    try:
        if isinstance(box, mailbox.mbox):
            start, stop = box._toc[key]
            return stop - start
        if isinstance(box, mailbox.Maildir):
            return os.path.getsize(os.path.join(box._path, box._lookup(key)))
    except (AttributeError, KeyError, TypeError, ValueError, OSError):
        return None
    return None


def _looks_like_mbox(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(5) == b"From "


def _mailbox_messages(box: mailbox.Mailbox, path: Path, *,
                      sort: bool) -> Iterator[tuple[str, Callable[[], bytes]]]:
    try:
        keys = sorted(box.iterkeys()) if sort else box.iterkeys()
        for key in keys:
            yield f"{path}#{key}", _capped(lambda key=key: box.get_bytes(key), lambda key=key: _stored_size(box, key))
    finally:
        box.close()


def _item(origin: str, read: Callable[[], bytes]) -> NewItem:
    """Every message becomes an item; one that cannot be read says so in its payload."""
    try:
        raw = read()
    except Oversize as exc:  # as IMAP lands one
        payload = {**empty_payload(), "error": f"{origin}: {exc}"}
        return NewItem(external_id=f"oversize:{origin}", kind="email", payload=payload)
    except (OSError, KeyError, mailbox.Error) as exc:
        payload = {**empty_payload(), "error": f"cannot read {origin}: {exc}"}
        return NewItem(external_id=f"unreadable:{origin}", kind="email", payload=payload)
    payload = parse_message(raw)
    return NewItem(external_id=external_id_for(raw, payload), kind="email", payload=payload)
