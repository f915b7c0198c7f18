"""What an item becomes: the source's ordered rules (first match wins), then its default record
type, where 'auto' lets the text classifier decide. Pure: the caller says whether the sender is
known and hands over a classifier to call when a rule needs one.

A rule, in ingest.toml (every condition optional; all that are given must hold):

    [[sources.mail.rules]]
    to = ["sales@acme.example"]        # any recipient address (mail)
    mailbox = ["INBOX/Sales"]          # the mailbox or folder it was fetched from
    form = ["contact", "demo"]         # the web form's key
    public = false                     # a public post (true) or a private message (false)
    retweet = true                     # a retweet or share
    sender = "unknown"                 # known: an existing contact or lead has its address/handle
    keywords = ["faktura", "invoice"]  # any of these words or phrases (case and diacritics folded)
    language = "sv"                    # en | sv, as the text reads
    label = "other"                    # the classifier's answer: lead | case | other
    action = "case"                    # lead | case | append | ignore | review | classify
    reason = "..."                     # for ignore and review: recorded with the item
    queue = "Billing"                  # the queue a case or lead is put in
    require_entitlement = true         # case only with a valid entitlement (else review)
    create_contact = true              # an unknown sender of a case gets a contact (default)

Actions: lead and case create (or reach) those records; append adds the item to the sender's
newest active case (a case when there is none); ignore and review record that outcome with the
reason; classify asks the classifier (lead, case, or other = ignored), and an answer less sure
than the source's `min_confidence` goes to review instead of becoming a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from .errors import ConfigError
from .mailtext import own_words
from .matching import fold

ACTIONS = ("lead", "case", "append", "ignore", "review", "classify")
MAX_TEXT = 20_000  # of an item's text, for keywords and the classifier
_LIST_CONDITIONS = ("to", "mailbox", "form", "keywords")
_RULE_KEYS = {*_LIST_CONDITIONS, "public", "retweet", "sender", "language", "label", "action", "reason",
              "queue", "require_entitlement", "create_contact", "name"}


@dataclass(frozen=True)
class Rule:
    action: str
    name: str | None = None
    to: tuple[str, ...] = ()
    mailbox: tuple[str, ...] = ()
    form: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    public: bool | None = None
    retweet: bool | None = None
    sender: str | None = None  # known | unknown
    language: str | None = None
    label: str | None = None
    reason: str | None = None
    queue: str | None = None
    require_entitlement: bool = False
    create_contact: bool = True
    _patterns: tuple[re.Pattern, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "to", tuple(a.strip().lower() for a in self.to))
        object.__setattr__(self, "mailbox", tuple(m.strip().lower() for m in self.mailbox))
        object.__setattr__(self, "form", tuple(f.strip().lower() for f in self.form))
        object.__setattr__(self, "_patterns", tuple(
            re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, fold(k).split())) + r"(?!\w)")
            for k in self.keywords if fold(k)))

    @property
    def needs_label(self) -> bool:
        return self.label is not None


@dataclass(frozen=True)
class Facts:
    """What rules can look at, read from an item once."""

    kind: str
    text: str = ""
    recipients: tuple[str, ...] = ()
    mailbox: str | None = None
    form: str | None = None
    public: bool | None = None
    retweet: bool | None = None
    attachments: tuple[str, ...] = ()  # a mail's attached files (and forwarded messages), by name


@dataclass(frozen=True)
class Route:
    """The decision for one item."""

    action: str  # lead | case | append | ignore | review
    record_type: str | None = None  # lead | case | contact for creating actions
    reason: str | None = None
    rule: str | None = None  # which rule decided ('rule 2' or its name); None: the source default
    queue: str | None = None
    require_entitlement: bool = False
    create_contact: bool = True
    label: str | None = None  # the classifier's answer, when it was asked
    confidence: float | None = None
    evidence: tuple[tuple[str, float], ...] = ()


def facts_of(kind: str, payload: Mapping[str, Any]) -> Facts:
    """The rule-relevant facts of an item's payload."""
    fields = payload.get("fields") if isinstance(payload.get("fields"), Mapping) else {}
    if kind == "email":
        subject = _text(payload.get("subject"))
        text = subject + " " + (own_words(subject, _text(payload.get("text"))) or "")  # not the history it quotes
        forwarded = payload.get("forwarded")
        if isinstance(forwarded, Mapping):  # an attached message's own words: what the mail is about
            text += " " + " ".join(_text(forwarded.get(k)) for k in ("subject", "text"))
    elif kind == "post":
        text = _text(payload.get("text"))
    else:
        text = " ".join(_text(fields.get(k)) for k in ("subject", "topic", "message", "description"))
    recipients: list[str] = []
    for key in ("to", "cc"):  # a list of addresses or one string of them; anything else is no address
        value = payload.get(key) or []
        values = re.split(r"[,;\s]+", value) if isinstance(value, str) else value if isinstance(value, list) else []
        recipients += [v for v in values if isinstance(v, str)]
    recipients = tuple(r.strip().strip("<>").lower()[:320] for r in recipients if r.strip())[:200]
    attachments = tuple(str(a.get("name") or a.get("content_type") or "file")[:200]
                        for a in attached_files(payload))[:50] if kind == "email" else ()
    if kind == "email" and isinstance(payload.get("forwarded"), Mapping) and not attachments:
        attachments = ("a forwarded message",)
    return Facts(kind=kind, text=text.strip(), recipients=recipients, attachments=attachments,
                 mailbox=_lower(payload.get("mailbox") or payload.get("folder")),
                 form=_lower(payload.get("form")),
                 public=_flag(payload.get("public")) if "public" in payload else (
                     not _flag(payload.get("private")) if "private" in payload else None),
                 retweet=_flag(payload.get("retweet")) if "retweet" in payload else (
                     _flag(payload.get("is_retweet")) if "is_retweet" in payload else None))


