"""Fixed-window counters for rate limits and daily caps: in Redis when a broker is configured
(shared by every server process), else in this process (the embedded single process)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Counter(Protocol):
    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one hit in the current window; (hits so far, seconds until the window ends)."""

    def hit_many(self, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
        """`hit` for each (key, window seconds), at once."""

    def peek_many(self, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
        """(hits so far, seconds until the window ends) for each (key, window seconds), counting none."""

    def remember(self, key: str, seconds: int) -> None:
        """Keep `key` for `seconds` (an ended session, until it would have expired)."""

    def remembered(self, key: str) -> bool:
        """Whether `key` is kept."""


class MemoryCounter:
    def __init__(self) -> None:
        self._hits: dict[tuple[str, int], int] = {}
        self._kept: dict[str, float] = {}
        self._lock = threading.Lock()

    def remember(self, key: str, seconds: int) -> None:
        now = time.time()
        with self._lock:
            self._kept = {k: until for k, until in self._kept.items() if until > now}
            self._kept[key] = now + seconds

    def remembered(self, key: str) -> bool:
        return self._kept.get(key, 0) > time.time()

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        now = time.time()
        window = int(now // window_seconds)
        with self._lock:
            if len(self._hits) > 100_000:  # forget finished windows
                self._hits = {k: v for k, v in self._hits.items() if k[1] >= window - 1}
            count = self._hits.get((key, window), 0) + 1
            self._hits[(key, window)] = count
        return count, int((window + 1) * window_seconds - now) + 1

    def hit_many(self, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
        return [self.hit(key, window) for key, window in keys]

    def peek_many(self, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
        now = time.time()
        return [(self._hits.get((key, int(now // window)), 0), int((int(now // window) + 1) * window - now) + 1)
                for key, window in keys]


class RedisCounter:
    """Counters in Redis, shared by every server process. While Redis does not answer, this
    process counts on its own (limits still hold, per process) and says so in the log once a
    minute: a form post must not be lost to a rate check (the post itself lands in the database)."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = redis.RedisError
        self._memory = MemoryCounter()
        self._said_at = 0.0

    def _fallback(self, error: Exception) -> MemoryCounter:
        now = time.monotonic()
        if now - self._said_at > 60:
            self._said_at = now
            log.warning("rate limits counted in this process alone: Redis does not answer (%s)", error)
        return self._memory

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        return self.hit_many([(key, window_seconds)])[0]

    def hit_many(self, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
        """Every counter in one round trip (a form post checks four)."""
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        resets = []
        for key, window_seconds in keys:
            window = int(now // window_seconds)
            name = f"crm-ingest:limit:{key}:{window_seconds}:{window}"
            pipe.incr(name)
            pipe.expire(name, window_seconds + 5)
            resets.append(int((window + 1) * window_seconds - now) + 1)
        try:
            counts = pipe.execute()[::2]
        except self._errors as exc:
            return self._fallback(exc).hit_many(keys)
        return [(int(count), reset) for count, reset in zip(counts, resets)]

    def remember(self, key: str, seconds: int) -> None:
        self._memory.remember(key, seconds)  # kept here too: asked while Redis is away, it is still known
        try:
            self._redis.set(f"crm-ingest:kept:{key}", 1, ex=max(1, seconds))
        except self._errors as exc:
            self._fallback(exc)

    def remembered(self, key: str) -> bool:
        try:
            return bool(self._redis.exists(f"crm-ingest:kept:{key}")) or self._memory.remembered(key)
        except self._errors as exc:
            return self._fallback(exc).remembered(key)

    def peek_many(self, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
        now = time.time()
        names = [f"crm-ingest:limit:{key}:{window}:{int(now // window)}" for key, window in keys]
        resets = [int((int(now // window) + 1) * window - now) + 1 for _, window in keys]
        try:
            found = self._redis.mget(names)
        except self._errors as exc:
            return self._fallback(exc).peek_many(keys)
        return [(int(count or 0), reset) for count, reset in zip(found, resets)]


def over_limit(counter: Counter, limits: list[tuple[str, int, int]], count: bool = True) -> int | None:
    """Count a hit against each (key, limit, window seconds); seconds to wait when any is over.
    `count=False`: only ask whether one is over already (its limit reached)."""
    wait = None
    keys = [(key, window) for key, _, window in limits]
    hits = counter.hit_many(keys) if count else [(n + 1, reset) for n, reset in counter.peek_many(keys)]
    for (_, limit, _), (count, reset) in zip(limits, hits):
        if count > limit:
            wait = max(wait or 0, reset)
    return wait
