"""A mail's own words: its writer's name as a person reads it, the message inside a forwarded
mail (who wrote it, its subject and its text), and a reply without the history it quotes.

A colleague forwards a customer's mail to the support address ('Fwd:', 'VB:'); the case is
the customer's. Mail programs write the forwarded message's headers into the body under a
marker line, in their user's language:

    ---------- Forwarded message ---------          (Gmail; 'Vidarebefordrat meddelande')
    Begin forwarded message:                        (Apple Mail, each line quoted with '> ')
    -----Original Message-----                      (Outlook; 'Ursprungligt meddelande')
    ________________________________                (Outlook, then 'Från:'/'From:' lines)

The mail parser reads an attached message (message/rfc822) into `payload["forwarded"]`;
this reads the rest from the text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import getaddresses

_MARKER = re.compile(
    r"^[ \t>]*(?:-{3,}\s*(?:forwarded message|vidarebefordrat meddelande|videresendt (?:melding|besked|meddelelse)"
    r"|weitergeleitete nachricht|message transf[ée]r[ée]|välitetty viesti|original message|ursprungligt meddelande"
    r"|originalmeddelande|ursprüngliche nachricht|message d'origine)\s*-{3,}"
    r"|begin forwarded message:|vidarebefordrat brev:|början på vidarebefordrat brev:|anfang der weitergeleiteten"
    r" nachricht:|_{20,})[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
_HEADER = re.compile(r"^(from|från|von|de|fra|lähettäjä|subject|ämne|betreff|objet|emne|aihe|date|datum|skickat"
                     r"|sent|gesendet|envoyé|sendt|lähetetty|to|till|an|à|til|vastaanottaja|cc|kopia)\s*:\s*(.*)$",
                     re.IGNORECASE)
_FROM = {"from", "från", "von", "de", "fra", "lähettäjä"}
_SUBJECT = {"subject", "ämne", "betreff", "objet", "emne", "aihe"}
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.IGNORECASE)  # Outlook: 'Anna Berg [mailto:anna@x.se]'


@dataclass(frozen=True)
class Forwarded:
    email: str
    name: str | None
    subject: str | None
    text: str  # the forwarded message's own text, under its headers
    note: str  # what the forwarder wrote above it


def forwarded_message(text: str | None, outside_of: str | None = None) -> Forwarded | None:
    """The first forwarded message in a mail's text, when a marker line is followed by a
    header block naming its sender's address; else None. `outside_of`: the first one written
    from outside that domain (a forward of a colleague's forward of a customer's mail)."""
    if not text:
        return None
    for marker in _MARKER.finditer(text[:200_000]):
        found = _read_block(text[marker.end():])
        if found is not None:
            email, name, subject, body = found
            if outside_of and email.rpartition("@")[2].casefold() == outside_of:
                continue
            return Forwarded(email, name, subject, body, text[:marker.start()].strip())
    return None


def _read_block(rest: str) -> tuple[str, str | None, str | None, str] | None:
    lines = rest.lstrip("\r\n").split("\n")
    quoted = bool(lines) and lines[0].lstrip().startswith(">")
    if quoted:  # Apple Mail quotes the whole forwarded message
        lines = [re.sub(r"^\s*> ?", "", line) for line in lines]
    headers: dict[str, str] = {}
    at = 0
    for at, line in enumerate(lines[:30]):
        match = _HEADER.match(line.strip().replace("*", ""))  # Outlook's HTML bolds the names
        if match:
            headers.setdefault(match.group(1).lower(), match.group(2).strip())
        elif line.strip() or not headers:
            if headers:
                break
            if at > 2:
                return None
        else:
            break
    else:
        at = len(lines[:30])
    sender = next((value for key, value in headers.items() if key in _FROM), None)
    if not sender:
        return None
    sender = _MAILTO.sub(r"<\1>", sender)
    pairs = [(name, addr) for name, addr in getaddresses([sender]) if "@" in addr]
    if not pairs:
        return None
    name, email = pairs[0]
    subject = next((value for key, value in headers.items() if key in _SUBJECT), None)
    return email.strip(), display_name(name, sender), subject or None, "\n".join(lines[at:]).strip()


def display_name(parsed: str | None, raw: str) -> str | None:
    """The writer's name as a person reads it in the header, not as the parser splits it:
    adjacent encoded words joined ('=?UTF-8?Q?J=C3=B6rgen_=C3=85?= =?UTF-8?Q?berg?=' is
    'Jörgen Åberg'; the standard library puts a space between), an unquoted 'Berg, Anna'
    whole (the parser takes 'Berg' for a second address), an old 'anna@x.se (Anna Berg)',
    and a group's or a service's 'Anna Berg via Kundforum' and 'Anna Berg | Kund AB' as
    'Anna Berg'."""
    before = raw.split("<", 1)[0].strip() if "<" in raw else ""
    if "=?" in before:
        try:
            parsed = str(make_header(decode_header(before))).strip().strip('"').strip() or parsed
        except Exception:  # noqa: BLE001 - the parser's reading stands
            pass
    elif "," in before and '"' not in before and before.count("@") == 0:
        # 'Berg, Anna' is a name whole; 'Anna Berg, CEO' and 'Anna Berg, Kund AB' a name and more
        parsed = before if " " not in before.partition(",")[0].strip() else before.partition(",")[0]
    if not parsed and (comment := _COMMENT_NAME.search(raw)):
        parsed = comment.group(1)
    if not parsed:
        return None
    name = parsed.strip()
    name = _VIA.sub("", name)
    name = _AFFILIATION.split(name, 1)[0]
    return name.strip().strip("'\"").strip() or None


_COMMENT_NAME = re.compile(r"@[^\s()<>]+\s*\(([^()]{1,200})\)\s*$")  # 'anna@x.se (Anna Berg)'
_VIA = re.compile(r"\s+via\s+\S.*$", re.IGNORECASE)  # "'Anna Berg' via Kundforum", 'Anna via LinkedIn'
_AFFILIATION = re.compile(r"\s+[-|–—]\s+")  # 'Anna Berg | Kund AB', 'Anna Berg - CEO'


# Where a reply's quoted history begins: the line a mail program writes above it. The 'On ...
# wrote:' kinds carry the date ('Den tis 3 dec. 2026 kl 10:12 skrev ...:'): a digit is asked
# for, so a customer's own 'Den fakturan skrev ni fel på:' is not taken for one.
_QUOTE_HEADER = re.compile(
    r"^[ \t]*(?:(?=[^\n]*(?:@|\d{1,2}[:.]\d{2}))(?:on\b.{4,200}?\bwrote:|den\b.{4,200}?\bskrev\b.{0,200}?:"
    r"|am\b.{4,200}?\bschrieb\b.{0,200}?:|le\b.{4,200}?\ba écrit ?:)"
    r"|-{3,}\s*(?:original message|ursprungligt meddelande|originalmeddelande"
    r"|ursprüngliche nachricht|message d'origine)\s*-{3,})[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
# Outlook's header block: 'From:'/'Från:' with 'Sent:'/'Skickat:' within the next lines
_OUTLOOK_BLOCK = re.compile(
    r"^[ \t]*(?:_{20,}[ \t]*\n)?[ \t]*\*?(?:from|från|von|de|fra)\*?:[^\n]*@[^\n]*\n(?:[^\n]*\n){0,3}?[ \t]*\*?"
    r"(?:sent|skickat|gesendet|envoyé|sendt)\*?:", re.IGNORECASE | re.MULTILINE)


def without_history(text: str | None) -> str | None:
    """A reply's new text: cut where the history it quotes begins ('Den tis 3 dec. 2026 kl
    10:12 skrev Anna <...>:', 'On ... wrote:', Outlook's 'Från: ... Skickat:' block, '-----
    Original Message-----'), and without a quoted tail ('> ...' lines to the end). The text
    as it was when nothing new would be left (a mail that only quotes)."""
    if not text:
        return text
    header, block = _QUOTE_HEADER.search(text), _OUTLOOK_BLOCK.search(text)
    cut = min((found.start() for found in (header, block) if found), default=len(text))
    if header is not None and header.start() == cut and _answered_inline(text[header.end():]):
        return text  # answers written between the quoted lines: the whole is the writer's
    new = text[:cut]
    lines = new.rstrip().split("\n")
    while lines and (lines[-1].lstrip().startswith(">") or not lines[-1].strip()):
        lines.pop()
    new = "\n".join(lines).strip()
    return new if new else text


def _answered_inline(quoted: str) -> bool:
    """Whether the text under a quote header holds the writer's own lines between '>' lines
    (an inline reply: '> Which model?' / 'The X1.'), not only the history and a signature."""
    lines = [line for line in quoted.strip("\n").split("\n") if line.strip()]
    quoted_at = [at for at, line in enumerate(lines) if line.lstrip().startswith(">")]
    if not quoted_at:
        return False
    return any(not line.lstrip().startswith(">") for line in lines[quoted_at[0]:quoted_at[-1]])


_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|vb|wg|tr|doorst|enc|vl|rv|i)\s*:", re.IGNORECASE)


def is_forward_subject(subject: object) -> bool:
    """A forward's subject ('Fwd:', 'VB:', 'WG:', ...); 'Re: Fwd:' is a reply."""
    return isinstance(subject, str) and _FORWARD_SUBJECT.match(subject) is not None


def own_words(subject: str | None, text: str | None) -> str | None:
    """What the writer of a mail wrote: a reply without its quoted history; a forward ('Fwd:',
    'VB:', 'WG:') whole, since what it forwards is the matter."""
    return text if is_forward_subject(subject) else without_history(text)
