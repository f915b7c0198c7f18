"""/ops: the operations dashboard for a person in a browser. Throughput and queue depth over the
last hour and day as server-drawn SVG (no script, no asset from elsewhere: it works offline),
each source's health, the failed items with a retry button, and what waits for review.

A browser cannot send the API's bearer token on a page load, and a token in a URL ends up in
logs and history, so the page has a login form instead: POST /ops/login with a valid API token
sets a session cookie (HttpOnly, SameSite=Strict, Secure on HTTPS) that holds an expiry, a
nonce and their HMAC under the token, never the token itself. Removing the token from
INGEST_API_TOKENS ends its sessions. A state-changing POST made with the cookie also carries a
CSRF value the page embeds: an HMAC of that session under the token. A bearer header works
too (for scripts), and needs no CSRF value, since no browser sends one on its own."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from crm_ingest.models import FAILED, PENDING, PROCESSING, DuplicateReview, RawItem, utcnow
from crm_ingest.models.landing import requeue_failed
from crm_ingest.runtime import runtime

from .auth import api_tokens, known_token, require_token

router = APIRouter()

SESSION_COOKIE = "crm_ops_session"
SESSION_SECONDS = 8 * 3600  # a working day; then the token is asked for again
FAILED_SHOWN = 200  # failed items listed (retry all reaches every one)
HOUR, DAY, QUARTER = timedelta(hours=1), timedelta(days=1), timedelta(minutes=15)


# -- who is asking -----------------------------------------------------------------------------



def _mac(token: str, *parts: object) -> str:
    message = "|".join(str(part) for part in parts).encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()




def new_session(token: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    nonce = secrets.token_urlsafe(16)
    return f"{expires}.{nonce}.{_mac(token, 'ops-session', expires, nonce)}"


def session_token(value: str, now: float | None = None) -> str | None:
    """The token a session cookie was signed with, if it is unexpired and still configured."""
    from .intake import counter

    expires, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if not (expires.isdigit() and nonce and signature) or int(expires) < (now or time.time()):
        return None
    if counter().remembered(f"ended-session:{nonce}"):  # logged out
        return None
    found = None
    for token in api_tokens():
        if hmac.compare_digest(signature.encode(), _mac(token, "ops-session", expires, nonce).encode()):
            found = token
    return found


def csrf_value(token: str, session: str) -> str:
    return _mac(token, "ops-csrf", session)


@dataclass(frozen=True)
class Viewer:
    token: str
    session: str | None  # None: came with a bearer header

    @property
    def csrf(self) -> str:
        return csrf_value(self.token, self.session) if self.session else ""

    def may_change(self, given: str) -> bool:
        """A bearer request may; a cookie one only with this session's CSRF value."""
        return self.session is None or hmac.compare_digest(given.encode(), self.csrf.encode())


def viewer(request: Request) -> Viewer | None:
    if request.headers.get("authorization"):
        try:
            require_token(request)
        except HTTPException:
            return None
        _, _, token = request.headers["authorization"].partition(" ")
        return Viewer(token, None)
    cookie = request.cookies.get(SESSION_COOKIE)
    token = session_token(cookie) if cookie else None
    return Viewer(token, cookie) if token and cookie else None


def _same_site(request: Request) -> bool:
    """The post comes from this server's own pages, as far as the browser says (Origin, else
    Referer); a client that sends neither (curl, a script) is no browser to be tricked."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    host = urlsplit(origin).netloc.lower()
    own = {(request.headers.get(name) or "").lower() for name in ("host", "x-forwarded-host")}
    return host in own - {""}


def _https(request: Request) -> bool:
    """Trusting a proxy's X-Forwarded-Proto here is safe: it can only make the cookie stricter."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


# -- routes ------------------------------------------------------------------------------------

@router.get("/ops", response_class=HTMLResponse, summary="Operations dashboard (log in with the API token)")
def ops_page(request: Request, retried: int | None = None) -> Response:
    who = viewer(request)
    if who is None:
        return _page("Log in", LOGIN_FORM.format(message=""), status=401)
    rt = runtime()
    data = dashboard_data(rt)
    notice = f"Re-queued {retried} item{'s' if retried != 1 else ''}." if retried is not None else ""
    return _page("Operations", render_dashboard(data, rt.settings, who.csrf, notice))


