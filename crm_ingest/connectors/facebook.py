"""Facebook through facebook-sdk: a Page's feed (posts and their comments) or the leads of Lead
Ads forms, each landed once by its Graph id; and the answers of leads the webhook announced.

facebook-sdk's last release (3.1.0) accepts Graph API versions up to 3.1 only, long retired,
and its `get_*` methods put its own version in the path. We keep the library (its request, the
token, its error parsing) and call `GraphAPI.request()` with the configured version in the path;
the version it keeps for itself is never used. Its `requests.Session` has a response hook that
reads X-App-Usage and X-Business-Use-Case-Usage from every answer: they size the wait after a
rate limit and are shown in source health.

The checkpoint, per edge ("{page_id}/feed", "{form_id}/leads"): the newest created_time landed
(with the ids landed at that second) and the walks not finished yet. A walk reads an edge page
by page (Graph answers newest first), bounded below by the `since` it started with. Each poll
first walks down to the newest landed, so a backlog never hides fresh posts, then spends the
pages left of `max_pages` on the unfinished walks, each from its saved `next` (the next page's
query without the token) and the row last done on that page. Every item carries this state as
it stands when the item after it is read, and it changes only after a whole row (a post with
all its comments, a lead): saved after any landed chunk, the checkpoint skips nothing and
re-reads nothing (at worst, the rest of a post cut by a chunk's end is read again, and landing
ignores what it has). What no item carries (the empty last page of a walk) is saved once the
runner has landed everything, by `after_landing`.

When the token expires: after a successful poll, at most once a day (TOKEN_CHECK_EVERY), the
token inspects itself through `GET /debug_token?input_token=TOKEN`; `expires_at` and
`data_access_expires_at` (Unix seconds, 0 = never) go into `usage` as ISO UTC times
(`token_expires_at`, `token_data_access_expires_at`, None for never), with `token_valid` and
`token_checked_at`; between checks the last answer is carried over. A failed check is logged and
skipped: it never fails the poll.
"""
from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlparse

import facebook
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.connectors.base import Landed, NewItem
from crm_ingest.ingest.endpoints import FacebookConfig
from crm_ingest.ingest.errors import CredentialsFailed, IngestError, RateLimited, RetriableError
from crm_ingest.models import RawItem, SourceHealth, utcnow
from crm_ingest.models.landing import fail_in_review, in_review, reopen_in_review, save_checkpoint

FEED_FIELDS = "id,message,created_time,from,permalink_url,comments{id,message,created_time,from}"
LEAD_FIELDS = "created_time,id,ad_id,form_id,field_data"
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})  # platform and business-use-case limits
TOKEN_REFUSED = 190  # expired, revoked or unreadable: a person must give a new one
USAGE_HEADERS = ("x-app-usage", "x-business-use-case-usage")
GRAPH_ID = re.compile(r"[0-9_]{1,40}")

WINDOW = timedelta(hours=1)  # usage percentages are of a rolling hour
SAFE_USAGE = 80.0  # percent of a limit: back here, a poll has room
MIN_WAIT, UNKNOWN_WAIT = timedelta(minutes=5), timedelta(minutes=15)
TOKEN_CHECK_EVERY = timedelta(days=1)  # debug_token at most this often (an answer is good for a day)
TOKEN_KEYS = ("token_expires_at", "token_data_access_expires_at", "token_valid", "token_checked_at")

log = logging.getLogger(__name__)


class GraphRefused(RetriableError):
    """The Graph API refused one request with an error of its own (an object that does not
    exist, a missing permission): not a limit, not the token. A poll backs off; a single lead
    read this way fails with it."""


