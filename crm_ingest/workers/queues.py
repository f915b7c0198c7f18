"""Queue depth as the broker holds it, read straight from Redis (kombu's layout)."""
from __future__ import annotations

import redis


QUEUES = ("poll", "process", "import")  # as declared in celeryconfig.task_queues

# kombu's Redis transport keeps a priority queue as several lists: NAME, NAME\x06\x163, ...
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def queue_depths(redis_url: str, queues=QUEUES) -> dict[str, int]:
    """Messages waiting per queue, summed over kombu's priority lists; an explicit 0 when empty."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        depths = {}
        for queue in queues:
            names = [queue] + [f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS if step]
            with client.pipeline() as pipe:
                for name in names:
                    pipe.llen(name)
                depths[queue] = sum(pipe.execute())
        return depths
    finally:
        client.close()


def unacked_count(redis_url: str) -> int:
    """Messages delivered to workers and not yet acknowledged (in flight)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        return int(client.hlen("unacked"))
    finally:
        client.close()


def process_queue_empty(redis_url: str) -> bool:
    """Whether no batch waits in the broker; unknown counts as empty (re-queueing is harmless)."""
    try:
        return queue_depths(redis_url, ("process",))["process"] == 0
    except Exception:  # noqa: BLE001 - the sweeper must run even when Redis misbehaves
        return True