@router.post("/ops/login", response_class=HTMLResponse, include_in_schema=False)
def ops_login(request: Request, token: str = Form("")) -> Response:
    from .intake import counter
    from .limits import over_limit

    if not _same_site(request):  # a page elsewhere must not log a visitor in with its token (login CSRF)
        raise HTTPException(403, "log in from this server's own page")
    api = runtime().settings.api
    ip = request.client.host if request.client else "unknown"
    wait = over_limit(counter(), [(f"login:{ip}", api.logins_per_ip_per_minute, 60),
                                  (f"login-day:{ip}", api.logins_per_ip_per_day, 86400)])
    if wait is not None:  # guessing tokens is slow whatever the guesser's speed
        answer = _page("Log in", LOGIN_FORM.format(
            message=f'<p class="error">Too many attempts from your address: try again in {wait} s.</p>'),
            status=429)
        answer.headers["Retry-After"] = str(wait)
        return answer
    known = known_token(token.strip())
    if known is None:
        return _page("Log in", LOGIN_FORM.format(message='<p class="error">That token is not valid.</p>'),
                     status=401)
    answer = RedirectResponse("/ops", status_code=303)
    answer.set_cookie(SESSION_COOKIE, new_session(known), max_age=SESSION_SECONDS, path="/ops", httponly=True,
                      samesite="strict", secure=_https(request))
    return answer