class FacebookSource:
    """Connector over a Page's feed or over Lead Ads forms, as configured. A Graph error ends
    `fetch` at a clean point (the state counts whole rows only), as one of our errors."""

    def __init__(self, config: FacebookConfig, source: str, token: str | None) -> None:
        if not token:
            raise CredentialsFailed(f"{source}: the access token variable {config.access_token_env} is not set")
        self.config, self.source, self._token = config, source, token
        self.usage: dict[str, Any] = {}  # the last usage headers seen; poll_once keeps them in source health
        self._answer: tuple[int, dict] = (0, {})  # the last answer's HTTP status and usage headers
        http = requests.Session()
        http.hooks["response"].append(self._read_usage)
        # no `version`: facebook-sdk refuses any after 3.1; our paths carry the configured one
        self._graph = facebook.GraphAPI(access_token=token, timeout=config.timeout_seconds, session=http)
        self._state: dict[str, Any] = {}
        self._carried: dict[str, Any] = {}  # the state the last item yielded carries
        self._budget = 0  # requests left for the edge being walked
        self._fetched: dict[str, dict] = {}  # Lead Ads: external id -> payload read this poll

    def __repr__(self) -> str:  # never the token
        return f"FacebookSource({self.source}: {self.config.page_id or ', '.join(self.config.form_ids)})"

    def fetch(self, since: dict[str, Any] | None) -> Iterator[NewItem]:
        self._state, self._fetched = copy.deepcopy(since or {}), {}
        self._carried = copy.deepcopy(self._state)
        if self.config.page_id:
            walks = [self._walk(f"{self.config.page_id}/feed", FEED_FIELDS, _feed_since, self._post_items)]
        else:
            walks = [self._walk(f"{form_id}/leads", LEAD_FIELDS, _leads_since, self._lead_items)
                     for form_id in self.config.form_ids]
        return self._with_cursors(item for walk in walks for item in walk)

    # -- walking an edge -----------------------------------------------------------------------

    def _walk(self, edge: str, fields: str, since_args: Callable[[int], dict],
              items_of: Callable[[dict], Iterator[NewItem]]) -> Iterator[NewItem]:
        """The edge's new rows first (a walk down to the newest landed), then the unfinished
        walks, while pages are left. The state changes only once a row's items are all yielded."""
        state = self._state.setdefault(edge, {"newest": None, "at_newest": [], "walks": []})
        if _needs_fresh_walk(state):
            state["walks"].insert(0, {"since": state["newest"], "seen": list(state["at_newest"]),
                                      "next": None, "through": None})
        self._budget = self.config.max_pages
        for walk in list(state["walks"]):
            while self._budget > 0:
                self._budget -= 1
                first = {"fields": fields, "limit": self.config.page_size,
                         **(since_args(walk["since"]) if walk["since"] is not None else {})}
                page = self._get(edge, walk["next"] or first)
                rows = [row for row in page.get("data") or [] if isinstance(row, dict) and row.get("id")]
                ids = [str(row["id"]) for row in rows]
                start = ids.index(walk["through"]) + 1 if walk["through"] in ids else 0
                for row in rows[start:]:
                    row_id, created = str(row["id"]), _epoch(row.get("created_time"))
                    if not _landed_before(walk, row_id, created):
                        yield from items_of(row)
                        _note_newest(state, row_id, created)
                    walk["through"] = row_id
                following = _next_query(page)
                if following is not None and following == walk["next"]:
                    # the same page again (Graph has answered so): walking on would read it for ever
                    log.warning("%s: %s gave its page cursor again; that walk ends here", self.source, edge)
                    following = None
                walk["next"], walk["through"] = following, None
                if walk["next"] is None:
                    state["walks"].remove(walk)
                    break

    def _post_items(self, post: dict) -> Iterator[NewItem]:
        """A post, then its comments; once started, its comments are read to the end (their
        pages count against the poll's pages)."""
        post_id = str(post["id"])
        yield NewItem(post_id, "post", _post_payload(post, None, None))
        comments = post.get("comments") if isinstance(post.get("comments"), dict) else {}
        while True:
            for comment in comments.get("data") or []:
                if isinstance(comment, dict) and comment.get("id"):
                    yield NewItem(str(comment["id"]), "post", _post_payload(comment, post_id, post.get("permalink_url")))
            query = _next_query(comments)
            if query is None:
                return
            self._budget -= 1
            try:
                comments = self._get(f"{post_id}/comments", query)
            except GraphRefused as exc:
                # its comments refused (the post deleted meanwhile, a permission): the rest of the
                # feed must not wait behind it, poll after poll; the post and what came are kept
                log.warning("%s: the rest of post %s's comments are not read: %s", self.source, post_id, exc)
                return

    def _lead_items(self, lead: dict) -> Iterator[NewItem]:
        payload = self._lead_payload(lead)
        item = NewItem(f"leadgen:{payload['leadgen_id']}", "leadgen", payload)
        self._fetched[item.external_id] = payload
        yield item

    def _lead_payload(self, lead: dict) -> dict[str, Any]:
        payload = {"leadgen_id": str(lead.get("id")), "form_id": lead.get("form_id"), "ad_id": lead.get("ad_id"),
                   "created_time": lead.get("created_time"),
                   "field_map": self.config.field_map_for(lead.get("form_id"))}
        if isinstance(lead.get("field_data"), list):
            payload["field_data"] = lead["field_data"]
        return payload

    def _with_cursors(self, items: Iterator[NewItem]) -> Iterator[NewItem]:
        """Each item with the checkpoint as it stands when the next one is read, so it also
        counts the empty pages read after it. On a Graph error the last item goes out with the
        state as it stands, then the error: the runner lands them, then passes the error on."""
        held = None
        try:
            for item in items:
                if held is not None:
                    yield self._carrying(held)
                held = item
        except IngestError:
            if held is not None:
                yield self._carrying(held)
            raise
        if held is not None:
            yield self._carrying(held)

    def _carrying(self, item: NewItem) -> NewItem:
        self._carried = copy.deepcopy(self._state)
        return replace(item, cursor=self._carried)

    # -- leads the webhook landed --------------------------------------------------------------

    def after_landing(self, sessions: sessionmaker[Session], landed: Landed) -> None:
        """Lead Ads: the webhook lands a lead's ids only, and the item waits in review. Give it
        the answers this poll read from its form, else read it by its leadgen_id (up to
        `page_size` a poll), and have it processed again: it becomes the lead, stored once
        however it arrived.

        First the checkpoint, if pages were read after the last item (a walk's empty last page):
        everything `fetch` yielded is landed by now, so the state as it ends is safe to save."""
        if self._state != self._carried:
            with sessions.begin() as session:
                save_checkpoint(session, self.source, self._state)
        if self.config.form_ids:
            self._give_answers(sessions, landed)
            self._read_waiting_leads(sessions, landed)
        if self.config.check_token_expiry:
            self._check_token(sessions)

    def _give_answers(self, sessions: sessionmaker[Session], landed: Landed) -> None:
        """Leads this poll read whose webhook item waits without its answers: give them theirs
        (landing left the item as it was, as it does with any item it has)."""
        with sessions.begin() as session:  # one set aside when its read by id failed gets them too
            for item_id, external_id, payload in self._waiting(session, list(self._fetched), failed_too=True):
                fetched = self._fetched[external_id]
                if "field_data" in fetched and reopen_in_review(session, item_id, {**payload, **fetched},
                                                                failed_too=True):
                    landed.ids.append(item_id)

    def _read_waiting_leads(self, sessions: sessionmaker[Session], landed: Landed) -> None:
        """A lead the Graph API refuses to give (deleted, no permission) fails with its error;
        a limit or a refused token stops the poll, and what was completed before stays."""
        with sessions() as session:
            waiting = self._waiting(session, limit=self.config.page_size)
        for item_id, external_id, payload in waiting:
            leadgen_id = str(payload.get("leadgen_id") or external_id.removeprefix("leadgen:"))
            try:
                if not GRAPH_ID.fullmatch(leadgen_id):
                    raise GraphRefused(f"{self.source}: {leadgen_id!r} is not a Graph id")
                lead = self._lead_payload(self._get(leadgen_id, {"fields": LEAD_FIELDS}))
                if "field_data" not in lead:
                    raise GraphRefused(f"{self.source}: lead {leadgen_id} came without field_data")
            except GraphRefused as exc:
                with sessions.begin() as session:
                    fail_in_review(session, item_id, str(exc))
                continue
            with sessions.begin() as session:
                if reopen_in_review(session, item_id, {**payload, **lead}):
                    landed.ids.append(item_id)

    def _waiting(self, session: Session, external_ids: list[str] | None = None,
                 limit: int | None = None, failed_too: bool = False) -> list[tuple[int, str, dict]]:
        """This source's Lead Ads items in review because their answers were never read
        (`failed_too`: or set aside as failed when reading them by id was refused)."""
        stmt = (select(RawItem.id, RawItem.external_id, RawItem.payload)
                .where(RawItem.source == self.source, RawItem.kind == "leadgen", in_review(failed_too))
                .order_by(RawItem.id))
        if external_ids is not None:
            if not external_ids:
                return []
            # with import_job_id IS NULL, the unique (source, external_id) index's own terms
            stmt = stmt.where(RawItem.external_id.in_(external_ids), RawItem.import_job_id.is_(None))
        rows = ((row.id, row.external_id, row.payload) for row in session.execute(stmt)
                if isinstance(row.payload, dict) and not isinstance(row.payload.get("field_data"), list))
        return list(islice(rows, limit))

    # -- when the token expires ----------------------------------------------------------------

    def _check_token(self, sessions: sessionmaker[Session]) -> None:
        """The token's expiry into `usage`: asked of debug_token when the last answer (kept in
        source health) is a day old or missing, else carried over. Never fails the poll."""
        with sessions() as session:
            row = session.get(SourceHealth, self.source)
            before = dict(row.usage) if row is not None and isinstance(row.usage, dict) else {}
        known = {k: before[k] for k in TOKEN_KEYS if k in before}
        now = utcnow()
        checked = _iso_time(known.get("token_checked_at"))
        if checked is None or now - checked >= TOKEN_CHECK_EVERY:
            try:
                data = self._get("debug_token", {"input_token": self._token}).get("data")
                if not isinstance(data, dict):
                    raise RetriableError(f"{self.source}: debug_token answered without data")
                known = token_expiry(data, now)
            except IngestError as exc:
                log.warning("%s: cannot tell when the token expires (kept the last answer): %s", self.source, exc)
        if known:
            headers = self.usage or {k: v for k, v in before.items() if k in USAGE_HEADERS}
            self.usage = {**headers, **known}

    # -- the Graph API -------------------------------------------------------------------------

    def _get(self, path: str, args: dict) -> dict:
        """One GET at the configured version; every failure as one of our errors."""
        try:
            # a copy: facebook-sdk adds the token to the dict it is given, which must not reach a checkpoint
            answer = self._graph.request(f"{self.config.graph_version}/{path}", dict(args))
        except facebook.GraphAPIError as exc:
            raise self._error(exc) from None
        except requests.RequestException as exc:
            raise RetriableError(self._without_token(f"{self.source}: cannot reach the Graph API: {exc}")) from None
        except (KeyError, ValueError) as exc:  # no content type, or not JSON (a proxy's error page)
            raise RetriableError(f"{self.source}: an unreadable Graph API answer (HTTP {self._answer[0]}): "
                                 f"{type(exc).__name__}") from None
        if not isinstance(answer, dict):
            raise RetriableError(f"{self.source}: an unexpected Graph API answer (HTTP {self._answer[0]})")
        return answer

    def _error(self, exc: facebook.GraphAPIError) -> IngestError:
        """A rate limit, a refused token, a passing trouble or a refusal: each what it needs."""
        status, usage = self._answer
        body = exc.result.get("error") if isinstance(exc.result, dict) else None
        body = body if isinstance(body, dict) else {}
        code = body.get("code")
        if not isinstance(code, int):  # not a Graph error: an HTML error page, a proxy
            return RetriableError(self._without_token(f"{self.source}: the Graph API answered HTTP {status}: {exc}"))
        subcode = f"/{body['error_subcode']}" if body.get("error_subcode") else ""
        detail = self._without_token(f"Graph API error {code}{subcode}: {body.get('message') or exc} "
                                     f"(fbtrace_id {body.get('fbtrace_id') or '-'})")
        if code in RATE_LIMIT_CODES:
            return RateLimited(f"{self.source}: rate-limited, {detail}", retry_at=rate_limit_until(usage, utcnow()))
        if code == TOKEN_REFUSED:
            return CredentialsFailed(f"{self.source}: the access token is expired or invalid, set a new one in "
                                     f"{self.config.access_token_env}: {detail}")
        if body.get("is_transient") or code in (1, 2) or status >= 500:
            return RetriableError(f"{self.source}: {detail}")
        return GraphRefused(f"{self.source}: {detail}")

    def _read_usage(self, response: requests.Response, *args, **kwargs) -> None:
        usage = parse_usage(response.headers)
        self._answer = (response.status_code, usage)
        if usage:
            self.usage = usage

    def _without_token(self, text: str) -> str:
        return text.replace(self._token, "***")


