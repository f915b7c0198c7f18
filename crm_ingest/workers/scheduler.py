"""Beat's scheduler: of any number of `ingest beat` processes, exactly one sends the periodic tasks.

RedBeat keeps each entry's last run in Redis and lets only the holder of a lock send. The holder
renews the lock at the start of every loop (`[scheduler] max_loop_seconds`), before it sends;
a standby waits for the lock at start and takes over, where the schedule left off, once a dead
holder's lock lapses (`lock_timeout_seconds`). Three additions to RedBeat 2.4:

- the configured entries are written only by the lock's holder: a standby starting up would
  rewrite them under the holder's feet, and an entry it reset is sent twice (redbeat#198);
- a beat that could not take the lock at start stops instead of ticking (redbeat#208);
- a holder that finds its lock gone sends nothing, takes the lock again if no other beat holds
  it (Redis flushed or restarted empty: the entries are written again) and otherwise stands by,
  where RedBeat would end the process.
"""
from __future__ import annotations

from celery.utils.log import get_logger
from redbeat import RedBeatScheduler
from redis.exceptions import LockNotOwnedError

from crm_ingest.ingest.errors import FatalError

log = get_logger("celery.beat")


class LeaderScheduler(RedBeatScheduler):
    _installed = False  # this holder has written the configured entries to Redis

    def setup_schedule(self) -> None:
        """Celery calls this when it makes the scheduler, before the lock is taken; only the
        holder may write the entries, so a standby leaves it to its first tick as holder."""
        if self.lock is not None and self.lock.owned():
            super().setup_schedule()
            self._installed = True

    def tick(self, *args, **kwargs) -> float:
        if self.lock is None:  # taking it raised in beat_init, which Celery only logs
            raise FatalError("beat: could not take the scheduler lock (see the error above); "
                             "stopping rather than sending without it")
        if not self._installed:
            self.setup_schedule()
        try:
            return super().tick(*args, **kwargs)  # renews the lock first; sends nothing without it
        except LockNotOwnedError:
            return self._take_back()

    def _take_back(self) -> float:
        if self.lock.acquire(blocking=False):
            log.warning("beat: the scheduler lock had lapsed (Redis emptied, or this beat stalled "
                        "past lock_timeout_seconds); took it again")
            self._installed = False
            return 0.0  # tick again at once: write the entries, send what is due
        if self._installed:  # said once, not every loop
            log.warning("beat: another beat holds the scheduler lock; standing by")
            self._installed = False
        return self.max_interval