def attached_files(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A mail's attachments as the mail parser lists them, less decoration: a signature's logo
    or a newsletter's picture (image001.png, 8 kB), unlike a photo of a fault."""
    attached = payload.get("attachments")
    return [a for a in attached if isinstance(a, Mapping) and not (
        str(a.get("content_type") or "").startswith("image/") and not a.get("attached")  # a photo attached counts
        and (not isinstance(a.get("size"), int) or a["size"] < 100_000))] if isinstance(attached, list) else []


def _lower(value: Any) -> str | None:
    """A mailbox or form key to compare: text or a number; anything else is none."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip().lower()[:300] or None


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else str(value)[:MAX_TEXT] if isinstance(value, (int, float)) else ""


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def matches(rule: Rule, facts: Facts, known_sender: bool, language: Callable[[], str],
            label: Callable[[], str]) -> bool:
    if rule.to and not set(rule.to) & set(facts.recipients):
        return False
    if rule.mailbox and facts.mailbox not in rule.mailbox:
        return False
    if rule.form and facts.form not in rule.form:
        return False
    if rule.public is not None and facts.public != rule.public:
        return False
    if rule.retweet is not None and bool(facts.retweet) != rule.retweet:
        return False
    if rule.sender is not None and known_sender != (rule.sender == "known"):
        return False
    if rule._patterns:
        folded = fold(facts.text)
        if not any(p.search(folded) for p in rule._patterns):
            return False
    if rule.language is not None and language() != rule.language:
        return False
    if rule.label is not None and label() != rule.label:
        return False
    return True


def decide(rules: tuple[Rule, ...], default: str, facts: Facts, *, known_sender: bool,
           classify: Callable[[str], Any], min_confidence: float) -> Route:
    """The route of one item: the first rule that matches, else the source's default record
    type ('auto': classify). `classify(text)` returns a prediction (label, confidence,
    language, evidence); it is called at most once, and only when needed."""
    asked: list[Any] = []

    def prediction():
        if not asked:
            asked.append(classify(facts.text))
        return asked[0]

    def language() -> str:
        from crm_ingest.classify.model import language as guess

        return guess(facts.text)

    for number, rule in enumerate(rules, 1):
        if matches(rule, facts, known_sender, language, lambda: prediction().label):
            return _unread_attachments(_act(rule.action, rule.name or f"rule {number}", rule, prediction,
                                            min_confidence), facts)
    if default == "auto":
        return _unread_attachments(_act("classify", None, None, prediction, min_confidence), facts)
    return Route("lead" if default == "lead" else "case" if default == "case" else "contact", default)


def _unread_attachments(route: Route, facts: Facts) -> Route:
    """A mail the classifier would ignore whose matter is in what it attaches ('Fel på fakturan,
    se bifogad', a PDF and no text; a forwarded message): the classifier reads no attachment,
    so a person decides."""
    if route.action != "ignore" or route.label is None or not facts.attachments:
        return route
    named = ", ".join(facts.attachments[:3]) + (", ..." if len(facts.attachments) > 3 else "")
    return replace(route, action="review", reason=f"{route.reason.removesuffix(': not a lead or a case')}; "
                                                   f"but its matter may be in what it attaches ({named}), "
                                                   "which the classifier does not read")


def _act(action: str, name: str | None, rule: Rule | None, prediction: Callable[[], Any],
         min_confidence: float) -> Route:
    options = {"rule": name, "queue": rule.queue if rule else None,
               "require_entitlement": rule.require_entitlement if rule else False,
               "create_contact": rule.create_contact if rule else True}
    if action in ("lead", "case", "append"):
        return Route(action, "lead" if action == "lead" else "case", **options)
    if action in ("ignore", "review"):
        reason = (rule.reason if rule and rule.reason else f"{action} by {name}")
        return Route(action, None, reason=reason, **options)
    guess = prediction()
    said = {"label": guess.label, "confidence": round(guess.confidence, 3), "evidence": guess.evidence}
    words = ", ".join(word for word, _ in guess.evidence[:5])
    why = f"classified as {guess.label} ({guess.confidence:.0%}" + (f"; {words}" if words else "") + ")"
    if guess.confidence < min_confidence:
        ranked = ", ".join(f"{label} {p:.0%}" for label, p in
                           sorted(guess.probabilities.items(), key=lambda item: -item[1]))
        return Route("review", None, reason=f"the classifier is unsure ({ranked}); below "
                                            f"min_confidence {min_confidence:g}", **options, **said)
    if guess.label == "other":
        return Route("ignore", None, reason=why + ": not a lead or a case", **options, **said)
    return Route(guess.label, guess.label, reason=why, **options, **said)


# -- configuration ----------------------------------------------------------------------------------


def rules_from_toml(raw: Any, where: str) -> tuple[Rule, ...]:
    """The [[sources.NAME.rules]] array; errors name the dotted key, rules counted from 0."""
    if not isinstance(raw, list):
        raise ConfigError(where, "must be an array of tables ([[...rules]])")
    return tuple(_rule(item, f"{where}[{i}]") for i, item in enumerate(raw))


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a table")
    for key in raw:
        if key not in _RULE_KEYS:
            raise ConfigError(f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(_RULE_KEYS))}")
    if "action" not in raw:
        raise ConfigError(f"{where}.action", f"required: one of {', '.join(ACTIONS)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key in _LIST_CONDITIONS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
                raise ConfigError(at, "must be a non-empty string or list of strings")
            values[key] = tuple(items)
        elif key in ("public", "retweet", "require_entitlement", "create_contact"):
            if not isinstance(value, bool):
                raise ConfigError(at, "must be true or false")
            values[key] = value
        else:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(at, "must be a non-empty string")
            values[key] = value.strip()
    choices = {"action": ACTIONS, "sender": ("known", "unknown"), "language": ("en", "sv"),
               "label": ("lead", "case", "other")}
    for key, allowed in choices.items():
        if key in values and values[key] not in allowed:
            raise ConfigError(f"{where}.{key}", f"must be one of {', '.join(allowed)}")
    return Rule(**values)