@router.post("/ops/logout", include_in_schema=False)
def ops_logout(request: Request, csrf: str = Form("")) -> Response:
    who = viewer(request)
    if who is not None and not who.may_change(csrf):
        raise HTTPException(403, "the form is stale: reload the page")
    cookie = request.cookies.get(SESSION_COOKIE)
    if who is not None and who.session and cookie:  # ended here, not only forgotten by this browser
        expires, _, rest = cookie.partition(".")
        from .intake import counter

        counter().remember(f"ended-session:{rest.partition('.')[0]}", max(1, int(expires) - int(time.time())))
    answer = RedirectResponse("/ops", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/ops", httponly=True, samesite="strict", secure=_https(request))
    return answer


@router.post("/ops/retry", summary="Re-queue failed items (as `ingest retry`)")
def ops_retry(request: Request, item: list[int] = Form([]), everything: bool = Form(False, alias="all"),
              csrf: str = Form("")) -> Response:
    """The given failed items (or all of them) pending again with a fresh set of attempts, then
    dispatched: queued with a broker, processed before the answer embedded."""
    from crm_ingest.workers.dispatch import dispatch

    who = viewer(request)
    if who is None:
        raise HTTPException(401, "log in at /ops, or send a bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not who.may_change(csrf):
        raise HTTPException(403, "the form is stale: reload the page")
    if not everything and not item:
        raise HTTPException(422, "name the items to retry, or all")
    rt = runtime()
    with rt.sessions.begin() as session:
        ids = requeue_failed(session, None if everything else item)
    dispatch(rt.sessions, ids, rt.settings)
    return RedirectResponse(f"/ops?retried={len(ids)}#failed", status_code=303)


# -- what the page shows -----------------------------------------------------------------------

def floor_to(moment: datetime, width: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    return moment - (moment - epoch) % width


def dashboard_data(rt, now: datetime | None = None) -> dict[str, Any]:
    """The snapshot (sources, queues, counts) and, from the rollups, the last hour by minute
    (closed minutes) and the last day by quarter hour (the current quarter filling up)."""
    from crm_ingest.ops.rollups import depth_history, history
    from crm_ingest.ops.snapshot import snapshot

    now = now or utcnow()
    minute = floor_to(now, timedelta(minutes=1))
    day_end = floor_to(now, QUARTER) + QUARTER
    data = snapshot(rt, now)
    with rt.sessions() as session:
        data["hour"] = history(session, minute - HOUR, 60, until=minute)
        data["day"] = history(session, day_end - DAY, 900, until=day_end)
        data["depth_hour"] = depth_history(session, minute - HOUR + timedelta(minutes=1), 60,
                                           until=minute + timedelta(minutes=1))
        data["depth_day"] = depth_history(session, day_end - DAY, 900, until=day_end)
        data["failed_items"] = [
            {"id": row.id, "source": row.source, "kind": row.kind, "attempts": row.attempts,
             "last_error": row.last_error, "finished_at": row.finished_at}
            for row in session.scalars(select(RawItem).where(RawItem.state == FAILED)
                                       .order_by(RawItem.id).limit(FAILED_SHOWN))]
        data["duplicates_open"] = session.scalar(
            select(func.count()).select_from(DuplicateReview).where(DuplicateReview.state == "open")) or 0
    return data


# -- HTML --------------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem;color:#1d2733}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #dde}
td.n,th.n{text-align:right}.bad{color:#b3261e;font-weight:600}.ok{color:#1b7f3b}
.error{color:#b3261e}.notice{background:#e8f3ea;padding:.5rem}.muted{color:#667}
figure{margin:.5rem 0 1rem}figcaption{color:#445}svg{width:100%;height:auto;background:#fafbfc}
.s-landed{fill:#4a78c2}.s-processed{fill:#2e9a5a}.s-failed{fill:#d0402b}.s-depth{fill:#8a5cc2}
.axis{fill:#667;font-size:10px}.grid{stroke:#dde}.key span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}
.k-landed{background:#4a78c2}.k-processed{background:#2e9a5a}.k-failed{background:#d0402b}.k-depth{background:#8a5cc2}
pre{white-space:pre-wrap;margin:0;max-width:40rem}form.inline{display:inline}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #dde;padding:.5rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.5rem}
"""

LOGIN_FORM = """<h1>crm-ingest operations</h1>{message}
<form method="post" action="/ops/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<style nonce="{nonce}">{STYLE}</style></head><body>{body}</body></html>')
    return HTMLResponse(page, status_code=status, headers={
        "Content-Security-Policy": (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
                                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        # same-origin: nothing leaks to another site, and the login post says where it comes from
        "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"})


def _when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def bar_chart(chart_id: str, points: list[dict[str, Any]], stacks: list[list[str]], tick: int,
              time_format: str = "%H:%M") -> str:
    """An SVG bar chart: per point, one bar per stack (series piled up in a stack), every bar
    with its count in a <title> and data-series/data-at/data-count; None means no data there."""
    width, height, left, bottom, top = 960, 200, 44, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([sum(p[s] or 0 for s in stack) for p in points for stack in stacks] + [1])
    slot = plot_w / max(len(points), 1)
    bar = slot * 0.8 / len(stacks)
    parts = [f'<svg id="{chart_id}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="{chart_id}-caption" data-peak="{peak}">']
    for value in (peak, peak / 2):
        y = top + plot_h - value / peak * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    for n, point in enumerate(points):
        at = point["at"].astimezone(timezone.utc)
        if n % tick == 0:
            parts.append(f'<text class="axis" x="{left + n * slot:.1f}" y="{height - 6}">'
                         f'{at.strftime(time_format)}</text>')
        for k, stack in enumerate(stacks):
            x, base = left + n * slot + slot * 0.1 + k * bar, top + plot_h
            for series in stack:
                count = point[series]
                if not count:
                    continue
                h = count / peak * plot_h
                base -= h
                parts.append(f'<rect class="s-{series}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                             f'data-series="{series}" data-at="{at.isoformat()}" data-count="{count}">'
                             f'<title>{at.strftime("%Y-%m-%d %H:%M")} UTC: {series} {count}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _figure(chart_id: str, title: str, points: list[dict[str, Any]], stacks: list[list[str]], tick: int,
            time_format: str = "%H:%M") -> str:
    series = [s for stack in stacks for s in stack]
    totals = {s: sum(p[s] or 0 for p in points) for s in series}
    if series == ["depth"]:
        seen = [p["depth"] for p in points if p["depth"] is not None]
        caption = (f"{title}: now {seen[-1]}, at most {max(seen)}" if seen else f"{title}: no samples yet")
    else:
        caption = f"{title}: " + ", ".join(f'<span data-total="{s}">{s} {totals[s]}</span>' for s in series)
    key = "".join(f'<span class="k-{s}"></span>{s}' for s in series)
    return (f'<figure>{bar_chart(chart_id, points, stacks, tick, time_format)}'
            f'<figcaption id="{chart_id}-caption">{caption} <span class="key">{key}</span></figcaption></figure>')


def render_dashboard(data: dict[str, Any], settings, csrf: str, notice: str = "") -> str:
    items = data["items"]
    by_state, by_outcome = items["by_state"], items["by_outcome"]
    failed_total = by_state.get(FAILED, 0)
    csrf_field = f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
    out = [f'<h1>crm-ingest operations</h1><div class="muted">As of {_when(data["at"])}. '
           f'<form class="inline" method="post" action="/ops/logout">{csrf_field}'
           f'<button type="submit">Log out</button></form></div>']
    if notice:
        out.append(f'<p class="notice" role="status">{_e(notice)}</p>')
    out.append('<div class="cards">' + "".join(
        f'<div class="card" id="card-{key}"><b>{_e(value)}</b>{_e(label)}</div>' for key, label, value in [
            ("landed", "items landed", items["received"]),
            ("unfinished", "unfinished (pending or processing)",
             by_state.get(PENDING, 0) + by_state.get(PROCESSING, 0)),
            ("failed", "failed", failed_total),
            ("review", "items waiting for review", by_outcome.get("review", 0)),
            ("duplicates", "possible duplicates to review", data["duplicates_open"]),
        ]) + "</div>")

    out.append("<h2>Throughput</h2>")
    out.append(_figure("throughput-hour", "Last hour, per minute", data["hour"], [["landed"], ["processed", "failed"]],
                       tick=10))
    out.append(_figure("throughput-day", "Last day, per 15 minutes", data["day"],
                       [["landed"], ["processed", "failed"]], tick=12))

    out.append("<h2>Queue depth</h2>")
    out.append(_queues(data))
    out.append(_figure("depth-hour", "Unfinished items, last hour", data["depth_hour"], [["depth"]], tick=10))
    out.append(_figure("depth-day", "Unfinished items, last day (deepest per 15 minutes)", data["depth_day"],
                       [["depth"]], tick=12))

    out.append("<h2>Sources</h2>" + _sources(data["sources"], settings))
    out.append(f'<h2 id="failed">Failed items ({failed_total})</h2>' + _failed(data["failed_items"], failed_total,
                                                                          csrf_field))
    out.append("<h2>Records</h2><table><tr><th>record type</th><th class=n>records</th></tr>" + "".join(
        f"<tr><td>{_e(settings.label(name, plural=True))}</td><td class=n>{count}</td></tr>"
        for name, count in sorted(data["records"].items())) + "</table>")
    return "".join(out)


def _queues(data: dict[str, Any]) -> str:
    queues, oldest = data["queues"], data["oldest_unfinished_age_seconds"]
    age = f"; the oldest unfinished item arrived {oldest:.0f} s ago" if oldest is not None else ""
    if queues is None:
        broker = "Embedded: no broker, items are processed as they land."
    elif "error" in queues:
        broker = f'<span class="bad">{_e(queues["error"])}</span>'
    else:
        depths = ", ".join(f"{_e(name)} {depth}" for name, depth in sorted(queues["depth"].items()))
        broker = (f"Broker queues now: {depths or 'none'}; {queues['unacked']} unacknowledged; "
                  f"workers online: {_e(data['workers_online'] if data['workers_online'] is not None else '?')}.")
    return (f'<p id="queues-now">{broker} The charts show the items landed and not yet finished, '
            f'as each minute\'s roll-up saw them{age}.</p>')


def _sources(sources: list[dict[str, Any]], settings) -> str:
    rows = []
    for s in sources:
        config = settings.sources.get(s["source"])
        if s["healthy"] is None:
            health = '<span class="muted">not polled</span>'
        else:
            health = '<span class="ok">healthy</span>' if s["healthy"] else '<span class="bad">unhealthy</span>'
        credentials = '<span class="bad">refused</span>' if s["credentials_failed"] else "ok"
        error = (f'<pre>{_e(s["last_error"])}</pre><span class="muted">{_when(s["last_error_at"])}</span>'
                 if s["last_error"] else "—")
        rows.append(
            f'<tr data-source="{_e(s["source"])}"><td>{_e(s["source"])}</td><td>{_e(s["kind"] or "—")}</td>'
            f'<td>{_e(settings.label(config.record_type) if config else "—")}</td><td>{health}</td>'
            f'<td>{_when(s["last_success_at"])}</td><td>{error}</td><td class=n>{s["failures"]}</td>'
            f'<td>{credentials}</td><td class=n>{s["landed_last_hour"]}</td>'
            f'<td class=n>{s["processed_last_hour"]}</td><td class=n>{s["failed_last_hour"]}</td></tr>')
    return ('<table id="sources"><tr><th>source</th><th>kind</th><th>record type</th><th>health</th>'
            '<th>last success</th><th>last error</th><th class=n>failures in a row</th><th>credentials</th>'
            '<th class=n>landed (1 h)</th><th class=n>processed (1 h)</th><th class=n>failed (1 h)</th></tr>'
            + "".join(rows) + "</table>")


def _failed(items: list[dict[str, Any]], total: int, csrf_field: str) -> str:
    if not items:
        return '<p id="no-failed">No failed items.</p>'
    more = f'<p class="muted">The first {len(items)} of {total}.</p>' if total > len(items) else ""
    rows = "".join(
        f'<tr data-item="{i["id"]}"><td class=n>{i["id"]}</td><td>{_e(i["source"])}</td><td>{_e(i["kind"])}</td>'
        f'<td><pre>{_e(i["last_error"])}</pre></td><td class=n>{i["attempts"]}</td><td>{_when(i["finished_at"])}</td>'
        f'<td><form class="inline" method="post" action="/ops/retry">{csrf_field}'
        f'<input type="hidden" name="item" value="{i["id"]}">'
        f'<button type="submit" aria-label="Retry item {i["id"]}">Retry</button></form></td></tr>'
        for i in items)
    return (f'{more}<table id="failed-items"><tr><th class=n>item</th><th>source</th><th>kind</th><th>last error</th>'
            f'<th class=n>attempts</th><th>set aside</th><th></th></tr>{rows}</table>'
            f'<form method="post" action="/ops/retry">{csrf_field}<input type="hidden" name="all" value="1">'
            f'<button type="submit">Retry all {total} failed items</button></form>')
