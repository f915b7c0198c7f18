"""The ASGI app served by `ingest serve`: health checks, public form intake, and, behind a
bearer token, the item lookup and /metrics."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.requests import ClientDisconnect

from crm_ingest.runtime import runtime

from .auth import api_tokens
from .imports import resume_uploads
from .imports import router as imports_router
from .intake import router as intake_router
from .ops import router as ops_router
from .read import router as read_router
from .records import router as records_router

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_app: FastAPI):
    """On start: land on the uploads a restart interrupted (api/imports.py)."""
    settings = runtime().settings
    timed = sorted(key for key, form in settings.forms.items() if form.min_fill_seconds > 0)
    if timed and not settings.secrets.get(settings.api.form_secret_env):
        log.error("%s is not set: forms %s cannot check how fast they were filled in (their posts are "
                  "taken without that check); set it and generate the forms with `ingest form-html`",
                  settings.api.form_secret_env, ", ".join(timed))
    if not api_tokens():
        log.error("%s is not set: every route but /health, public forms and webhooks answers 401, and /ops "
                  "cannot be logged into; set it to one or more comma-separated tokens", settings.api.tokens_env)
    if any(source.kind == "leadgen" for source in settings.sources.values()):
        missing = [name for name in (settings.api.facebook_app_secret_env, settings.api.facebook_verify_token_env)
                   if not settings.secrets.get(name)]
        if missing:
            log.error("%s not set: the Facebook webhook refuses every call (403) until they are",
                      " and ".join(missing))
    try:
        await run_in_threadpool(resume_uploads)
    except Exception:  # noqa: BLE001 - the server answers all the same; the uploads wait for the next start
        log.exception("could not look for interrupted uploads")
    yield


app = FastAPI(title="crm-ingest", version="0.1.0", lifespan=lifespan)
app.include_router(intake_router)
app.include_router(imports_router)
app.include_router(ops_router)
app.include_router(records_router)
app.include_router(read_router)


# Doors that read and limit their own bodies: an import's file, a form post, a webhook.
_OWN_BODY_LIMITS = ("/imports", "/forms/", "/webhooks/")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Every other door's body is capped at `[api] max_body_bytes` (413): by its Content-Length
    when it gives one, else as it streams in (a chunked body)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(_OWN_BODY_LIMITS):
            return await self.app(scope, receive, send)
        limit = runtime().settings.api.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await _too_large(scope, receive, send, limit)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _TooLarge:
            if not started:
                await _too_large(scope, receive, send, limit)


async def _too_large(scope, receive, send, limit: int) -> None:
    await JSONResponse({"detail": f"the body is over {limit} bytes"}, status_code=413,
                       headers={"Connection": "close"})(scope, receive, send)


app.add_middleware(BodyLimit)


@app.exception_handler(ClientDisconnect)
async def client_gone(_request, _exc: ClientDisconnect) -> Response:
    """A client that went away mid-body: nothing to answer, nothing to log but a line."""
    log.info("a client disconnected before its request body was read")
    return Response(status_code=400)


@app.exception_handler(OverflowError)
async def number_out_of_range(_request, exc: OverflowError) -> JSONResponse:
    """A number past what the database stores (an id in a query or a form): no record has it."""
    return JSONResponse({"detail": "a number in the request is out of range"}, status_code=422)


@app.middleware("http")
async def security_headers(request, call_next):
    """No response is sniffed into HTML by a browser, and none is cached by a proxy."""
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@app.get("/health/live")
def live() -> dict:
    """The process answers."""
    return {"status": "ok"}


@app.get("/health")
def ready() -> JSONResponse:
    """Ready when the database answers and, with a broker configured, the broker does too."""
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {type(exc).__name__}"
    if rt.settings.redis_url:
        import redis

        try:
            client = redis.Redis.from_url(rt.settings.redis_url, socket_timeout=2)
            client.ping()
            client.close()
            checks["broker"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["broker"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unavailable", "checks": checks},
                        status_code=200 if healthy else 503)
