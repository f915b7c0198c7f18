"""Twitter/X: the mentions of one account, or one saved recent-search query, read through
tweepy's API v2 Client since a checkpoint; each post becomes a raw item keyed by its id.

The API answers newest first and pages back in time, so a walk from `since_id` ends at the
oldest new post. The checkpoint records where a walk stands (`Place`): the `since_id` it
started from, its newest post, and the token of the next, older page. A poll that stops part
way (its `max_pages`, the rate limit, an error) leaves that place, and the next poll goes on
from the next page with the same `since_id`; only a finished walk moves `since_id` up to its
newest post. So no page is asked for twice and none is skipped.

A poll reads all its pages first and yields their posts oldest first (by id, which X assigns in
time order), so a reply lands after the post it answers; only the newest post carries the
place, as the items before it are not the end of anything. A rate limit or another error of
ours part way still yields what came before it, then raises: the runner lands those posts
with the place after the last page read. (A process killed before the landing loses only that
poll's reading: the next poll asks for those pages again, from the place saved before.)
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import requests
import tweepy
from requests.adapters import HTTPAdapter

from crm_ingest.ingest.errors import CredentialsFailed, IngestError, RateLimited, RetriableError

from .base import NewItem

EXPANSIONS = ["author_id", "referenced_tweets.id", "referenced_tweets.id.author_id", "in_reply_to_user_id"]
# note_tweet: a post longer than 280 characters comes whole only there (`text` is cut)
TWEET_FIELDS = ["created_at", "conversation_id", "lang", "referenced_tweets", "author_id", "in_reply_to_user_id",
                "note_tweet"]
USER_FIELDS = ["username", "name"]
RATE_WINDOW = timedelta(minutes=15)  # X's rate-limit window, when a 429 names no reset time
MIN_WAIT = timedelta(minutes=1)  # a reset already past (clock skew) still waits this long
OWN_RETWEET = "retweet of our own post"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Where polling stands: before a walk (`since_id` only) or part way through one."""

    since_id: str | None = None  # the newest post of the last finished walk
    newest_id: str | None = None  # the newest post of the walk under way
    token: str | None = None  # the walk's next, older page

    @classmethod
    def of(cls, cursor: dict[str, Any] | None) -> Place:
        cursor = cursor or {}
        return cls(cursor.get("since_id"), cursor.get("newest_id"), cursor.get("pagination_token"))

    @property
    def walking(self) -> bool:
        return self.token is not None

    def after(self, meta: dict[str, Any]) -> Place:
        """The place after a page with this `meta`: on to its next page, or the walk is done."""
        newest = self.newest_id or meta.get("newest_id")
        if meta.get("next_token"):
            return Place(self.since_id, newest, meta["next_token"])
        return Place(newest or self.since_id)

    def cursor(self) -> dict[str, Any]:
        if self.walking:
            return {"since_id": self.since_id, "newest_id": self.newest_id, "pagination_token": self.token}
        return {"since_id": self.since_id}


