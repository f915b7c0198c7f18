"""One RFC 5322 message to a raw item payload, with the standard library's modern email API.

Never raises: any charset (also undeclared 8-bit text), RFC 2047 headers, QP and base64,
HTML-only bodies made readable, attachments recorded with a cap, bodies capped with a note.
Shared by every mail source (files now, IMAP later).
"""
from __future__ import annotations

import codecs
import hashlib
import re
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Callable, Iterator

from crm_ingest.connectors.textfix import undoubled
from crm_ingest.ingest.mailtext import display_name

try:
    from charset_normalizer import from_bytes as _detect_charsets
except ImportError:  # optional: without it, undeclared 8-bit text falls back to cp1252
    _detect_charsets = None

__all__ = ["KEPT_HEADERS", "empty_payload", "external_id_for", "parse_message"]

# Headers later stages need to spot auto-replies, bounces and mailing lists.
KEPT_HEADERS = ("auto-submitted", "x-autoreply", "x-autorespond", "precedence", "list-unsubscribe",
                "list-id", "content-type", "return-path", "x-failed-recipients")


# --- Messages ---------------------------------------------------------------------------------


def external_id_for(raw: bytes, payload: dict[str, Any]) -> str:
    """The Message-ID when there is one, else a digest of the message as its writer sent it:
    the same mail read from an .eml (CRLF), an mbox ('From ' line, Status headers) or a
    Maildir, or fetched over IMAP, is one item, though its bytes differ in line endings and
    in the headers each delivery and mail store adds."""
    return payload.get("message_id") or "sha256:" + hashlib.sha256(_as_sent(raw)).hexdigest()


# The headers its writer's mail program sets: every other one (Received, Return-Path, Status,
# X-Received, X-MS-Exchange-*, X-Forefront-*, spam scores, ...) a delivery or a store adds
_WRITERS_HEADERS = re.compile(
    rb"^(?:from|sender|reply-to|to|cc|subject|date|in-reply-to|references|mime-version|content-[\w-]+)\s*:",
    re.IGNORECASE)


def _as_sent(raw: bytes) -> bytes:
    text = raw.replace(b"\r\n", b"\n")
    if text.startswith(b"From "):  # mbox's envelope line
        text = text.partition(b"\n")[2]
    head, sep, body = text.partition(b"\n\n")
    kept, keeping = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a folded line belongs to the header above it
            if keeping:
                kept.append(line)
            continue
        keeping = bool(_WRITERS_HEADERS.match(line))
        if keeping:
            kept.append(line)
    return b"\n".join(kept) + sep + body.rstrip(b"\n")


# --- Parsing ----------------------------------------------------------------------------------

class _LenientPolicy(EmailPolicy):
    """policy.default, except that a header the stdlib fails on (it raises on some malformed
    MIME parameters while parsing the structure) is kept as plain text instead."""

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        try:
            return super().header_fetch_parse(name, value)
        except Exception:
            return _PLAIN_HEADERS(name, str(value).replace("\r", "").replace("\n", ""))


_PLAIN_HEADERS = HeaderRegistry(use_default_map=False)
_POLICY = _LenientPolicy()
_PARSER = BytesParser(policy=_POLICY)
_HEADER_FACTORY = _POLICY.header_factory
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_MAX_DEPTH = 50

# Bounds on what the standard library is asked to parse: it takes time and memory far beyond a
# message's size on some shapes (measured: a subject of 32,000 encoded words, 700 kB, took 23 s
# and 10 GB; a To of 100,000 addresses 53 s and 880 MB; 200,000 empty parts 80 s). Real mail
# stays far inside them; what is past them is cut, or left unread, and said so under "error".
MAX_HEADER_SECTION_BYTES = 1024 * 1024  # all header fields together (a real one: a few kB)
MAX_HEADER_FIELD_BYTES = 128 * 1024  # one field as sent, folded lines and all
MAX_TEXT_HEADER_CHARS = 16 * 1024  # one subject or other text field, as sent (RFC 5322: a line is 998)
MAX_ADDRESS_HEADER_CHARS = 64 * 1024  # one From, To or Cc: some 3,000 addresses
MAX_MIME_PARTS = 10_000  # lines that may open a part ("--" first), counted before parsing
ADDRESS_HEADERS = ("from", "reply-to", "to", "cc")
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # a larger message is landed as an error naming its size, unread


