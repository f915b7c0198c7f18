"""The public front door: `POST /forms/{key}` (urlencoded, multipart or JSON), and, behind a
bearer token, `GET /items/{id}`.

A genuine submission is landed, committed, then queued (or processed, embedded) before the
answer: 303 to the form's thank-you page for a browser post, 202 with the item id for JSON.
Missing or invalid fields: 422 naming each field, in the form's language. Before anything is
read: the body size limit (413), the origin of a browser post (403), and per-IP and per-form
rate limits and daily caps (429 with Retry-After). A filled honeypot, a missing or forged
timestamp or a form sent faster than `min_fill_seconds` is refused without telling the bot:
it gets the same answer as a person, and nothing is stored but a count.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import uuid
from datetime import datetime, timezone
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from sqlalchemy import select

from crm_ingest.ingest.errors import InvalidItem
from crm_ingest.ingest.normalize import normalize_email
from crm_ingest.models import IntakeCount, RawItem
from crm_ingest.models.landing import NewItem, land_items
from crm_ingest.runtime import runtime

from crm_ingest.ingest.endpoints import MAX_FIELD_CHARS, MESSAGES, ApiConfig, FormConfig

from .auth import require_token
from .forms import UTM, stamp_age
from .limits import Counter, MemoryCounter, RedisCounter, over_limit
from .mx import receives_mail
from .params import Id

router = APIRouter()
_counter: Counter | None = None
BROWSER_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def counter() -> Counter:
    global _counter
    if _counter is None:
        url = runtime().settings.redis_url
        _counter = RedisCounter(url) if url else MemoryCounter()
    return _counter


@router.post("/forms/{key}", summary="Submit a web form (public)", status_code=202)
async def submit(key: str, request: Request) -> Response:
    rt = runtime()
    form: FormConfig | None = rt.settings.forms.get(key)
    if form is None:
        raise HTTPException(404, f"no form {key!r}")
    api = rt.settings.api
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > api.max_body_bytes:
        await run_in_threadpool(_count, key, "refused: too large")
        raise HTTPException(413, f"the body is over {api.max_body_bytes} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    browser = content_type in BROWSER_TYPES
    if browser and not _origin_allowed(form, request):
        await run_in_threadpool(_count, key, "refused: origin")
        raise HTTPException(403, "this form does not accept posts from that site")
    ip = request.client.host if request.client else "unknown"
    wait = await run_in_threadpool(over_limit, counter(), [(f"ip:{ip}", api.rate_per_ip_per_minute, 60),
                                  (f"ip-day:{ip}", api.daily_cap_per_ip, 86400),
                                  (f"form:{key}", form.rate_per_minute, 60),
                                  (f"form-day:{key}", form.daily_cap, 86400)])
    if wait is not None:
        await run_in_threadpool(_count, key, "refused: rate limit")
        if browser:  # a person's browser shows a page, not JSON
            words = MESSAGES[form.language]
            return HTMLResponse(f'<!doctype html><html lang="{html.escape(form.language)}"><meta charset="utf-8">'
                                f"<p>{html.escape(words['too_many'].format(seconds=wait))}</p></html>",
                                status_code=429, headers={"Retry-After": str(wait)})
        return JSONResponse({"detail": "too many submissions; try again later"}, status_code=429,
                            headers={"Retry-After": str(wait)})
    body = await _read(request, api.max_body_bytes)
    if body is None:
        await run_in_threadpool(_count, key, "refused: too large")
        raise HTTPException(413, f"the body is over {api.max_body_bytes} bytes")
    values = await _values(request, content_type, body)
    if values is None:
        raise HTTPException(400, "the body is not a form or a JSON object")

    secret = rt.settings.secrets.get(api.form_secret_env, "")
    refusal = _bot(form, values, browser, secret)
    if refusal:
        await run_in_threadpool(_count, key, f"refused: {refusal}")
        if refusal == "no timestamp" and key not in _UNSTAMPED_SAID:
            _UNSTAMPED_SAID.add(key)  # once a form per process: a bot's posts must not flood the log
            log.warning("form %s: a browser post without the _ts field was refused (counted as 'refused: no "
                        "timestamp'); a page not made by `ingest form-html` has none: generate it, or set "
                        "min_fill_seconds = 0 for this form", key)
        return _accepted(form, browser, None)  # the same answer a person gets: nothing to learn
    errors = await run_in_threadpool(_errors, form, values, api) if form.mx_check else _errors(form, values, api)
    if errors:
        await run_in_threadpool(_count, key, "invalid")
        if browser:
            return HTMLResponse(_invalid_page(form, errors, values), status_code=422)
        return JSONResponse({"detail": "some fields are missing or invalid", "errors": errors}, status_code=422)

    fields = {target: values[name].strip()[:MAX_FIELD_CHARS] for name, target in form.fields.items()
              if isinstance(values.get(name), str) and values[name].strip()}
    utm = {k: str(values.get(k) or request.query_params.get(k))[:200] for k in UTM
           if values.get(k) or request.query_params.get(k)}
    payload = {"form": key, "fields": fields, "utm": utm or None, "campaign": form.campaign,
               "submitted_at": datetime.now(timezone.utc).isoformat(),
               "page": (request.headers.get("referer") or "")[:500] or None}
    ids = await run_in_threadpool(_land, form, key, _external_id(key, values), payload)
    return _accepted(form, browser, ids[0] if ids else None)


def _land(form: FormConfig, key: str, external_id: str, payload: dict[str, Any]) -> list[int]:
    """Land the submission (committed before the answer), count it, and queue it."""
    from crm_ingest.workers.dispatch import dispatch_landed

    rt = runtime()
    with rt.sessions.begin() as session:  # the submission and its count: one commit
        ids = land_items(session, form.source, [NewItem(external_id, "form", payload)])
        if not ids:  # the same generated form sent twice (a double click): landed once
            ids = list(session.scalars(select(RawItem.id).where(  # the unique index's own terms
                RawItem.source == form.source, RawItem.external_id == external_id,
                RawItem.import_job_id.is_(None))))
        _count_in(session, key, "landed")
    dispatch_landed(rt.sessions, ids, rt.settings)
    return ids


@router.get("/items/{item_id}", summary="Where did this item go (token)")
def item(item_id: Id, request: Request) -> dict[str, Any]:
    require_token(request)
    with runtime().sessions() as session:
        row = session.get(RawItem, item_id)
        if row is None:
            raise HTTPException(404, f"no item {item_id}")
        return {"id": row.id, "source": row.source, "kind": row.kind, "received_at": row.received_at,
                "state": row.state, "outcome": row.outcome, "reason": row.outcome_reason,
                "record_type": row.record_type, "record_label": runtime().settings.label(row.record_type) or None,
                "record_id": row.record_id, "finished_at": row.finished_at}




def _origin_allowed(form: FormConfig, request: Request) -> bool:
    if not form.allowed_origins:
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        referer = request.headers.get("referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.rstrip("/") in form.allowed_origins


async def _read(request: Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _values(request: Request, content_type: str, body: bytes) -> dict[str, Any] | None:
    if content_type == "application/json":
        data = _json_object(body or b"{}")
        if data is None:
            return None
        return {k: v if isinstance(v, str) else _json_text(v) for k, v in data.items()}
    if content_type == "application/x-www-form-urlencoded":
        try:  # a browser percent-escapes every byte; a script may send raw UTF-8, an old page raw Latin-1
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("cp1252", "replace")
        try:
            try:
                pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=200, errors="strict")
            except UnicodeDecodeError:  # a page in Windows-1252 (a form without accept-charset) posts so
                pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=200, encoding="cp1252",
                                  errors="replace")
        except ValueError:
            return None
        return dict(pairs)
    if content_type == "multipart/form-data":
        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            parsed = await Request(request.scope, replay).form(max_files=0, max_fields=200)
        except Exception:  # noqa: BLE001 - a malformed multipart body is a bad request, not a crash
            return None
        return {k: v for k, v in parsed.items() if isinstance(v, str)}
    return None


class NotText(str):
    """A JSON value a form field cannot hold (an object, a list): named in the 422."""


def _json_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None if value is None else NotText("")


def _json_object(body: bytes) -> dict[str, Any] | None:
    """A JSON object, or None: orjson refuses what is not JSON (NaN, Infinity, 1e999) and text
    that is not Unicode (a lone surrogate, '\\ud800', that no database or JSON writer takes)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:  # nested past its depth limit too
        return None
    return data if isinstance(data, dict) else None


