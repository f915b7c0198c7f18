"""Source health: each poll records its success or its error, so a broken source shows as
unhealthy with the reason, and a failing one backs off instead of being retried in a loop
(doubling from its poll interval up to an hour; a refused login or an expired token waits the
full hour, as polling again cannot fix a password; `ingest poll SOURCE` tries at once after a
fix). A rate-limited source waits until the time the other side gave (`resume_at`).

A source that learns when its credentials expire (Facebook: its token, through debug_token)
keeps it in `usage`; `credentials_expire_at` reads it back, and within CREDENTIALS_WARN of it
the credentials count as expiring (`ingest sources`, /metrics, the alert)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from crm_ingest.models import SourceHealth, utcnow

MAX_BACKOFF = timedelta(hours=1)
CREDENTIALS_WARN = timedelta(days=7)  # credentials expiring this soon are shown and alerted on
EXPIRY_KEYS = ("token_expires_at", "token_data_access_expires_at")  # ISO UTC in `usage`; None: never


def record_success(session: Session, source: str, received: int) -> None:
    row = session.get(SourceHealth, source, with_for_update=True) or SourceHealth(source=source)
    row.last_success_at, row.last_received = utcnow(), received
    row.failures, row.credentials_failed, row.resume_at = 0, False, None
    session.add(row)


def record_rate_limit(session: Session, source: str, until: datetime, error: str) -> None:
    """The other side said: not before `until`. Not a failure of the source."""
    row = session.get(SourceHealth, source, with_for_update=True) or SourceHealth(source=source, failures=0,
                                                                              last_received=0)
    row.resume_at = until
    row.last_error, row.last_error_at = error[:2000], utcnow()
    session.add(row)


def record_usage(session: Session, source: str, usage: dict) -> None:
    """The API's own account of how much of its limits we use (shown by `ingest sources`)."""
    row = session.get(SourceHealth, source, with_for_update=True) or SourceHealth(source=source, failures=0,
                                                                              last_received=0)
    row.usage = usage
    session.add(row)


def record_failure(session: Session, source: str, error: str, *, credentials: bool = False) -> None:
    row = session.get(SourceHealth, source, with_for_update=True) or SourceHealth(source=source, failures=0,
                                                                              last_received=0)
    row.last_error, row.last_error_at = error[:2000], utcnow()
    row.failures = (row.failures or 0) + 1
    row.credentials_failed = credentials
    session.add(row)


def next_poll(row: SourceHealth | None, poll_seconds: float) -> datetime | None:
    """When a failing or rate-limited source may be polled again (None: at its normal interval)."""
    if row is None:
        return None
    if row.resume_at is not None and row.resume_at > utcnow():
        return row.resume_at
    if not row.failures or row.last_error_at is None:
        return None
    if row.credentials_failed:
        return row.last_error_at + MAX_BACKOFF
    wait = timedelta(seconds=poll_seconds * 2 ** min(row.failures, 16))
    return row.last_error_at + min(wait, MAX_BACKOFF)


def healthy(row: SourceHealth | None) -> bool:
    return row is None or not row.failures


def credentials_expire_at(row: SourceHealth | None) -> datetime | None:
    """When the source's credentials stop working, as far as it knows: the earlier of the token's
    own expiry and its data-access expiry (after either a person must renew it); None: unknown
    or never."""
    usage = row.usage if row is not None and isinstance(row.usage, dict) else {}
    times = []
    for key in EXPIRY_KEYS:
        try:
            at = datetime.fromisoformat(usage[key])
        except (KeyError, TypeError, ValueError):
            continue
        times.append(at if at.tzinfo else at.replace(tzinfo=timezone.utc))
    return min(times, default=None)


def credentials_expiring(expire_at: datetime | None, now: datetime) -> bool:
    """Expired or expiring within CREDENTIALS_WARN."""
    return expire_at is not None and expire_at - now <= CREDENTIALS_WARN
