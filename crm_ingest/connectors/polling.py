"""One poll of a polled source, the same for beat's task and `ingest poll`: build its connector,
land what it yields with its checkpoint, and record how it went in source health.

A rate limit lands what came before it (each chunk with its checkpoint) and sets `resume_at`
to the time the other side gave; the caller reschedules the poll for then. Refused or expired
credentials mark the source unhealthy (no retry storm); any other error of ours is recorded
and the source backs off. Nothing here sleeps.

A connector may have `after_landing(sessions, landed)`: called once the runner has landed what
`fetch` yielded, for work that needs those items in the database (Facebook: a lead's fetched
answers go to the item its webhook landed, which is processed again); it adds the ids it
re-opens to `landed.ids`, to be queued, and raises our errors as `fetch` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from crm_ingest.ingest.errors import ConfigError, CredentialsFailed, IngestError, RateLimited
from crm_ingest.ingest.settings import Settings, SourceConfig

from . import health
from .base import Connector, Landed, run_connector


@dataclass
class PollResult:
    source: str
    received: int = 0
    ids: list[int] = field(default_factory=list)  # newly landed, to be queued by the caller
    error: str | None = None
    credentials: bool = False
    retry_at: datetime | None = None  # rate-limited: poll again then

    def as_dict(self) -> dict:
        data = {"source": self.source, "received": self.received, "landed": len(self.ids)}
        if self.error:
            data.update(error=self.error, credentials=self.credentials)
        if self.retry_at:
            data["rate_limited_until"] = self.retry_at.isoformat()
        return data


def connector_for(source: SourceConfig, settings: Settings) -> Connector:
    """The connector that polls this source ([sources.NAME.imap|twitter|facebook])."""
    secrets = settings.secrets
    if source.imap is not None:
        from .imap import ImapMailbox

        return ImapMailbox(source.imap, source.name, secrets.get(source.imap.password_env))
    if source.twitter is not None:
        from .twitter import TwitterSource

        return TwitterSource(source.twitter, source.name, secrets.get(source.twitter.bearer_token_env))
    if source.facebook is not None:
        from .facebook import FacebookSource

        return FacebookSource(source.facebook, source.name, secrets.get(source.facebook.access_token_env))
    raise ConfigError(f"sources.{source.name}", "polls nothing: add an imap, twitter or facebook table")


def poll_once(sessions, settings: Settings, source_name: str) -> PollResult:
    """Poll the source once from its checkpoint; never raises for the source's own trouble."""
    source = settings.source(source_name)
    result = PollResult(source.name)
    landed = Landed(0, [])
    try:
        connector = connector_for(source, settings)
        run_connector(sessions, connector, into=landed)
        after_landing = getattr(connector, "after_landing", None)
        if after_landing is not None:  # work on what is landed now; re-opened items join landed.ids
            after_landing(sessions, landed)
    except RateLimited as exc:
        result.received, result.ids = landed.received, landed.ids
        result.error, result.retry_at = str(exc), exc.retry_at
        with sessions.begin() as session:
            health.record_rate_limit(session, source.name, exc.retry_at, str(exc))
        return result
    except ConfigError:
        raise
    except IngestError as exc:
        result.received, result.ids = landed.received, landed.ids
        result.error = str(exc)
        result.credentials = isinstance(exc, CredentialsFailed) or bool(getattr(exc, "credentials", False))
        with sessions.begin() as session:
            health.record_failure(session, source.name, str(exc), credentials=result.credentials)
        return result
    result.received, result.ids = landed.received, landed.ids
    usage = getattr(connector, "usage", None)
    with sessions.begin() as session:
        health.record_success(session, source.name, landed.received)
        if usage:
            health.record_usage(session, source.name, usage)
    return result