def parse_usage(headers) -> dict[str, Any]:
    """The usage headers of an answer, parsed (each is compact JSON in a string); {} without
    them (Meta sends them only once an endpoint has seen enough calls)."""
    usage = {}
    for name in USAGE_HEADERS:
        try:
            value = json.loads(headers.get(name) or "null")
        except ValueError:
            continue
        if isinstance(value, dict):
            usage[name] = value
    return usage


def rate_limit_until(usage: dict[str, Any], now: datetime) -> datetime:
    """When a rate-limited source may call again. X-Business-Use-Case-Usage says so outright
    (`estimated_time_to_regain_access`, in minutes). Else the usage percentages (of a rolling
    hour, X-App-Usage's and the BUC ones) tell how much must drain: calls spread over the hour
    leave it at an even pace, so from a peak of P% usage is back at SAFE_USAGE after
    WINDOW * (1 - SAFE_USAGE / P); at least MIN_WAIT, at most the hour. Without the headers,
    UNKNOWN_WAIT (a quarter of the window)."""
    buc = usage.get("x-business-use-case-usage") or {}
    entries = [e for group in buc.values() if isinstance(group, list) for e in group if isinstance(e, dict)]
    regain = max((_number(e.get("estimated_time_to_regain_access")) for e in entries), default=0.0)
    if regain > 0:
        return now + timedelta(minutes=regain)
    shares = [usage.get("x-app-usage") or {}, *entries]
    peak = max((_number(s.get(k)) for s in shares for k in ("call_count", "total_cputime", "total_time")), default=0.0)
    if peak <= 0:
        return now + UNKNOWN_WAIT
    return now + min(max(WINDOW * (1 - SAFE_USAGE / peak), MIN_WAIT), WINDOW)


