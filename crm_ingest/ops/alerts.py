"""The alerting hook: a JSON POST to `[alerts] webhook_url` when a polled source turns unhealthy
(`source_failures` failed polls in a row, or refused credentials at once) or a queue stays above
`queue_threshold` messages for `queue_minutes`, and one more when that is over. A source whose
credentials expire within CREDENTIALS_WARN (Facebook's token, as debug_token told) has its own
alert, `credentials_expiring`, resolved once a renewed token is seen.

Each condition's state lives in `alert_states`, so a change is told once, not at every check,
also when checks run in several processes: a change is decided under the row's lock and
committed before it is sent, and given back when the webhook cannot be reached (the next check
tries again). The body carries `text` too, so a Slack or Mattermost incoming webhook shows it as is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import requests
from sqlalchemy import update
from sqlalchemy.orm import Session

from crm_ingest.ingest.settings import AlertsConfig, Settings
from crm_ingest.models import AlertState, utcnow
from crm_ingest.runtime import Runtime

from .snapshot import source_health

log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any], float], None]


@dataclass(frozen=True)
class Condition:
    key: str  # 'source:NAME', 'credentials:NAME' or 'queue:NAME'
    holds: bool  # the bad state is there now
    details: dict[str, Any]


def webhook_url(settings: Settings) -> str | None:
    alerts = settings.alerts
    return alerts.webhook_url or (settings.secrets.get(alerts.webhook_url_env) if alerts.webhook_url_env else None)


def check_alerts(rt: Runtime, now: datetime | None = None, post: Post | None = None) -> list[dict[str, Any]]:
    """Look at sources and queues, send what changed; returns the alerts sent."""
    url = webhook_url(rt.settings)
    if not url:
        return []
    now = now or utcnow()
    with rt.sessions() as session:
        conditions = source_conditions(session, rt.settings, now)
    if not rt.settings.embedded:
        from crm_ingest.workers.queues import queue_depths

        try:
            conditions += queue_conditions(queue_depths(rt.settings.redis_url), rt.settings.alerts)
        except Exception as exc:  # noqa: BLE001 - queues unknown: their alerts stay as they are
            log.warning("alerts: broker unreachable (%s)", type(exc).__name__)
    with rt.sessions.begin() as session:
        changes = [change for c in sorted(conditions, key=lambda c: c.key)  # one lock order for all
                   if (change := _transition(session, c, now, rt.settings.alerts))]
    sent = []
    for body in changes:
        try:
            (post or _post)(url, body, rt.settings.alerts.timeout_seconds)
            sent.append(body)
        except Exception as exc:  # noqa: BLE001 - an unreachable webhook must not stop the roll-up
            log.warning("alert webhook failed (%s), will try again: %s", type(exc).__name__, body["summary"])
            with rt.sessions.begin() as session:  # give the change back: the next check sends it
                session.execute(update(AlertState).where(AlertState.key == body["key"],
                                                         AlertState.firing == (body["status"] == "firing"))
                                .values(firing=body["status"] != "firing"))
    return sent


def source_conditions(session: Session, settings: Settings, now: datetime) -> list[Condition]:
    threshold = settings.alerts.source_failures
    sources = [s for s in source_health(session, settings, now, recent={}) if s["polled"]]
    return [Condition(f"source:{s['source']}", s["credentials_failed"] or s["failures"] >= threshold,
                      {"source": s["source"], "failures": s["failures"], "last_error": s["last_error"],
                       "credentials_failed": s["credentials_failed"],
                       "last_success_at": s["last_success_at"].isoformat() if s["last_success_at"] else None})
            for s in sources] + [
        Condition(f"credentials:{s['source']}", s["credentials_expiring"],
                  {"source": s["source"], "expire_at": s["credentials_expire_at"].isoformat()
                   if s["credentials_expire_at"] else None})
        for s in sources]  # every polled source: a token renewed to never expire resolves it too


def queue_conditions(depths: dict[str, int], alerts: AlertsConfig) -> list[Condition]:
    return [Condition(f"queue:{queue}", depth > alerts.queue_threshold,
                      {"queue": queue, "depth": depth, "threshold": alerts.queue_threshold})
            for queue, depth in depths.items()]


def _transition(session: Session, condition: Condition, now: datetime, alerts: AlertsConfig) -> dict | None:
    """Record the condition; returns the alert to send when its firing state changes now."""
    _ensure_row(session, condition.key, now)
    row = session.get(AlertState, condition.key, with_for_update=True, populate_existing=True)
    row.since = (row.since or now) if condition.holds else None
    firing = condition.holds
    if firing and condition.key.startswith("queue:"):  # a queue must stay above the threshold a while
        firing = now - row.since >= timedelta(minutes=alerts.queue_minutes)
    if firing == row.firing:
        return None
    row.firing, row.changed_at = firing, now
    return _body(condition, firing, row.since, now)


def _ensure_row(session: Session, key: str, now: datetime) -> None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(AlertState).values(key=key, firing=False, since=None, changed_at=now)
                    .on_conflict_do_nothing(index_elements=["key"]))


def _body(condition: Condition, firing: bool, since: datetime | None, now: datetime) -> dict[str, Any]:
    kind, name = condition.key.split(":", 1)
    status = "firing" if firing else "resolved"
    d = condition.details
    if kind == "source":
        alert = "source_unhealthy"
        why = "credentials refused" if d["credentials_failed"] else f"{d['failures']} failed polls in a row"
        summary = (f"crm-ingest: source {name} is unhealthy ({why}): {d['last_error'] or ''}".rstrip(": ")
                   if firing else f"crm-ingest: source {name} is healthy again")
    elif kind == "credentials":
        alert, kind = "credentials_expiring", "source"
        summary = (f"crm-ingest: source {name}'s credentials expire at {d['expire_at']}, renew them"
                   if firing else f"crm-ingest: source {name}'s credentials are renewed"
                   f" (now expire {d['expire_at'] or 'never'})")
    else:
        alert = "queue_backlog"
        summary = (f"crm-ingest: queue {name} holds {d['depth']} messages, above {d['threshold']} "
                   f"since {since:%H:%M} UTC" if firing else
                   f"crm-ingest: queue {name} is back to {d['depth']} messages")
    return {"alert": alert, "status": status, "key": condition.key, kind: name, "summary": summary,
            "text": summary, "details": d, "since": since.isoformat() if since else None, "at": now.isoformat()}


def _post(url: str, body: dict[str, Any], timeout: float) -> None:
    response = requests.post(url, json=body, timeout=timeout)
    response.raise_for_status()
