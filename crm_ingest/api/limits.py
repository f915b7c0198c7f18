"""Fixed-window counters for rate limits and daily caps: in Redis when a broker is configured
(shared by every server process), else in this process (the embedded single process)."""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Counter(Protocol):
    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one hit in the current window; (hits so far, seconds until the window ends)."""


class MemoryCounter:
    def __init__(self) -> None:
        self._hits: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        now = time.time()
        window = int(now // window_seconds)
        with self._lock:
            if len(self._hits) > 100_000:  # forget finished windows
                self._hits = {k: v for k, v in self._hits.items() if k[1] >= window - 1}
            count = self._hits.get((key, window), 0) + 1
            self._hits[(key, window)] = count
        return count, int((window + 1) * window_seconds - now) + 1


class RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2)

    def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        now = time.time()
        window = int(now // window_seconds)
        name = f"crm-ingest:limit:{key}:{window_seconds}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds + 5)
        count, _ = pipe.execute()
        return int(count), int((window + 1) * window_seconds - now) + 1


def over_limit(counter: Counter, limits: list[tuple[str, int, int]]) -> int | None:
    """Count a hit against each (key, limit, window seconds); seconds to wait when any is over."""
    wait = None
    for key, limit, window in limits:
        count, reset = counter.hit(key, window)
        if count > limit:
            wait = max(wait or 0, reset)
    return wait
