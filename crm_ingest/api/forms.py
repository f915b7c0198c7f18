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
    mx_check = false                    # true: refuse an address whose domain takes no mail (api/mx.py)

The timestamp is `<unix seconds>.<HMAC-SHA256(secret, form key + seconds)>`, the secret from
the environment variable named by `[api] form_secret_env`, so a bot cannot forge an old one.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import time

from crm_ingest.ingest.endpoints import FIELD_LABELS, MAX_FIELD_CHARS, MESSAGES, FormConfig

UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


# -- the signed timestamp ---------------------------------------------------------------------------

def stamp(form: str, secret: str, now: float | None = None) -> str:
    seconds = int(time.time() if now is None else now)
    return f"{seconds}.{_signature(form, seconds, secret)}"


def stamp_age(form: str, value: str | None, secret: str, now: float | None = None) -> float | None:
    """Seconds since the form was generated, or None when the stamp is missing or forged.

    No upper bound: a page that embeds `ingest form-html`'s output keeps the stamp it was
    generated with for as long as the page is up, and a person's post from it weeks later must
    not be refused (a bot's replay of a stamp meets the honeypot, origin and rate limits)."""
    if not value or "." not in value:
        return None
    seconds, _, signature = value.partition(".")
    if not seconds.isdigit() or not hmac.compare_digest(signature, _signature(form, int(seconds), secret)):
        return None
    age = (time.time() if now is None else now) - int(seconds)
    return age if age >= -60 else None


def _signature(form: str, seconds: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{form}:{seconds}".encode(), hashlib.sha256).hexdigest()[:32]


# -- the embeddable form ----------------------------------------------------------------------------

def form_html(form: FormConfig, action: str, secret: str) -> str:
    """An HTML form for the configured form: labels, required attributes, the honeypot (hidden
    from people, not from bots), the signed timestamp, and hidden UTM fields that a few lines of
    script fill from the address of the page the form is embedded in (a campaign link's
    utm_source=... lands with the lead; without script the form still works, without them)."""
    e = html.escape
    words = form.language if form.language in MESSAGES else "en"
    form_id = f"crm-form-{form.key}"
    rows = []
    for name, target in form.fields.items():
        label = form.labels.get(name) or FIELD_LABELS[words].get(target) or name.replace("_", " ").capitalize()
        kind = "email" if target == "email" else "tel" if target in ("phone", "mobile_phone") else "text"
        required = " required" if name in form.required else ""
        control = (f'<textarea id="f-{e(name)}" name="{e(name)}"{required} maxlength="{MAX_FIELD_CHARS}"></textarea>'
                   if target == "message" else
                   f'<input id="f-{e(name)}" name="{e(name)}" type="{kind}"{required} maxlength="300">')
        rows.append(f'  <p><label for="f-{e(name)}">{e(label)}</label><br>{control}</p>')
    honeypot = (f'  <p style="position:absolute;left:-10000px" aria-hidden="true"><label>{e(MESSAGES[words]["leave_empty"])}'
                f'<input name="{e(form.honeypot)}" tabindex="-1" autocomplete="off"></label></p>')
    utm = "".join(f'<input type="hidden" name="{k}">' for k in UTM)
    names = ",".join(f'"{k}"' for k in UTM)
    script = (f'<script>(function(){{var f=document.getElementById("{form_id}"),'
              f'q=new URLSearchParams(window.location.search);[{names}].forEach(function(k){{'
              f'var v=q.get(k);if(v)f.elements[k].value=v.slice(0,200);}});}})();</script>')
    send = MESSAGES[words]["send"]
    return "\n".join([f'<form id="{e(form_id)}" method="post" action="{e(action)}" accept-charset="utf-8">', *rows,
                      honeypot, f'  <input type="hidden" name="_ts" value="{e(stamp(form.key, secret))}">{utm}',
                      f'  <p><button type="submit">{send}</button></p>', "</form>", script])