def parse_message(raw: bytes, *, body_limit: int = 100_000,
                  attachment_limit: int = 25_000_000) -> dict[str, Any]:
    """One RFC 5322 message as a JSON-ready dict. Never raises: what cannot be read is left at
    its empty value and explained under "error"."""
    payload = empty_payload()
    problems: list[str] = []
    raw = _header_section_cut(raw, problems)

    def as_text() -> None:  # the message's text as its body, when its parts are not read
        text = _decode_bytes(raw[:4 * body_limit], None) if isinstance(raw, bytes) else ""
        payload.update(text=text[:body_limit], truncated=len(text) > body_limit or len(raw) > 4 * body_limit)

    headers_only = raw.count(b"\n--") > MAX_MIME_PARTS
    if headers_only:
        as_text()
        problems.append(f"body: over {MAX_MIME_PARTS:,} MIME parts; its headers were read, its parts were not "
                        "(the message's text is kept as the body)")
    try:
        msg = _parse(raw, headers_only)
    except Exception as exc:  # untrusted bytes: keep the item, say why
        as_text()
        try:  # its structure (parts nested thousands deep): the headers may still be read
            msg, headers_only = _parse(raw, headers_only=True), True
            problems.append(f"body: unparsable: {type(exc).__name__}: {exc}; the message's text is kept as the body")
        except Exception:  # noqa: BLE001
            payload["error"] = f"unparsable message: {type(exc).__name__}: {exc}"
            return _scrub(payload)

    def attempt(field: str, read: Callable[[], Any]) -> None:
        try:
            payload.update(read())
        except Exception as exc:  # one broken header or part must not lose the others
            problems.append(f"{field}: {type(exc).__name__}: {exc}")

    headers = {name: [_cut(name, value, problems) for value in values]
               for name, values in _raw_headers(msg).items()}
    first = {name: values[0] for name, values in headers.items()}
    attempt("message-id", lambda: {"message_id": _first_id(first.get("message-id", ""))})
    attempt("from", lambda: _sender(headers.get("from", []), headers.get("sender", [])))
    attempt("reply-to", lambda: _reply_to(headers.get("reply-to", [])))
    attempt("to", lambda: {"to": [addr for _, addr in _addresses("to", headers.get("to", []))]})
    attempt("cc", lambda: {"cc": [addr for _, addr in _addresses("cc", headers.get("cc", []))]})
    attempt("subject", lambda: {"subject": _text_header("subject", first.get("subject"))})
    attempt("date", lambda: {"date": _iso_date(first.get("date"))})
    attempt("in-reply-to", lambda: {"in_reply_to": _first_id(first.get("in-reply-to", ""))})
    attempt("references", lambda: {"references": _message_ids(first.get("references", ""))})
    attempt("headers", lambda: {"headers": {name: _text_header(name, first[name])
                                            for name in KEPT_HEADERS if name in first}})
    if not headers_only:
        body = _body_part(msg)
        attempt("body", lambda: _body(body, body_limit))
        attempt("attachments", lambda: {"attachments": _attachments(msg, body, attachment_limit)})
        attempt("calendar", lambda: _calendar(msg))
        attempt("forwarded", lambda: _forwarded(msg, body_limit))
    if problems:
        payload["error"] = "; ".join(problems)
    return _scrub(payload)