class TwitterSource:
    """One Twitter/X source ([sources.NAME.twitter]); `usage` holds the rate limit X reported last."""

    def __init__(self, config, source: str, token: str | None) -> None:
        self.config, self.source, self.token = config, source, token
        self.usage: dict[str, Any] = {}
        self.client = tweepy.Client(bearer_token=token, return_type=dict, wait_on_rate_limit=False)
        self.client.session.mount("https://", _WithTimeout(config.timeout_seconds))
        self.client.session.hooks["response"].append(self._note_limits)

    def fetch(self, since: dict[str, Any] | None) -> Iterator[NewItem]:
        if not self.token:
            raise CredentialsFailed(f"source {self.source}: no X bearer token; set the environment variable "
                                    f"{self.config.bearer_token_env}")
        posts, place, stopped = self._read(Place.of(since))
        ordered = sorted(posts.values(), key=lambda post: (len(post["post_id"]), post["post_id"]))  # numeric ids
        for number, payload in enumerate(ordered, 1):
            yield NewItem(payload["post_id"], "post", payload, place.cursor() if number == len(ordered) else None)
        if stopped is not None:
            raise stopped

    def _read(self, place: Place) -> tuple[dict[str, dict], Place, IngestError | None]:
        """Read up to `max_pages` pages of posts from `place`: the posts by id, the place after
        the last page read, and the error of ours that stopped the poll early, if one did.

        A backlog walk (resumed from an earlier poll) that ends with pages to spare goes on with
        a fresh walk from its newest post. That is also the way past an empty last page, which
        has no post to carry the place; an empty page does not count against `max_pages`."""
        posts: dict[str, dict] = {}
        pages_left = self.config.max_pages
        backlog = place.walking
        seen = {place.token} if place.token else set()
        try:
            while True:
                for page in self._pages(place, pages_left):
                    if page.get("data"):  # an empty page is no work
                        pages_left -= 1
                    elif gone := _missing_account(page):  # 200 with only errors: the account asked about is gone
                        raise CredentialsFailed(
                            f"source {self.source}: X says: {gone}; check mentions_of "
                            f"({self.config.mentions_of}) in the source's configuration")
                    posts.update(self._posts(page))
                    after = place.after(page.get("meta") or {})
                    if after.walking and after.token in seen:
                        # the same next page again (X has answered so): walking on would read it for
                        # ever and never ask for what came since; end the walk at its newest post
                        return posts, Place(after.newest_id or place.since_id), RetriableError(
                            f"source {self.source}: X gave the next-page token {after.token!r} twice; the walk "
                            "ends at its newest post, and the next poll reads what came since")
                    place = after
                    if place.walking:  # more to read, in this poll or the next
                        seen.add(place.token)
                        self._mind_pace()
                if not (backlog and not place.walking and pages_left):
                    return posts, place, None
                backlog = False  # done with the backlog: on to what came since its newest post
                self._mind_pace()
        except _StalePlace as exc:
            if not (place.since_id or place.token) or posts:
                return posts, place, exc
            # the saved place is older than X keeps (a since_id past its window, an expired page
            # token): read again from what X has now, as `ingest poll --from-start` would; what
            # landed before is known by its id and not landed twice
            log.warning("%s; reading again from X's newest posts", exc)
            return self._read(Place())
        except IngestError as exc:
            return posts, place, exc

    def _pages(self, place: Place, limit: int) -> Iterator[dict]:
        """The pages of a walk from `place` (tweepy's Paginator), errors turned into ours."""
        config = self.config
        if config.mentions_of:
            method, args, per_page = self.client.get_users_mentions, (config.mentions_of,), config.max_results
        else:  # recent search takes 10 to 100 a page
            method, args, per_page = self.client.search_recent_tweets, (config.search,), max(config.max_results, 10)
        pages = iter(tweepy.Paginator(method, *args, limit=limit, pagination_token=place.token,
                                      since_id=place.since_id, max_results=per_page, expansions=EXPANSIONS,
                                      tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS))
        while True:
            try:
                page = next(pages)
            except StopIteration:
                return
            except (tweepy.TweepyException, requests.RequestException) as exc:
                raise self._ours(exc) from exc
            yield page

    def _posts(self, page: dict) -> dict[str, dict]:
        includes = page.get("includes") or {}
        users = {user["id"]: user for user in includes.get("users", [])}
        referenced = {tweet["id"]: tweet for tweet in includes.get("tweets", [])}
        return {tweet["id"]: self._payload(tweet, users, referenced) for tweet in page.get("data") or []}

    def _payload(self, tweet: dict, users: dict[str, dict], referenced: dict[str, dict]) -> dict[str, Any]:
        """A post as landed. An author missing from the page's includes leaves `handle` empty
        (the plan then names the author by `author_id`): the post is landed all the same."""
        author = users.get(tweet.get("author_id")) or {}
        handle = author.get("username")
        refs = [{"type": ref.get("type"), "id": ref.get("id")} for ref in tweet.get("referenced_tweets") or []]
        by_type = {ref["type"]: ref["id"] for ref in refs}
        payload = {
            "post_id": tweet["id"], "network": "twitter", "handle": handle, "author_name": author.get("name"),
            "author_id": tweet.get("author_id"), "text": _full_text(tweet), "created_at": tweet.get("created_at"),
            "lang": tweet.get("lang"), "conversation_id": tweet.get("conversation_id"),
            "in_reply_to_post_id": by_type.get("replied_to"), "in_reply_to_user_id": tweet.get("in_reply_to_user_id"),
            "referenced": refs, "retweet": "retweeted" in by_type, "quote": "quoted" in by_type, "public": True,
            "url": f"https://x.com/{handle}/status/{tweet['id']}" if handle else f"https://x.com/i/web/status/{tweet['id']}",
        }
        original = referenced.get(by_type.get("retweeted")) or {}
        own = self.config.own_account
        if own and original.get("author_id") == own and not self.config.include_own_retweets:
            payload["ignore"] = OWN_RETWEET  # landed, so every post fetched has an outcome
        return payload

    def _note_limits(self, response: requests.Response, *args, **kwargs) -> None:
        """requests' response hook: remember the rate limit of every answer, 429s included."""
        headers = response.headers
        try:
            self.usage = {"limit": int(headers["x-rate-limit-limit"]),
                          "remaining": int(headers["x-rate-limit-remaining"]),
                          "reset": _epoch(headers["x-rate-limit-reset"]).isoformat()}
        except (KeyError, ValueError, OverflowError):
            pass

    def _reset_time(self, response: requests.Response | None = None) -> datetime:
        now = datetime.now(timezone.utc)
        try:
            reset = _epoch(response.headers["x-rate-limit-reset"]) if response is not None else \
                datetime.fromisoformat(self.usage["reset"])
        except (KeyError, ValueError, OverflowError):
            reset = now + RATE_WINDOW
        return max(reset, now + MIN_WAIT)

    def _mind_pace(self) -> None:
        """Before another request: with none left in this window, stop now rather than ask for
        a 429; the poll goes on from here after the reset."""
        if self.usage.get("remaining") == 0:
            at = self._reset_time()
            raise RateLimited(f"source {self.source}: X rate limit used up ({self.usage.get('limit')} requests per window); "
                              f"the rest is read after {at.isoformat()}", retry_at=at)

    def _ours(self, exc: Exception) -> IngestError:
        """tweepy's and requests' errors as ours, by what the caller should do about them."""
        env, name = self.config.bearer_token_env, self.source
        if isinstance(exc, tweepy.TooManyRequests):
            at = self._reset_time(exc.response)
            return RateLimited(f"source {name}: X answered 429 Too Many Requests; polling resumes at {at.isoformat()}", retry_at=at)
        if isinstance(exc, tweepy.Unauthorized):
            return CredentialsFailed(f"source {name}: X refused the bearer token in {env} (401 Unauthorized): it is invalid, "
                                     f"revoked or expired. Put a valid token in {env}, then run `ingest poll {name}`")
        problem = _problem(exc.response) if isinstance(exc, tweepy.HTTPException) else {}
        if isinstance(exc, tweepy.Forbidden) and _refuses_app(problem):
            return CredentialsFailed(f"source {name}: X refused the app behind the token in {env} (403 {problem.get('title')}): "
                                     f"{problem.get('detail')} Fix the app or the token, then run `ingest poll {name}`")
        if isinstance(exc, tweepy.HTTPException):
            detail = problem.get("detail") or "; ".join(exc.api_messages) or exc.response.reason
            said = "; ".join(str(e.get("message")) for e in problem.get("errors") or [] if isinstance(e, dict)
                             and e.get("message"))  # 'Invalid 'since_id'...': which parameter, and why
            if said and said not in detail:
                detail = f"{detail} ({said})"
            if exc.response.status_code == 400 and re.search(r"since_id|pagination_token|next_token", said):
                return _StalePlace(f"source {name}: X answered 400: {detail}")
            return RetriableError(f"source {name}: X answered {exc.response.status_code}: {detail}")
        return RetriableError(f"source {name}: X could not be reached: {exc}")