def token_expiry(data: dict, now: datetime) -> dict[str, Any]:
    """debug_token's `data` as kept in `usage`: its expiry times as ISO UTC (None: never)."""
    valid = data.get("is_valid")
    return {"token_expires_at": _unix_iso(data.get("expires_at")),
            "token_data_access_expires_at": _unix_iso(data.get("data_access_expires_at")),
            "token_valid": valid if isinstance(valid, bool) else None, "token_checked_at": now.isoformat()}


def _unix_iso(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:  # 0: never expires
        return None
    return datetime.fromtimestamp(value, timezone.utc).isoformat()


def _iso_time(value: Any) -> datetime | None:
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _feed_since(since: int) -> dict:
    # one second early: whether Graph's bound includes its second or not, nothing at `since` is missed
    return {"since": since - 1}


def _leads_since(since: int) -> dict:
    return {"filtering": json.dumps([{"field": "time_created", "operator": "GREATER_THAN", "value": since - 1}])}


def _needs_fresh_walk(state: dict) -> bool:
    """A poll starts with a walk from the top down to the newest landed, unless the first walk
    is that one already (saved before it read a row) or a first reading is under way."""
    if not state["walks"]:
        return True
    first = state["walks"][0]
    return state["newest"] is not None and not (first["since"] == state["newest"] and first["next"] is None)


def _landed_before(walk: dict, row_id: str, created: int | None) -> bool:
    """Rows older than the walk's lower bound, or at it and landed then, belong to walks before."""
    since = walk["since"]
    return since is not None and created is not None and (
        created < since or (created == since and row_id in walk["seen"]))


def _note_newest(state: dict, row_id: str, created: int | None) -> None:
    if created is None:
        return
    if state["newest"] is None or created > state["newest"]:
        state["newest"], state["at_newest"] = created, [row_id]
    elif created == state["newest"] and row_id not in state["at_newest"]:
        state["at_newest"].append(row_id)


def _next_query(page: dict) -> dict[str, str] | None:
    """The next page's query from `paging.next` (cursor or time based, whichever Graph chose),
    without the access token; None on the last page."""
    paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
    url = paging.get("next")
    if not isinstance(url, str) or not url:
        return None
    return {k: v for k, v in parse_qsl(urlparse(url).query) if k != "access_token"}


def _epoch(value: Any) -> int | None:
    """A Graph time ('2025-03-14T09:00:12+0000') as Unix seconds."""
    try:
        return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except (TypeError, ValueError):
        return None


def _post_payload(post: dict, parent_id: str | None, parent_url: str | None) -> dict[str, Any]:
    """A post or a comment as a `post` item; a comment's conversation is its post."""
    author = post.get("from") if isinstance(post.get("from"), dict) else {}
    created = _epoch(post.get("created_time"))
    return {"post_id": str(post["id"]), "network": "facebook",
            "handle": author.get("id") or author.get("name"), "author_id": author.get("id"),
            "author_name": author.get("name"), "text": post.get("message"),
            "created_at": datetime.fromtimestamp(created, timezone.utc).isoformat() if created is not None else None,
            "conversation_id": parent_id or str(post["id"]), "in_reply_to_post_id": parent_id,
            "url": post.get("permalink_url") or parent_url, "public": True}
