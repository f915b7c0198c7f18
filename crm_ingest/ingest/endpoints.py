"""What the doors of the system are configured with: a mailbox to poll (IMAP), web forms and
the HTTP API. Plain, checked data read from ingest.toml by `settings`; the connectors and the
API use it. The config dataclasses of the doors live here so that the core never imports an edge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError


@dataclass(frozen=True)
class ImapConfig:
    host: str
    user: str
    password_env: str  # the environment variable holding the password (never the password)
    port: int | None = None  # default: 993 with tls = "ssl", else 143
    tls: str = "ssl"  # ssl | starttls | none
    folder: str = "INBOX"
    poll_seconds: float = 60.0
    after: str = "seen"  # seen | move | none
    move_to: str | None = None  # for after = "move"
    timeout_seconds: float = 30.0

    def check(self, where: str) -> None:
        if self.tls not in ("ssl", "starttls", "none"):
            raise ConfigError(f"{where}.tls", "must be one of ssl, starttls, none")
        if self.after not in ("seen", "move", "none"):
            raise ConfigError(f"{where}.after", "must be one of seen, move, none")
        if self.after == "move" and not self.move_to:
            raise ConfigError(f"{where}.move_to", "is required with after = \"move\"")
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"{where}.port", "must be a TCP port (1-65535)")
        if not self.poll_seconds > 0 or not self.timeout_seconds > 0:
            raise ConfigError(f"{where}.poll_seconds", "poll_seconds and timeout_seconds must be greater than zero")


@dataclass(frozen=True)
class TwitterConfig:
    """A Twitter/X poll (tweepy, API v2): the mentions of one account, or one saved recent-search
    query. One per source, so each has its own interval and its own since_id checkpoint."""

    bearer_token_env: str = "TWITTER_BEARER_TOKEN"  # the environment variable holding the token
    mentions_of: str | None = None  # a user id: poll its mentions
    search: str | None = None  # or a recent-search query
    own_user_id: str | None = None  # retweets of this account's posts are ignored (default: mentions_of)
    include_own_retweets: bool = False
    poll_seconds: float = 60.0
    max_results: int = 100  # per page (5-100; 10-100 for search)
    max_pages: int = 10  # per poll; the rest waits for the next poll (the cursor keeps the place)
    timeout_seconds: float = 30.0

    def check(self, where: str) -> None:
        if (self.mentions_of is None) == (self.search is None):
            raise ConfigError(where, "set exactly one of mentions_of (a user id) and search (a query)")
        if self.mentions_of is not None and not self.mentions_of.isdigit():
            raise ConfigError(f"{where}.mentions_of", "must be the account's numeric user id")
        if not 5 <= self.max_results <= 100:
            raise ConfigError(f"{where}.max_results", "must be between 5 and 100")
        if not self.poll_seconds > 0 or not self.timeout_seconds > 0 or self.max_pages < 1:
            raise ConfigError(f"{where}.poll_seconds", "poll_seconds, timeout_seconds and max_pages must be positive")

    @property
    def own_account(self) -> str | None:
        return self.own_user_id or self.mentions_of


@dataclass(frozen=True)
class FacebookConfig:
    """A Facebook poll through facebook-sdk's GraphAPI.request with an explicit Graph API version
    (the library itself only knows versions up to 3.1): a Page's feed (posts and comments), or
    the leads of Lead Ads forms (and single leads the webhook announced)."""

    access_token_env: str = "FACEBOOK_PAGE_TOKEN"  # the environment variable holding the Page token
    page_id: str | None = None  # poll this Page's feed
    form_ids: tuple[str, ...] = ()  # or these Lead Ads forms' leads
    graph_version: str = "v22.0"

    def field_map_for(self, form_id: str | None) -> dict[str, str]:
        """The questions of this form -> lead fields: the source's map, then the form's own."""
        return {**self.field_map, **self.form_field_maps.get(str(form_id or ""), {})}

    field_map: Mapping[str, str] = field(default_factory=dict)  # field_data name -> lead field, every form
    form_field_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # form id -> its own map
    poll_seconds: float = 300.0
    page_size: int = 50
    max_pages: int = 10  # per poll; newest first, then the backlog with what is left
    timeout_seconds: float = 30.0
    check_token_expiry: bool = True  # ask debug_token (once a day) when the token expires

    def check(self, where: str) -> None:
        if (self.page_id is None) == (not self.form_ids):
            raise ConfigError(where, "set exactly one of page_id (a Page's feed) and form_ids (Lead Ads forms)")
        if not re.fullmatch(r"v\d{1,2}\.\d", self.graph_version):
            raise ConfigError(f"{where}.graph_version", "must look like v22.0")
        for key, mapping in [("field_map", self.field_map),
                             *((f"form_field_maps.{form}", m) for form, m in self.form_field_maps.items())]:
            bad = [v for v in mapping.values() if v not in FIELD_TARGETS]
            if bad:
                raise ConfigError(f"{where}.{key}", f"{bad[0]!r} is not a field; expected one of {', '.join(FIELD_TARGETS)}")
        if any(not form.isdigit() for form in self.form_field_maps):
            raise ConfigError(f"{where}.form_field_maps", "is keyed by the Lead Ads form's numeric id")
        if not self.poll_seconds > 0 or not self.timeout_seconds > 0 or not 1 <= self.page_size <= 100 \
                or self.max_pages < 1:
            raise ConfigError(f"{where}.poll_seconds",
                              "poll_seconds, timeout_seconds, max_pages must be positive; page_size 1-100")


FIELD_TARGETS = ("email", "phone", "mobile_phone", "first_name", "last_name", "full_name", "company", "job_title",
                 "subject", "message", "twitter", "facebook", "lead_source")
MESSAGES = {
    "en": {"required": "is required", "email": "is not a valid email address", "too_long": "is too long",
           "not_text": "must be text",
           "too_many": "Too many messages from your address just now: please try again in {seconds} seconds.",
           "no_mail": "is an address whose domain does not receive email", "title": "Please check the form",
           "back": "Back to the form", "send": "Send", "leave_empty": "Leave this empty"},
    "sv": {"required": "måste fyllas i", "email": "är inte en giltig e-postadress", "too_long": "är för långt",
           "not_text": "måste vara text",
           "too_many": "För många meddelanden från din adress just nu: försök igen om {seconds} sekunder.",
           "no_mail": "är en adress vars domän inte tar emot e-post", "title": "Kontrollera formuläret",
           "back": "Tillbaka till formuläret", "send": "Skicka", "leave_empty": "Lämna tomt"},
}
# A form field's label when the configuration gives none, by what it holds, in the form's language
FIELD_LABELS = {
    "en": {"email": "Email", "phone": "Phone", "mobile_phone": "Mobile", "first_name": "First name",
           "last_name": "Last name", "full_name": "Name", "company": "Company", "job_title": "Job title",
           "subject": "Subject", "message": "Message", "twitter": "X (Twitter)", "facebook": "Facebook",
           "lead_source": "How did you hear of us?"},
    "sv": {"email": "E-post", "phone": "Telefon", "mobile_phone": "Mobil", "first_name": "Förnamn",
           "last_name": "Efternamn", "full_name": "Namn", "company": "Företag", "job_title": "Titel",
           "subject": "Ämne", "message": "Meddelande", "twitter": "X (Twitter)", "facebook": "Facebook",
           "lead_source": "Hur hörde du talas om oss?"},
}
MAX_FIELD_CHARS = 10_000
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class FormConfig:
    key: str
    source: str = "web"
    fields: Mapping[str, str] = field(default_factory=lambda: {"email": "email", "name": "full_name",
                                                               "phone": "phone", "company": "company",
                                                               "message": "message"})
    required: tuple[str, ...] = ("email",)
    labels: Mapping[str, str] = field(default_factory=dict)
    campaign: str | None = None
    allowed_origins: tuple[str, ...] = ()
    thank_you_url: str | None = None
    language: str = "en"
    min_fill_seconds: float = 3.0
    honeypot: str = "website"
    rate_per_minute: int = 60
    daily_cap: int = 5000
    mx_check: bool = False  # refuse an email whose domain does not accept mail (a DNS lookup)


@dataclass(frozen=True)
class ApiConfig:
    tokens_env: str = "INGEST_API_TOKENS"  # comma-separated bearer tokens
    form_secret_env: str = "INGEST_FORM_SECRET"
    max_body_bytes: int = 64 * 1024
    rate_per_ip_per_minute: int = 10
    daily_cap_per_ip: int = 100
    logins_per_ip_per_minute: int = 10  # POST /ops/login attempts, right or wrong; and wrong bearer tokens
    logins_per_ip_per_day: int = 200
    max_import_bytes: int = 1 << 30  # POST /imports: the file, streamed to import_dir
    imports_per_ip_per_hour: int = 60
    import_dir: str | None = None  # where uploads wait until landed; default <temp>/crm-ingest-imports
    facebook_verify_token_env: str = "FACEBOOK_VERIFY_TOKEN"  # the webhook handshake's token
    facebook_app_secret_env: str = "FACEBOOK_APP_SECRET"  # checks X-Hub-Signature-256
    dns_servers: tuple[str, ...] = ()  # for forms' mx_check: "host" or "host:port"; default the system's
    dns_timeout_seconds: float = 3.0  # a lookup that takes longer accepts the address


def forms_from_toml(raw: Mapping[str, Any], sources: Mapping[str, Any]) -> dict[str, FormConfig]:
    forms = {}
    for key, table in raw.items():
        where = f"forms.{key}"
        if not FORM_KEY.fullmatch(key):  # it is part of URLs and of the generated page's script
            raise ConfigError(where, "a form's key is letters, digits, - and _ (at most 64)")
        if not isinstance(table, Mapping):
            raise ConfigError(where, "must be a table")
        allowed = {f for f in FormConfig.__dataclass_fields__} - {"key"}
        for name in table:
            if name not in allowed:
                raise ConfigError(f"{where}.{name}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
        values: dict[str, Any] = {"key": key}
        for name, value in table.items():
            at = f"{where}.{name}"
            if name in ("fields", "labels"):
                if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                            for k, v in value.items()):
                    raise ConfigError(at, "must be a table of strings")
                if name == "fields":
                    bad = [v for v in value.values() if v not in FIELD_TARGETS]
                    if bad:
                        raise ConfigError(at, f"{bad[0]!r} is not a field; expected one of {', '.join(FIELD_TARGETS)}")
                values[name] = dict(value)
            elif name in ("required", "allowed_origins"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(at, "must be a list of strings")
                values[name] = tuple(v.rstrip("/") if name == "allowed_origins" else v for v in value)
            elif name == "mx_check":
                if not isinstance(value, bool):
                    raise ConfigError(at, "must be true or false")
                values[name] = value
            elif name in ("min_fill_seconds",):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ConfigError(at, "must be a number, zero or more")
                values[name] = float(value)
            elif name in ("rate_per_minute", "daily_cap"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(at, "must be a whole number, one or more")
                values[name] = value
            else:
                if not isinstance(value, str) or not value.strip():
                    raise ConfigError(at, "must be a non-empty string")
                values[name] = value.strip()
        form = FormConfig(**values)
        if form.language not in MESSAGES:
            raise ConfigError(f"{where}.language", f"must be one of {', '.join(MESSAGES)}")
        if form.source not in sources or sources[form.source].kind != "form":
            raise ConfigError(f"{where}.source", f"{form.source!r} is not a source of kind form")
        missing = [name for name in form.required if name not in form.fields]
        if missing:
            raise ConfigError(f"{where}.required", f"{missing[0]!r} is not one of the form's fields")
        if form.honeypot in form.fields:
            raise ConfigError(f"{where}.honeypot", "must not be one of the form's fields")
        forms[key] = form
    return forms


def api_from_toml(raw: Mapping[str, Any]) -> ApiConfig:
    defaults = ApiConfig()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        at = f"api.{name}"
        if name not in ApiConfig.__dataclass_fields__:
            raise ConfigError(at, f"unknown key; expected one of {', '.join(sorted(ApiConfig.__dataclass_fields__))}")
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(at, "must be a list of strings")
            value = tuple(v.strip() for v in value)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(at, "must be a number greater than zero")
            value = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(at, "must be a whole number, one or more")
        elif not isinstance(value, str) or not value.strip():
            raise ConfigError(at, "must be a non-empty string")
        values[name] = value
    return ApiConfig(**values)