def _full_text(tweet: dict) -> str | None:
    """The whole post: a long one's text is in note_tweet, `text` holding only its start."""
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"].strip():
        return note["text"]
    return tweet.get("text")


class _WithTimeout(HTTPAdapter):
    """tweepy sets no timeout and requests has none by default: a hung connection must not hold
    a worker for ever."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.seconds
        return super().send(request, **kwargs)


def _epoch(value: str) -> datetime:
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


def _problem(response: requests.Response) -> dict[str, Any]:
    """The API's problem document (title, detail, type, reason), if the answer is one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class _StalePlace(RetriableError):
    """X refused the saved since_id or page token as too old."""


def _missing_account(page: dict) -> str | None:
    """A page with no posts whose errors say the account asked about does not exist (or is
    suspended): what X said, else None."""
    if page.get("data") or not isinstance(page.get("errors"), list):
        return None
    for error in page["errors"]:
        if isinstance(error, dict) and error.get("resource_type") == "user" and error.get("parameter") in ("id", "ids"):
            return str(error.get("detail") or error.get("title") or "the account was not found")
    return None


def _refuses_app(problem: dict[str, Any]) -> bool:
    """A 403 about the token or its app (not attached to a project, app-only auth not allowed),
    which polling again cannot fix; other 403s are about what was asked for."""
    kind = str(problem.get("type", ""))
    return kind.endswith(("/client-forbidden", "/unsupported-authentication")) or \
        problem.get("reason") == "client-not-enrolled"