log = logging.getLogger(__name__)
_UNSTAMPED_SAID: set[str] = set()  # forms whose unstamped posts were logged


def _bot(form: FormConfig, values: dict[str, Any], browser: bool, secret: str) -> str | None:
    honeypot = values.get(form.honeypot)
    if isinstance(honeypot, str) and (honeypot.strip() or isinstance(honeypot, NotText)):
        return "honeypot"
    if browser and form.min_fill_seconds > 0 and secret:  # without the secret no stamp can be told (see app's start)
        if not values.get("_ts"):
            return "no timestamp"
        age = stamp_age(form.key, values.get("_ts"), secret)
        if age is None:
            return "no valid timestamp"
        if age < form.min_fill_seconds:
            return "sent too fast"
    return None


def _errors(form: FormConfig, values: dict[str, Any], api: ApiConfig) -> list[dict[str, str]]:
    """Each missing or invalid field, named, in the form's language (the MX check, when the form
    asks for it, is a DNS lookup: the caller runs this in a thread then)."""
    words = MESSAGES[form.language]
    errors = []
    for name, target in form.fields.items():
        value = values.get(name)
        label = form.labels.get(name, name)
        if isinstance(value, NotText):
            errors.append({"field": name, "message": f"{label} {words['not_text']}"})
        elif name in form.required and not (isinstance(value, str) and value.strip()):
            errors.append({"field": name, "message": f"{label} {words['required']}"})
        elif isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            errors.append({"field": name, "message": f"{label} {words['too_long']}"})
        elif target == "email" and isinstance(value, str) and value.strip():
            try:
                address, _ = normalize_email(value, name)
            except InvalidItem:
                errors.append({"field": name, "message": f"{label} {words['email']}"})
                continue
            if form.mx_check and not receives_mail(address, api):
                errors.append({"field": name, "message": f"{label} {words['no_mail']}"})
    return errors


