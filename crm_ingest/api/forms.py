"""Web forms: configuration, the signed timestamp of a generated form, validation of a
submission, and the embeddable HTML (`ingest form-html KEY`).

A form in ingest.toml:

    [forms.contact]
    source = "web"                      # whose items the submissions are (kind form)
    fields = { email = "email", name = "full_name", company = "company", message = "message" }
    required = ["email"]                # form field names
    labels = { email = "E-post", name = "Namn" }
    campaign = "Spring 2026"
    allowed_origins = ["https://www.acme.example"]
    thank_you_url = "https://www.acme.example/tack"
    language = "sv"                     # en | sv: the language of 422 messages
    min_fill_seconds = 3                # faster than this from the form's timestamp: a bot
    honeypot = "website"                # a hidden field people leave empty
    rate_per_minute = 60                # per form; and per IP below, from [api]
    daily_cap = 5000

The timestamp is `<unix seconds>.<HMAC-SHA256(secret, form key + seconds)>`, the secret from
the environment variable named by `[api] form_secret_env`, so a bot cannot forge an old one.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from crm_ingest.ingest.errors import ConfigError

FIELD_TARGETS = ("email", "phone", "first_name", "last_name", "full_name", "company", "job_title",
                 "subject", "message", "twitter", "facebook", "lead_source")
MESSAGES = {
    "en": {"required": "is required", "email": "is not a valid email address", "too_long": "is too long"},
    "sv": {"required": "måste fyllas i", "email": "är inte en giltig e-postadress", "too_long": "är för långt"},
}
MAX_FIELD_CHARS = 10_000
TIMESTAMP_MAX_AGE = 24 * 3600


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


@dataclass(frozen=True)
class ApiConfig:
    tokens_env: str = "INGEST_API_TOKENS"  # comma-separated bearer tokens
    form_secret_env: str = "INGEST_FORM_SECRET"
    max_body_bytes: int = 64 * 1024
    rate_per_ip_per_minute: int = 10
    daily_cap_per_ip: int = 100
    facebook_verify_token_env: str = "FACEBOOK_VERIFY_TOKEN"  # the webhook handshake's token
    facebook_app_secret_env: str = "FACEBOOK_APP_SECRET"  # checks X-Hub-Signature-256


def forms_from_toml(raw: Mapping[str, Any], sources: Mapping[str, Any]) -> dict[str, FormConfig]:
    forms = {}
    for key, table in raw.items():
        where = f"forms.{key}"
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
        if isinstance(getattr(defaults, name), int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(at, "must be a whole number, one or more")
        elif not isinstance(value, str) or not value.strip():
            raise ConfigError(at, "must be a non-empty string")
        values[name] = value
    return ApiConfig(**values)


# -- the signed timestamp ---------------------------------------------------------------------------

def stamp(form: str, secret: str, now: float | None = None) -> str:
    seconds = int(time.time() if now is None else now)
    return f"{seconds}.{_signature(form, seconds, secret)}"


def stamp_age(form: str, value: str | None, secret: str, now: float | None = None) -> float | None:
    """Seconds since the form was generated, or None when the stamp is missing, forged or old."""
    if not value or "." not in value:
        return None
    seconds, _, signature = value.partition(".")
    if not seconds.isdigit() or not hmac.compare_digest(signature, _signature(form, int(seconds), secret)):
        return None
    age = (time.time() if now is None else now) - int(seconds)
    return age if -60 <= age <= TIMESTAMP_MAX_AGE else None


def _signature(form: str, seconds: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{form}:{seconds}".encode(), hashlib.sha256).hexdigest()[:32]


# -- the embeddable form ----------------------------------------------------------------------------

def form_html(form: FormConfig, action: str, secret: str) -> str:
    """An HTML form for the configured form: labels, required attributes, the honeypot (hidden
    from people, not from bots) and the signed timestamp."""
    e = html.escape
    rows = []
    for name, target in form.fields.items():
        label = form.labels.get(name, name.replace("_", " ").capitalize())
        kind = "email" if target == "email" else "tel" if target == "phone" else "text"
        required = " required" if name in form.required else ""
        control = (f'<textarea id="f-{e(name)}" name="{e(name)}"{required} maxlength="{MAX_FIELD_CHARS}"></textarea>'
                   if target == "message" else
                   f'<input id="f-{e(name)}" name="{e(name)}" type="{kind}"{required} maxlength="300">')
        rows.append(f'  <p><label for="f-{e(name)}">{e(label)}</label><br>{control}</p>')
    honeypot = (f'  <p style="position:absolute;left:-10000px" aria-hidden="true"><label>Leave this empty'
                f'<input name="{e(form.honeypot)}" tabindex="-1" autocomplete="off"></label></p>')
    send = "Skicka" if form.language == "sv" else "Send"
    return "\n".join([f'<form method="post" action="{e(action)}" accept-charset="utf-8">', *rows, honeypot,
                      f'  <input type="hidden" name="_ts" value="{e(stamp(form.key, secret))}">',
                      f'  <p><button type="submit">{send}</button></p>', "</form>"])