def _parse(raw: bytes, headers_only: bool = False) -> Message:
    """A NUL in an RFC 2231 charset name makes the stdlib parser raise; NULs are dropped from
    the payload anyway, so retry without them."""
    try:
        return _PARSER.parsebytes(raw, headersonly=headers_only)
    except ValueError:
        return _PARSER.parsebytes(raw.replace(b"\x00", b""), headersonly=headers_only)


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _header_section_cut(raw: bytes, problems: list[str]) -> bytes:
    """The message with each header field cut to MAX_HEADER_FIELD_BYTES and the fields that
    follow MAX_HEADER_SECTION_BYTES of them left out, when there are such; said so in
    `problems`. What is cut of a field here is cut further, and at an address, by _cut."""
    if not isinstance(raw, bytes) or len(raw) <= MAX_HEADER_FIELD_BYTES:
        return raw  # every message of a usual size
    end = _HEADER_END.search(raw)
    section, rest = (raw[:end.start()], raw[end.start():]) if end else (raw, b"\r\n\r\n")
    fields: list[bytes] = []
    for line in section.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line  # a folded field's next line
        else:
            fields.append(line)
    if len(section) <= MAX_HEADER_SECTION_BYTES and max(map(len, fields)) <= MAX_HEADER_FIELD_BYTES:
        return raw
    kept, size = [], 0
    for field in fields:
        if len(field) > MAX_HEADER_FIELD_BYTES:
            name = field.partition(b":")[0].strip().lower().decode("ascii", "replace")[:100]
            problems.append(f"{name}: {len(field):,} bytes, over {MAX_HEADER_FIELD_BYTES:,}; the rest was not read")
            field = field[:MAX_HEADER_FIELD_BYTES].rstrip(b"\r\n") + b"\r\n"
        if size + len(field) > MAX_HEADER_SECTION_BYTES:
            problems.append(f"headers: {len(section):,} bytes of header fields, over {MAX_HEADER_SECTION_BYTES:,}; "
                            f"{len(fields) - len(kept):,} fields after that were not read")
            break
        kept.append(field)
        size += len(field)
    return b"".join(kept).rstrip(b"\r\n") + rest


_PARSED_HEADERS = frozenset({*ADDRESS_HEADERS, "subject", *KEPT_HEADERS})  # by the standard library's parser


def _cut(name: str, value: str, problems: list[str]) -> str:
    """A header value to what the parser is given of it: an address field at the last address
    that fits, any other at MAX_TEXT_HEADER_CHARS; said so in `problems`."""
    if name not in _PARSED_HEADERS:  # read by a pattern (ids, dates), or not at all
        return value
    limit = MAX_ADDRESS_HEADER_CHARS if name in ADDRESS_HEADERS else MAX_TEXT_HEADER_CHARS
    if len(value) <= limit:
        return value
    if not any(problem.startswith(f"{name}: ") for problem in problems):  # cut as sent already
        problems.append(f"{name}: {len(value):,} characters, over {limit:,}; the rest was not read")
    # at an address, or between words (an encoded word cut in two would be read as it is written)
    cut = value.rfind("," if name in ADDRESS_HEADERS else " ", 0, limit + 1)
    return value[:cut if cut > 0 or name in ADDRESS_HEADERS else limit]


def empty_payload() -> dict[str, Any]:
    return {"message_id": None, "from_email": None, "from_name": None, "reply_to": None, "reply_to_name": None,
            "to": [], "cc": [],
            "subject": None, "date": None, "text": "", "truncated": False, "in_reply_to": None,
            "references": [], "headers": {}, "attachments": []}


def _raw_headers(msg: Message) -> dict[str, list[str]]:
    """Header values as sent, unfolded, with undeclared 8-bit bytes decoded by best guess."""
    found: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        value = str(value).replace("\r", "").replace("\n", "")
        if any("\udc80" <= char <= "\udcff" for char in value):
            value = _decode_bytes(value.encode("utf-8", "surrogateescape"), None)
        found.setdefault(name.strip().lower(), []).append(value)
    return found


def _text_header(name: str, value: str | None) -> str | None:
    """RFC 2047 decoded text, or the value as sent when the header parser gives up."""
    if value is None:
        return None
    try:
        value = str(_HEADER_FACTORY(name, value))
    except Exception:  # the stdlib header parser has raised on crafted input before
        pass
    return undoubled(value.strip()) or None  # '=?iso-8859-1?Q?Bj=C3=B6rn?=': UTF-8 named Latin-1