def _invalid_page(form: FormConfig, errors: list[dict[str, str]], values: dict[str, Any]) -> str:
    """A person's browser gets a page, not JSON: what to fix, each value they gave shown back as
    text (escaped), and a way back to the form with what they typed still in it."""
    e = html.escape
    words = MESSAGES[form.language]
    items = []
    for error in errors:
        given = values.get(error["field"])
        shown = f": <q>{e(given[:200])}</q>" if isinstance(given, str) and given.strip() else ""
        items.append(f"<li>{e(error['message'])}{shown}</li>")
    return (f'<!doctype html><html lang="{e(form.language)}"><meta charset="utf-8">'
            f"<title>{e(words['title'])}</title><h1>{e(words['title'])}</h1><ul>{''.join(items)}</ul>"
            f'<p><a href="javascript:history.back()">{e(words["back"])}</a></p></html>')


def _external_id(key: str, values: dict[str, Any]) -> str:
    """A browser form's submission: its stamp and fields (a double click lands once); else new."""
    if values.get("_ts"):
        canonical = json.dumps(sorted((k, v) for k, v in values.items() if isinstance(v, str)), ensure_ascii=False)
        return f"form:{key}:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]
    return f"form:{key}:{uuid.uuid4().hex}"


def _accepted(form: FormConfig, browser: bool, item_id: int | None) -> Response:
    if browser:
        if form.thank_you_url:
            return RedirectResponse(form.thank_you_url, status_code=303)
        thanks = "Tack! Vi hör av oss." if form.language == "sv" else "Thank you! We will be in touch."
        return HTMLResponse(f"<!doctype html><p>{thanks}</p>", status_code=200)
    return JSONResponse({"item": item_id, "status": "landed"}, status_code=202)


def _count(form: str, outcome: str) -> None:
    """Add one to today's count of this form's submissions with this outcome."""
    with runtime().sessions.begin() as session:
        _count_in(session, form, outcome)


def _count_in(session, form: str, outcome: str) -> None:
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(IntakeCount).values(day=day, form=form[:100], outcome=outcome, count=1)
    session.execute(stmt.on_conflict_do_update(index_elements=["day", "form", "outcome"],
                                               set_={"count": IntakeCount.count + 1}))


@router.get("/webhooks/facebook", summary="Facebook webhook verification handshake (public)")
def facebook_handshake(request: Request) -> Response:
    rt = runtime()
    expected = rt.settings.secrets.get(rt.settings.api.facebook_verify_token_env, "")
    query = request.query_params
    given = query.get("hub.verify_token", "")
    if query.get("hub.mode") == "subscribe" and expected and hmac.compare_digest(given.encode(), expected.encode()):
        return PlainTextResponse(query.get("hub.challenge", "")[:200])
    return PlainTextResponse("", status_code=403)


@router.post("/webhooks/facebook", summary="Facebook Lead Ads webhook (public, signed)")
async def facebook_leadgen(request: Request) -> Response:
    """Each `leadgen` change is landed with its leadgen_id as the key (Meta retries for 36
    hours, so a delivery seen before lands nothing) and queued; a body without a valid
    X-Hub-Signature-256 of the app secret is refused unread."""
    rt = runtime()
    body = await _read(request, max(rt.settings.api.max_body_bytes, 256 * 1024))
    if body is None:
        raise HTTPException(413, "the body is too large")
    secret = rt.settings.secrets.get(rt.settings.api.facebook_app_secret_env, "")
    given = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(given.encode(), expected.encode()):
        return PlainTextResponse("", status_code=403)
    data = _json_object(body)
    if data is None:
        raise HTTPException(400, "the body is not a JSON object")
    items = []
    for entry in _list(data.get("entry")):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict) or change.get("field") != "leadgen" or not value.get("leadgen_id"):
                continue
            payload = {k: str(value[k])[:200] for k in ("leadgen_id", "form_id", "page_id", "ad_id", "adgroup_id")
                       if value.get(k) is not None}
            leadgen_id = payload["leadgen_id"]  # Meta's are ~16 digits; a longer one keyed whole, never cut
            key = leadgen_id if len(leadgen_id) <= 100 else "sha256:" + hashlib.sha256(leadgen_id.encode()).hexdigest()
            created = value.get("created_time")
            payload["created_time"] = created if isinstance(created, (int, str)) and not isinstance(created, bool) \
                else None
            items.append(NewItem(f"leadgen:{key}", "leadgen", payload))
    ids = await run_in_threadpool(_land_leads, items) if items else []
    return JSONResponse({"landed": len(ids), "received": len(items)})


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _land_leads(items: list[NewItem]) -> list[int]:
    from crm_ingest.workers.dispatch import dispatch_landed

    rt = runtime()
    with rt.sessions.begin() as session:
        ids = land_items(session, "facebook_leads", items)
    dispatch_landed(rt.sessions, ids, rt.settings)
    return ids