def _addresses(name: str, values: list[str]) -> list[tuple[str | None, str]]:
    """(display name, address) pairs as written; entries without an "@" are not addresses."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        try:
            pairs += [(a.display_name, a.addr_spec) for a in _HEADER_FACTORY(name, value).addresses]
        except Exception:  # fall back to the lenient legacy parser
            pairs += getaddresses([value])
    return [(display.strip() or None, addr.strip()) for display, addr in pairs if "@" in addr]


def _sender(values: list[str], sender: list[str]) -> dict[str, str | None]:
    """From's first address and name. A From without an address ('From: Anna Berg', a broken
    script) names the writer, and Sender, when it has one, their address; a mail system's
    bounce from a bare 'MAILER-DAEMON' keeps that name, so it is known for a bounce."""
    found = _addresses("from", values)
    if not found and values and (angled := _ANGLED.search(values[0])):
        # 'Anna Berg [Kund AB] <anna@kund.se>': the parsers give up on the brackets; the address is plain
        name = re.sub(r"\s*\[[^\]]*\]", "", values[0][:angled.start()]).strip().strip('"').strip()
        found = [(name or None, angled.group(1))]
    if not found and values:
        bare = values[0].strip()
        system = _BARE_SYSTEM.search(bare)
        if system:
            return {"from_email": system.group(0), "from_name": None}
        behalf = _addresses("sender", sender)
        if behalf and "@" not in bare:
            name = bare.split("<")[0].strip().strip('"').strip() or None
            # the name read as unstructured text: no address parser to take it apart
            return {"from_email": behalf[0][1], "from_name": _text_header("subject", name) if name else behalf[0][0]}
    name, addr = found[0] if found else (None, None)
    return {"from_email": addr, "from_name": _display_name(name, values[0] if values else "")}


def _display_name(parsed: str | None, raw: str) -> str | None:
    """The writer's name as a person reads the header (mailtext.display_name), read back where
    UTF-8 was read as Latin-1 ('=?iso-8859-1?Q?Bj=C3=B6rn?=')."""
    name = display_name(parsed, raw)
    return undoubled(name) if name else name


_ANGLED = re.compile(r"<([^<>@\s]+@[^<>@\s]+)>")
_BARE_SYSTEM = re.compile(r"(?<![\w.@-])(mailer-daemon|postmaster)(?![\w.@-])", re.IGNORECASE)


def _reply_to(values: list[str]) -> dict[str, str | None]:
    """The one address replies go to, when the message names exactly one (a web form's mail,
    sent by the site on a visitor's behalf, names the visitor so)."""
    found = _addresses("reply-to", values)
    name, addr = found[0] if len(found) == 1 else (None, None)
    return {"reply_to": addr, "reply_to_name": _display_name(name, values[0]) if addr else None}


def _message_ids(value: str) -> list[str]:
    """Message ids as "<id@host>", in order, once each; folding whitespace inside one removed."""
    tokens = _ANGLE_ID.findall(value) or re.split(r"[\s,]+", value)
    ids: list[str] = []
    for token in tokens:
        token = "".join(token.split()).strip("<>")
        if token and f"<{token}>" not in ids:
            ids.append(f"<{token}>")
    return ids


def _first_id(value: str) -> str | None:
    ids = _message_ids(value)
    return ids[0] if ids else None


def _iso_date(value: str | None) -> str | None:
    """ISO 8601 with its offset; None when unparsable or when the sender gave no offset."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.isoformat() if when.tzinfo is not None else None


# --- Body and attachments ---------------------------------------------------------------------

def _leaf_parts(part: Message, depth: int = 0) -> Iterator[Message]:
    """Non-multipart parts in order; an attached message is one leaf, not opened."""
    if part.get_content_maintype() == "multipart" and part.is_multipart() and depth < _MAX_DEPTH:
        for sub in part.get_payload():
            yield from _leaf_parts(sub, depth + 1)
    else:
        yield part


def _forwarded(msg: Message, limit: int) -> dict[str, Any]:
    """The first attached message (message/rfc822: a mail forwarded 'as attachment'): its
    sender, subject and text, so the case can be the customer's, not the forwarder's."""
    for part in _leaf_parts(msg):
        if part.get_content_type() != "message/rfc822" or not part.is_multipart():
            continue
        inner = part.get_payload(0)
        headers = _raw_headers(inner)
        sender = _sender(headers.get("from", []), headers.get("sender", []))
        if not sender["from_email"]:
            continue
        return {"forwarded": {**sender, "subject": _text_header("subject", (headers.get("subject") or [None])[0]),
                              "text": _body(_body_part(inner), limit)["text"]}}
    return {}


def _calendar(msg: Message) -> dict[str, Any]:
    """An iCalendar part's METHOD (REQUEST, REPLY, CANCEL...): an invitation's answer is no
    customer's message. Its parameter, else its own METHOD line."""
    for part in _leaf_parts(msg):  # a calendar attached to a person's mail is not what the mail is
        if part.get_content_type() in ("text/calendar", "application/ics") and not part.is_attachment():
            method = part.get_param("method")
            if not isinstance(method, str):
                data = part.get_payload(decode=True) or b""
                found = re.search(rb"^METHOD:([A-Za-z-]+)", data[:4096], re.MULTILINE)
                method = found.group(1).decode() if found else None
            return {"calendar": method.upper()[:20] if method else "UNKNOWN"}
    return {}


def _body_part(msg: Message) -> Message | None:
    """The text/plain body, else the HTML one, else the first inline text-like part."""
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # malformed structure; the walk below is more forgiving
        body = None
    if body is not None:
        return body
    try:
        return next((part for part in _leaf_parts(msg)
                     if part.get_content_maintype() in ("text", "multipart")
                     and part.get_content_type() != "text/calendar"  # its iCalendar source is no text to read
                     and not part.is_attachment()), None)
    except Exception:
        return None


def _body(part: Message | None, limit: int) -> dict[str, Any]:
    if part is None:
        return {"text": "", "truncated": False}
    data = part.get_payload(decode=True)
    text = _decode_bytes(data if isinstance(data, bytes) else b"", _declared_charset(part))
    if part.get_content_type() == "text/html":
        text = _html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_type() == "text/plain" and str(part.get_param("format") or "").lower() == "flowed":
        text = _unflowed(text, str(part.get_param("delsp") or "").lower() == "yes")
    if "-----BEGIN PGP SIGNED MESSAGE-----" in text:
        text = _unarmored(text)
    return {"text": text[:limit], "truncated": len(text) > limit}


def _unarmored(text: str) -> str:
    """Inline PGP's clear-signed text (RFC 4880 7) without its armor: the 'Hash:' header, the
    dash-escaping and the signature block around what was written."""
    found = _CLEARSIGNED.search(text)
    if not found:
        return text
    signed = re.sub(r"^- ", "", found.group(1), flags=re.MULTILINE)
    return text[:found.start()] + signed.strip("\n") + "\n" + text[found.end():]


_CLEARSIGNED = re.compile(r"-----BEGIN PGP SIGNED MESSAGE-----\n(?:[A-Za-z]+: [^\n]*\n)*\n(.*?)\n"
                          r"-----BEGIN PGP SIGNATURE-----\n.*?-----END PGP SIGNATURE-----\n?", re.DOTALL)


def _unflowed(text: str, delsp: bool) -> str:
    """format=flowed (RFC 3676; Apple Mail, Thunderbird): a line ending in a space goes on in
    the next one of the same quote depth; a leading space only protects what follows it."""
    lines: list[str] = []
    joining = False
    depth_of_last = 0
    for line in text.split("\n"):
        quote = len(line) - len(line.lstrip(">"))
        content = line[quote:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        soft = content.endswith(" ") and content != "-- "  # the signature separator stays a line
        if soft and delsp:
            content = content[:-1]
        if joining and quote == depth_of_last and lines:
            lines[-1] += content
        else:
            lines.append((">" * quote + " " if quote else "") + content)
        joining, depth_of_last = soft, quote
    return "\n".join(line.rstrip() if not line.endswith("-- ") else line for line in lines)


def _attachments(msg: Message, body: Message | None, limit: int) -> list[dict[str, Any]]:
    """Declared attachments, named parts and non-text parts other than the body."""
    found = []
    for part in _leaf_parts(msg):
        maintype = part.get_content_maintype()
        if part is body or maintype == "multipart":
            continue
        name = _filename(part)
        if not (part.is_attachment() or name or maintype != "text"):
            continue
        entry: dict[str, Any] = {"name": name, "content_type": part.get_content_type(),
                                 "size": _decoded_size(part)}
        if part.is_attachment():  # attached, not shown in the text (a logo is inline)
            entry["attached"] = True
        if entry["size"] is not None and entry["size"] > limit:
            entry["skipped"] = True
        found.append(entry)
    return found


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename() or None
    except Exception:
        return None


def _decoded_size(part: Message) -> int | None:
    try:
        if part.is_multipart():  # an attached message/rfc822
            return len(part.get_payload(0).as_bytes())
        data = part.get_payload(decode=True)
        return len(data) if isinstance(data, bytes) else 0
    except Exception:
        return None


# --- Text decoding ----------------------------------------------------------------------------

def _declared_charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _decode_bytes(data: bytes, declared: str | None) -> str:
    """Declared charset if it fits, else UTF-8, else a detected one, else cp1252; never raises.

    UTF-8 declared as Latin-1 or Windows-1252 (a web form's script, an old mail library: 'Ã¶'
    for 'ö') is read as UTF-8: text in those charsets is almost never valid UTF-8 by chance."""
    if declared and not data.isascii() and _is_latin(declared):
        try:
            return data.decode("utf-8")
        except ValueError:
            pass
    for charset in (declared, "utf-8"):
        if charset:
            try:
                return data.decode(charset)
            except (LookupError, ValueError):  # unknown charset, or bytes that do not fit it
                pass
    high = sum(byte >= 0x80 for byte in data)
    if _detect_charsets is not None and high > 0.3 * len(data.strip()):
        # Mostly 8-bit bytes: a non-Latin script (Cyrillic, Greek, CJK...); detection knows
        # these. Latin text with a few accented letters is left to the cp1252 prior below,
        # where detection on short text guesses wildly (cp1006 for 'café').
        candidates = [match.encoding for match in _detect_charsets(data)]
        # Short Western European text fits several 8-bit charsets equally well, and detection
        # then picks among them by chance (cp1250 for Swedish 'å'). Where cp1252 is plausible,
        # it is the best prior for mail without a declared charset; elsewhere trust detection.
        western = next((c for c in candidates if c in _WESTERN), None)
        for charset in ([western] if western else []) + candidates[:1]:
            try:
                return data.decode("cp1252" if charset in _WESTERN else charset, errors="replace")
            except (LookupError, ValueError):
                pass
    return data.decode("cp1252", errors="replace")


_WESTERN = {"cp1252", "latin_1", "iso8859_15", "iso8859_1", "windows-1252"}


_WESTERN_CODECS = frozenset(codecs.lookup(name).name for name in _WESTERN)


def _is_latin(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name in _WESTERN_CODECS
    except LookupError:
        return False


def _scrub(value: Any) -> Any:
    """No NULs and no lone surrogates anywhere: both break JSON columns in PostgreSQL."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


class _HtmlText(HTMLParser):
    """Readable text from HTML: tags and script/style dropped, blocks and <br> as line breaks."""

    BREAKS = {"br", "p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "hr", "pre",
              "h1", "h2", "h3", "h4", "h5", "h6"}
    LINE_STARTS = {"br", "li", "tr"}  # a new line before them, none after
    CELLS = {"td", "th"}
    HIDDEN = {"script", "style", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BREAKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BREAKS - self.LINE_STARTS:
            self.chunks.append("\n")
        elif tag in self.CELLS:
            self.chunks.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data.replace("\r", " ").replace("\n", " "))


def _html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # keep what was read before the markup broke the parser
        pass
    lines = [" ".join(line.split()) for line in "".join(parser.chunks).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
